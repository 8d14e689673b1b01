"""Reports of run records: JUnit XML for CI, and a self-contained HTML page for people.

Both say, for a prompt with an output contract, how many answers parsed and satisfied it
(`RunRecord.conformance`): the HTML page in the run's summary line, JUnit as testsuite properties.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from functools import lru_cache
from typing import Any
from xml.etree import ElementTree

from promptops.evaluation.runs import CaseRecord, RunComparison, RunRecord


def _failures(case: CaseRecord) -> list[tuple[str, str, str]]:
    """(message, type, text) of each JUnit failure of a case that did not pass."""
    if case.passed:
        return []
    if len(case.attempts) > 1:
        lines = []
        for number, attempt in enumerate(case.attempts, 1):
            if not attempt.passed:
                why = attempt.error or "; ".join(a.reason for a in attempt.assertions if not a.passed and a.weight > 0)
                lines.append(f"#{number}: {why or f'score {attempt.score:.2f}'}\n--- answer ---\n{attempt.answer}")
        message = (f"passed {case.passes} of {len(case.attempts)} runs ({case.pass_rate:.0%}); "
                   f"needs {case.min_pass_rate:.0%}")
        return [(message, "min_pass_rate", "\n".join(lines))]
    attempt = case.attempts[0]
    failed = [a for a in attempt.assertions if not a.passed and a.weight > 0]
    out = [(a.reason, a.type, f"{a.reason}\n--- answer ---\n{attempt.answer}") for a in failed]
    if not out:  # every assertion passed, the case's score did not reach its threshold
        message = f"score {attempt.score:.2f} is below the case's threshold"
        out.append((message, "threshold", f"{message}\n--- answer ---\n{attempt.answer}"))
    return out


def _properties(item: ElementTree.Element, case: CaseRecord) -> None:
    """The model's own token counts (summed over a repeated case's attempts) and the finish reason."""
    answered = [a for a in case.attempts if a.prompt_tokens is not None]
    if not answered:
        return
    usage: dict[str, object] = {"prompt_tokens": sum(a.prompt_tokens or 0 for a in answered),
                                "completion_tokens": sum(a.completion_tokens or 0 for a in answered)}
    if len(case.attempts) == 1 and answered[0].finish_reason is not None:
        usage["finish_reason"] = answered[0].finish_reason
    properties = ElementTree.SubElement(item, "properties")
    for key, value in usage.items():
        ElementTree.SubElement(properties, "property", name=key, value=str(value))


def junit_xml(runs: Sequence[RunRecord], suite: str = "promptops") -> str:
    """JUnit XML, one testsuite per run (`prompt@version`), one testcase per case.

    A case run once reports each failed assertion (message = its reason, type = its type) and its
    answer as system-out; a repeated case is one testcase that fails when its pass rate is under its
    min_pass_rate, listing the failed attempts. The model's token counts are the testcase's
    `properties`, and a contract's counts (`structured_answers`, `structured_parsed`, `structured_valid`)
    the testsuite's; runs on several models name their suites `prompt@version on model`.
    """
    root = ElementTree.Element("testsuites", name=suite)
    several_models = len({run.model for run in runs}) > 1
    for run in runs:
        name = f"{run.prompt}@{run.version}" + (f" on {run.model}" if several_models else "")
        errors = sum(1 for c in run.cases if c.errored)
        failures = sum(1 for c in run.cases if not c.passed and not c.errored)
        node = ElementTree.SubElement(root, "testsuite", name=name, tests=str(len(run.cases)),
                                      failures=str(failures), errors=str(errors),
                                      time=f"{sum(c.latency_ms for c in run.cases) / 1000:.3f}")
        if (conformance := run.conformance) is not None:
            properties = ElementTree.SubElement(node, "properties")
            for key in ("answers", "parsed", "valid"):
                ElementTree.SubElement(properties, "property", name=f"structured_{key}",
                                       value=str(getattr(conformance, key)))
        for case in run.cases:
            item = ElementTree.SubElement(node, "testcase", classname=name, name=case.name,
                                          time=f"{case.latency_ms / 1000:.3f}")
            _properties(item, case)
            if case.errored:
                error = str(case.attempts[0].error)
                ElementTree.SubElement(item, "error", message=error).text = error
            else:
                for message, kind, text in _failures(case):
                    ElementTree.SubElement(item, "failure", message=message, type=kind).text = text
            answers = [a.answer for a in case.attempts]
            ElementTree.SubElement(item, "system-out").text = answers[0] if len(answers) == 1 else "\n".join(
                f"#{i}: {answer}" for i, answer in enumerate(answers, 1))
    ElementTree.indent(root)
    return ElementTree.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% if sections|length == 1 %}{% set first = sections[0].run %}
{{- first.prompt }}@{{ first.version }} · promptops run {{ first.id }}
{%- else %}promptops: {{ sections|length }} runs{% endif %}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem; color: #1c1c1c; }
h1 { font-size: 1.3rem; margin: 0 0 .4rem; }
.meta { color: #555; margin-bottom: 1rem; }
.meta span { margin-right: 1.2rem; }
table { border-collapse: collapse; width: 100%; margin-bottom: 1.5rem; }
th, td { border-bottom: 1px solid #ddd; padding: .35rem .5rem; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
pre { white-space: pre-wrap; word-break: break-word; margin: 0; font: 12px/1.4 ui-monospace, monospace; }
.pass { color: #146c2e; font-weight: 600; }
.fail { color: #b3261e; font-weight: 600; }
.muted { color: #777; }
.broken, .worse { background: #fdecea; }
.fixed, .better { background: #e8f5e9; }
details summary { cursor: pointer; }
</style>
</head>
<body>
{% macro mark(ok, yes='pass', no='fail') -%}
<span class="{{ 'pass' if ok else 'fail' }}">{{ yes if ok else no }}</span>
{%- endmacro %}
{% macro num(x) %}{{ '%.2f'|format(x) }}{% endmacro %}
{% for section in sections %}
{% set run, comparison, started, passed = section.run, section.comparison, section.started, section.passed %}
<section>
<h1>{{ run.prompt }}@{{ run.version }}{% if sections|length > 1 %} on {{ run.model }}{% endif %}
{{ mark(run.passed, 'passed', 'failed') }}</h1>
<div class="meta">
  <span>model <b>{{ run.model }}</b></span>
  {% if run.label %}<span>label <b>{{ run.label }}</b></span>{% endif %}
  <span>commit <b>{{ run.commit[:12] if run.commit else 'working tree' }}</b></span>
  <span>started {{ started }}</span>
  <span>cases passed <b>{{ passed }}/{{ run.cases|length }}</b> ({{ pct(run.pass_rate) }})</span>
  <span>attempts passed {{ pct(run.attempt_pass_rate) }}</span>
  <span>score <b>{{ num(run.score) }}</b></span>
  {% if run.conformance %}<span>structured answers {{ run.conformance.text() }}</span>{% endif %}
</div>
{% if comparison %}
<h2>Compared with {{ comparison.base.prompt }}@{{ comparison.base.version }}
{%- if comparison.base.id %} (run {{ comparison.base.id }}){% endif %}</h2>
<p>{{ comparison.summary() }}</p>
<table>
<tr><th>case</th><th>change</th><th>pass rate</th><th>score</th><th>answer</th></tr>
{% for change in comparison.changes if change.status != 'same' %}
<tr class="{{ change.status }}"><td>{{ change.name }}</td><td>{{ change.status }}</td>
<td>{{ pct(change.base.pass_rate) if change.base else '–' }} →
    {{ pct(change.head.pass_rate) if change.head else '–' }}</td>
<td>{{ num(change.base.score) if change.base else '–' }} → {{ num(change.head.score) if change.head else '–' }}</td>
<td>{{ 'changed' if change.answer_changed else 'same' }}</td></tr>
{% endfor %}
</table>
{% endif %}
<table>
<tr><th>case</th><th>verdict</th><th>pass rate</th><th>score</th><th>answer and assertions</th></tr>
{% for case in run.cases %}
<tr>
<td>{{ case.name }}{% if case.source %}<div class="muted">{{ case.source }}</div>{% endif %}
{% for key, value in case.vars.items() %}<pre class="muted">{{ key }}: {{ value }}</pre>{% endfor %}</td>
<td>{{ mark(case.passed, no='error' if case.errored else 'fail') }}</td>
<td>{{ case.passes }}/{{ case.attempts|length }}
{%- if case.attempts|length > 1 %} (needs {{ pct(case.min_pass_rate) }}){% endif %}</td>
<td>{{ num(case.score) }}</td>
<td>
{% for attempt in case.attempts %}
<details{% if not attempt.passed %} open{% endif %}>
<summary>{% if case.attempts|length > 1 %}#{{ loop.index }} {% endif %}{{ mark(attempt.passed) }}
  <span class="muted">{{ '%.0f'|format(attempt.latency_ms) }} ms
  {%- if attempt.completion_tokens is not none %} · {{ attempt.completion_tokens }} tokens{% endif %}
  {%- if attempt.parsed is not none and not attempt.valid %} · {{ 'invalid' if attempt.parsed else 'unparsable' }}
  {%- endif %}</span></summary>
{% if attempt.error %}<pre class="fail">{{ attempt.error }}</pre>{% else %}<pre>{{ attempt.answer }}</pre>{% endif %}
{% if attempt.assertions %}
<table>
{% for a in attempt.assertions %}
<tr><td>{{ mark(a.passed) }}</td><td>{{ a.type }}</td>
<td>{{ num(a.score) }}{% if a.weight != 1 %} ×{{ a.weight }}{% endif %}</td><td>{{ a.reason }}</td></tr>
{% endfor %}
</table>
{% endif %}
</details>
{% endfor %}
</td>
</tr>
{% endfor %}
</table>
</section>
{% endfor %}
</body>
</html>
"""


@lru_cache(maxsize=1)
def _template() -> Any:
    # Imported here: only reports need Jinja's compiler. Autoescape is on: answers, vars, reasons
    # and names are model or user text, and none of them may become markup.
    from jinja2 import Environment

    return Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True).from_string(_PAGE)


def html_report(run: RunRecord, comparison: RunComparison | None = None) -> str:
    """One self-contained HTML page (inline CSS, no scripts or external assets), every value escaped."""
    return html_reports([(run, comparison)])


def html_reports(runs: Sequence[tuple[RunRecord, RunComparison | None]]) -> str:
    """One page for several runs (a prompts x models matrix), each with its comparison if any."""
    sections = [{"run": run, "comparison": comparison, "passed": sum(1 for c in run.cases if c.passed),
                 "started": run.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")}
                for run, comparison in runs]
    return str(_template().render(sections=sections, pct=lambda x: f"{x:.0%}"))

from datetime import UTC, datetime
from xml.etree import ElementTree

import pytest

from promptops.evaluation.assertions import AssertionResult, CaseScore
from promptops.evaluation.datasets import Case
from promptops.evaluation.reports import html_report, junit_xml
from promptops.evaluation.runs import (
    Attempt,
    CaseRecord,
    RunNotFound,
    RunRecord,
    compare_runs,
    latest_run,
    list_runs,
    load_run,
    save_run,
)
from promptops.triton.client import Answer

START = datetime(2026, 3, 1, 10, 15, 2, 123000, tzinfo=UTC)


def attempt(passed=True, answer="Berlin", score=None):
    reason = "expected answer to contain 'Berlin'"
    check = AssertionResult("contains", "Berlin", passed, float(passed), reason)
    verdict = CaseScore((check,), float(passed) if score is None else score, passed)
    return Attempt.scored(Answer(answer, 30, 5, "stop", total_s=0.12), verdict)


def case(name, *passes, min_pass_rate=1.0, score=None):
    return CaseRecord.of(Case(name, {"user": "q"}, min_pass_rate=min_pass_rate, source="prompts/p.json $.tests[0]"),
                         [attempt(p, score=score) for p in passes])


def record(*cases, prompt="support"):
    return RunRecord(prompt, "v3", "smollm2-135m", commit="a" * 40, label="production", started_at=START,
                     cases=list(cases))


@pytest.mark.parametrize(("passes", "min_pass_rate", "rate", "passed"), [
    ((True, True, False), 0.6, 2 / 3, True), ((True, False, False), 0.6, 1 / 3, False),
    ((True, True), 1.0, 1.0, True), ((True, False), 1.0, 0.5, False), ((), 0.0, 0.0, False),
])
def test_repeat_passes_on_the_measured_pass_rate(passes, min_pass_rate, rate, passed):
    result = case("c", *passes, min_pass_rate=min_pass_rate)
    assert (result.pass_rate, result.passed, len(result.attempts)) == (pytest.approx(rate), passed, len(passes))


def test_run_file_round_trip_and_listing(tmp_path):
    run = record(case("capital", True, True, False, min_pass_rate=0.5), case("math", False))
    first, second = save_run(run, tmp_path), save_run(record(case("x", True)), tmp_path)
    assert first.name == "20260301T101502123Z-support.json" and second.name == "20260301T101502124Z-support.json"
    loaded = load_run(tmp_path, "20260301T101502123Z-support")
    assert loaded == run and loaded.pass_rate == 0.5 and loaded.attempt_pass_rate == 0.5
    assert [r.id for r in list_runs(tmp_path, "support")] == [run.id, second.stem] and list_runs(tmp_path, "other") == []
    assert latest_run(tmp_path, "support").id == second.stem


@pytest.mark.parametrize("run_id", ["../../etc/passwd", "20260301T101502123Z-nope"])
def test_unknown_or_hostile_run_ids_are_refused(tmp_path, run_id):
    with pytest.raises(RunNotFound):
        load_run(tmp_path, run_id)


def test_compare_says_what_got_better_or_worse_per_case():
    base = record(case("fixed", False), case("broken", True), case("better", True, score=0.5),
                  case("worse", True), case("same", True), case("gone", True))
    head = record(case("fixed", True), case("broken", False), case("better", True, score=0.9),
                  case("worse", True, score=0.7), case("same", True), case("new", True))
    comparison = compare_runs(base, head)
    assert [(c.name, c.status) for c in comparison.changes] == [
        ("broken", "broken"), ("worse", "worse"), ("fixed", "fixed"), ("better", "better"), ("new", "added"),
        ("gone", "removed"), ("same", "same")]
    assert comparison.regressed and comparison.summary() == "1 broken · 1 worse · 1 fixed · 1 better · 1 added · 1 removed · 1 same"


def test_junit_keeps_the_testing_layout_and_reports_pass_rates():
    errored = CaseRecord("down", attempts=[Attempt.failed("Triton is not reachable")])
    xml = junit_xml([record(case("ok", True), case("math", False), case("flaky", True, False, min_pass_rate=0.8), errored)])
    suite = ElementTree.fromstring(xml.split("\n", 1)[1]).find("testsuite")
    assert (suite.get("name"), suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("support@v3", "4", "2", "1")
    cases = suite.findall("testcase")
    assert cases[1].find("failure").get("message") == "expected answer to contain 'Berlin'"
    assert cases[2].find("failure").get("message") == "passed 1 of 2 runs (50%); needs 80%"
    assert cases[3].find("error").get("message") == "Triton is not reachable"


def test_html_report_is_self_contained_and_escapes_everything():
    hostile = "<script>alert(1)</script>"
    run = record(CaseRecord(hostile, {"user": hostile}, attempts=[attempt(False, answer=hostile)]), prompt="p")
    page = html_report(run, compare_runs(run, run))
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<style>" in page and not any(ref in page for ref in ("<link", "src=", "href=", "url(", "@import"))

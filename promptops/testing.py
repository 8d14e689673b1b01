"""Prompt test cases: assertions on model answers, a concurrent runner, and JUnit XML."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

from promptops import chat
from promptops.chat import Answer, EventStreamer
from promptops.errors import InferenceError, PromptOpsError
from promptops.prompt import Prompt

ASSERTION_TYPES = ("equals", "contains", "icontains", "not-contains", "regex", "starts-with",
                   "min-length", "max-length", "is-json", "latency-ms")


# What the runner needs from an inference client (promptops.inference.InferenceClient).
TextStreamer = EventStreamer


@dataclass(frozen=True)
class AssertionResult:
    """One assertion's verdict, with a message that says what was expected."""

    type: str
    value: Any
    passed: bool
    message: str


@dataclass(frozen=True)
class Target:
    """A prompt to test and the label of its version ("draft", "v3", a short SHA...)."""

    prompt: Prompt
    label: str = "draft"


@dataclass
class CaseResult:
    """One run of one test case."""

    prompt: str
    version: str
    case: str
    repeat: int
    output: str = ""
    latency_ms: float = 0.0
    first_token_ms: float | None = None
    assertions: list[AssertionResult] = field(default_factory=list)
    error: str | None = None
    prompt_tokens: int | None = None  # the model's counts; None when it never answered
    completion_tokens: int | None = None
    finish_reason: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and all(a.passed for a in self.assertions)

    @property
    def test_id(self) -> str:
        suffix = f" #{self.repeat + 1}" if self.repeat else ""
        return f"{self.prompt}@{self.version}::{self.case}{suffix}"


def _number(value: Any, kind: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise PromptOpsError(f"assertion {kind} needs a number, got {value!r}") from None


def check_assertion(assertion: Mapping[str, Any], output: str, latency_ms: float) -> AssertionResult:
    """Evaluate one `{type, value}` assertion against a model answer.

    `equals` and `starts-with` ignore surrounding whitespace, since models often lead with a space.
    """
    kind, value = assertion["type"], assertion.get("value")
    text = output.strip()
    if kind == "equals":
        ok, want = text == str(value).strip(), f"to equal {value!r}"
    elif kind == "contains":
        ok, want = str(value) in output, f"to contain {value!r}"
    elif kind == "icontains":
        ok, want = str(value).casefold() in output.casefold(), f"to contain {value!r} (any case)"
    elif kind == "not-contains":
        ok, want = str(value) not in output, f"not to contain {value!r}"
    elif kind == "starts-with":
        ok, want = text.startswith(str(value).strip()), f"to start with {value!r}"
    elif kind == "regex":
        try:
            ok = re.search(str(value), output) is not None
        except re.error as exc:
            return AssertionResult(kind, value, False, f"invalid regex {value!r}: {exc}")
        want = f"to match /{value}/"
    elif kind == "min-length":
        ok, want = len(text) >= _number(value, kind), f"to be at least {value} characters (got {len(text)})"
    elif kind == "max-length":
        ok, want = len(text) <= _number(value, kind), f"to be at most {value} characters (got {len(text)})"
    elif kind == "is-json":
        try:
            json.loads(text)
            ok = True
        except ValueError:
            ok = False
        want = "to be valid JSON"
    elif kind == "latency-ms":
        ok, want = latency_ms <= _number(value, kind), f"to take at most {value} ms (took {latency_ms:.0f} ms)"
    else:
        return AssertionResult(kind, value, False, f"unknown assertion type {kind!r}")
    return AssertionResult(kind, value, ok, f"expected answer {want}")


async def run_case(client: TextStreamer, target: Target, case: Mapping[str, Any], model: str,
                   repeat: int = 0) -> CaseResult:
    """Render the case's variables into the prompt, stream the answer, check every assertion.

    Goes through the chat pipeline (`promptops.chat`): a chat prompt is rendered with the chat template
    of `model`, the model that answers, and the result carries the model's token counts.
    """
    result = CaseResult(target.prompt.name, target.label, str(case["name"]), repeat)
    try:
        prepared = chat.prepare(target.prompt, None, variables=case.get("vars", {}), default_model=model,
                                version=target.label, source=f"{target.prompt.name}@{target.label}")
        answer: Answer = await chat.complete(client, prepared)
    except (InferenceError, PromptOpsError) as exc:
        result.error = exc.message
        return result
    result.output, result.latency_ms = answer.text, answer.total_s * 1000
    result.first_token_ms = None if answer.ttft_s is None else answer.ttft_s * 1000
    result.prompt_tokens, result.completion_tokens = answer.prompt_tokens, answer.completion_tokens
    result.finish_reason = answer.finish_reason
    result.assertions = [check_assertion(a, result.output, result.latency_ms) for a in case.get("assert", [])]
    return result


async def run_tests(client: TextStreamer, targets: Sequence[Target], default_model: str, *, repeat: int = 1,
                    concurrency: int = 1, on_result: Callable[[CaseResult], None] | None = None) -> list[CaseResult]:
    """Run every case of every target `repeat` times, at most `concurrency` at once, in a stable order."""
    jobs = [(t, case, r) for t in targets for case in t.prompt.tests for r in range(repeat)]
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(target: Target, case: Mapping[str, Any], r: int) -> CaseResult:
        async with gate:
            result = await run_case(client, target, case, target.prompt.model or default_model, r)
        if on_result:
            on_result(result)
        return result

    return list(await asyncio.gather(*(one(*job) for job in jobs)))


def junit_xml(results: Sequence[CaseResult], suite: str = "promptops") -> str:
    """JUnit XML (one testsuite per prompt version) for CI test reporters; each case's token counts and
    finish reason are its `properties`."""
    root = ElementTree.Element("testsuites", name=suite)
    by_suite: dict[str, list[CaseResult]] = {}
    for result in results:
        by_suite.setdefault(f"{result.prompt}@{result.version}", []).append(result)
    for name, cases in by_suite.items():
        failures = sum(1 for c in cases if c.error is None and not c.passed)
        errors = sum(1 for c in cases if c.error is not None)
        node = ElementTree.SubElement(root, "testsuite", name=name, tests=str(len(cases)), failures=str(failures),
                                      errors=str(errors), time=f"{sum(c.latency_ms for c in cases) / 1000:.3f}")
        for case in cases:
            label = case.case + (f" #{case.repeat + 1}" if case.repeat else "")
            item = ElementTree.SubElement(node, "testcase", classname=name, name=label,
                                          time=f"{case.latency_ms / 1000:.3f}")
            usage = {"prompt_tokens": case.prompt_tokens, "completion_tokens": case.completion_tokens,
                     "finish_reason": case.finish_reason}
            if any(value is not None for value in usage.values()):
                properties = ElementTree.SubElement(item, "properties")
                for key, value in usage.items():
                    if value is not None:
                        ElementTree.SubElement(properties, "property", name=key, value=str(value))
            if case.error is not None:
                ElementTree.SubElement(item, "error", message=case.error).text = case.error
            for failed in (a for a in case.assertions if not a.passed):
                ElementTree.SubElement(item, "failure", message=failed.message, type=failed.type).text = (
                    f"{failed.message}\n--- answer ---\n{case.output}")
            ElementTree.SubElement(item, "system-out").text = case.output
    ElementTree.indent(root)
    return ElementTree.tostring(root, encoding="unicode", xml_declaration=True) + "\n"

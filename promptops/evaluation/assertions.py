"""The assertion catalogue: each assertion scores an answer (0..1), passes at its threshold, and says why.

Every assertion is `{"type", "value"?, "threshold"?, "weight"?, ...}`. Its score is 1 or 0 for the
yes/no types (`contains`, `is-json`, ...) and a measure for the others (`levenshtein`, `rouge-n`,
`similar`, `llm-rubric`, `python` returning a number). It passes when `score >= threshold`; without a
`threshold`, the judge's (or a Python check's) own `pass` decides where it gives one, else the type's
default (`DEFAULT_THRESHOLDS`, 1.0 for yes/no types). A case's score is the weighted mean of its
assertions' scores; weight 0 records an assertion without counting it.

An assertion scores one `Answer` (promptops.triton.client: the text, the model's token counts, the
time it took) under the prompt's output `Contract` (promptops.prompt.outputs): `json-schema` without a
`value` checks the prompt's own answer schema, and `tool-call` checks a call against the prompt's tool
definitions. What needs a model is injected: `Tools.embed` (the embeddings model) and `Tools.judge`
(the judge prompt on a text model), both async, so this module never calls the Triton client.

`ASSERTION_TYPES` is the one list of types: the prompt schema's enum must equal it
(tests/evaluation/test_assertions.py). `latency-ms` is another name of `latency` (`ALIASES`).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import inspect
import json
import math
import re
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from promptops.errors import PromptOpsError
from promptops.evaluation.paths import resolve_in_repo
from promptops.prompt.outputs import Contract, validation_errors
from promptops.triton.client import Answer

# The yes/no types first, then the measured ones; schemas/prompt.schema.json's enum lists the same, in this order.
ASSERTION_TYPES = ("equals", "contains", "icontains", "not-contains", "regex", "starts-with", "min-length",
                   "max-length", "is-json", "latency-ms", "json-schema", "tool-call", "levenshtein", "rouge-n",
                   "similar", "llm-rubric", "python", "tokens", "latency")
# Thresholds of the measured types; yes/no types pass at 1.0. llm-rubric has none: the judge's `pass` decides.
DEFAULT_THRESHOLDS: dict[str, float] = {"levenshtein": 0.8, "rouge-n": 0.75, "similar": 0.75, "python": 0.5}
# Other names of a type: `{"type": "latency-ms", "value": 500}` is `{"type": "latency", "max": 500}`.
ALIASES: dict[str, str] = {"latency-ms": "latency"}

Embed = Callable[[Sequence[str]], Awaitable[Sequence[Sequence[float]]]]
"""Texts -> one vector each (the runner binds `InferenceClient.embed` to the embeddings model)."""
Judge = Callable[[str, str, Mapping[str, Any]], Awaitable[tuple[bool, float, str]]]
"""(rubric, answer, case) -> (passed, score 0..1, reason): the judge prompt run on its model."""
JUDGE_PROMPT = "judge"
"""The judge prompt (prompts/judge.json): fields {rubric} and {answer}, optional {user} context; names its model."""

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Tools:
    """What some assertions need: the repository (for `python` and schema files) and the injected models."""

    repo: Path | None = None
    prompts_dir: str = "prompts"
    embed: Embed | None = None
    judge: Judge | None = None
    python_checks: bool = True  # False where the prompt's author is not trusted to run code (a python check fails)


@dataclass(frozen=True)
class AssertionResult:
    """One assertion's verdict: passed, score 0..1, and a reason that says what was expected."""

    type: str
    value: Any
    passed: bool
    score: float
    reason: str
    weight: float = 1.0
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "value": self.value, "passed": self.passed, "score": self.score,
                "reason": self.reason, "weight": self.weight, "threshold": self.threshold}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AssertionResult:
        return cls(str(data["type"]), data.get("value"), bool(data["passed"]), float(data["score"]),
                   str(data["reason"]), float(data.get("weight", 1.0)), data.get("threshold"))


@dataclass(frozen=True)
class CaseScore:
    """Every assertion of one answer, their weighted score, and the case's verdict."""

    assertions: tuple[AssertionResult, ...]
    score: float
    passed: bool


# An outcome: (score, reason, the check's own pass or None to decide by threshold).
Outcome = tuple[float, str, bool | None]


def _number(value: Any, kind: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise PromptOpsError(f"assertion {kind} needs a number, got {value!r}") from None


def _yes_no(ok: bool, reason: str) -> Outcome:
    return (1.0 if ok else 0.0), reason, None


def _text_outcome(kind: str, value: Any, output: str) -> Outcome:
    """The yes/no types on the answer's text."""
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
            return 0.0, f"invalid regex {value!r}: {exc}", None
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
    else:
        return 0.0, f"unknown assertion type {kind!r}", None
    return _yes_no(ok, f"expected answer {want}")


def _json_schema(value: Any, answer: Answer, tools: Tools, contract: Contract) -> Outcome:
    from jsonschema import Draft202012Validator, SchemaError, validators
    from jsonschema.exceptions import best_match

    if value is None:  # the prompt's own answer schema (its response_format)
        value = contract.schema
        if value is None:
            return 0.0, ("json-schema has no schema: give one as its value (a schema or a schema file), or declare "
                         "a json_schema response_format in the prompt"), None
    if isinstance(value, str):
        if tools.repo is None:
            return 0.0, f"schema file {value!r} needs the repository", None
        try:
            schema = json.loads(resolve_in_repo(value, tools.repo, tools.prompts_dir).read_bytes())
        except (OSError, ValueError, PromptOpsError) as exc:
            return 0.0, f"cannot read the schema file {value!r}: {getattr(exc, 'message', exc)}", None
    else:
        schema = value
    try:
        instance = json.loads(answer.text.strip())
    except ValueError as exc:
        return 0.0, f"expected answer to be JSON matching the schema; it is not JSON ({exc.msg})", None
    try:
        validator_class = validators.validator_for(schema, default=Draft202012Validator)
        validator_class.check_schema(schema)
    except SchemaError as exc:
        return 0.0, f"invalid JSON schema: {exc.message}", None
    error = best_match(validator_class(schema).iter_errors(instance))
    if error is None:
        return 1.0, "expected answer to match the JSON schema", None
    return 0.0, f"expected answer to match the JSON schema: at {error.json_path}: {error.message}", None


def _subset_mismatch(want: Any, got: Any, where: str) -> str | None:
    """Why `got` does not hold `want` (objects: every key of `want`, recursively; anything else: equal)."""
    if isinstance(want, Mapping) and isinstance(got, Mapping):
        for key, value in want.items():
            if key not in got:
                return f"{where}.{key} is missing"
            if (why := _subset_mismatch(value, got[key], f"{where}.{key}")) is not None:
                return why
        return None
    return None if want == got else f"{where} is {json.dumps(got)}, expected {json.dumps(want)}"


def _tool_call(assertion: Mapping[str, Any], answer: Answer, contract: Contract) -> Outcome:
    """The answer is `{"name": <tool>, "arguments": {...}}` (the contract's call shape) naming the wanted
    tool (any of the prompt's when none is named), its arguments valid under the tool's parameters and
    holding the assertion's `arguments` (a subset: nested objects may have more keys)."""
    wanted = assertion.get("value", assertion.get("name"))
    what = f"a call of {wanted}" if wanted is not None else "a tool call"
    if not contract.tools:
        return 0.0, "tool-call needs a prompt with tools: declare them in the prompt's `tools`", None
    if wanted is not None and wanted not in {tool.name for tool in contract.tools}:
        names = ", ".join(tool.name for tool in contract.tools)
        return 0.0, f"tool-call names {wanted!r}, which is not one of the prompt's tools ({names})", None
    try:
        call = json.loads(answer.text.strip())
    except ValueError as exc:
        return 0.0, f"expected {what}; the answer is not JSON ({exc.msg})", None
    if not (isinstance(call, dict) and isinstance(call.get("name"), str) and isinstance(call.get("arguments"), dict)):
        return 0.0, f'expected {what}; the answer is not {{"name": ..., "arguments": {{...}}}}', None
    name, arguments = call["name"], call["arguments"]
    if wanted is not None and name != wanted:
        return 0.0, f"expected {what}; the answer calls {name}", None
    tool = next((t for t in contract.tools if t.name == name), None)
    if tool is None:
        return 0.0, f"expected {what}; the answer calls {name}, which is not one of the prompt's tools", None
    errors = validation_errors(arguments, tool.parameters, "$.arguments")
    if errors:
        return 0.0, f"expected a valid call of {name}: {errors[0]}", None
    want = assertion.get("arguments")
    if want is not None and (why := _subset_mismatch(want, arguments, "$.arguments")) is not None:
        return 0.0, f"expected a call of {name} with {json.dumps(want)}: {why}", None
    return 1.0, f"expected {what}" + (f" with {json.dumps(want)}" if want is not None else ""), None


def levenshtein_similarity(a: str, b: str) -> float:
    """1 - edit distance / the longer length: 1.0 for equal strings, 0.0 for nothing in common."""
    from rapidfuzz.distance import Levenshtein

    return float(Levenshtein.normalized_similarity(a, b))


def rouge_n(answer: str, reference: str, n: int = 1) -> float:
    """ROUGE-N recall: the share of the reference's word n-grams (with counts) found in the answer.

    Words are case-folded `\\w+` runs. A reference with fewer than `n` words scores 0.
    """
    def grams(text: str) -> Counter[tuple[str, ...]]:
        words = _WORD.findall(text.casefold())
        return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))

    want = grams(reference)
    total = sum(want.values())
    return sum((want & grams(answer)).values()) / total if total else 0.0


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity (0.0 when either vector is zero)."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def _references(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


async def _similar(value: Any, answer: Answer, tools: Tools, threshold: float) -> Outcome:
    if tools.embed is None:
        return 0.0, "similar needs an embeddings model, and none was given", None
    references = _references(value)
    try:
        vectors = await tools.embed([answer.text.strip(), *references])
    except PromptOpsError as exc:
        return 0.0, f"embedding failed: {exc.message}", None
    if len(vectors) != len(references) + 1:
        return 0.0, f"the embeddings model returned {len(vectors)} vectors for {len(references) + 1} texts", None
    best, reference = max((cosine(vectors[0], v), r) for v, r in zip(vectors[1:], references, strict=True))
    return max(0.0, best), f"expected answer similar to {reference!r} (cosine {best:.2f}, needs {threshold:.2f})", None


async def _rubric(value: Any, answer: Answer, case: Mapping[str, Any], tools: Tools) -> Outcome:
    if tools.judge is None:
        return 0.0, "llm-rubric needs a judge model, and none was given", None
    try:
        passed, score, reason = await tools.judge(str(value), answer.text, case)
    except PromptOpsError as exc:
        return 0.0, f"the judge failed: {exc.message}", None
    return _clamp(score), f"judge: {reason}" if reason else "judge gave no reason", bool(passed)


_modules: dict[tuple[str, int], ModuleType] = {}


def _load_function(ref: str, tools: Tools) -> Callable[..., Any]:
    """`path/to/file.py:function`, the file inside the repository, loaded once per modification time."""
    path_text, sep, name = ref.rpartition(":")
    if not sep or not path_text.endswith(".py") or not name.isidentifier():
        raise PromptOpsError(f"python assertion {ref!r} must name 'file.py:function'",
                             fix="e.g. 'checks/answers.py:is_polite', relative to the prompts directory")
    if tools.repo is None:
        raise PromptOpsError(f"python assertion {ref!r} needs the repository")
    path = resolve_in_repo(path_text, tools.repo, tools.prompts_dir)
    try:
        key = (str(path), path.stat().st_mtime_ns)
    except OSError as exc:
        raise PromptOpsError(f"cannot read {path_text}: {exc.strerror}") from None
    module = _modules.get(key)
    if module is None:
        module_name = "promptops_check_" + hashlib.sha256(key[0].encode()).hexdigest()[:16]
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and pickling look modules up by name
        spec.loader.exec_module(module)
        _modules[key] = module
    function = getattr(module, name, None)
    if not callable(function):
        raise PromptOpsError(f"{path_text} has no function {name!r}")
    return function  # type: ignore[no-any-return]


async def _python(value: Any, answer: Answer, case: Mapping[str, Any], tools: Tools) -> Outcome:
    ref = str(value)
    if not tools.python_checks:
        return 0.0, f"python checks are turned off here; {ref} was not run", None
    try:
        function = _load_function(ref, tools)
    except PromptOpsError as exc:
        return 0.0, exc.message, None
    except Exception as exc:  # the user's module failed to import: a failed check, not a crashed run
        return 0.0, f"cannot load {ref}: {type(exc).__name__}: {exc}", None
    try:
        result = function(answer.text, case)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        return 0.0, f"{ref} raised {type(exc).__name__}: {exc}", None
    if isinstance(result, bool):
        return (1.0 if result else 0.0), f"{ref} returned {result}", result
    if isinstance(result, int | float):
        return _clamp(result), f"{ref} scored {float(result):.2f}", None
    if isinstance(result, Mapping) and ("pass" in result or "score" in result):
        own = bool(result["pass"]) if "pass" in result else None
        score = _clamp(result["score"]) if "score" in result else (1.0 if own else 0.0)
        return score, str(result.get("reason") or f"{ref} scored {score:.2f}"), own
    return 0.0, f"{ref} returned {type(result).__name__}; return a bool, a number or {{pass, score, reason}}", None


def _bounds(assertion: Mapping[str, Any], kind: str) -> tuple[float | None, float | None]:
    low, high = assertion.get("min"), assertion.get("max", assertion.get("value"))
    if low is None and high is None:
        raise PromptOpsError(f"assertion {kind} needs 'min' or 'max'")
    return (None if low is None else _number(low, kind)), (None if high is None else _number(high, kind))


def _within(got: float, low: float | None, high: float | None) -> bool:
    return (low is None or got >= low) and (high is None or got <= high)


def _range_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"between {low:g} and {high:g}"
    return f"at least {low:g}" if low is not None else f"at most {high:g}"


def _tokens(assertion: Mapping[str, Any], answer: Answer) -> Outcome:
    low, high = _bounds(assertion, "tokens")
    got = answer.completion_tokens
    return _yes_no(_within(got, low, high), f"expected {_range_text(low, high)} completion tokens (got {got})")


def _latency(assertion: Mapping[str, Any], answer: Answer) -> Outcome:
    low, high = _bounds(assertion, "latency")
    ms = answer.latency_ms
    return _yes_no(_within(ms, low, high), f"expected an answer in {_range_text(low, high)} ms (took {ms:.0f} ms)")


def _clamp(score: Any) -> float:
    try:
        value = float(score)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if math.isnan(value) else min(1.0, max(0.0, value))


async def _outcome(kind: str, assertion: Mapping[str, Any], answer: Answer, case: Mapping[str, Any], tools: Tools,
                   threshold: float, contract: Contract) -> Outcome:
    value = assertion.get("value")
    text = answer.text.strip()
    kind = ALIASES.get(kind, kind)
    if kind == "json-schema":
        return _json_schema(value, answer, tools, contract)
    if kind == "tool-call":
        return _tool_call(assertion, answer, contract)
    if kind == "levenshtein":
        score = levenshtein_similarity(text, str(value).strip())
        return score, f"expected answer close to {value!r} (similarity {score:.2f}, needs {threshold:.2f})", None
    if kind == "rouge-n":
        n = int(assertion.get("n", 1))
        score = rouge_n(text, str(value), n)
        return score, f"expected answer to recall {value!r} (ROUGE-{n} {score:.2f}, needs {threshold:.2f})", None
    if kind == "similar":
        return await _similar(value, answer, tools, threshold)
    if kind == "llm-rubric":
        return await _rubric(value, answer, case, tools)
    if kind == "python":
        return await _python(value, answer, case, tools)
    if kind == "tokens":
        return _tokens(assertion, answer)
    if kind == "latency":
        return _latency(assertion, answer)
    return _text_outcome(kind, value, answer.text)


async def check(assertion: Mapping[str, Any], answer: Answer, case: Mapping[str, Any] | None = None,
                tools: Tools | None = None, *, contract: Contract | None = None) -> AssertionResult:
    """Evaluate one assertion against an answer. `case` is the test case as a mapping (name, vars, ...);
    `contract` is the prompt's output contract (its answer schema and tools; None: it has none).

    A wrong assertion (a non-number bound, an unreadable schema file) is a failed result that says
    why, never an exception, so one bad assertion cannot stop a run.
    """
    kind, value = str(assertion.get("type")), assertion.get("value")
    weight = _clamp_weight(assertion.get("weight", 1))
    raw = assertion.get("threshold")
    given = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None
    threshold = given if given is not None else DEFAULT_THRESHOLDS.get(kind, 1.0)
    try:
        score, reason, own = await _outcome(kind, assertion, answer, case or {}, tools or Tools(), threshold,
                                            contract or Contract())
    except PromptOpsError as exc:
        score, reason, own = 0.0, exc.message, None
    passed = own if own is not None and given is None else score >= threshold
    return AssertionResult(kind, value, passed, score, reason, weight, given)


def _clamp_weight(weight: Any) -> float:
    try:
        return max(0.0, float(weight))
    except (TypeError, ValueError):
        return 1.0


def case_score(results: Sequence[AssertionResult], threshold: float | None = None) -> tuple[float, bool]:
    """(weighted mean score, passed). Without `threshold` every counted assertion must pass.

    Weight-0 assertions are recorded but neither scored nor able to fail the case. A case with
    no counted assertion scores 1.0.
    """
    counted = [r for r in results if r.weight > 0]
    total = sum(r.weight for r in counted)
    score = sum(r.weight * r.score for r in counted) / total if total else 1.0
    passed = score >= threshold if threshold is not None else all(r.passed for r in counted)
    return score, passed


async def check_all(assertions: Sequence[Mapping[str, Any]], answer: Answer, case: Mapping[str, Any] | None = None,
                    tools: Tools | None = None, *, threshold: float | None = None,
                    contract: Contract | None = None) -> CaseScore:
    """Every assertion of a case (concurrently: embeddings and judge calls overlap), scored together."""
    results = tuple(await asyncio.gather(*(check(a, answer, case, tools, contract=contract) for a in assertions)))
    score, passed = case_score(results, threshold)
    return CaseScore(results, score, passed)


_PASS = re.compile(r'"?pass"?\s*[:=]\s*"?(true|false|yes|no)\b', re.IGNORECASE)
_SCORE = re.compile(r'"?score"?\s*[:=]\s*"?([0-9]*\.?[0-9]+)', re.IGNORECASE)
_REASON = re.compile(r'"?reason"?\s*[:=]\s*"((?:[^"\\]|\\.)*)', re.IGNORECASE)


def _truthy(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "pass", "false", "no", "fail"):
        return value.strip().lower() in ("true", "yes", "pass")
    return None


def _as_score(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return _clamp(float(value))
    except ValueError:
        return None


def _first_object(text: str) -> dict[str, Any] | None:
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            found, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(found, dict):
            return found
    return None


def parse_judgement(text: str) -> tuple[bool, float, str]:
    """A judge model's answer `{"pass": bool, "score": 0..1, "reason": str}` as (passed, score, reason).

    Small models stray from JSON, so this takes the first JSON object in the text, else `pass: true`,
    `score: 0.8` and `reason: "..."` written loosely; a missing score follows pass (1 or 0), a missing
    pass follows score (>= 0.5). No verdict at all fails with the answer quoted.
    """
    found = _first_object(text) or {}
    passed = _truthy(found.get("pass"))
    score = _as_score(found.get("score"))
    reason = found.get("reason") if isinstance(found.get("reason"), str) else None
    if passed is None and (match := _PASS.search(text)):
        passed = match.group(1).lower() in ("true", "yes")
    if score is None and (match := _SCORE.search(text)):
        score = _clamp(match.group(1))
    if reason is None and (match := _REASON.search(text)):
        reason = match.group(1)
    if passed is None and score is None:
        return False, 0.0, f"the judge gave no verdict: {text.strip()[:200]!r}"
    if score is None:
        score = 1.0 if passed else 0.0
    if passed is None:
        passed = score >= 0.5
    return passed, score, (reason or "").strip()


def judge_with(complete: Callable[[dict[str, str]], Awaitable[str]], *, with_question: bool = False) -> Judge:
    """A Judge from `complete`, which runs the judge prompt on variables and returns the model's text.

    The variables are {rubric, answer}; `with_question` adds the case's `user` variable as
    `user = "Question: ...\n"` (context the judge prompt puts before the rubric).
    """
    async def judge(rubric: str, answer: str, case: Mapping[str, Any]) -> tuple[bool, float, str]:
        variables = {"rubric": rubric, "answer": answer}
        question = case.get("vars", {}).get("user")
        if with_question and question:
            variables["user"] = f"Question: {question}\n"
        return parse_judgement(await complete(variables))

    return judge

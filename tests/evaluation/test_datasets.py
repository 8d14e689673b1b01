import json

import pytest

from promptops.evaluation.datasets import (
    Case,
    DatasetError,
    check_datasets,
    expected_assertion,
    iter_cases,
    iter_dataset,
    with_dataset,
)
from promptops.prompt.schema import load_prompt_bytes

CHAT = {"config": {}, "system": "Be brief.", "lang": "", "messages": [{"role": "system", "content": "{system}"},
                                                          {"role": "user", "content": "{user} in {lang}"}]}


def make(tmp_path, files, tests, **fields):
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    doc = {**CHAT, **fields, "tests": tests}
    (tmp_path / "prompts").mkdir(exist_ok=True)
    (tmp_path / "prompts" / "p.json").write_text(json.dumps(doc, indent=2))
    return load_prompt_bytes(json.dumps(doc).encode(), "p", "prompts/p.json")


JSONL = ('{"user": "2+2?", "lang": "en", "__expected": "contains: 4"}\n\n'
         '{"vars": {"user": "Capital?", "lang": "de"}, "assert": [{"type": "icontains", "value": "berlin"}],'
         ' "name": "capital", "repeat": 3, "min_pass_rate": 0.6}\n')
CSV = 'user,lang,__expected,__threshold\n"2+2, please?",en,similar(0.8): four,0.5\n"multi\nline",fr,,\n'


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("d.jsonl", JSONL, [
        Case("support:1", {"lang": "en", "user": "2+2?"}, ({"type": "is-json"}, {"type": "contains", "value": "4"}),
             source="prompts/d.jsonl:1"),
        Case("capital", {"lang": "de", "user": "Capital?"}, ({"type": "is-json"}, {"type": "icontains", "value": "berlin"}),
             repeat=3, min_pass_rate=0.6, source="prompts/d.jsonl:3")]),
    ("d.csv", CSV, [
        Case("support:2", {"lang": "en", "user": "2+2, please?"},
             ({"type": "is-json"}, {"type": "similar", "value": "four", "threshold": 0.8}), threshold=0.5,
             source="prompts/d.csv:2"),
        Case("support:3", {"lang": "fr", "user": "multi\nline"}, ({"type": "is-json"},), source="prompts/d.csv:3")]),
])
def test_rows_become_cases_with_the_entry_assertions_first(tmp_path, name, text, expected):
    prompt = make(tmp_path, {f"prompts/{name}": text}, [{"dataset": name, "name": "support", "assert": [{"type": "is-json"}]}])
    assert list(iter_cases(prompt, tmp_path)) == expected


def test_inline_cases_and_entry_vars_as_defaults(tmp_path):
    tests = [{"name": "inline", "vars": {"user": "hi"}, "assert": [{"type": "contains", "value": "x"}]},
             {"dataset": "d.jsonl", "vars": {"lang": "en"}, "repeat": 2}]
    prompt = make(tmp_path, {"prompts/d.jsonl": '{"user": "u", "__name": "row"}\n'}, tests)
    cases = list(iter_cases(prompt, tmp_path))
    assert [(c.name, dict(c.vars), c.repeat) for c in cases] == [("inline", {"user": "hi"}, 1),
                                                              ("row", {"lang": "en", "user": "u"}, 2)]
    assert cases[0].source == "prompts/p.json $.tests[0]"


@pytest.mark.parametrize(("text", "expected"), [
    ("Berlin", {"type": "equals", "value": "Berlin"}), ("Note: Berlin", {"type": "equals", "value": "Note: Berlin"}),
    ("contains: Berlin", {"type": "contains", "value": "Berlin"}), ("is-json", {"type": "is-json"}),
    ("levenshtein(0.9): Berlin", {"type": "levenshtein", "value": "Berlin", "threshold": 0.9}),
    ("max-length: 40", {"type": "max-length", "value": 40}), ("tokens: 64", {"type": "tokens", "max": 64}),
    ('json-schema: {"type": "object"}', {"type": "json-schema", "value": {"type": "object"}}),
    ("python: checks/a.py:ok", {"type": "python", "value": "checks/a.py:ok"}),
    ("json-schema", {"type": "json-schema"}), ("tool-call: get_weather", {"type": "tool-call", "value": "get_weather"}),
])
def test_expected_shorthand(text, expected):
    assert expected_assertion(text) == expected


def test_a_large_dataset_streams_one_row_at_a_time(tmp_path):
    with open(tmp_path / "big.jsonl", "w") as handle:
        handle.writelines(f'{{"user": "question {i}", "lang": "en", "__expected": "contains: {i}"}}\n'
                          for i in range(100_000))
    opened = []
    cases = iter_dataset({"dataset": "../big.jsonl"}, tmp_path, opener=lambda rel: opened.append(open(tmp_path / rel, "rb")) or opened[0])
    first = next(cases)
    assert first.vars["user"] == "question 0" and opened[0].tell() < 100_000  # of ~7 MB: only a buffer read
    assert sum(1 for _ in cases) == 99_999 and opened[0].closed


@pytest.mark.parametrize(("files", "entry", "where", "needle"), [
    ({}, {"dataset": "missing.jsonl"}, ("prompts/p.json", 17), "dataset file prompts/missing.jsonl does not exist"),
    ({}, {"dataset": "../../etc/passwd.csv"}, ("prompts/p.json", 17), "leads out of the repository"),
    ({}, {"dataset": "cases.txt"}, ("prompts/p.json", 17), "neither JSONL nor CSV"),
    ({"prompts/d.jsonl": '{"user": "a", "lang": "en"}\n{"user": "b",}\n'}, {"dataset": "d.jsonl"},
     ("prompts/d.jsonl", 2), "invalid JSON"),
    ({"prompts/d.jsonl": '{"user": "a", "lang": "en"}\n{"user": "b"}\n'}, {"dataset": "d.jsonl"},
     ("prompts/d.jsonl", 2), "no value for {lang}"),
    ({"prompts/d.csv": "lang,__expected\nen,x\n"}, {"dataset": "d.csv"}, ("prompts/d.csv", 2), "no value for {user}"),
    ({"prompts/d.csv": "user,lang\na,b,c\n"}, {"dataset": "d.csv"}, ("prompts/d.csv", 2), "row has 3 columns"),
    ({"prompts/d.csv": 'user,lang,__assert\na,b,"[{""type"": ""containz""}]"\n'}, {"dataset": "d.csv"},
     ("prompts/d.csv", 2), "unknown assertion type 'containz'"),
    ({"prompts/d.jsonl": '{"user": "a", "lang": "en", "__repeat": 0}\n'}, {"dataset": "d.jsonl"},
     ("prompts/d.jsonl", 1), "repeat must be an integer from 1 to 1000"),
    ({"prompts/d.jsonl": '{"user": 5, "lang": ["en"]}\n'}, {"dataset": "d.jsonl"},
     ("prompts/d.jsonl", 1), "variable 'lang' must be a string"),
    ({}, {"name": "t", "assert": [{"type": "python", "value": "checks/none.py:ok"}]}, ("prompts/p.json", 21),
     "file prompts/checks/none.py does not exist"),
])
def test_validation_problems_are_located(tmp_path, files, entry, where, needle):
    prompt = make(tmp_path, files, [entry])
    errors = [p for p in check_datasets(prompt, tmp_path) if p.severity == "error"]
    assert any((p.file, p.line) == where and needle in p.message for p in errors), [str(p) for p in errors]


def test_a_valid_dataset_has_no_errors_and_warns_about_unknown_columns(tmp_path):
    prompt = make(tmp_path, {"prompts/d.csv": "user,lang,lnag,__expected\na,en,x,contains: a\n"}, [{"dataset": "d.csv"}])
    problems = check_datasets(prompt, tmp_path)
    assert [(p.severity, p.message, p.fix) for p in problems] == [
        ("warning", "'lnag' is not a placeholder or field of prompt 'p'", "did you mean 'lang'?")]


def test_iteration_stops_at_the_first_bad_row_with_its_location(tmp_path):
    make(tmp_path, {"prompts/d.jsonl": '{"user": "a"}\n[1]\n'}, [])
    with pytest.raises(DatasetError, match=r"prompts/d.jsonl:2 at \$: a row must be a JSON object"):
        list(iter_dataset({"dataset": "d.jsonl"}, tmp_path))


HISTORY = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]


@pytest.mark.parametrize(("name", "text"), [
    ("d.jsonl", json.dumps({"vars": {"user": "And now?", "lang": "en"}, "history": HISTORY,
                            "__captured": {"request_id": "r1", "prompt": "p", "answer": "ok"}}) + "\n"),
    ("d.csv", "user,lang,__history,__captured\nAnd now?,en," + ",".join(
        '"' + json.dumps(v).replace('"', '""') + '"' for v in (HISTORY, {"request_id": "r1", "prompt": "p",
                                                                          "answer": "ok"})) + "\n"),
])
def test_rows_carry_history_and_captured_metadata(tmp_path, name, text):
    prompt = make(tmp_path, {f"prompts/{name}": text}, [{"dataset": name}])
    [case] = iter_cases(prompt, tmp_path)
    assert (dict(case.vars), case.history, case.captured) == (
        {"user": "And now?", "lang": "en"}, tuple(HISTORY), {"request_id": "r1", "prompt": "p", "answer": "ok"})
    assert not [p for p in check_datasets(prompt, tmp_path) if p.severity == "error"]


@pytest.mark.parametrize(("row", "needle"), [
    ({"vars": {"user": "a"}, "history": "Hi"}, "history must be a JSON list of turns"),
    ({"vars": {"user": "a"}, "history": [{"content": "Hi"}]}, 'history[0] must be {"role"'),
    ({"user": "a", "__captured": 3}, "__captured must be an object"),
])
def test_bad_history_or_captured_metadata_is_located(tmp_path, row, needle):
    make(tmp_path, {"prompts/d.jsonl": json.dumps(row) + "\n"}, [])
    with pytest.raises(DatasetError, match=r"prompts/d.jsonl:1") as error:
        list(iter_dataset({"dataset": "d.jsonl"}, tmp_path))
    assert needle in error.value.message


def test_a_file_outside_the_repository_runs_the_rows_captured_for_the_prompt(tmp_path):
    (tmp_path / "repo").mkdir()
    prompt = make(tmp_path / "repo", {}, [{"dataset": "own.jsonl"}])
    rows = [{"vars": {"user": "mine"}, "__captured": {"prompt": "p"}}, {"vars": {"user": "other"},
            "__captured": {"prompt": "q"}}, {"user": "anyone", "lang": "en"}]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cases = list(iter_cases(with_dataset(prompt, tmp_path / "c.jsonl"), tmp_path / "repo"))
    assert [(c.vars["user"], c.source) for c in cases] == [("mine", f"{tmp_path}/c.jsonl:1"),
                                                           ("anyone", f"{tmp_path}/c.jsonl:3")]

"""Hostile inputs for the CLI and the API: each refused with a clear message, nothing written, no git option injected.

GIT_TRACE records every git the store runs (plumbing and GitPython alike); no argv element that starts
with `-` may come from the input.
"""

from __future__ import annotations

import json

import pytest
from rel_helpers import doc, tree_snapshot
from typer.testing import CliRunner

from promptops.cli.app import app

DEEP = '{"prompt": "support", "message": "x", "config": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001
TEXT = {"config": {}, "system": "", "template": "{system}{user}"}


def template(text: str) -> str:
    return json.dumps({**TEXT, "template": text})


def check_git_argv(argvs: list[list[str]], inputs: list[str]) -> None:
    fragments = {p for text in inputs for p in (text, text.partition("@")[2], text.partition("=")[2]) if p}
    options = [arg for argv in argvs for arg in argv if arg.startswith("-")]
    assert not [arg for arg in options if arg in fragments or "pwn" in arg]


CLI = [  # (args, message on stderr)
    (["new", "../../etc/passwd"], "invalid prompt name"),
    (["new", "con"], "reserved device name"),
    (["new", "--", "-rf"], "invalid prompt name '-rf'"),
    (["new", "a\0b"], "invalid prompt name"),
    (["show", "support@--upload-pack=pwn"], "would be read as an option"),
    (["show", "support@main~1"], "character '~' is not allowed"),
    (["log", "--", "--output=pwn"], "invalid prompt name"),
    (["diff", "support@1", "support@--output=pwn"], "would be read as an option"),
    (["approve", "--", "-rf"], "invalid prompt name"),
    (["review", "--base", "--upload-pack=pwn", "--head", "HEAD"], "would be read as an option"),
    (["edit", "support", "--set", "template={x.__class__}"], "attribute access"),
    (["edit", "support", "--set", "template={x[0]}"], "indexing"),
    (["edit", "support", "--set", "template={0}"], "positional placeholder"),
    (["edit", "support", "--set", "system=\udcff"], "lone surrogate"),  # argv bytes that are not UTF-8
    (["render", "support", "--var", "user=\udcff"], "lone surrogate"),
]


@pytest.mark.parametrize("args, message", CLI, ids=[" ".join(a) for a, _ in CLI])
def test_cli_refuses_hostile_input(repo, git_trace, args, message):
    repo.commit({"prompts/support.json": doc("S ")}, "v1")
    before = tree_snapshot(repo.path.parent)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert message in result.stderr and "Traceback" not in result.stderr
    assert tree_snapshot(repo.path.parent) == before
    check_git_argv(git_trace(), args)


@pytest.mark.parametrize("content, message", [
    (b'{"config": {}, "template": "\xff\xfe"}', "not valid UTF-8 (byte 0xff)"),
    (("[" * 100_000 + "]" * 100_000).encode(), "maximum recursion depth"),
    (b'{"config": {}, "system": "\\ud800", "template": "{system}"}', "lone surrogate U+D800"),
    (json.dumps({**TEXT, "system": "x" * 1_100_000}).encode(), "the limit is 1,000,000"),
    (b'{"config": {}, "template": "a\x00b"}', "invalid JSON"),
])
def test_validate_reports_hostile_files(repo, content, message):
    repo.write({"prompts/bad.json": content})
    result = CliRunner().invoke(app, ["validate", "--no-cache"])
    assert result.exit_code == 1 and message in result.output + result.stderr


API = [  # (method, path, body: dict -> JSON, str/bytes -> raw, status, message)
    ("POST", "/v1/chat", {"prompt": "support", "message": "x" * 1_100_000}, 413, "larger than"),
    ("POST", "/v1/chat", DEEP, 400, "error parsing the body"),
    ("POST", "/v1/chat", b'{"prompt": "support", "message": "\xff\xfe"}', 400, "error parsing the body"),
    ("POST", "/v1/chat", '{"prompt": "support", "message": "\\ud800"}', 422, "lone surrogate"),
    ("POST", "/v1/chat", {"prompt": "support", "message": "x", "config": {"stop": "\ud800"}}, 422, "lone surrogate"),
    ("POST", "/v1/chat", {"prompt": "../../etc/passwd", "message": "x"}, 400, "invalid prompt name"),
    ("POST", "/v1/chat", {"prompt": "con", "message": "x"}, 400, "reserved device name"),
    ("POST", "/v1/chat", {"prompt": "-rf", "message": "x"}, 400, "invalid prompt name"),
    ("POST", "/v1/chat", {"prompt": "support@--upload-pack=pwn", "message": "x"}, 400, "read as an option"),
    ("POST", "/v1/chat", {"prompt": "support\0", "message": "x"}, 400, "invalid prompt name"),
    ("POST", "/v1/chat/completions", {"model": "support@-rf", "messages": [{"role": "user", "content": "x"}]},
     400, "read as an option"),
    ("GET", "/v1/prompts/..%2F..%2Fetc%2Fpasswd", None, 404, "Not Found"),
    ("GET", "/v1/prompts/%2E%2E", None, 400, "invalid prompt name"),
    ("GET", "/v1/prompts/support?ref=--upload-pack=pwn", None, 400, "read as an option"),
    ("GET", "/v1/prompts/support?ref=%00", None, 400, "control characters"),
    ("GET", "/v1/prompts/support/diff?from=--output=pwn", None, 400, "read as an option"),
    ("PUT", "/v1/prompts/-rf", {"text": template("{user}"), "base_commit": None}, 400, "invalid prompt name"),
    ("PUT", "/v1/prompts/support", {"text": template("{x.__class__}"), "base_commit": None}, 422, "attribute access"),
    ("PUT", "/v1/prompts/support", {"text": template("{x[0]}"), "base_commit": None}, 422, "indexing"),
    ("PUT", "/v1/prompts/support", {"text": template("{0}"), "base_commit": None}, 422, "positional"),
    ("PUT", "/v1/prompts/support", '{"text": "\\ud800", "base_commit": null}', 422, "lone surrogate"),
    ("POST", "/prompt", {**TEXT, "template": "{x.__class__}"}, 422, "attribute access"),
]


@pytest.mark.parametrize("method, path, body, status, message", API, ids=[f"{m} {p[:40]} {s}" for m, p, _, s, _ in API])
def test_api_refuses_hostile_input(repo, gateway, git_trace, method, path, body, status, message):
    client = gateway("127.0.0.1:9")  # nothing listens: a request that reached Triton would be a 503
    before, head = tree_snapshot(repo.path.parent), repo.git("rev-parse", "HEAD")
    raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    response = client.request(method, path, content=raw if body else None, headers={"content-type": "application/json"})
    assert response.status_code == status and message in response.json()["error"]["message"], response.text
    assert tree_snapshot(repo.path.parent) == before and repo.git("rev-parse", "HEAD") == head
    check_git_argv(git_trace(), [path.partition("=")[2], *str(body).split("'"), *raw.decode(errors="replace").split('"')])
    assert client.get("/healthz").status_code == 200


def test_git_trace_sees_the_store_git_calls(repo, git_trace):
    repo.commit({"prompts/support.json": doc("S ")}, "v1")
    assert CliRunner().invoke(app, ["show", "support@1"]).exit_code == 0
    assert any("log" in argv for argv in git_trace())

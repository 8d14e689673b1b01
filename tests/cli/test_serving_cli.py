"""`promptops test`: `--require-tests` fails a prompt without test cases (CI must not approve it unchecked)."""

import pytest
from typer.testing import CliRunner

from promptops.cli.app import app
from tests.conftest import prompt_doc

CASE = {"name": "echoes", "vars": {"user": "hi"}, "assert": [{"type": "contains", "value": "hi"}]}


def run(*args):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def prompts(repo):
    repo.commit({"prompts/bare.json": prompt_doc(), "prompts/tested.json": prompt_doc(model="echo", tests=[CASE])})
    return repo


@pytest.mark.parametrize("args, code, output", [
    (["bare"], 0, "No test cases to run.\n"),
    (["bare", "--require-tests"], 1, "Error: no test cases in bare\n"),
    (["tested", "bare", "--ref", "head", "--require-tests"], 1, "Error: no test cases in bare\n"),
])
def test_require_tests_refuses_prompts_without_cases(prompts, args, code, output):
    result = run("test", *args)
    assert (result.exit_code, result.output.partition("  fix:")[0]) == (code, output)


def test_require_tests_passes_prompts_whose_cases_pass(prompts, echo_server):
    result = run("--triton-url", echo_server.grpc_url, "test", "tested", "--ref", "head", "--require-tests")
    assert result.exit_code == 0 and "1 passed, 0 failed" in result.output, result.output

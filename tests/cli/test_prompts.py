import json
import stat

import pytest
from typer.testing import CliRunner

from promptops.cli.app import app
from promptops.prompt import chat_template
from promptops.prompt.model import NEW_JSON_PROMPT, NEW_PROMPT
from tests.conftest import prompt_doc
from tests.prompt.test_chat_template import CHAT, make_model_repository

runner = CliRunner()


def run(*args, input=None):
    return runner.invoke(app, list(args), input=input)


@pytest.fixture
def seeded(repo):
    repo.write({"prompts/hello.json": prompt_doc(system="Sys. ")})
    return repo


def fake_editor(tmp_path, monkeypatch, script):
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\n" + script)
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)


def test_new_writes_a_chat_prompt(repo):
    result = run("new", "support")
    assert (result.exit_code, result.output) == (0, "Created prompts/support.json\n")
    doc = json.loads((repo.path / "prompts/support.json").read_text())
    assert doc == NEW_PROMPT and doc["messages"][-1] == {"role": "user", "content": "{user}"}
    assert run("validate", "--strict").exit_code == 0


@pytest.mark.parametrize(("args", "message"), [
    (["new", "hello"], "Error: prompt 'hello' already exists: prompts/hello.json\n"),
    (["new", "Bad Name"], "Error: invalid prompt name 'Bad Name'\n"),
    (["new", "x", "--from", "missing"], "Error: no prompt named 'missing' in prompts/\n"),
    (["new", "x", "--json", "--from", "hello"], "Error: --json and --from cannot be used together\n"),
])
def test_new_refuses(seeded, args, message):
    result = run(*args)
    assert result.exit_code == 1 and result.output.startswith(message)


def test_new_json_writes_a_prompt_that_answers_json(repo):
    assert run("new", "answer", "--json").exit_code == 0
    doc = json.loads((repo.path / "prompts/answer.json").read_text())
    schema = doc["response_format"]["json_schema"]["schema"]
    assert doc == NEW_JSON_PROMPT and schema["required"] == ["answer", "confidence"]
    assert run("validate", "--strict").exit_code == 0


def test_new_from_copies(seeded):
    assert run("new", "copy", "--from", "hello").exit_code == 0
    assert (seeded.path / "prompts/copy.json").read_bytes() == (seeded.path / "prompts/hello.json").read_bytes()


def test_edit_set_without_editor(seeded, tmp_path):
    (tmp_path / "sys.txt").write_text("From file.")
    result = run("edit", "hello", "--set", "config.temperature=0.2", "--set", f"system=@{tmp_path / 'sys.txt'}")
    doc = json.loads((seeded.path / "prompts/hello.json").read_text())
    assert result.exit_code == 0 and (doc["config"]["temperature"], doc["system"]) == (0.2, "From file.")


def test_edit_set_refuses_invalid_value_and_keeps_file(seeded):
    before = (seeded.path / "prompts/hello.json").read_bytes()
    result = run("edit", "hello", "--set", "config.temperature=9")
    assert result.exit_code == 1 and "$.config.temperature" in result.output
    assert (seeded.path / "prompts/hello.json").read_bytes() == before


def test_edit_with_editor_valid_save(seeded, tmp_path, monkeypatch):
    fake_editor(tmp_path, monkeypatch, """sed -i 's/Sys. /Edited. /' "$1"\n""")
    result = run("edit", "hello")
    assert (result.exit_code, result.output) == (0, "Updated prompts/hello.json\n")
    assert json.loads((seeded.path / "prompts/hello.json").read_text())["system"] == "Edited. "


def test_edit_invalid_save_then_abort_changes_nothing(seeded, tmp_path, monkeypatch):
    fake_editor(tmp_path, monkeypatch, """sed -i 's/{system}/{sytsem}/' "$1"\n""")
    before = (seeded.path / "prompts/hello.json").read_bytes()
    result = run("edit", "hello", input="n\n")
    assert result.exit_code == 1 and "unknown placeholder {sytsem}" in result.output
    assert (seeded.path / "prompts/hello.json").read_bytes() == before
    assert sorted(p.name for p in (seeded.path / "prompts").iterdir()) == ["hello.json"]


def test_edit_without_changes(seeded, tmp_path, monkeypatch):
    fake_editor(tmp_path, monkeypatch, "true\n")
    assert (run("edit", "hello").exit_code, run("edit", "hello").output) == (0, "No changes.\n")


def test_validate_clean_and_broken(seeded):
    assert run("validate").output == "1 file(s) checked: 0 error(s), 0 warning(s)\n"
    seeded.write({"prompts/broken.json": prompt_doc(config={"temperature": "hot"})})
    result = run("validate")
    assert result.exit_code == 1
    assert result.output.splitlines()[0].startswith("Error: prompts/broken.json:3 at $.config.temperature: ")


@pytest.mark.parametrize(("extra", "strict", "code"), [({}, False, 0), ({"unused": "x"}, False, 0),
                                                       ({"unused": "x"}, True, 1)])
def test_validate_strict_fails_on_warnings(repo, extra, strict, code):
    repo.write({"prompts/p.json": prompt_doc(**extra)})
    assert run("validate", *(["--strict"] if strict else [])).exit_code == code


def test_validate_github_and_json_formats(repo):
    repo.write({"prompts/p.json": prompt_doc(template="{x}")})
    github = run("validate", "--format", "github").output
    assert github.startswith("::error file=prompts/p.json,line=9,col=1,title=promptops::$.template: unknown placeholder")
    report = json.loads(run("validate", "--format", "json").output)
    assert (report["errors"], report["problems"][0]["json_path"]) == (1, "$.template")


def test_list_show_render(seeded, tmp_path):
    assert run("list").output.splitlines()[1] == "hello\t\tok\t"
    assert run("show", "hello").output.endswith("--- rendered ---\nSys. \n")
    (tmp_path / "h.json").write_text('[{"role": "user", "content": "hi"}]')
    result = run("render", "hello", "--var", "user=What?", "--history", str(tmp_path / "h.json"))
    assert (result.exit_code, result.output) == (0, "Sys. What?")


def test_render_a_chat_prompt_through_the_models_chat_template(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTOPS_MODEL_REPOSITORY", str(make_model_repository(tmp_path / "models")))
    chat_template.clear_cache()
    repo.write({"prompts/c.json": CHAT})
    (tmp_path / "h.json").write_text('[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]')
    result = run("render", "c", "--var", "user=What?", "--history", str(tmp_path / "h.json"))
    assert (result.exit_code, result.output) == (0, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
                                                    "<|im_start|>assistant\nhello<|im_end|>\n<|im_start|>user\nWhat?<|im_end|>\n"
                                                    "<|im_start|>assistant\n")


def test_usage_error_exits_2(repo):
    assert run("validate", "--format", "xml").exit_code == 2


def test_validate_cache_never_hides_a_change(repo):
    repo.write({"prompts/p.json": prompt_doc()})
    assert run("validate").exit_code == 0 and (repo.path / ".promptops/cache/validate-v1.json").exists()
    repo.write({"prompts/p.json": prompt_doc(template="{oops}")})
    assert run("validate").exit_code == 1
    assert run("validate").exit_code == 1  # the cached error is still an error

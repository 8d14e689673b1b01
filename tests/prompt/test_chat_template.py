"""Chat prompts (`messages`) rendered through the model's own chat template, found from its model folder."""

import json
import subprocess
from pathlib import Path

import pytest

from promptops.prompt import chat_template
from promptops.prompt.chat_template import ChatTemplateError, for_model, from_folder, from_hub
from promptops.prompt.render import Turn, render
from promptops.prompt.schema import check_bytes, load_prompt_bytes
from promptops.triton.launcher import REPO_ROOT, TritonConfig, locate
from tests.conftest import require_serving

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>'"
          " + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
CHAT = {"config": {}, "model": "chatml", "system": "Be brief.",
        "messages": [{"role": "system", "content": "{system}"}, {"role": "user", "content": "{user}"}]}
PAST = [Turn("user", "2+2?"), Turn("assistant", "4")]


def make_model_repository(root: Path, template: str | None = CHATML, name: str = "chatml") -> Path:
    """`root/repo/<name>/1/model.json` naming a tokenizer folder whose tokenizer_config.json holds `template`."""
    tokenizer = root / "tokenizer"
    tokenizer.mkdir(parents=True, exist_ok=True)
    config = {"eos_token": {"content": "<|im_end|>"}, "bos_token": None, **({"chat_template": template} if template else {})}
    (tokenizer / "tokenizer_config.json").write_text(json.dumps(config))
    (root / "repo" / name / "1").mkdir(parents=True, exist_ok=True)
    (root / "repo" / name / "1" / "model.json").write_text(json.dumps({"model": str(tokenizer)}))
    return root / "repo"


@pytest.fixture(autouse=True)
def fresh_cache():
    chat_template.clear_cache()
    yield
    chat_template.clear_cache()


@pytest.fixture
def chatml(tmp_path, monkeypatch):
    """The ChatML fixture model is the launcher's model repository (as PROMPTOPS_MODEL_REPOSITORY)."""
    monkeypatch.setenv("PROMPTOPS_MODEL_REPOSITORY", str(make_model_repository(tmp_path)))


def prompt(**doc):
    return load_prompt_bytes(json.dumps(doc).encode(), "p", "prompts/p.json")


def test_chat_prompt_renders_through_the_models_template(chatml):
    assert render(prompt(**CHAT), {"user": "Hi {there}"}) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi {there}<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize(("messages", "roles"), [
    (CHAT["messages"], ["system", "user", "assistant", "user"]),  # default: before the last user message
    ([{"history": True}, *CHAT["messages"]], ["user", "assistant", "system", "user"]),
    ([*CHAT["messages"], {"history": True}], ["system", "user", "user", "assistant"]),
    ([{"role": "system", "content": "{user}"}], ["system", "user", "assistant"]),  # no user message: at the end
])
def test_history_goes_where_the_prompt_says(chatml, messages, roles):
    text = render(prompt(**{**CHAT, "messages": messages}), {"user": "And 3+3?"}, PAST)
    assert [line.removeprefix("<|im_start|>") for line in text.splitlines()[::2]][:-1] == roles


def test_template_prompts_ignore_the_chat_template():
    doc = {"config": {}, "user": "", "template": "<{user}>"}
    assert render(prompt(**doc), {"user": "x"}, chat_template=chat_template.ChatTemplate("{{ 1/0 }}")) == "<x>"


def test_placeholder_checks_are_located_in_message_contents():
    doc = {**CHAT, "style": "x", "messages": [CHAT["messages"][0], {"role": "user", "content": "{user} {nope}"}]}
    _, problems = check_bytes(json.dumps(doc, indent=2).encode(), "p", "prompts/p.json")
    assert [(p.severity, p.json_path, p.line, p.column) for p in problems] == [
        ("error", "$.messages[1].content", 12, 8), ("warning", "$.style", 15, None)]


@pytest.mark.parametrize(("doc", "path", "needle"), [
    ({**CHAT, "template": "{user}"}, "$", "either 'template' or 'messages'"),
    ({**CHAT, "messages": [{"role": "bot", "content": "x"}]}, "$.messages[0].role", "must be one of system, user"),
    ({**CHAT, "messages": [{"role": "user", "content": "{history}"}]}, "$.messages[0].content", "{history} is not"),
    ({**CHAT, "messages": [{"history": True}, {"history": True}]}, "$.messages[1]", "only one history"),
])
def test_invalid_chat_prompts_are_located(doc, path, needle):
    prompt_, problems = check_bytes(json.dumps(doc).encode(), "p", "prompts/p.json")
    assert prompt_ is None and any(p.json_path == path and needle in p.message for p in problems), problems


def test_a_model_without_a_chat_template_is_an_error_with_the_fix(tmp_path):
    repository = make_model_repository(tmp_path, template=None)
    with pytest.raises(ChatTemplateError, match="no chat template in") as caught:
        render(prompt(**CHAT), chat_template=lambda model: for_model(model, [repository]))
    assert "write the prompt with `template`" in caught.value.fix


def test_a_failing_template_is_an_error_and_the_sandbox_is_immutable(tmp_path):
    fails = from_folder(make_model_repository(tmp_path, "{{ raise_exception('roles must alternate') }}").parent / "tokenizer")
    with pytest.raises(ChatTemplateError, match="roles must alternate"):
        fails.apply([{"role": "user", "content": "x"}])
    mutates = chat_template.ChatTemplate("{{ messages.append(1) }}")
    with pytest.raises(ChatTemplateError, match="unsafe"):
        mutates.apply([])


def test_special_tokens_and_tojson_follow_transformers():
    template = chat_template.ChatTemplate("{{ eos_token }}{{ messages | tojson }}", {"eos_token": "</s>"})
    assert template.apply([{"role": "user", "content": "é <b>"}]) == '</s>[{"role": "user", "content": "é <b>"}]'


def test_hub_ids_are_read_from_the_servers_hugging_face_cache(tmp_path, monkeypatch):
    snapshot = tmp_path / "hf" / "hub" / "models--org--chatml" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "chat_template.jinja").write_text(CHATML)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc123")
    repository = make_model_repository(tmp_path)
    (repository / "chatml" / "1" / "model.json").write_text('{"model": "org/chatml"}')
    monkeypatch.setenv("PROMPTOPS_HF_HOME", str(tmp_path / "hf"))
    assert for_model("chatml", [repository]).source == CHATML
    with pytest.raises(ChatTemplateError, match="downloads are off"):
        from_hub("org/missing", [tmp_path / "hf"], download=False)


def test_relative_tokenizer_folders_are_relative_to_the_version_folder(tmp_path):
    repository = make_model_repository(tmp_path)
    (repository / "chatml" / "1" / "model.json").write_text('{"model": "org/x", "tokenizer": "../../../tokenizer"}')
    assert for_model("chatml", [repository]).source == CHATML


TRANSFORMERS = """
import json, sys
from transformers import AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
print(json.dumps(tokenizer.apply_chat_template(json.loads(sys.stdin.read()), tokenize=False, add_generation_prompt=True)))
"""


def test_the_embedded_models_template_renders_chat_json_like_transformers():
    require_serving()
    chat = load_prompt_bytes((REPO_ROOT / "prompts" / "chat.json").read_bytes(), "chat", "prompts/chat.json")
    template = for_model("smollm2-135m", [REPO_ROOT / "model_repository"])
    text = render(chat, {"user": "What is 2+2?"}, PAST, chat_template=template)
    messages = [{"role": "system", "content": chat.fields["system"]}, {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4"}, {"role": "user", "content": "What is 2+2?"}]
    python = locate(TritonConfig().python_env).python
    out = subprocess.run([str(python), "-c", TRANSFORMERS, str(Path(template.origin).parent)], input=json.dumps(messages),
                         capture_output=True, text=True, check=True, timeout=300, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert text == json.loads(out.stdout) and text.startswith("<|im_start|>system\nYou are a helpful assistant.")

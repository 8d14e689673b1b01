import json

import pytest

from promptops.errors import TemplateError
from promptops.prompt.render import Turn, parse, render
from promptops.prompt.schema import load_prompt_bytes
from tests.conftest import prompt_doc

CHATML = ("<|im_start|>system\n{system}<|im_end|>\n{history}<|im_start|>user\n{user}<|im_end|>\n"
          "<|im_start|>assistant\n")


def prompt(**doc):
    return load_prompt_bytes(json.dumps(doc).encode(), "p", "prompts/p.json")


def test_seed_format_renders_byte_for_byte():
    p = prompt(**prompt_doc(system="You are terse.\n"))
    assert render(p, {"user": "Hi {there}"}) == "You are terse.\nHi {there}"


def test_chat_format_renders_history_with_turn_template():
    p = prompt(config={}, system="Be kind.", template=CHATML, turn_template="<|im_start|>{role}\n{content}<|im_end|>\n")
    text = render(p, {"user": "And 3+3?"}, [Turn("user", "2+2?"), Turn("assistant", "4")])
    assert text == ("<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
                    "<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n"
                    "<|im_start|>assistant\n")


@pytest.mark.parametrize(("template", "values", "expected"), [
    ("{{literal}} {user}", {"user": "u"}, "{literal} u"),
    ("}}{{", {}, "}{"),
    ("{user}", {"user": "{system.__class__}"}, "{system.__class__}"),
    ("{system}{user}", {}, ""),
])
def test_escapes_and_values_are_literal(template, values, expected):
    assert render(prompt(**prompt_doc(template=template)), values) == expected


def test_variables_override_fields_and_must_be_strings():
    p = prompt(**prompt_doc(system="file"))
    assert render(p, {"system": "caller"}) == "caller"
    with pytest.raises(TemplateError, match="must be a string"):
        render(p, {"user": 3})


@pytest.mark.parametrize("template", ["{a.b}", "{a[0]}", "{a!s}", "{a:>3}", "{}", "{0}", "{", "}", "{a"])
def test_unsafe_or_broken_templates_are_rejected(template):
    with pytest.raises(TemplateError):
        parse(template)

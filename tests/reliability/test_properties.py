"""Hypothesis properties of the placeholder engine and the ref parser, on any Unicode (lone surrogates too)."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from promptops.errors import PromptOpsError
from promptops.prompt.model import Prompt
from promptops.prompt.render import parse, render, substitute
from promptops.store.refs import Ref, parse_ref

# Any code point, lone surrogates included (JSON "\ud800" and undecodable argv bytes produce them; text() never does).
ANY_TEXT = st.lists(st.one_of(st.characters(), st.sampled_from("\ud800\udcff\x00")), max_size=60).map("".join)
BRACEY = st.text(st.sampled_from("{}ab_.[]:!0 @-/"), max_size=30)
NAMES = st.text(string.ascii_lowercase + "_", min_size=1, max_size=4)
FAST = settings(max_examples=300, deadline=None)


def escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


@FAST
@given(st.one_of(ANY_TEXT, BRACEY), st.dictionaries(NAMES, ANY_TEXT))
def test_parse_and_substitute_raise_only_promptops_errors(template, values):
    try:
        substitute(template, values)
    except PromptOpsError:
        pass


@FAST
@given(ANY_TEXT)
def test_escaped_braces_round_trip(text):
    assert substitute(escape(text), {}) == text


@FAST
@given(st.lists(st.tuples(ANY_TEXT, NAMES), max_size=6), ANY_TEXT, st.dictionaries(NAMES, st.one_of(ANY_TEXT, BRACEY)))
def test_values_are_inserted_verbatim_never_rescanned(pieces, tail, values):
    template = "".join(escape(lit) + "{" + name + "}" for lit, name in pieces) + escape(tail)
    values = {name: values.get(name, "{" + name + "}") for _, name in pieces}  # values that look like placeholders
    expected = "".join(lit + values[name] for lit, name in pieces) + tail
    assert substitute(template, values) == expected
    parse.cache_clear()
    assert substitute(template, values) == expected  # deterministic, cached or not


@FAST
@given(st.one_of(ANY_TEXT, BRACEY, st.just("{system}{user}")), ANY_TEXT)
def test_render_is_deterministic_and_its_output_is_sendable(template, user):
    prompt = Prompt(name="p", document={"template": template, "system": "s{user}"}, config={})
    try:
        first = render(prompt, {"user": user})
    except PromptOpsError:
        return
    assert render(prompt, {"user": user}) == first
    first.encode("utf-8")  # what the Triton client does; never a UnicodeEncodeError


@FAST
@given(st.one_of(ANY_TEXT, st.text(string.ascii_letters + string.digits + "@-./~^:{}_ ", max_size=30)))
def test_ref_parser_raises_only_promptops_errors_and_yields_git_safe_selectors(text):
    try:
        ref = parse_ref(text)
    except PromptOpsError:
        return
    assert isinstance(ref, Ref) and parse_ref(str(ref)) == ref
    if isinstance(ref.selector, str):
        assert not ref.selector.startswith("-") and ".." not in ref.selector and ref.selector.isprintable()
        assert not set(ref.selector) & set("~^:{} \\")

"""parse_ref: every form, and every hostile selector refused with its fix."""

from __future__ import annotations

import pytest

from promptops.errors import InvalidName, RefError
from promptops.store.refs import Ref, parse_ref


@pytest.mark.parametrize(("text", "selector", "kind"), [
    ("greet", None, "bare"),
    ("greet@3", 3, "number"),
    ("greet@head", "head", "head"),
    ("greet@approved", "approved", "approved"),
    ("greet@draft", "draft", "draft"),
    ("greet@1a2b3c4", "1a2b3c4", "sha"),
    ("greet@" + "a" * 40, "a" * 40, "sha"),
    ("greet@1234567", "1234567", "sha"),
    ("greet@v1.2", "v1.2", "ref"),
    ("greet@release/2024-01", "release/2024-01", "ref"),
    ("greet@origin/main", "origin/main", "ref"),
])
def test_forms(text: str, selector: object, kind: str) -> None:
    ref = parse_ref(text)
    assert ref == Ref("greet", selector)
    assert ref.kind == kind
    assert str(ref) == text


@pytest.mark.parametrize(("text", "message"), [
    ("greet@", "invalid ref 'greet@': nothing after '@'"),
    ("greet@-n", "invalid ref 'greet@-n': it starts with '-' and would be read as an option"),
    ("greet@--output=x", "invalid ref 'greet@--output=x': it starts with '-' and would be read as an option"),
    ("greet@a b", "invalid ref 'greet@a b': whitespace and control characters are not allowed"),
    ("greet@a\x00b", "invalid ref 'greet@a\\x00b': whitespace and control characters are not allowed"),
    ("greet@a..b", "invalid ref 'greet@a..b': ranges ('..') are not allowed"),
    ("greet@main~2", "invalid ref 'greet@main~2': character '~' is not allowed"),
    ("greet@HEAD^", "invalid ref 'greet@HEAD^': character '^' is not allowed"),
    ("greet@:/fix", "invalid ref 'greet@:/fix': character ':' is not allowed"),
    ("greet@@{1}", "invalid ref 'greet@@{1}': character '@' is not allowed"),
    ("greet@v1.lock", "invalid ref 'greet@v1.lock': not a valid tag or branch name"),
    ("greet@0", "invalid ref 'greet@0': versions are numbered from 1"),
    ("greet@" + "x" * 201, f"invalid ref {'greet@' + 'x' * 71 + '...'!r}: longer than 200 characters"),
])
def test_rejected(text: str, message: str) -> None:
    with pytest.raises(RefError) as caught:
        parse_ref(text)
    assert caught.value.message == message
    assert caught.value.fix


@pytest.mark.parametrize("text", ["", "../etc@1", "Greet@1", "-x@head", "a/b@1"])
def test_name_checked_first(text: str) -> None:
    with pytest.raises(InvalidName):
        parse_ref(text)

"""`NAME@REF` references: the one parser every edge uses.

A reference is a prompt name, optionally followed by `@` and a selector:

======================  =====================================================
``NAME``                the caller's default (production label / approved for serving, draft for CLI authors)
``NAME@3``              version 3 (versions count from 1, oldest first)
``NAME@head``           the newest committed version
``NAME@approved``       the newest approved version
``NAME@draft``          the working-tree file (CLI only)
``NAME@1a2b3c4``        the version current at that commit (7-40 hex digits)
``NAME@staging``        the version that label of NAME points at (labels.json), else a tag or branch
``NAME@v1.2``           the version current at that tag or branch
======================  =====================================================

Selectors are passed to git, so anything git could read as an option, a range
or revision syntax (`-x`, `a..b`, `main~2`, `@{1}`, `:/text`) is refused here,
before any git call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from promptops.errors import RefError
from promptops.prompt.names import check_name

KEYWORDS = ("head", "approved", "draft")
MAX_SELECTOR = 200
_SHA = re.compile(r"[0-9a-f]{7,40}")
_NUMBER = re.compile(r"[0-9]{1,6}")
# A conservative subset of git's ref-name rules (git check-ref-format).
_REF_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+-]*")
FORMS = "NAME@N, NAME@head, NAME@approved, NAME@draft, NAME@<label>, NAME@<commit sha> or NAME@<tag|branch>"

Kind = Literal["bare", "number", "head", "approved", "draft", "sha", "ref"]


@dataclass(frozen=True)
class Ref:
    """A parsed reference: `selector` is None (bare), an int, a keyword, a hex SHA or a tag/branch name."""

    name: str
    selector: int | str | None = None

    @property
    def kind(self) -> Kind:
        """Which of the reference forms this is."""
        if self.selector is None:
            return "bare"
        if isinstance(self.selector, int):
            return "number"
        if self.selector in KEYWORDS:
            return self.selector  # type: ignore[return-value]
        return "sha" if _SHA.fullmatch(self.selector) else "ref"

    def __str__(self) -> str:
        return self.name if self.selector is None else f"{self.name}@{self.selector}"


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def check_selector(selector: str, text: str | None = None) -> str:
    """Return `selector` if it is safe to hand to git as a revision, else raise RefError saying the fix.

    `text` is the whole reference, for the message (default: the selector itself).
    """
    shown = _shown(text if text is not None else selector)
    if not selector:
        raise RefError(f"invalid ref {shown}: nothing after '@'", fix=f"write {FORMS}")
    if len(selector) > MAX_SELECTOR:
        raise RefError(f"invalid ref {shown}: longer than {MAX_SELECTOR} characters", fix=f"write {FORMS}")
    if selector.startswith("-"):
        raise RefError(f"invalid ref {shown}: it starts with '-' and would be read as an option",
                       fix=f"write {FORMS}")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in selector):
        raise RefError(f"invalid ref {shown}: whitespace and control characters are not allowed",
                       fix="remove them; tag and branch names cannot contain them")
    if ".." in selector:
        raise RefError(f"invalid ref {shown}: ranges ('..') are not allowed",
                       fix="name one version, e.g. NAME@3; compare two with `promptops diff A B`")
    if not _REF_NAME.fullmatch(selector):
        bad = next((c for c in selector if not re.fullmatch(r"[A-Za-z0-9._/+-]", c)), selector[0])
        raise RefError(f"invalid ref {shown}: character {bad!r} is not allowed",
                       fix=f"write {FORMS}; revision syntax such as ~, ^, : and @{{}} is not supported")
    if selector.endswith(("/", ".", ".lock")) or "//" in selector or "/." in selector:
        raise RefError(f"invalid ref {shown}: not a valid tag or branch name",
                       fix="check the name with `git tag --list` or `git branch --list`")
    return selector


@lru_cache(maxsize=4096)
def parse_ref(text: str) -> Ref:
    """Parse `NAME` or `NAME@SELECTOR`; the name is checked with check_name, the selector for git safety.

    All-decimal selectors of up to 6 digits are version numbers; 7-40 hex digits are commit SHAs;
    `head`, `approved` and `draft` are keywords; anything else is a tag or branch name.
    """
    if not isinstance(text, str):
        raise RefError(f"invalid ref {text!r}: expected a string", fix=f"write {FORMS}")
    name, at, selector = text.partition("@")
    check_name(name)
    if not at:
        return Ref(name)
    check_selector(selector, text)
    if _NUMBER.fullmatch(selector):
        number = int(selector)
        if number < 1:
            raise RefError(f"invalid ref {_shown(text)}: versions are numbered from 1",
                           fix=f"write {name}@1 for the first version or {name}@head for the newest")
        return Ref(name, number)
    return Ref(name, selector)

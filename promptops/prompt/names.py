"""Prompt names: the one check done before any file or git access."""

from __future__ import annotations

import re

from promptops.errors import InvalidName

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
# Device names Windows refuses as file names, whatever the extension.
_WINDOWS_DEVICES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


def check_name(name: str) -> str:
    """Return `name` if it may name a prompt file and a git tag, else raise InvalidName."""
    shown = name if len(name) <= 80 else name[:77] + "..."
    fix = "use 1-64 characters from a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidName(f"invalid prompt name {shown!r}", fix=fix)
    if ".." in name or name.endswith((".", ".lock")):
        raise InvalidName(f"invalid prompt name {shown!r}: it cannot be a git tag name", fix=fix)
    if name.split(".")[0] in _WINDOWS_DEVICES:
        raise InvalidName(f"invalid prompt name {shown!r}: reserved device name", fix="choose another name")
    return name

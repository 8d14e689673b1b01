"""What the store hands out: versions, resolved references, status rows, changes and label moves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from promptops.prompt.model import Prompt


@dataclass(frozen=True)
class Version:
    """One version of a prompt: the commit that introduced its content, its approval and its labels."""

    name: str
    number: int
    commit: str
    blob: str
    author: str
    email: str
    date: str
    message: str
    approved: bool = False
    tag: str | None = None
    revoked: bool = False
    labels: tuple[str, ...] = ()

    @property
    def short(self) -> str:
        """The commit's first 7 hex digits."""
        return self.commit[:7]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with stable keys."""
        return {"name": self.name, "version": self.number, "commit": self.commit, "blob": self.blob,
                "author": self.author, "email": self.email, "date": self.date, "message": self.message,
                "approved": self.approved, "tag": self.tag, "revoked": self.revoked, "labels": list(self.labels)}


@dataclass(frozen=True)
class Resolved:
    """What a reference resolved to: the prompt, its version (None for a draft) and the label that chose it."""

    name: str
    prompt: Prompt
    version: Version | None
    draft: bool
    commit: str | None
    approved: bool
    label: str | None = None
    canary: bool = False  # the label's canary chose this version for the caller (promptops/split.py)


@dataclass(frozen=True)
class PromptStatus:
    """A prompt's newest, approved and labelled versions and the state of its working-tree file."""

    name: str
    newest: Version | None
    approved: Version | None
    dirty: bool
    untracked: bool
    labels: dict[str, Version | None] = field(default_factory=dict)
    tagged: Version | None = None  # the newest version with an (unrevoked) approval tag, verified or not

    def drift(self, label: str) -> int | None:
        """How many versions `label` is behind the newest (None when the label is unset)."""
        target = self.labels.get(label)
        if target is None or self.newest is None:
            return None
        return self.newest.number - target.number


@dataclass(frozen=True)
class Change:
    """A prompt file that differs between two commits; prompts are None where the bytes are absent or invalid."""

    name: str
    status: Literal["added", "removed", "modified"]
    old: Prompt | None
    new: Prompt | None
    old_bytes: bytes | None
    new_bytes: bytes | None


@dataclass(frozen=True)
class LabelMove:
    """A label of one prompt that points somewhere else at head than at base (None: unset)."""

    name: str
    label: str
    old: int | None
    new: int | None
    protected: bool

    def __str__(self) -> str:
        def shown(number: int | None) -> str:
            return f"v{number}" if number is not None else "(unset)"

        return f"{self.name}: {self.label} {shown(self.old)} -> {shown(self.new)}"


@dataclass(frozen=True)
class LabelEvent:
    """One move of a label on the serving branch: the commit that made it, the version the label pointed at
    from then on (None: unset), and that commit's author and date."""

    commit: str
    version: int | None
    author: str
    date: str

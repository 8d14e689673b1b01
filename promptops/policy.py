"""The serving policy: which caller may be served which prompt version, decided here for every door.

Every route to the model (`/v1/chat`, `/v1/chat/completions`, `/prompt`, the UI's Chat, Compare
and Tests tabs) asks :func:`ServingPolicy.check` (and `/prompt` asks `check_posted`) before it
renders, so the doors cannot disagree. The table is in docs/security.md:

- anyone who may read: labels (a protected label only ever points at an approved version) and
  approved versions, by bare name, `NAME@LABEL`, or a pin to an approved version;
- a signed-in editor or approver (a validated token or session; an unknown token is nobody):
  also versions that are not approved (`@N`, `@head`, `@sha`) and, with drafts on, `@draft`;
  and prompts posted whole to `/prompt` that match no reviewed version;
- everyone, when the server runs with `serve_unreviewed` (PROMPTOPS_SERVE_UNREVIEWED: teams that
  want open pins) or `serve_drafts` (an author's own machine).

This module prints nothing and knows no web framework: a caller is the set of its roles (None
for nobody).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from promptops.errors import NotServed
from promptops.store.model import Resolved, Version

REVIEWERS = frozenset({"editor", "approver"})  # roles that may be served what is not reviewed yet
OPEN_SETTING = "PROMPTOPS_SERVE_UNREVIEWED=1"


@dataclass(frozen=True)
class ServingPolicy:
    """What this server serves to whom (see the module docstring)."""

    serve_unreviewed: bool = False
    serve_drafts: bool = False

    def may_have_unreviewed(self, roles: Collection[str] | None) -> bool:
        """True when this caller may be served versions nobody approved, and posted prompts."""
        return self.serve_unreviewed or self.serve_drafts or bool(roles and REVIEWERS.intersection(roles))

    def check(self, resolved: Resolved, roles: Collection[str] | None, approved: Sequence[Version]) -> None:
        """Raise NotServed unless this caller may be served `resolved`; `approved` are the prompt's
        approved versions, named in the refusal so the caller can pin one."""
        if resolved.label is not None or (resolved.approved and not resolved.draft):
            return
        if self.may_have_unreviewed(roles):
            return
        version = resolved.version
        what = "the working-tree draft" if version is None else f"v{version.number}"
        raise NotServed(f"{resolved.name} {what} is not approved, and only signed-in editors and approvers are "
                        f"served versions that are not approved; {choices(resolved.name, approved)}",
                        fix=f"pin an approved version, or sign in as an editor (the server's {OPEN_SETTING} "
                            "setting opens pins to everyone)")

    def check_posted(self, roles: Collection[str] | None) -> None:
        """Raise NotServed unless this caller may run a posted prompt that matches no reviewed version."""
        if not self.may_have_unreviewed(roles):
            raise NotServed("the posted prompt matches no approved version or label target, and only signed-in "
                            "editors and approvers may run prompts nobody reviewed",
                            fix="post the exact content of an approved prompt version (only `user` may differ), "
                                f"or sign in as an editor (the server's {OPEN_SETTING} setting opens this to "
                                "everyone)")


def choices(name: str, approved: Sequence[Version]) -> str:
    """'approved versions of support: v1, v3 (pin one as support@3)', or that there is none."""
    if not approved:
        return f"'{name}' has no approved version yet (`promptops approve {name}`)"
    shown = ", ".join(f"v{v.number}" for v in approved[-10:])
    return f"approved versions of {name}: {shown} (pin one as {name}@{approved[-1].number})"

"""Helpers shared by the UI tabs: prompt and version choices, labels, notices, error text."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.auth import Auth, ui_caller
from gateway.serving import Service
from promptops.config.users import User
from promptops.errors import PromptInvalid, PromptOpsError
from promptops.store import SERVING_LABEL, Resolved, Version, parse_ref

GetService = Callable[[], Service]
Choices = list[tuple[str, str]]
PICK_EXPLICITLY = "No approved version: pick a draft version explicitly."


def prompt_names(service: Service) -> list[str]:
    """Every committed prompt, sorted."""
    return service.store.names()


def version_label(version: Version) -> str:
    """`v3 · production · approved · 1a2b3c4`, `v4 · draft (not approved) · …` or `v2 · revoked · …`."""
    state = "revoked" if version.revoked else "approved" if version.approved else "draft (not approved)"
    return " · ".join([f"v{version.number}", *version.labels, state, version.short])


def version_choices(service: Service, name: str) -> Choices:
    """Picker choices: the bare name (what the API serves), labels (`name@staging`), approved versions, drafts."""
    if not name:
        return []
    versions = list(reversed(service.store.versions(name)))
    labels = service.store.labels()
    targets = labels.of(name)
    approved = [v for v in versions if v.approved]
    drafts = service.settings.serve_drafts
    choices: Choices = []
    if drafts and versions:
        choices.append((f"newest (v{versions[0].number}, drafts served)", name))
    elif SERVING_LABEL in targets:
        choices.append((f"{SERVING_LABEL} (v{targets[SERVING_LABEL]})", name))
    elif approved:
        choices.append((f"newest approved (v{approved[0].number})", name))
    bare_label = None if drafts else SERVING_LABEL  # the bare name already stands for it
    for label in sorted(targets, key=lambda label: (label not in labels.protected, label)):
        if label != bare_label:
            choices.append((f"{label} (v{targets[label]})", f"{name}@{label}"))
    choices += [(version_label(v), f"{name}@{v.number}") for v in approved]
    choices += [(version_label(v), f"{name}@{v.number}") for v in versions if not v.approved]
    return choices


def draft_notice(service: Service, name: str, version: Version | None) -> str:
    """One line when the chat talks to a version API callers of the bare name would not get ("" otherwise)."""
    if version is not None and version.approved:
        return ""
    which = "the working-tree draft" if version is None else (
        f"v{version.number} (approval revoked)" if version.revoked else f"draft v{version.number} (not approved)")
    if service.settings.serve_drafts or service.settings.serve_unreviewed:
        return f"Chatting with {which}."
    return (f"Chatting with {which}: API callers asking for `{name}` are served only approved versions, and "
            "versions nobody approved only to signed-in editors (open the sign-in link `promptops serve` printed).")


def resolved_notice(service: Service, resolved: Resolved) -> str:
    return draft_notice(service, resolved.name, resolved.version)


def preselect(service: Service, name: str, choices: Choices) -> tuple[str | None, str]:
    """The picker's starting value and its notice.

    The bare name when it serves something. Otherwise, on a writable local repository whose
    prompt has no label and no approval yet (a first run), its newest version as a marked
    draft, so a question gets an answer without clicks. A read-only clone never preselects
    a draft: there, what is not approved is picked explicitly.
    """
    if not choices:
        return None, ""
    if "@" not in choices[0][1]:
        return choices[0][1], ""
    versions = service.store.versions(name)
    untouched = not service.store.labels().of(name) and not any(v.approved or v.revoked for v in versions)
    if service.settings.read_only or not untouched or not versions:
        return None, PICK_EXPLICITLY
    newest = versions[-1]
    return f"{name}@{newest.number}", draft_notice(service, name, newest)


def versions_for(service: Service, name: str | None) -> tuple[Choices, str | None, str]:
    """A version picker for `name`: its choices, the preselected value and its notice (see `preselect`)."""
    if not name:
        return [], None, ""
    choices = version_choices(service, name)
    value, note = preselect(service, name, choices)
    return choices, value, note


def pin(service: Service, ref: str) -> tuple[str, str]:
    """`name@3`, `name@staging`, `name@<sha>` or `name@<tag>` from a URL, as (name, picker value).

    A label stays a label (the chat follows it when it moves); anything else becomes `name@N`.
    """
    parsed = parse_ref(ref)
    if parsed.selector is None:
        return parsed.name, parsed.name
    if ref in {value for _, value in version_choices(service, parsed.name)}:
        return parsed.name, ref
    resolved = service.resolve(ref)
    if resolved.version is None:
        return parsed.name, ref
    if resolved.label == SERVING_LABEL and not service.settings.serve_drafts:
        return parsed.name, parsed.name
    return parsed.name, f"{parsed.name}@{resolved.version.number}"


def ui_identity(service: Service, auth: Auth, request: Any) -> tuple[User | None, str | None]:
    """Who is chatting in the browser (the session's person, else nobody) and the key their limits count
    under: the same rules as the API's (gateway/limits.py), so the UI is no way around them."""
    user = ui_caller(auth, request)
    client = getattr(request, "client", None)
    return user, service.limits.caller(user, getattr(client, "host", None))


def describe_error(exc: PromptOpsError) -> str:
    """Markdown for an error: the message, each problem of an invalid prompt, and the fix."""
    if isinstance(exc, PromptInvalid):
        lines = [f"- **error** `{p.location()}`: {p.message}" + (f" — *{p.fix}*" if p.fix else "")
                 for p in exc.problems if p.severity == "error"]
        return "**Invalid prompt — nothing was written.**\n" + "\n".join(lines)
    text = f"**{exc.message}**"
    return text + (f"\n\nFix: {exc.fix}" if exc.fix else "")

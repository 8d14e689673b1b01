"""Helpers shared by the UI tabs: prompt and version choices, labels, error text."""

from __future__ import annotations

from collections.abc import Callable

from gateway.serving import Service
from promptops.errors import PromptInvalid, PromptOpsError
from promptops.refs import parse_ref
from promptops.store import Version

GetService = Callable[[], Service]


def prompt_names(service: Service) -> list[str]:
    """Every committed prompt, sorted."""
    return service.store.names()


def version_label(version: Version) -> str:
    """`v3 ✓ approved` or `v4 · draft (not approved)`, with the short commit."""
    state = "✓ approved" if version.approved else "· draft (not approved)"
    return f"v{version.number} {state} · {version.short}"


def version_choices(service: Service, name: str) -> list[tuple[str, str]]:
    """Picker choices, approved first: the bare name (newest approved), approved versions, then drafts."""
    if not name:
        return []
    versions = list(reversed(service.store.versions(name)))
    approved = [v for v in versions if v.approved]
    choices: list[tuple[str, str]] = []
    if approved:
        choices.append((f"newest approved (v{approved[0].number})", name))
    elif service.settings.serve_drafts and versions:
        choices.append((f"newest (v{versions[0].number}, drafts served)", name))
    choices += [(version_label(v), f"{name}@{v.number}") for v in approved]
    choices += [(version_label(v), f"{name}@{v.number}") for v in versions if not v.approved]
    return choices


def default_choice(choices: list[tuple[str, str]]) -> str | None:
    """The bare name when something is approved (what the API serves), else nothing: drafts are picked explicitly."""
    return choices[0][1] if choices and "@" not in choices[0][1] else None


def pin(service: Service, ref: str) -> tuple[str, str]:
    """`name@3`, `name@<sha>` or `name@<tag>` from a URL, as (name, picker value `name@N`)."""
    parsed = parse_ref(ref)
    if parsed.selector is None:
        return parsed.name, parsed.name
    resolved = service.store.resolve(ref, serve_drafts=service.settings.serve_drafts)
    if resolved.version is None:
        return parsed.name, ref
    return parsed.name, f"{parsed.name}@{resolved.version.number}"


def describe_error(exc: PromptOpsError) -> str:
    """Markdown for an error: the message, each problem of an invalid prompt, and the fix."""
    if isinstance(exc, PromptInvalid):
        lines = [f"- ❌ `{p.location()}`: {p.message}" + (f" — *{p.fix}*" if p.fix else "")
                 for p in exc.problems if p.severity == "error"]
        return "**Invalid prompt — nothing was written.**\n" + "\n".join(lines)
    text = f"**{exc.message}**"
    return text + (f"\n\nFix: {exc.fix}" if exc.fix else "")

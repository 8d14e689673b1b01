"""Prompts: list, show, versions, labels, diff, render, save, approve, revoke, promote and rollback.

Writes take the signed-in person (gateway/auth.py): commits, approval tags and label moves record them.

Sync handlers on purpose: the store runs git, so FastAPI runs these in its thread pool.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.deps import ApproverDep, DeployerDep, EditorDep, ServiceDep, SettingsDep
from gateway.serving import Service, TurnModel, to_turns
from promptops.errors import Forbidden, RefError, VersionNotFound
from promptops.prompt import diff as prompt_diff
from promptops.prompt.names import check_name
from promptops.prompt.render import render
from promptops.store import LabelChange, Resolved, Version
from promptops.store.refs import check_selector

router = APIRouter(prefix="/v1/prompts", tags=["prompts"])


class RenderRequest(BaseModel):
    """Variables (`user` is the caller's message) and past turns."""

    model_config = ConfigDict(extra="forbid")
    ref: str | None = Field(None, description="version selector: 3, head, a commit SHA or a tag")
    variables: dict[str, str] = Field(default_factory=dict)
    history: list[TurnModel] = Field(default_factory=list)


class SaveRequest(BaseModel):
    """The new file text and the commit of the version the edit started from (null for a new prompt)."""

    model_config = ConfigDict(extra="forbid")
    text: str
    base_commit: str | None
    message: str = ""


class ApproveRequest(BaseModel):
    """Which version to approve (default: the newest committed one)."""

    model_config = ConfigDict(extra="forbid")
    version: int | None = Field(None, ge=1)
    message: str | None = None


class RevokeRequest(BaseModel):
    """Which approved version to revoke, and why (recorded in the revocation tag)."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(..., ge=1)
    reason: str = Field(..., min_length=1, examples=["answers leak internal ticket numbers"])


class PromoteRequest(BaseModel):
    """Point `label` at the version `ref` names (a selector: `3`, `staging`, `head`, a SHA; default: newest)."""

    model_config = ConfigDict(extra="forbid")
    ref: str | None = Field(None, examples=["3", "staging"])
    label: str = Field("production", examples=["production", "staging"])
    message: str | None = None


class RollbackRequest(BaseModel):
    """Move `label` back to the version it pointed to before its last move."""

    model_config = ConfigDict(extra="forbid")
    label: str = Field("production", examples=["production"])


def _ref(name: str, ref: str | None) -> str:
    check_name(name)  # before any git access, whatever the selector
    if ref is None or ref == "":
        return name
    if "@" in ref:
        raise RefError(f"invalid ref {ref!r}: pass only the selector", fix=f"e.g. ?ref=3 for {name}@3")
    return f"{name}@{check_selector(ref)}"


def _version(version: Version | None) -> dict[str, Any] | None:
    return None if version is None else version.to_dict()


def shown(resolved: Resolved, default_model: str | None = None) -> dict[str, Any]:
    """A resolved prompt as the API shows it: version facts, the document, the rendered template."""
    try:
        rendered = render(resolved.prompt, default_model=default_model)
    except Exception as exc:  # a template that needs caller variables still shows, with the reason
        rendered = f"<cannot render without variables: {exc}>"
    return {"name": resolved.name, "version": _version(resolved.version), "draft": resolved.draft,
            "commit": resolved.commit, "approved": resolved.approved, "label": resolved.label,
            "document": resolved.prompt.document, "text": resolved.prompt.to_json(), "rendered": rendered}


def list_prompts(service: Service) -> list[dict[str, Any]]:
    """Every committed prompt: its newest approved version, its newest version and its labels."""
    rows = []
    for status in service.store.status():
        if status.newest is None:
            continue  # only in the working tree: nothing the gateway could serve
        description = service.store.load(status.newest).description
        rows.append({"name": status.name, "description": description, "approved": _version(status.approved),
                     "newest": _version(status.newest),
                     "labels": {label: v.number if v else None for label, v in status.labels.items()}})
    return rows


@router.get("")
def get_prompts(service: ServiceDep) -> dict[str, Any]:
    """Every prompt with its newest approved version, its newest version and its labels (label -> version)."""
    return {"prompts": list_prompts(service)}


def etag(resolved: Resolved) -> str | None:
    """The version's commit and blob, quoted (None for a draft: the working tree has no fixed identity)."""
    version = resolved.version
    return None if version is None else f'"{version.commit}.{version.blob}"'


def _matches(header: str | None, tag: str) -> bool:
    """`If-None-Match` names `tag` (or `*`); weak tags compare by their value, as RFC 9110 says for GET."""
    return header is not None and any(t.strip().removeprefix("W/") in (tag, "*") for t in header.split(","))


@router.get("/{name}", response_model=None)
def get_prompt(name: str, request: Request, response: Response, service: ServiceDep, settings: SettingsDep,
               ref: str | None = Query(None, description="3, staging (a label), head, approved, a commit SHA "
                                                         "or a tag")) -> dict[str, Any] | Response:
    """One prompt: the version its `production` label or else its newest approval names, or the version `ref` names.

    Answers carry an `ETag` (the version's commit and blob); `If-None-Match` with it answers 304, no body."""
    resolved = service.resolve(_ref(name, ref))
    tag = etag(resolved)
    if tag is not None:
        if _matches(request.headers.get("if-none-match"), tag):
            return Response(status_code=304, headers={"ETag": tag})
        response.headers["ETag"] = tag
    return shown(resolved, settings.default_model)


def _versions(service: Service, name: str) -> list[Version]:
    versions = service.store.versions(check_name(name))
    if not versions:
        service.store.resolve(f"{name}@head")  # raises PromptNotFound with the fix
    return versions


@router.get("/{name}/versions")
def get_versions(name: str, service: ServiceDep) -> dict[str, Any]:
    """Every version, oldest first, with its approval and the labels pointing at it."""
    return {"name": name, "versions": [v.to_dict() for v in _versions(service, name)]}


@router.get("/{name}/labels")
def get_labels(name: str, service: ServiceDep) -> dict[str, Any]:
    """The prompt's labels: the version each points at, and each one's history (oldest move first)."""
    _versions(service, name)
    labels = service.store.labels()
    return {"name": name, "protected": list(labels.protected), "labels": {
        label: {"version": number, "protected": label in labels.protected,
                "history": [{"commit": commit, "version": target}
                            for commit, target in service.store.label_history(name, label)]}
        for label, number in sorted(labels.of(name).items())}}


def _moved(service: Service, change: LabelChange) -> dict[str, Any]:
    version = service.store.versions(change.name)[change.new - 1]  # fresh: its labels include the moved one
    return {"name": change.name, "label": change.label, "old": change.old, "new": change.new,
            "version": version.to_dict(), "commit": change.commit, "path": change.path,
            "message": change.describe()}


@router.post("/{name}/promote")
def post_promote(name: str, body: PromoteRequest, service: ServiceDep, user: DeployerDep) -> dict[str, Any]:
    """Point a label at a version, as a commit of the labels file authored by the signed-in deployer;
    409 when a protected label (`production`) would point at an unapproved or revoked version."""
    change = service.store.promote(_ref(name, body.ref), body.label, commit=True, message=body.message,
                                   author=user.identity)
    return _moved(service, change)


@router.post("/{name}/rollback")
def post_rollback(name: str, body: RollbackRequest, service: ServiceDep, user: DeployerDep) -> dict[str, Any]:
    """Move a label back to where it pointed before its last move (a commit by the signed-in deployer);
    409 when there is none."""
    change = service.store.rollback(check_name(name), body.label, commit=True, author=user.identity)
    return _moved(service, change)


@router.get("/{name}/diff")
def get_diff(name: str, service: ServiceDep, settings: SettingsDep,
             from_: str = Query(..., alias="from", description="older version selector, e.g. 1"),
             to: str = Query("head", description="newer version selector, e.g. 3")) -> dict[str, Any]:
    """Semantic diff between two versions (config keys, text fields, rendered prompt)."""
    old = service.resolve(_ref(name, from_))
    new = service.resolve(_ref(name, to))
    diffs = [prompt_diff.diff_prompts(name, old.prompt, new.prompt, old_label=f"{name}@{from_}",
                                      new_label=f"{name}@{to}", default_model=settings.default_model)]
    return {"name": name, "from": _version(old.version), "to": _version(new.version),
            **json.loads(prompt_diff.to_json(diffs)), "text": prompt_diff.to_text(diffs),
            "markdown": prompt_diff.to_markdown(diffs)}


@router.post("/{name}/render")
def post_render(name: str, body: RenderRequest, service: ServiceDep, settings: SettingsDep) -> dict[str, Any]:
    """The exact text the model would receive."""
    resolved = service.resolve(_ref(name, body.ref))
    text = render(resolved.prompt, body.variables, to_turns([t.model_dump() for t in body.history]),
                  default_model=settings.default_model)
    return {"name": name, "version": _version(resolved.version), "commit": resolved.commit, "text": text}


@router.put("/{name}")
def put_prompt(name: str, body: SaveRequest, service: ServiceDep, user: EditorDep) -> dict[str, Any]:
    """Validate and commit a new version, authored by the signed-in editor; 409 when `base_commit` is no
    longer the newest."""
    version = service.store.save(check_name(name), body.text, base_commit=body.base_commit,
                                 author_name=user.name, author_email=user.email,
                                 message=body.message or f"Update prompt {name} (gateway)")
    return {"version": version.to_dict()}


@router.post("/{name}/approve")
def post_approve(name: str, body: ApproveRequest, service: ServiceDep, settings: SettingsDep,
                 user: ApproverDep) -> dict[str, Any]:
    """Tag a version as approved by the signed-in approver (served for the bare name from then on);
    403 under the four-eyes policy when they wrote it."""
    if not settings.allow_approve:
        raise Forbidden("approving is disabled on this gateway", fix="approve with `promptops approve NAME` "
                                                                     "or set PROMPTOPS_ALLOW_APPROVE=1")
    number = body.version
    if number is None:
        versions = service.store.versions(check_name(name))
        if not versions:
            raise VersionNotFound(f"prompt '{name}' has no committed version", fix="save it first")
        number = versions[-1].number
    version, created = service.store.approve(check_name(name), number, body.message, approver=user.identity)
    return {"version": version.to_dict(), "created": created}


@router.post("/{name}/revoke")
def post_revoke(name: str, body: RevokeRequest, service: ServiceDep, user: ApproverDep) -> dict[str, Any]:
    """Revoke an approval (a revocation tag recording the signed-in approver and the reason): the version
    is no longer served for the bare name or a protected label. 409 when it is not approved."""
    version = service.store.revoke(check_name(name), body.version, body.reason, actor=user.identity)
    return {"version": version.to_dict()}

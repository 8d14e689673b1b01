"""What a pull request changes: prompt files added, removed or modified, and labels moved."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from promptops.errors import RefError
from promptops.prompt.schema import check_bytes
from promptops.store.history import FILE_MODES
from promptops.store.model import Change, LabelMove
from promptops.store.refs import check_selector

if TYPE_CHECKING:
    from promptops.store import PromptStore


def commit_of(store: PromptStore, rev: str) -> str:
    """The commit a base/head argument names (a SHA, tag or branch; no revision syntax)."""
    try:
        check_selector(rev)
    except RefError as error:
        raise RefError(error.message, fix="pass a commit SHA, a tag or a branch (e.g. origin/main)") from None
    commit = store.git.rev_parse(rev)
    if commit is None:
        raise RefError(f"no commit, tag or branch named '{rev}'",
                       fix="check it with `git log --oneline`; in CI fetch it first")
    return commit


def prompt_changes(store: PromptStore, base: str, head: str) -> list[Change]:
    """Prompt files added, removed or modified between two commits (tags, branches or SHAs)."""
    commits = [commit_of(store, base), commit_of(store, head)]
    out = store.git.run("diff-tree", "-r", "--raw", "--no-renames", "--no-abbrev", "-z",
                        f"--relative={store.prompts_dir}/", "--end-of-options", *commits, "--")
    tokens = out.split(b"\0")
    found: list[tuple[str, str | None, str | None]] = []
    for meta, path in zip(tokens[::2], tokens[1::2], strict=False):
        fields = meta.lstrip(b"\n:").decode().split(" ")
        name = path.decode(errors="replace")
        if "/" in name or not name.endswith(".json") or len(fields) < 5:
            continue
        old = fields[2] if fields[0] in FILE_MODES else None
        new = fields[3] if fields[1] in FILE_MODES else None
        if old != new:
            found.append((name[:-5], old, new))
    blobs = store.git.read_blobs(sorted({b for _, o, n in found for b in (o, n) if b}))
    result = []
    for name, old, new in sorted(found):
        old_bytes, new_bytes = blobs.get(old or ""), blobs.get(new or "")
        status: Literal["added", "removed", "modified"] = (
            "added" if old_bytes is None else "removed" if new_bytes is None else "modified")
        file = f"{store.prompts_dir}/{name}.json"
        result.append(Change(name, status,
                             check_bytes(old_bytes, name, f"{file}@{base}")[0] if old_bytes is not None else None,
                             check_bytes(new_bytes, name, f"{file}@{head}")[0] if new_bytes is not None else None,
                             old_bytes, new_bytes))
    return result


def label_moves(store: PromptStore, base: str, head: str) -> list[LabelMove]:
    """Every (prompt, label) whose target differs between the two commits' labels files."""
    old, new = (store.labels_at(commit_of(store, rev)) for rev in (base, head))
    moves = []
    for name in sorted({*old.prompts, *new.prompts}):
        for label in sorted({*old.of(name), *new.of(name)}):
            before, after = old.target(name, label), new.target(name, label)
            if before != after:
                moves.append(LabelMove(name, label, before, after, label in new.protected))
    return moves

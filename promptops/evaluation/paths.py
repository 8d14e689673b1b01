"""Files a prompt refers to (datasets, JSON schemas, Python checks): resolved inside the repository only.

Every such path is written relative to the prompts directory, like the prompt files' own
`"$schema": "../schemas/prompt.schema.json"`, and must stay inside the repository.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from promptops.errors import PromptOpsError


class PathOutsideRepo(PromptOpsError):
    """A path in a prompt file that is absolute or leads out of the repository."""


def repo_relative(ref: str, prompts_dir: str = "prompts") -> str:
    """The repository-relative POSIX path of `ref`, written relative to the prompts directory.

    Lexical only (no file access), so it also suits files read from a git commit.
    """
    if not ref or "\0" in ref or "\\" in ref or ref.startswith("/") or (len(ref) > 1 and ref[1] == ":"):
        raise PathOutsideRepo(f"path {ref!r} must be relative (to {prompts_dir}/) and use '/'",
                              fix=f"write it relative to {prompts_dir}/, e.g. 'datasets/cases.jsonl'")
    rel = posixpath.normpath(posixpath.join(prompts_dir, ref))
    if rel in (".", "..") or rel.startswith("../"):
        raise PathOutsideRepo(f"path {ref!r} leads out of the repository",
                              fix=f"keep the file inside the repository; paths are relative to {prompts_dir}/")
    return rel


def working_tree_file(repo: Path, rel: str) -> Path:
    """The working-tree file at repository-relative `rel`; refuses one a symbolic link takes out of `repo`."""
    path = (repo / rel).resolve()
    if not path.is_relative_to(repo.resolve()):
        raise PathOutsideRepo(f"{rel} resolves outside the repository (a symbolic link?)",
                              fix="keep the file itself inside the repository")
    return path


def resolve_in_repo(ref: str, repo: Path, prompts_dir: str = "prompts") -> Path:
    """The working-tree file `ref` (relative to the prompts directory) names, inside `repo`."""
    return working_tree_file(repo, repo_relative(ref, prompts_dir))

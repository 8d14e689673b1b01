"""The working tree's prompts directory: list, read, create and write prompt files safely."""

from __future__ import annotations

import os
import posixpath
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from promptops.errors import PromptExists, PromptInvalid, PromptNotFound
from promptops.names import check_name
from promptops.prompt import SEED_TEMPLATE, Prompt, dump_document
from promptops.schema import check_bytes, encode_text, load_prompt_bytes

LABELS_FILE = "labels.json"


def labels_path(prompts_dir: str) -> str:
    """The labels file of a prompts directory, repository-relative: `prompts` -> `labels.json`.

    Here rather than in promptops.store.labels: `validate` needs the path without importing the store.
    """
    return posixpath.join(posixpath.dirname(prompts_dir.rstrip("/")), LABELS_FILE)


class Workspace:
    """Prompt files under `<repo>/<prompts_dir>`; names are checked before any path is built."""

    def __init__(self, repo: Path, prompts_dir: str = "prompts") -> None:
        self.repo = repo
        self.prompts_dir = prompts_dir
        self.root = repo / prompts_dir

    def path(self, name: str) -> Path:
        """The file of prompt `name` (the name is validated, so it cannot escape the directory)."""
        return self.root / f"{check_name(name)}.json"

    def relpath(self, name: str) -> str:
        """Repository-relative path, as git knows it."""
        return f"{self.prompts_dir}/{check_name(name)}.json"

    def names(self) -> list[str]:
        """Every prompt file's name, sorted (files with invalid names included, so validate can flag them)."""
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.json") if p.is_file())

    def read_bytes(self, name: str) -> bytes:
        path = self.path(name)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise PromptNotFound(f"no prompt named '{name}' in {self.prompts_dir}/",
                                 fix=f"create it with `promptops new {name}`") from None

    def load(self, name: str) -> Prompt:
        """Read and validate the working-tree file (the draft)."""
        return load_prompt_bytes(self.read_bytes(name), name, self.relpath(name))

    def create(self, name: str, source: Mapping[str, Any] | None = None) -> Path:
        """Write a new prompt (the seed template, or a copy of `source`); refuse an existing name."""
        path = self.path(name)
        if path.exists():
            raise PromptExists(f"prompt '{name}' already exists: {self.relpath(name)}",
                               fix=f"edit it with `promptops edit {name}` or choose another name")
        self.write_text(name, dump_document(source if source is not None else SEED_TEMPLATE), exclusive=True)
        return path

    def write_text(self, name: str, text: str, *, exclusive: bool = False) -> Prompt:
        """Validate then atomically replace the file: readers see the old or the new bytes, never a mix."""
        data = encode_text(text, self.relpath(name))
        prompt, problems = check_bytes(data, name, self.relpath(name))
        if prompt is None:
            raise PromptInvalid(problems)
        atomic_write(self.path(name), data, exclusive=exclusive)
        return prompt


def atomic_write(path: Path, data: bytes, *, exclusive: bool = False, mode: int | None = None) -> None:
    """Write to a temp file in the same directory, fsync, then rename over `path`.

    `mode` (e.g. 0o600 for secrets) is set on the temp file before any byte is written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            # link() fails if the name exists, so two creators cannot both win.
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise PromptExists(f"prompt file {path.name} already exists") from None
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

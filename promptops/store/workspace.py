"""The working tree's prompts directory: list, read, create and write prompt files safely."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from promptops.errors import PromptExists, PromptInvalid, PromptNotFound
from promptops.files import atomic_write
from promptops.prompt.model import SEED_TEMPLATE, Prompt, dump_document
from promptops.prompt.names import check_name
from promptops.prompt.schema import check_bytes, encode_text, load_prompt_bytes

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
        try:
            atomic_write(self.path(name), data, exclusive=exclusive)
        except FileExistsError:
            raise PromptExists(f"prompt file {name}.json already exists") from None
        return prompt

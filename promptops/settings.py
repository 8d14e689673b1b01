"""Settings shared by every edge, read from arguments or `PROMPTOPS_*` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def find_repo_root(start: Path | None = None) -> Path:
    """The git toplevel above `start` (no git subprocess: this runs on every command)."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            return candidate
    return here


def _config_dir() -> Path:
    from promptops.users import config_dir

    return config_dir()


@dataclass(frozen=True)
class Settings:
    """Where prompts live and where the model server is."""

    repo: Path = field(default_factory=lambda: Path(os.environ["PROMPTOPS_REPO"]) if os.environ.get("PROMPTOPS_REPO")
                       else find_repo_root())
    prompts_dir: str = field(default_factory=lambda: os.environ.get("PROMPTOPS_PROMPTS_DIR", "prompts"))
    triton_url: str | None = field(default_factory=lambda: os.environ.get("PROMPTOPS_TRITON_URL") or None)
    default_model: str = field(default_factory=lambda: os.environ.get("PROMPTOPS_MODEL", "smollm2-135m"))
    branch: str | None = field(default_factory=lambda: os.environ.get("PROMPTOPS_BRANCH") or None)
    # Approvals count only when their SSH signature verifies against the repository's allowed_signers.
    signed_approvals: bool = field(default_factory=lambda: os.environ.get("PROMPTOPS_APPROVALS", "") == "signed")
    users_file: Path = field(default_factory=lambda: Path(os.environ["PROMPTOPS_USERS_FILE"])
                             if os.environ.get("PROMPTOPS_USERS_FILE") else _config_dir() / "users.json")
    four_eyes: bool = field(default_factory=lambda: os.environ.get("PROMPTOPS_FOUR_EYES", "") in ("1", "true"))

    @property
    def prompts_path(self) -> Path:
        return self.repo / self.prompts_dir

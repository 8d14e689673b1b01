"""What every command reads from the global options: the repository and prompts directory, and the settings.

The command modules import this, never the Typer application (promptops.cli.app), so the application can
import them without a circle. The settings model is imported when the settings are first asked for:
`validate` needs only the two paths, and the reader costs a few milliseconds of its ~100 ms.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from promptops.config.settings import Settings


def workspace_paths(ctx: typer.Context) -> tuple[Path, str]:
    """(repository, prompts directory) from the global options alone: what file-only commands need."""
    from promptops.config.settings import find_repo_root

    obj = ctx.find_root().obj
    if obj is not None and not isinstance(obj, dict):  # the settings, already built
        return obj.repo, obj.prompts_dir
    options = obj or {}
    return options.get("repo") or find_repo_root(), options.get("prompts_dir") or "prompts"


def settings(ctx: typer.Context) -> Settings:
    """The settings: `PROMPTOPS_*` variables with the global options on top (built once per command)."""
    from promptops.config.reader import from_env
    from promptops.config.settings import Settings

    root = ctx.find_root()
    if isinstance(root.obj, Settings):
        return root.obj
    options = {k: v for k, v in (root.obj or {}).items() if v is not None}
    root.obj = from_env(Settings, **options)
    return root.obj

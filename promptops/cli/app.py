"""The Typer application: global options, then one module per verb family."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from promptops.settings import Settings, from_env

app = typer.Typer(
    name="promptops",
    help="Prompts as code: validate, version, approve, test and serve LLM prompts kept in git.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: importing rich for --help alone costs ~80 ms
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def configure(
    ctx: typer.Context,
    repo: Annotated[Optional[Path], typer.Option("--repo", envvar="PROMPTOPS_REPO", help="Repository root (default: git toplevel of the current directory).")] = None,
    prompts_dir: Annotated[str, typer.Option("--prompts-dir", envvar="PROMPTOPS_PROMPTS_DIR", help="Prompts directory, relative to the repository.")] = "prompts",
    triton_url: Annotated[Optional[str], typer.Option("--triton-url", envvar="PROMPTOPS_TRITON_URL", help="gRPC address of an external Triton (default: the local one).")] = None,
) -> None:
    """Prompts as code: validate, version, approve, test and serve LLM prompts kept in git."""
    # Only the options: the settings are read on first use (see `settings`), so `validate` and
    # `log` do not pay for parsing the environment when nothing is configured.
    ctx.obj = {"repo": repo.resolve() if repo else None, "prompts_dir": prompts_dir, "triton_url": triton_url}


def workspace_paths(ctx: typer.Context) -> tuple[Path, str]:
    """(repository, prompts directory) from the global options alone: what file-only commands need."""
    from promptops.settings import find_repo_root

    obj = ctx.find_root().obj
    if isinstance(obj, Settings):
        return obj.repo, obj.prompts_dir
    options = obj or {}
    return options.get("repo") or find_repo_root(), options.get("prompts_dir") or "prompts"


def settings(ctx: typer.Context) -> Settings:
    """The settings: `PROMPTOPS_*` variables with the global options on top (built once per command)."""
    root = ctx.find_root()
    if isinstance(root.obj, Settings):
        return root.obj
    options = {k: v for k, v in (root.obj or {}).items() if v is not None}
    root.obj = from_env(Settings, **options)
    return root.obj


# Imported last: the command modules import `settings` from here. Each adds its commands to `app`.
from promptops.cli import prompts, review, serve, serving, users, versions  # noqa: E402

for _module in (prompts, versions, serving, review, serve, users):
    _module.register(app)

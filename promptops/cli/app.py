"""The Typer application: global options, then one module per verb family."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

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


# Each command module adds its commands to `app`; they read the options through promptops.cli.context.
from promptops.cli import prompts, review, serve, serving, users, versions  # noqa: E402  (after `app` exists)

for _module in (prompts, versions, serving, review, serve, users):
    _module.register(app)

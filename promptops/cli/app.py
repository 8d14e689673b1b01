"""The Typer application: the global options, and a table of the commands whose modules load only when run.

`promptops --help` reads COMMANDS (name -> module, first line of the help) and imports no command module:
together they cost ~20 ms (the store, the prompt format, the launcher), a quarter of the ~80 ms start-up
budget. Running a command imports its module alone and calls the module's `register`.
tests/cli/test_lazy_commands.py fails when the table and the modules disagree (a missing command, a help
line that is not the command's docstring).
"""

from __future__ import annotations

import gc
import importlib
from functools import cache
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from typer.core import TyperGroup

# name -> (module under promptops.cli, the first line of the command's docstring or the sub-app's help).
# In this order in `promptops --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "new": ("prompts", "Create prompts/NAME.json: a chat prompt (system + {user}) for the model's chat template, or a copy (--from)."),
    "edit": ("prompts", "Edit a prompt in $EDITOR (or with --set); invalid results are never written."),
    "validate": ("prompts", "Check prompt files (JSON syntax, schema, placeholders, dataset files) and the labels file (versions, approval policy)."),
    "list": ("prompts", "List the prompts in the working tree."),
    "show": ("prompts", "Print a prompt's JSON and its rendered template (a chat prompt through its model's chat template)."),
    "render": ("prompts", "Print the exact prompt string that would be sent to the model (chat prompts: after its chat template)."),
    "log": ("versions", "List a prompt's versions, newest first."),
    "diff": ("versions", "Show what changed between two versions of a prompt, or in all prompts between two commits."),
    "approve": ("versions", "Approve a version: tag it prompts/NAME/vN so bare NAME serves it."),
    "status": ("versions", "Show each prompt's newest, approved and labelled versions, drift and working-tree state."),
    "promote": ("versions", "Point a label at a version in labels.json, or start a canary of it (protected: approved versions only)."),
    "rollback": ("versions", "End a label's canary, else move the label back to its previous version (from labels.json's git history)."),
    "labels": ("versions", "List labels and the version each points to; with NAME, also each label's history."),
    "revoke": ("versions", "Revoke a version's approval with a tag next to it (history is not rewritten)."),
    "canary": ("canary", "Compare a label's canary with its primary version from the gateway's request records."),
    "test": ("evaluate", "Run the prompts' test cases (inline and datasets) against the models on Triton; exit 1 when one fails."),
    "runs": ("evaluate", "List the test runs saved in .promptops/runs/ (newest first): version, model, pass rate."),
    "chat": ("chat", "Chat with a prompt in the terminal (/reset clears history, /quit or Ctrl-D ends)."),
    "review": ("review", "Report every changed prompt and moved label between two commits (exit 1 on invalid prompts or labels, blocked label moves, undocumented breaking contract changes to protected prompts or newly failing tests)."),
    "export": ("export", "Write the served (approved and labelled) versions of every prompt, or the named ones, to one JSON snapshot file."),
    "serve": ("serve", "Serve prompts: Triton + the HTTP/OpenAI gateway + the UI on http://127.0.0.1:7070."),
    "triton": ("triton", "Run the local Triton server (real tritonserver + the vLLM backend on CPU)."),
    "users": ("users", "Manage the people who may save, approve and promote through the gateway."),
}


@cache
def registered(module: str) -> typer.Typer:
    """What `promptops.cli.<module>`'s `register` attaches (imported and registered once per process)."""
    holder = typer.Typer()
    importlib.import_module(f"promptops.cli.{module}").register(holder)
    return holder


def load_command(name: str, group: TyperGroup) -> click.Command:
    """The Click command (or sub-group) `name`, built the way Typer builds the commands of `group`."""
    holder = registered(COMMANDS[name][0])
    for info in holder.registered_commands:
        if (info.name or typer.main.get_command_name(info.callback.__name__)) == name:  # type: ignore[union-attr]
            return typer.main.get_command_from_info(info, pretty_exceptions_short=app.pretty_exceptions_short,
                                                    rich_markup_mode=group.rich_markup_mode)
    for group_info in holder.registered_groups:
        if group_info.name == name:
            return typer.main.get_group_from_info(group_info, pretty_exceptions_short=app.pretty_exceptions_short,
                                                  rich_markup_mode=group.rich_markup_mode,
                                                  suggest_commands=group.suggest_commands)
    raise LookupError(f"promptops.cli.{COMMANDS[name][0]} registers no command {name!r} (see COMMANDS)")


class LazyGroup(TyperGroup):
    """The root group: lists its commands from COMMANDS and imports a command's module only to run it."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.add_command(load_command(cmd_name, self), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Click's own "Commands" section (each help cut to the width the same way), from the table."""
        limit = formatter.width - 6 - max(map(len, COMMANDS))
        rows = [(name, click.Command(name, help=line).get_short_help_str(limit))
                for name, (_, line) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                              list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as error:
            # Click and Typer suggest from the commands loaded so far (none yet): suggest from the table.
            from difflib import get_close_matches

            matches = get_close_matches(args[0], list(COMMANDS)) if args else []
            if matches and "Did you mean" not in error.message:
                error.message = f"{error.message.rstrip('.')}. Did you mean {', '.join(map(repr, matches))}?"
            raise


app = typer.Typer(
    cls=LazyGroup,
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
    gc.enable()  # off while starting up (see promptops.cli.main); the command may make garbage cycles
    # Only the options: the settings are read on first use (see `settings`), so `validate` and
    # `log` do not pay for parsing the environment when nothing is configured.
    ctx.obj = {"repo": repo.resolve() if repo else None, "prompts_dir": prompts_dir, "triton_url": triton_url}

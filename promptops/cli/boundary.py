"""The one place where errors become exit codes and messages."""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import click
import typer

from promptops.errors import PromptInvalid, PromptOpsError

EXIT_OK, EXIT_USER_ERROR, EXIT_USAGE, EXIT_UNEXPECTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
F = TypeVar("F", bound=Callable[..., Any])


def report_error(error: PromptOpsError) -> None:
    """Print a user error as `Error: ...` lines on stderr, without a traceback."""
    from promptops.cli.output import print_problems

    if isinstance(error, PromptInvalid):
        print_problems(error.problems, stream=sys.stderr)
        return
    typer.echo(f"Error: {error.message}", err=True)
    if error.fix:
        typer.echo(f"  fix: {error.fix}", err=True)


def boundary(command: F) -> F:
    """Wrap a command that returns an exit code: map core errors, Ctrl-C and crashes to codes."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code = command(*args, **kwargs)
        except PromptOpsError as error:
            report_error(error)
            code = EXIT_USER_ERROR
        except BrokenPipeError:
            # `promptops log x | head`: the reader left; stop quietly like git does.
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            code = EXIT_OK
        except KeyboardInterrupt:
            typer.echo("Interrupted.", err=True)
            code = EXIT_INTERRUPTED
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):  # usage errors: exit 2
            raise
        except Exception as error:  # the last line of defence: say so, keep the details
            typer.echo(f"Error: unexpected {type(error).__name__}: {error}", err=True)
            typer.echo("".join(traceback.format_exception(error)), err=True)
            code = EXIT_UNEXPECTED
        if code:
            raise typer.Exit(code)

    return wrapper  # type: ignore[return-value]

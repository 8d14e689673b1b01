"""`promptops chat`: a terminal conversation with a prompt, through the one chat pipeline (promptops.chat)."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from promptops.cli.boundary import EXIT_OK, boundary
from promptops.cli.context import settings
from promptops.cli.output import echo, is_tty
from promptops.cli.triton import grpc_url


def chat(ctx: typer.Context,
         ref: Annotated[str, typer.Argument(help="NAME or NAME@REF.")],
         var: Annotated[Optional[list[str]], typer.Option("--var", help="KEY=VALUE overriding a field.")] = None,
         timeout: Annotated[float, typer.Option("--timeout", help="Seconds per answer.")] = 120.0) -> int:
    """Chat with a prompt in the terminal (/reset clears history, /quit or Ctrl-D ends)."""
    from promptops import chat as pipeline
    from promptops.cli.prompts import _load, parse_vars
    from promptops.prompt.render import Turn
    from promptops.triton.client import InferenceClient, iterate_sync, run_sync

    prompt = _load(ctx, ref)
    model = prompt.model or settings(ctx).default_model
    variables = parse_vars(var or [])
    client = InferenceClient(grpc_url(ctx), timeout_s=timeout)
    history: list[Turn] = []
    echo(f"Chatting with {ref} on {model}. /reset clears the history, /quit ends.", err=True)
    try:
        while True:
            try:
                message = input("you> " if sys.stdin.isatty() else "")
            except EOFError:
                return EXIT_OK
            if message.strip() in ("/quit", "/exit"):
                return EXIT_OK
            if message.strip() == "/reset":
                history.clear()
                continue
            if not message.strip():
                continue
            prepared = pipeline.prepare(prompt, message, history, variables=variables, default_model=model,
                                        source=ref)
            answer = None
            for event in iterate_sync(pipeline.generate(client, prepared)):
                if isinstance(event, str):
                    typer.echo(event, nl=False)
                else:
                    answer = event
            typer.echo("")
            if answer is not None:
                if is_tty(sys.stderr):
                    echo(f"[{answer.prompt_tokens} + {answer.completion_tokens} tokens, "
                         f"{answer.finish_reason or 'done'}]", err=True)
                history += [Turn("user", message), Turn("assistant", answer.text.strip())]
    finally:
        run_sync(client.close())


def register(app: typer.Typer) -> None:
    """Attach `chat`."""
    app.command("chat")(boundary(chat))


__all__ = ["register"]

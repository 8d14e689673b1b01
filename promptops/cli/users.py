"""`promptops users`: who may write through the gateway (tokens are shown once, stored hashed)."""

from __future__ import annotations

from typing import Annotated

import typer

from promptops.cli.boundary import EXIT_OK, EXIT_USER_ERROR, boundary
from promptops.cli.output import Format, echo, table

users_app = typer.Typer(help="Manage the people who may save, approve and promote through the gateway.",
                        no_args_is_help=True)


def _users(ctx: typer.Context):  # type: ignore[no-untyped-def]
    from promptops.cli.context import settings
    from promptops.config.users import Users

    return Users(settings(ctx).users_file)


def add(ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="The person's name, as commits will record it.")],
        email: Annotated[str, typer.Option("--email", help="Their email, as commits will record it.")],
        role: Annotated[list[str], typer.Option("--role", help="editor, approver or deployer (repeat for several).")]) -> int:
    """Add a person (or issue them a new token) and print their token once."""
    users = _users(ctx)
    user, token = users.add(name, email, role)
    echo(f"Added {user.name} <{user.email}> ({', '.join(sorted(user.roles))}) to {users.path}", err=True)
    echo("Their token (shown once; send it as 'Authorization: Bearer <token>' or sign in with it):", err=True)
    echo(token)
    return EXIT_OK


def list_(ctx: typer.Context, format_: Format = None) -> int:
    """List people and their roles (never tokens)."""
    people = _users(ctx).list()
    table(("name", "email", "roles"), [(u.name, u.email, ", ".join(sorted(u.roles))) for u in people], fmt=format_,
          records=[{"name": u.name, "email": u.email, "roles": sorted(u.roles)} for u in people])
    return EXIT_OK


def remove(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The person to remove.")]) -> int:
    """Remove a person: their token stops working at once."""
    if not _users(ctx).remove(name):
        echo(f"No user named {name!r}.", err=True)
        return EXIT_USER_ERROR
    echo(f"Removed {name}.")
    return EXIT_OK


def register(app: typer.Typer) -> None:
    """Attach `users add|list|remove`."""
    users_app.command("add")(boundary(add))
    users_app.command("list")(boundary(list_))
    users_app.command("remove")(boundary(remove))
    app.add_typer(users_app, name="users")

"""The `promptops` command line: thin commands over the core library."""

from __future__ import annotations


def main() -> int:
    """Console-script entry point."""
    from promptops.cli.app import app

    app()
    return 0

"""The `promptops` command line: thin commands over the core library."""

from __future__ import annotations


def main() -> int:
    """Console-script entry point."""
    import gc

    # Start-up makes ~20,000 objects that live as long as the process (typer, click, the command's modules):
    # collecting while importing finds nothing, and costs ~7 ms. `configure` (the root callback, which runs
    # once the command's module is imported) turns collection back on for the command itself.
    gc.disable()
    from promptops.cli.app import app

    try:
        app()
    finally:
        # Exiting, the interpreter collects every object again (~10 ms once typer is imported, measured):
        # frozen, they are left to the operating system.
        gc.freeze()
    return 0

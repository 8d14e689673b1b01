"""The table `promptops --help` reads (promptops.cli.app.COMMANDS) matches what the modules register,
and `--help` imports none of them."""

import importlib
import inspect
import pkgutil
import subprocess
import sys

import typer

import promptops.cli
from promptops.cli.app import COMMANDS, registered


def registered_by_modules():
    """{command name: (module, first line of its help)} from every promptops.cli module's `register`."""
    found = {}
    for info in pkgutil.iter_modules(promptops.cli.__path__):
        module = importlib.import_module(f"promptops.cli.{info.name}")
        if not hasattr(module, "register"):
            continue
        holder = registered(info.name)  # the app's own (cached) registration: a module registers once
        for command in holder.registered_commands:
            name = command.name or typer.main.get_command_name(command.callback.__name__)
            found[name] = (info.name, inspect.getdoc(command.callback).splitlines()[0])
        for group in holder.registered_groups:
            found[group.name] = (info.name, inspect.cleandoc(group.typer_instance.info.help).splitlines()[0])
    return found


def test_the_table_lists_every_command_with_its_docstring():
    assert COMMANDS == registered_by_modules()


def test_help_imports_no_command_module():
    code = ("import sys\nfrom promptops.cli import main\ntry:\n    sys.argv = ['promptops', '--help']; main()\n"
            "except SystemExit:\n    print(' '.join(sorted(m for m in sys.modules if m.startswith(('promptops', 'rich')))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "promptops promptops.cli promptops.cli.app"
    assert all(f"\n  {name} " in result.stdout for name in COMMANDS)

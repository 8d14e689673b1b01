"""Authoring commands: new, edit, validate, list, show, render."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from promptops.cli.boundary import EXIT_OK, EXIT_USER_ERROR, boundary
from promptops.cli.output import Format, echo, github_annotation, is_tty, print_json, print_problems, table
from promptops.errors import Problem, PromptInvalid, PromptOpsError, TemplateError


def _workspace(ctx: typer.Context) -> Any:
    from promptops.cli.context import workspace_paths
    from promptops.store.workspace import Workspace

    return Workspace(*workspace_paths(ctx))


def parse_vars(pairs: list[str]) -> dict[str, str]:
    """`key=value` pairs; `key=@file` reads the value from a file."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PromptOpsError(f"expected KEY=VALUE, got {pair!r}", fix="write e.g. --var user='Hello'")
        values[key] = _read_at_file(value)
    return values


def _read_at_file(value: str) -> str:
    if not value.startswith("@"):
        return value
    try:
        return Path(value[1:]).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptOpsError(f"cannot read {value[1:]}: {exc}", fix="pass a readable UTF-8 text file") from None


def load_history(path: Path | None) -> list[Any]:
    """A JSON list of {role, content} turns."""
    from promptops.prompt.render import Turn

    if path is None:
        return []
    try:
        turns = json.loads(path.read_text(encoding="utf-8"))
        return [Turn(str(t["role"]), str(t["content"])) for t in turns]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise PromptOpsError(f"cannot read history from {path}: {exc}",
                             fix='write a JSON list like [{"role": "user", "content": "Hi"}]') from None


def apply_set(document: dict[str, Any], assignment: str) -> None:
    """Apply `dotted.path=value` to a document; config/tests values are parsed as JSON when they parse."""
    path, sep, raw = assignment.partition("=")
    if not sep or not path:
        raise PromptOpsError(f"expected PATH=VALUE, got {assignment!r}", fix="write e.g. --set config.temperature=0.2")
    value: Any = _read_at_file(raw)
    keys = path.split(".")
    if keys[0] in ("config", "tests") and not raw.startswith("@"):
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
    target = document
    for key in keys[:-1]:
        target = target.setdefault(key, {})
        if not isinstance(target, dict):
            raise PromptOpsError(f"cannot set {path}: {key} is not an object")
    target[keys[-1]] = value


def new(ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="Prompt name (file stem).")],
        from_: Annotated[Optional[str], typer.Option("--from", help="Copy this existing prompt.")] = None,
        json_: Annotated[bool, typer.Option("--json", help="Start from a chat prompt that answers JSON.")] = False,
        ) -> int:
    """Create prompts/NAME.json: a chat prompt (system + {user}) for the model's chat template, or a copy (--from).

    With --json, the prompt answers JSON under a small response_format schema ({"answer", "confidence"}) that
    the model server enforces while it decodes; change the schema to the shape your application reads.
    """
    from promptops.prompt.model import NEW_JSON_PROMPT, NEW_PROMPT

    if json_ and from_:
        raise PromptOpsError("--json and --from cannot be used together",
                             fix="start a JSON prompt with --json, or copy a prompt with --from")
    ws = _workspace(ctx)
    source = dict(ws.load(from_).document) if from_ else NEW_JSON_PROMPT if json_ else NEW_PROMPT
    path = ws.create(name, source)
    echo(f"Created {path.relative_to(ws.repo)}")
    return EXIT_OK


def _run_editor(path: Path) -> None:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    result = subprocess.run([*shlex.split(editor), str(path)], check=False)
    if result.returncode != 0:
        raise PromptOpsError(f"editor exited with status {result.returncode}; nothing was written")


def edit(ctx: typer.Context,
         name: Annotated[str, typer.Argument(help="Prompt to edit.")],
         set_: Annotated[Optional[list[str]], typer.Option("--set", help="PATH=VALUE (or PATH=@file); no editor.")] = None) -> int:
    """Edit a prompt in $EDITOR (or with --set); invalid results are never written."""
    from promptops.prompt.schema import check_bytes

    ws = _workspace(ctx)
    original = ws.read_bytes(name)
    if set_:
        document = json.loads(original)
        for assignment in set_:
            apply_set(document, assignment)
        from promptops.prompt.model import dump_document

        ws.write_text(name, dump_document(document))
        echo(f"Updated {ws.relpath(name)}")
        return EXIT_OK
    with tempfile.TemporaryDirectory(prefix="promptops-edit-") as tmp:
        draft = Path(tmp) / f"{name}.json"
        draft.write_bytes(original)
        while True:
            _run_editor(draft)
            edited = draft.read_bytes()
            if edited == original:
                echo("No changes.")
                return EXIT_OK
            prompt, problems = check_bytes(edited, name, ws.relpath(name))
            if prompt is not None:
                ws.write_text(name, edited.decode("utf-8"))
                print_problems(problems)
                echo(f"Updated {ws.relpath(name)}")
                return EXIT_OK
            print_problems(problems)
            if not typer.confirm("The prompt is invalid. Re-open the editor?", default=True):
                echo(f"Aborted; {ws.relpath(name)} is unchanged.", err=True)
                return EXIT_USER_ERROR


def _collect(ws: Any, paths: list[Path]) -> list[tuple[Path, str]]:
    if not paths:
        return [(ws.root / f"{n}.json", f"{ws.prompts_dir}/{n}.json") for n in ws.names()]
    found: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            # scandir + sorted names: pathlib's glob costs ~10 ms per 1,000 files here.
            with os.scandir(path) as entries:
                names = sorted(e.name for e in entries if e.name.endswith(".json") and e.is_file())
            found += [(path / n, os.path.join(str(path), n)) for n in names]
        else:
            found.append((path, str(path)))
    return found


def validate(ctx: typer.Context,
             paths: Annotated[Optional[list[Path]], typer.Argument(help="Files or directories (default: the prompts directory).")] = None,
             strict: Annotated[bool, typer.Option("--strict", help="Fail on warnings too.")] = False,
             format_: Annotated[str, typer.Option("--format", help="text, json or github.")] = "text",
             cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Skip files unchanged since the last run.")] = True) -> int:
    """Check prompt files (JSON syntax, schema, placeholders, dataset files) and the labels file (versions, approval policy)."""
    from promptops.prompt.schema import check_file, schema_bytes
    from promptops.store.cache import ValidationCache

    if format_ not in ("text", "json", "github"):
        raise typer.BadParameter("use text, json or github", param_hint="--format")
    ws = _workspace(ctx)
    labels_file = _labels_file(ws)
    files = _collect(ws, paths or [])
    # A name check first: resolving every path would cost a few syscalls per file.
    given = [p for p, _ in files if p.name == labels_file.name and p.resolve() == labels_file]
    check_labels = labels_file.exists() if not paths else bool(given)
    files = [(p, d) for p, d in files if p not in given]
    results = ValidationCache(ws.repo / ".promptops" / "cache", schema_bytes()) if cache else None
    problems: list[Problem] = []
    for path, display in files:
        found = results.get(str(path), display) if results else None
        if found is None:
            prompt, found = check_file(path, display)
            if prompt is not None and _names_files(prompt):
                # Dataset and check files change on their own: a prompt naming one is never cached, so
                # a cache hit means "no such files" and the fast path reads nothing more.
                found = found + _dataset_problems(ws, prompt)
            elif results:
                results.put(str(path), display, found)
        problems += found
    if results:
        results.save()
    if check_labels:
        display = _labels_display(ws)
        problems += _label_problems(ctx, labels_file, display)
        files.append((labels_file, display))
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    if format_ == "json":
        print_json({"files": len(files), "errors": errors, "warnings": warnings,
                    "problems": [p.__dict__ for p in problems]})
    elif format_ == "github":
        for problem in problems:
            echo(github_annotation(problem))
    else:
        print_problems(problems)
        echo(f"{len(files)} file(s) checked: {errors} error(s), {warnings} warning(s)")
    return EXIT_USER_ERROR if errors or (strict and warnings) else EXIT_OK


def _names_files(prompt: Any) -> bool:
    """The prompt's tests name files: a dataset, a `python` check or a `json-schema` file."""
    return any("dataset" in test or any(a.get("type") == "python" or (a.get("type") == "json-schema" and
                                                                      isinstance(a.get("value"), str))
                                        for a in test.get("assert", []))
               for test in prompt.tests)


def _dataset_problems(ws: Any, prompt: Any) -> list[Problem]:
    """Located problems of the dataset (and check) files a prompt's tests name."""
    from promptops.evaluation.datasets import check_datasets

    return check_datasets(prompt, ws.repo, ws.prompts_dir)


def _labels_display(ws: Any) -> str:
    from promptops.store.workspace import labels_path

    return labels_path(ws.prompts_dir)


def _labels_file(ws: Any) -> Path:
    return (ws.repo / _labels_display(ws)).resolve()


def _label_problems(ctx: typer.Context, path: Path, display: str) -> list[Problem]:
    """The labels file's problems; its versions and approvals come from git (HEAD's history)."""
    from promptops.cli.context import settings
    from promptops.store import open_store

    try:
        data = path.read_bytes()
    except OSError as exc:
        return [Problem(display, f"cannot read: {exc.strerror}", code="io")]
    return open_store(settings(ctx)).check_labels(data, display)


def list_(ctx: typer.Context, format_: Format = None) -> int:
    """List the prompts in the working tree."""
    from promptops.prompt.schema import check_file

    ws = _workspace(ctx)
    records = []
    for name in ws.names():
        prompt, _ = check_file(ws.root / f"{name}.json")
        records.append({"name": name, "model": prompt.model if prompt else None, "valid": prompt is not None,
                        "description": prompt.description if prompt else None})
    table(("name", "model", "status", "description"),
          [(r["name"], r["model"], "ok" if r["valid"] else "invalid", r["description"]) for r in records],
          fmt=format_, records=records)
    return EXIT_OK


def show(ctx: typer.Context, name: Annotated[str, typer.Argument(help="NAME or NAME@REF.")]) -> int:
    """Print a prompt's JSON and its rendered template (a chat prompt through its model's chat template)."""
    from promptops.prompt.chat_template import ChatTemplateError
    from promptops.prompt.render import render

    prompt = _load(ctx, name)
    echo(prompt.to_json().rstrip("\n"))
    echo("--- rendered ---" if not is_tty() else "\n[rendered with the file's own values]")
    try:
        echo(render(prompt, default_model=_default_model(ctx)))
    except ChatTemplateError as exc:  # the file is still worth showing when the model's tokenizer is not here
        echo(f"<cannot render: {exc}>")
    return EXIT_OK


def _default_model(ctx: typer.Context) -> str:
    """The model whose chat template renders chat prompts that name no `model`."""
    from promptops.cli.context import settings

    return settings(ctx).default_model


def render_cmd(ctx: typer.Context,
               name: Annotated[str, typer.Argument(help="NAME or NAME@REF.")],
               var: Annotated[Optional[list[str]], typer.Option("--var", help="KEY=VALUE (or KEY=@file) overriding a field.")] = None,
               history: Annotated[Optional[Path], typer.Option("--history", help="JSON file of past turns [{role, content}].")] = None) -> int:
    """Print the exact prompt string that would be sent to the model (chat prompts: after its chat template)."""
    from promptops.prompt.render import render

    prompt = _load(ctx, name)
    text = render(prompt, parse_vars(var or []), load_history(history), default_model=_default_model(ctx))
    typer.echo(text, nl=False)
    return EXIT_OK


def _load(ctx: typer.Context, ref: str) -> Any:
    """Resolve NAME (the working-tree file) or NAME@REF (a committed version)."""
    if "@" in ref:
        from promptops.cli.context import settings
        from promptops.store import open_store

        return open_store(settings(ctx)).resolve(ref, default="draft").prompt
    return _workspace(ctx).load(ref)


def register(app: typer.Typer) -> None:
    """Attach the authoring commands to the app."""
    app.command("new")(boundary(new))
    app.command("edit")(boundary(edit))
    app.command("validate")(boundary(validate))
    app.command("list")(boundary(list_))
    app.command("show")(boundary(show))
    app.command("render")(boundary(render_cmd))


__all__ = ["register", "parse_vars", "load_history", "PromptInvalid", "TemplateError"]

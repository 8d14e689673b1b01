"""The docs match the tree: every repository path README.md and docs/*.md cite exists (with the test function
after `::`), every link and anchor resolves, a module named by its dotted path defines the name that follows
it, and the README's table of sampling parameters lists exactly the keys of promptops/prompt/sampling.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from promptops.prompt import sampling

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A backticked word starting with one of these folders is a path into this repository.
FOLDERS = ("promptops/", "gateway/", "tests/", "docs/", "scripts/", "benchmarks/", "schemas/", "prompts/",
           "model_repository/", ".github/", ".ci/")
NOT_SHIPPED = {".github/CODEOWNERS"}  # files the docs tell the reader to add
PLACEHOLDER = re.compile(r"[<>*…{}$]|\b(NAME|N|vN)\b")  # prompts/NAME.json, model_repository/<model>/...
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
MODULE = re.compile(r"(?:promptops|gateway)(?:\.\w+)+")


def prose(doc: Path) -> str:
    """The document with fenced blocks blanked (line numbers kept): their commands are run, not cited."""
    return FENCE.sub(lambda m: "\n" * m.group().count("\n"), doc.read_text())


def defines(path: Path, name: str) -> bool:
    pattern = rf"^\s*(?:async\s+)?(?:def|class)\s+{name}\b|^{name}\b\s*[:=]|\bimport\b[^\n]*\b{name}\b"
    return re.search(pattern, path.read_text(), re.M) is not None


def bare_test_file(word: str) -> Path | None:
    """`test_x.py` written without its folder (a table in tests/reliability/ docs): the one file of that name."""
    found = list((ROOT / "tests").rglob(word))
    return found[0] if len(found) == 1 else None


def check_path(word: str, last: Path | None) -> tuple[str | None, Path | None]:
    """(what is wrong or None, the file `::name` words that follow refer to)."""
    word = re.sub(r"\[[^\]]*\]$", "", word.rstrip(".,;:)"))  # test ids: test_x[SIGTERM/SIGHUP]
    path_part, _, function = word.lstrip("…").partition("::")
    path_part = re.sub(r":\d+$", "", path_part)  # file:line
    if path_part:
        path = ROOT / path_part if path_part.startswith(FOLDERS) else bare_test_file(path_part)
        if path is None or not path.exists():
            return f"no such file {path_part}", last
        last = path
    if function:
        if last is None or not last.is_file():
            return f"::{function} names no file", last
        if not defines(last, function.split("::")[-1]):
            return f"no {function} in {last.relative_to(ROOT)}", last
    return None, last


def check_module(dotted: str) -> str | None:
    """`promptops.evaluation.runner.run_tests`: the longest module prefix, and the name after it defined there."""
    parts, path = dotted.split("."), ROOT
    for index, part in enumerate(parts):
        if (path / part / "__init__.py").exists():
            path = path / part
        elif (path / f"{part}.py").exists():
            module = path / f"{part}.py"
            return None if index + 1 == len(parts) or defines(module, parts[index + 1]) else \
                f"{parts[index + 1]} is not defined in {module.relative_to(ROOT)}"
        else:
            return None if defines(path / "__init__.py", part) else f"no module {'.'.join(parts[:index + 1])}"
    return None


def anchors(doc: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+\s+(.+)$", prose(doc), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def check_link(doc: Path, target: str) -> str | None:
    if re.match(r"[a-z]+:", target):
        return None  # https:, mailto:
    path_part, _, anchor = target.partition("#")
    path = (doc.parent / path_part).resolve() if path_part else doc
    if not path.exists():
        return f"broken link {target}"
    if anchor and path.suffix == ".md" and anchor not in anchors(path):
        return f"no heading #{anchor} in {path.relative_to(ROOT)}"
    return None


def problems(doc: Path) -> list[str]:
    text, found, last = prose(doc), [], None

    def line(match: re.Match[str]) -> int:
        return text.count("\n", 0, match.start()) + 1

    for match in SPAN.finditer(text):
        for word in match.group(1).split():
            if PLACEHOLDER.search(word) or word.rstrip(".,;:)") in NOT_SHIPPED:
                continue
            if word.startswith(FOLDERS) or re.match(r"(…/)?test_\w+\.py\b|…?::(test_|Test)\w", word):
                error, last = check_path(word.replace("…/", ""), last)
            elif MODULE.fullmatch(word):
                error = check_module(word)
            else:
                continue
            if error:
                found.append(f"{doc.relative_to(ROOT)}:{line(match)}: `{word}`: {error}")
    for match in LINK.finditer(text):
        if error := check_link(doc, match.group(1)):
            found.append(f"{doc.relative_to(ROOT)}:{line(match)}: {error}")
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_path_the_docs_cite_exists(doc: Path):
    assert problems(doc) == []


def test_the_readme_lists_every_sampling_key():
    # On failure: add a row per missing key (kind, bounds and description are in sampling.KEYS).
    section = prose(ROOT / "README.md").split("### Sampling parameters", 1)[1].split("\n#", 1)[0]
    listed = re.findall(r"^\| `(\w+)` \|", section, re.M)
    assert sorted(listed) == sorted(sampling.KEYS)


def test_the_readme_shows_the_example_files_as_shipped():
    readme = (ROOT / "README.md").read_text()
    for path in ("prompts/support.json", "prompts/datasets/support.jsonl"):
        assert (ROOT / path).read_text() in readme, f"the README's copy of {path} differs from the file"

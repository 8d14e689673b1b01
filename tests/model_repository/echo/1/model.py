"""Deterministic test model with the vLLM backend's tensor contract (promptops/prompt/sampling.py).

Tokenisation: the prompt split into whitespace-ended chunks (regex ``\\S+\\s*|\\s+``);
one chunk is one token. The version folder is the model's folder as model.json names it
(``"model": "."``): ``tokenizer.json`` there counts the same way for the `tokenizers` library
(a Split pre-tokenizer on that regex, Python's ``\\s`` spelled out as a class, and a
one-entry WordLevel vocabulary: each piece one token), so promptops/prompt/tokens.py counts prompts
for echo as it does for a real model (tests/gateway/test_context_limits.py keeps the two equal);
``config.json`` is there for the launcher's weights check. ``max_model_len`` in model.json is
the context, kept as vLLM's engine keeps it: a prompt of that many tokens or more is an error,
and the answer stops where prompt + answer fill the context (without ``max_tokens``: the rest
of it). A copy without model.json (``echo_twin``) has no context limit. The answer is the
prompt's own tokens, so:

- ``num_input_tokens`` is the prompt's chunk count (a 0-d UINT32, as NVIDIA's backend sends it);
- ``num_output_tokens`` counts the chunks sent (per streamed response: the delta, i.e. 1);
- ``finish_reason`` is ``"length"`` when ``max_tokens`` chunks were sent, else ``"stop"``
  (streamed responses before the last say ``"None"``, as NVIDIA's backend does);
- ``cumulative_logprob`` is NaN and ``logprobs`` is ``"null"`` unless the ``logprobs``
  sampling key is set; then every chunk has logprob 0.0 (rank 1) under token id = its index
  and decoded_token = its text.

It accepts exactly the sampling keys of ``promptops.sampling.KEYS`` (converted the same
way), checks the ranges vLLM checks for ``temperature``, ``top_p`` and ``max_tokens``,
refuses ``lora_name`` and ``n`` != 1 like the CPU vllm backend, and ignores the rest.

Structured outputs (``structured_outputs`` as a JSON string or object, ``guided_decoding`` mapped
onto it) are checked by the same rule as the CPU backend (``sampling.structured_outputs``: one
constraint, known fields, guided backends). An echo cannot decode under a grammar, so it echoes
what fits: under ``json``/``json_object`` the answer is the last JSON object in the prompt (``{}``
when there is none), under ``choice`` the choice that appears first in the prompt (else the first
choice), under ``regex`` the first match in the prompt (else nothing); ``grammar`` and
``structural_tag`` leave the echo as it is. Tests plant the JSON they want answered in the message.
Test-only knobs on top:

- ``delay_ms``: sleep before each chunk (slow, timeout and cancellation tests);
- ``fail_after``: send an error response after that many chunks.

Errors go back as error responses; a cancelled request stops at the next chunk and logs
``echo: cancelled``.
"""

import importlib.util
import json
import re
import sys
import threading
import time
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

# tests/model_repository/echo/1/model.py -> the repository root; loaded by path (see the vllm backend).
_SAMPLING_PATH = Path(__file__).resolve().parents[4] / "promptops" / "prompt" / "sampling.py"
_spec = importlib.util.spec_from_file_location("promptops_sampling", _SAMPLING_PATH)
sampling = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = sampling
_spec.loader.exec_module(sampling)

TOKEN = re.compile(r"\S+\s*|\s+")


def _non_negative(name, value):
    number = float(value)
    if number < 0:
        raise ValueError(f"{name} must be non-negative")
    return number


_KNOBS = {"delay_ms": _non_negative, "fail_after": lambda name, value: int(value)}


def parse_sampling(raw):
    """Validate the JSON sampling parameters; raise ValueError with a readable reason."""
    out = sampling.parse(raw, extra=_KNOBS)
    if out.pop("lora_name", None) is not None:
        raise ValueError("LoRA feature is not enabled.")
    if out.get("n", 1) != 1:
        raise ValueError("only n=1 is supported")
    if out.get("temperature", 0.0) < 0:
        raise ValueError(f"temperature must be non-negative, got {out['temperature']}")
    if not 0 < out.get("top_p", 1.0) <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {out['top_p']}")
    if out.get("max_tokens", 1) < 1:
        raise ValueError(f"max_tokens must be at least 1, got {out['max_tokens']}")
    constraint = sampling.structured_outputs(out)
    if constraint is not None:
        out["constraint"] = constraint
    return out


def _last_json_object(prompt):
    """The text of the last top-level JSON object in `prompt` ("{}" when there is none)."""
    decoder, found, at = json.JSONDecoder(), "{}", prompt.find("{")
    while at != -1:
        try:
            _, end = decoder.raw_decode(prompt, at)
        except ValueError:
            at = prompt.find("{", at + 1)
            continue
        found, at = prompt[at:end], prompt.find("{", end)
    return found


def constrained(prompt, constraint):
    """What the echo answers under a structured-output constraint (see the module docstring)."""
    if constraint.get("json") is not None or constraint.get("json_object") is not None:
        return _last_json_object(prompt)
    if constraint.get("choice") is not None:
        choices = [c for c in constraint["choice"] if c in prompt]
        return min(choices, key=prompt.find) if choices else constraint["choice"][0]
    if constraint.get("regex") is not None:
        match = re.search(constraint["regex"], prompt)
        return match.group(0) if match else ""
    return None


def _first(request, name, default):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return default
    value = tensor.as_numpy().reshape(-1)[0]
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _raw_sampling(request):
    tensor = pb_utils.get_input_tensor_by_name(request, "sampling_parameters")
    if tensor is not None:
        return _first(request, "sampling_parameters", "")
    params = json.loads(request.parameters() or "{}")
    return {k: v for k, v in params.items() if not k.startswith("triton_")}


def _response(returns, text, *, finish_reason, first, tokens, num_input, logprobs):
    """text_output plus every output whose return_* flag is set, with the contract's dtypes and shapes."""
    tensors = [pb_utils.Tensor("text_output", np.array([text.encode("utf-8")], dtype=np.object_))]
    if returns["return_finish_reason"]:
        tensors.append(pb_utils.Tensor("finish_reason", np.array([str(finish_reason)], dtype=np.object_)))
    if returns["return_cumulative_logprob"]:
        value = 0.0 if logprobs else None  # NaN when no logprobs were asked, as vLLM's None
        tensors.append(pb_utils.Tensor("cumulative_logprob", np.array([value], dtype=np.float32)))
    if returns["return_logprobs"]:
        positions = [{str(first + i): {"logprob": 0.0, "rank": 1, "decoded_token": token}}
                     for i, token in enumerate(tokens)] if logprobs else None
        tensors.append(pb_utils.Tensor("logprobs", np.array([json.dumps(positions).encode()], dtype=np.object_)))
    if returns["return_num_input_tokens"]:
        tensors.append(pb_utils.Tensor("num_input_tokens", np.asarray(num_input, dtype=np.uint32)))
    if returns["return_num_output_tokens"]:
        tensors.append(pb_utils.Tensor("num_output_tokens", np.array([len(tokens)], dtype=np.uint32)))
    return pb_utils.InferenceResponse(output_tensors=tensors)


def _error_response(message):
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))


class TritonPythonModel:
    """Echo the prompt back in chunks, streamed or whole."""

    @staticmethod
    def auto_complete_config(config):
        """Declare the contract's tensors from promptops/prompt/sampling.py (as the vllm backend does)."""
        return sampling.declare_tensors(config)

    def initialize(self, args):
        self._threads = set()
        self._lock = threading.Lock()
        model_json = Path(args["model_repository"]) / args["model_version"] / "model.json"
        engine = json.loads(model_json.read_text()) if model_json.is_file() else {}
        self._context = engine.get("max_model_len")  # None: no limit

    def _check_context(self, tokens):
        """vLLM's engine check (v1 input processor): a prompt must leave room for one token."""
        context = self._context
        if context is not None and len(tokens) >= context:
            more = "" if len(tokens) > context else " plus the number of requested output tokens (at least 1)"
            raise ValueError(f"The decoder prompt (length {len(tokens)}){more} is longer than the maximum "
                             f"model length of {context}.")

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            try:
                prompt = str(_first(request, "text_input", ""))
                stream = bool(_first(request, "stream", False))
                exclude = bool(_first(request, "exclude_input_in_output", stream))
                if stream and not exclude:
                    raise ValueError("streaming is only supported with exclude_input_in_output=true")
                returns = {flag: bool(_first(request, flag, False)) for flag in sampling.RETURN_FLAGS}
                params = parse_sampling(_raw_sampling(request))
                tokens = TOKEN.findall(prompt)
                self._check_context(tokens)
            except Exception as exc:  # every input problem is the client's: answer, never crash
                sender.send(_error_response(f"echo: {exc}"),
                            flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                continue
            thread = threading.Thread(target=self._answer, daemon=True,
                                      args=(sender, prompt, tokens, stream, exclude, returns, params))
            with self._lock:
                self._threads.add(thread)
            thread.start()
        return None

    def _answer(self, sender, prompt, tokens, stream, exclude, returns, params):
        final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        try:
            answer = constrained(prompt, params["constraint"]) if "constraint" in params else None
            output = tokens if answer is None else TOKEN.findall(answer)  # what the echo answers, chunked
            limit = params.get("max_tokens", len(output) + 1)
            if self._context is not None:  # the engine stops where prompt + answer fill the context
                limit = min(params.get("max_tokens", self._context), self._context - len(tokens))
            chunks = output[:limit]
            reason = "length" if len(chunks) == limit else "stop"
            common = {"num_input": len(tokens), "logprobs": "logprobs" in params}
            delay = params.get("delay_ms", 0.0) / 1000.0
            for index, chunk in enumerate(chunks):
                if delay:
                    time.sleep(delay)
                if sender.is_cancelled():
                    pb_utils.Logger.log_info(f"echo: cancelled after {index} chunks")
                    sender.send(flags=final)
                    return
                if params.get("fail_after") == index:
                    sender.send(_error_response(f"echo: failing after {index} chunks as asked"), flags=final)
                    return
                if stream:
                    last = index == len(chunks) - 1
                    sender.send(_response(returns, chunk, finish_reason=reason if last else None, first=index,
                                          tokens=[chunk], **common), flags=final if last else 0)
            if not stream or not chunks:
                text = "".join(chunks) if exclude else prompt + "".join(chunks)
                sender.send(_response(returns, text, finish_reason=reason, first=0, tokens=chunks, **common),
                            flags=final)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def finalize(self):
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)

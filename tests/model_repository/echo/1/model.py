"""Deterministic test model with the vLLM backend's tensor contract.

It answers the prompt itself, split into whitespace-ended chunks (one chunk is
one "token"). Sampling parameters (a JSON object) it understands:

- ``max_tokens``: at most that many chunks;
- ``delay_ms``: sleep before each chunk (slow, timeout and cancellation tests);
- ``fail_after``: send an error response after that many chunks;
- ``temperature`` (>= 0), ``top_p`` (0 < p <= 1), ``top_k``, ``seed``, ``stop``,
  ``min_p`` and the penalties: checked like vLLM does, otherwise ignored.

Unknown keys or bad values give an error response, as the vLLM backend does.
A cancelled request stops at the next chunk and logs ``echo: cancelled``.
"""

import json
import re
import threading
import time

import numpy as np
import triton_python_backend_utils as pb_utils

_FLOAT_KEYS = {"temperature", "top_p", "min_p", "presence_penalty", "frequency_penalty",
               "repetition_penalty", "delay_ms"}
_INT_KEYS = {"max_tokens", "top_k", "seed", "fail_after"}
_OTHER_KEYS = {"stop"}


def _number(key, value, kind):
    if isinstance(value, bool):
        raise ValueError(f"{key} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, got {value!r}") from None
    if kind is int:
        if number != int(number):
            raise ValueError(f"{key} must be an integer, got {value!r}")
        return int(number)
    return number


def parse_sampling(raw):
    """Validate the JSON sampling parameters; raise ValueError with a readable reason."""
    try:
        params = json.loads(raw) if raw else {}
    except ValueError as exc:
        raise ValueError(f"sampling_parameters is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise ValueError("sampling_parameters must be a JSON object")
    out = {}
    for key, value in params.items():
        if key in _FLOAT_KEYS:
            out[key] = _number(key, value, float)
        elif key in _INT_KEYS:
            out[key] = _number(key, value, int)
        elif key in _OTHER_KEYS:
            out[key] = value
        else:
            raise ValueError(f"unknown sampling parameter {key!r}")
    if out.get("temperature", 0.0) < 0:
        raise ValueError(f"temperature must be non-negative, got {out['temperature']}")
    if not 0 < out.get("top_p", 1.0) <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {out['top_p']}")
    if out.get("max_tokens", 1) < 1:
        raise ValueError(f"max_tokens must be at least 1, got {out['max_tokens']}")
    if out.get("delay_ms", 0.0) < 0:
        raise ValueError("delay_ms must be non-negative")
    return out


def _optional_bool(request, name, default):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return default if tensor is None else bool(tensor.as_numpy().reshape(-1)[0])


def _text_response(text):
    tensor = pb_utils.Tensor("text_output", np.array([text.encode("utf-8")], dtype=np.object_))
    return pb_utils.InferenceResponse(output_tensors=[tensor])


def _error_response(message):
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))


class TritonPythonModel:
    """Echo the prompt back in chunks, streamed or whole."""

    def initialize(self, args):
        self._threads = set()
        self._lock = threading.Lock()

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            try:
                raw = pb_utils.get_input_tensor_by_name(request, "text_input").as_numpy()
                prompt = raw.reshape(-1)[0]
                prompt = prompt.decode("utf-8") if isinstance(prompt, bytes) else str(prompt)
                stream = _optional_bool(request, "stream", False)
                exclude = _optional_bool(request, "exclude_input_in_output", False)
                if stream and not exclude:
                    raise ValueError("streaming is only supported with exclude_input_in_output=true")
                sp = pb_utils.get_input_tensor_by_name(request, "sampling_parameters")
                raw_sp = sp.as_numpy().reshape(-1)[0] if sp is not None else b""
                params = parse_sampling(raw_sp.decode("utf-8") if isinstance(raw_sp, bytes) else raw_sp)
            except Exception as exc:  # every input problem is the client's: answer, never crash
                sender.send(_error_response(f"echo: {exc}"),
                            flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                continue
            thread = threading.Thread(target=self._answer, daemon=True,
                                      args=(sender, prompt, stream, exclude, params))
            with self._lock:
                self._threads.add(thread)
            thread.start()
        return None

    def _answer(self, sender, prompt, stream, exclude, params):
        final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        try:
            chunks = re.findall(r"\S+\s*|\s+", prompt)[: params.get("max_tokens", 10**9)]
            delay = params.get("delay_ms", 0.0) / 1000.0
            sent = []
            for index, chunk in enumerate(chunks):
                if delay:
                    time.sleep(delay)
                if sender.is_cancelled():
                    pb_utils.Logger.log_info(f"echo: cancelled after {index} chunks")
                    sender.send(flags=final)
                    return
                if params.get("fail_after") == index:
                    sender.send(_error_response(f"echo: failing after {index} chunks as asked"),
                                flags=final)
                    return
                if stream:
                    sender.send(_text_response(chunk))
                sent.append(chunk)
            if stream:
                sender.send(flags=final)
            else:
                text = "".join(sent) if exclude else prompt + "".join(sent)
                sender.send(_text_response(text), flags=final)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def finalize(self):
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)

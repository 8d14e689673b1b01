"""A Triton Python-based backend named ``vllm`` that drives vLLM's async engine on CPU.

It honours the tensor contract of NVIDIA's vLLM backend, so the same
``model_repository/`` serves on a GPU box (official backend) and here:

- inputs ``text_input`` (BYTES), optional ``stream`` (BOOL), ``sampling_parameters``
  (BYTES, a JSON object), ``exclude_input_in_output`` (BOOL); output ``text_output``;
- the model is decoupled; non-streaming answers prepend the prompt unless
  ``exclude_input_in_output`` is true; streaming with it false is an error;
- engine arguments come from ``<model>/<version>/model.json``.

CPU specifics: ``${VAR}`` references in model.json string values are expanded
(``PROMPTOPS_MODEL_CACHE`` defaults to ``~/.cache/promptops/models``) and a
relative ``model``/``tokenizer`` path is resolved against the version folder.

Threading: Triton calls ``execute`` on one thread; the engine lives on an
asyncio loop in a daemon thread. ``execute`` validates synchronously and hands
each request to that loop, so it returns at once and requests run concurrently.
"""

import locale

# The stub's embedded Python starts with the C locale and reads source files as
# ASCII, which breaks importing torch/vLLM; LANG and PYTHONUTF8 are ignored there.
locale.setlocale(locale.LC_CTYPE, "")

import asyncio  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import threading  # noqa: E402
import uuid  # noqa: E402
from concurrent.futures import Future  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

_INPUTS = [
    {"name": "text_input", "data_type": "TYPE_STRING", "dims": [1]},
    {"name": "stream", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    {"name": "sampling_parameters", "data_type": "TYPE_STRING", "dims": [1], "optional": True},
    {"name": "exclude_input_in_output", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
]
_OUTPUTS = [{"name": "text_output", "data_type": "TYPE_STRING", "dims": [-1]}]

_DEFAULT_CACHE = "~/.cache/promptops/models"
_PATH_KEYS = ("model", "tokenizer")
_DRAIN_TIMEOUT_S = 10.0


def _to_bool(key, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{key} must be a boolean, got {value!r}")


def _to_float(key, value):
    if isinstance(value, bool):
        raise ValueError(f"{key} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, got {value!r}") from None


def _to_int(key, value):
    number = _to_float(key, value)
    if number != int(number):
        raise ValueError(f"{key} must be an integer, got {value!r}")
    return int(number)


def _as_is(key, value):
    return value


# The client-settable SamplingParams fields; numbers may arrive as strings ("0.95").
_SAMPLING_FIELDS = {
    **dict.fromkeys(("temperature", "top_p", "min_p", "presence_penalty", "frequency_penalty",
                     "repetition_penalty"), _to_float),
    **dict.fromkeys(("n", "top_k", "seed", "max_tokens", "min_tokens", "logprobs",
                     "prompt_logprobs"), _to_int),
    **dict.fromkeys(("ignore_eos", "skip_special_tokens", "spaces_between_special_tokens",
                     "include_stop_str_in_output"), _to_bool),
    **dict.fromkeys(("stop", "stop_token_ids", "bad_words", "logit_bias"), _as_is),
}


def parse_sampling_parameters(raw):
    """JSON text -> keyword arguments for SamplingParams; ValueError on anything unusable."""
    try:
        params = json.loads(raw) if raw and raw.strip() else {}
    except ValueError as exc:
        raise ValueError(f"sampling_parameters is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise ValueError("sampling_parameters must be a JSON object")
    kwargs = {}
    for key, value in params.items():
        convert = _SAMPLING_FIELDS.get(key)
        if convert is None:
            raise ValueError(f"unknown sampling parameter {key!r}")
        if value is not None:
            kwargs[key] = convert(key, value)
    if kwargs.get("n", 1) != 1:
        raise ValueError("only n=1 is supported")
    return kwargs


def load_engine_config(version_dir):
    """Read model.json, expand ${VAR}s and resolve relative model paths."""
    path = Path(version_dir) / "model.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise pb_utils.TritonModelException(f"cannot read {path}: {exc}") from None
    os.environ.setdefault("PROMPTOPS_MODEL_CACHE", os.path.expanduser(_DEFAULT_CACHE))
    for key, value in list(config.items()):
        if isinstance(value, str):
            config[key] = os.path.expanduser(os.path.expandvars(value))
    for key in _PATH_KEYS:
        value = config.get(key)
        if isinstance(value, str) and value.startswith("."):
            config[key] = str((Path(version_dir) / value).resolve())
    # Older model.json files (NVIDIA's examples) say disable_log_requests; vLLM
    # now spells it enable_log_requests.
    if "disable_log_requests" in config:
        config.setdefault("enable_log_requests", not config.pop("disable_log_requests"))
    return config


def _first(request, name, default=None):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return default
    value = tensor.as_numpy().reshape(-1)[0]
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _text_response(text):
    tensor = pb_utils.Tensor("text_output", np.array([text.encode("utf-8")], dtype=np.object_))
    return pb_utils.InferenceResponse(output_tensors=[tensor])


def _error_response(message):
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))


class TritonPythonModel:
    """One vLLM AsyncLLM per model instance, shared by all its requests."""

    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        """Declare the tensors and the decoupled policy so config.pbtxt can stay minimal."""
        declared = auto_complete_model_config.as_dict()
        have_in = {t["name"] for t in declared.get("input", [])}
        have_out = {t["name"] for t in declared.get("output", [])}
        for spec in _INPUTS:
            if spec["name"] not in have_in:
                auto_complete_model_config.add_input(spec)
        for spec in _OUTPUTS:
            if spec["name"] not in have_out:
                auto_complete_model_config.add_output(spec)
        auto_complete_model_config.set_max_batch_size(0)
        auto_complete_model_config.set_model_transaction_policy({"decoupled": True})
        return auto_complete_model_config

    def initialize(self, args):
        """Read model.json and start the engine on a private asyncio loop."""
        model_config = json.loads(args["model_config"])
        if not pb_utils.using_decoupled_model_transaction_policy(model_config):
            raise pb_utils.TritonModelException("the vllm backend needs a decoupled model")
        self._name = args["model_name"]
        version_dir = Path(args["model_repository"]) / args["model_version"]
        engine_config = load_engine_config(version_dir)

        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.sampling_params import RequestOutputKind, SamplingParams
        from vllm.v1.engine.async_llm import AsyncLLM

        self._sampling_cls = SamplingParams
        self._delta = RequestOutputKind.DELTA
        engine_args = AsyncEngineArgs(**engine_config)

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name=f"vllm-loop-{self._name}")
        self._thread.start()
        self._pending = set()
        self._lock = threading.Lock()

        async def build():
            return AsyncLLM.from_engine_args(engine_args)

        self._engine = asyncio.run_coroutine_threadsafe(build(), self._loop).result()
        pb_utils.Logger.log_info(f"vllm backend: {self._name} ready ({engine_config.get('model')})")

    def execute(self, requests):
        """Validate each request now; generate on the engine loop; return at once."""
        for request in requests:
            sender = request.get_response_sender()
            try:
                job = self._parse(request)
            except Exception as exc:  # bad input is the caller's problem, never the server's
                sender.send(_error_response(str(exc)),
                            flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                continue
            future = asyncio.run_coroutine_threadsafe(self._generate(sender, *job), self._loop)
            with self._lock:
                self._pending.add(future)
            future.add_done_callback(self._forget)
        return None

    def _forget(self, future: Future):
        with self._lock:
            self._pending.discard(future)

    def _parse(self, request):
        prompt = _first(request, "text_input")
        if not isinstance(prompt, str) or not prompt:
            raise ValueError("text_input must be a non-empty string")
        stream = bool(_first(request, "stream", False))
        exclude = bool(_first(request, "exclude_input_in_output", False))
        if stream and not exclude:
            raise ValueError("streaming is only supported with exclude_input_in_output=true")
        kwargs = parse_sampling_parameters(_first(request, "sampling_parameters", ""))
        try:
            params = self._sampling_cls(**kwargs)
        except Exception as exc:  # vLLM's own range checks (temperature < 0, ...)
            raise ValueError(f"invalid sampling parameters: {exc}") from None
        # Always ask for per-token deltas: cancellation is then checked every token.
        params.output_kind = self._delta
        return prompt, stream, exclude, params

    async def _generate(self, sender, prompt, stream, exclude, params):
        final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        request_id = uuid.uuid4().hex
        pieces = []
        finished = False
        try:
            async for output in self._engine.generate({"prompt": prompt}, params, request_id):
                if sender.is_cancelled():
                    await self._engine.abort(request_id)
                    pb_utils.Logger.log_info(f"vllm backend: cancelled request {request_id}")
                    sender.send(flags=final)
                    return
                delta = output.outputs[0].text if output.outputs else ""
                finished = output.finished
                if stream:
                    if delta or finished:
                        sender.send(_text_response(delta), flags=final if finished else 0)
                else:
                    pieces.append(delta)
            if not stream:
                text = "".join(pieces) if exclude else prompt + "".join(pieces)
                sender.send(_text_response(text), flags=final)
            elif not finished:
                sender.send(flags=final)
        except asyncio.CancelledError:
            await self._engine.abort(request_id)
            sender.send(flags=final)
            raise
        except Exception as exc:  # engine failure: tell this caller, keep serving others
            pb_utils.Logger.log_error(f"vllm backend: request {request_id} failed: {exc!r}")
            sender.send(_error_response(f"generation failed: {exc}"), flags=final)

    def finalize(self):
        """Let running requests finish briefly, then stop the engine and the loop."""
        log = pb_utils.Logger.log_info
        with self._lock:
            pending = list(self._pending)
        log(f"vllm backend: finalizing {self._name} ({len(pending)} requests running)")
        for future in pending:
            try:
                future.result(timeout=_DRAIN_TIMEOUT_S)
            except Exception:  # cancelled or failed: already answered, nothing to drain
                future.cancel()

        async def shutdown():
            # On the loop: the engine's output handler task belongs to it.
            self._engine.shutdown()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=_DRAIN_TIMEOUT_S)
        except Exception as exc:  # a stuck engine must not keep Triton from exiting
            pb_utils.Logger.log_warn(f"vllm backend: engine shutdown failed: {exc!r}")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=_DRAIN_TIMEOUT_S)
        # Drop the engine now: its __del__ shuts down again and fails at interpreter exit.
        self._engine = None
        gc.collect()
        log(f"vllm backend: {self._name} stopped")

"""A Triton Python-based backend named ``vllm`` that drives vLLM's async engine on CPU.

It honours the tensor contract of NVIDIA's vLLM backend (``vllm_backend/src/model.py``
and ``src/utils/request.py``), so the same ``model_repository/`` serves on a GPU box
(official backend) and here. The contract itself (tensors, sampling keys) is
``sampling.py`` beside this file, copied from ``promptops/prompt/sampling.py``:

- inputs ``text_input``, optional ``stream``, ``sampling_parameters`` (a JSON object;
  request parameters when absent), ``exclude_input_in_output`` and the ``return_*``
  flags; outputs ``text_output`` and, each only when its flag is true, ``finish_reason``,
  ``cumulative_logprob``, ``logprobs``, ``num_input_tokens``, ``num_output_tokens``;
- the model is decoupled; non-streaming answers prepend the prompt unless
  ``exclude_input_in_output`` is true; streaming never does, and streaming with it
  explicitly false is an error;
- every streamed response carries what is new since the previous one: its text,
  ``num_output_tokens`` and ``logprobs`` are deltas (they sum to the whole), while
  ``num_input_tokens`` and ``cumulative_logprob`` are totals so far and
  ``finish_reason`` is ``"None"`` until the last (NVIDIA's ``str(output.finish_reason)``);
  ``num_input_tokens`` is a 0-d tensor, as NVIDIA's backend sends it;
- ``lora_name`` answers "LoRA feature is not enabled." (no LoRA here); ``n`` must be 1;
- engine arguments come from ``<model>/<version>/model.json``.

CPU specifics: model.json is read as written (no variable expansion, as NVIDIA's backend):
``model`` is a hub id, resolved offline from ``$HF_HOME/hub`` (the launcher sets ``HF_HOME``
and ``HF_HUB_OFFLINE=1``; ``scripts/prepare_weights.py`` fills that cache). A ``model``/
``tokenizer`` path starting with ``.`` is resolved against the version folder (a local
convenience NVIDIA's backend lacks). Keys written for GPUs or older vLLMs are dropped with
a logged note instead of failing the load.

Threading: Triton calls ``execute`` on one thread; the engine lives on an
asyncio loop in a daemon thread. ``execute`` validates synchronously and hands
each request to that loop, so it returns at once and requests run concurrently.
"""

import locale

# The stub's embedded Python starts with the C locale and reads source files as
# ASCII, which breaks importing torch/vLLM; LANG and PYTHONUTF8 are ignored there.
locale.setlocale(locale.LC_CTYPE, "")

import asyncio  # noqa: E402
import dataclasses  # noqa: E402
import difflib  # noqa: E402
import gc  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import uuid  # noqa: E402
from concurrent.futures import Future  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402


def _load_contract():
    # By path, under a private name: the backend folder is on sys.path last, where any
    # installed module called `sampling` would win. The second path serves the source tree.
    here = Path(__file__).resolve()
    for path in (here.with_name("sampling.py"), here.parents[3] / "prompt" / "sampling.py"):
        if path.is_file():
            spec = importlib.util.spec_from_file_location("promptops_sampling", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            return module
    raise ImportError(f"sampling.py (the request contract) is missing beside {here}")


sampling = _load_contract()

_PATH_KEYS = ("model", "tokenizer")
_DRAIN_TIMEOUT_S = 10.0


def load_engine_config(version_dir):
    """Read model.json as written; only relative model paths and `disable_log_requests` are adapted."""
    path = Path(version_dir) / "model.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise pb_utils.TritonModelException(f"cannot read {path}: {exc}") from None
    for key in _PATH_KEYS:
        value = config.get(key)
        if isinstance(value, str) and value.startswith("."):
            config[key] = str((Path(version_dir) / value).resolve())
    # Older model.json files (NVIDIA's examples) say disable_log_requests; vLLM
    # now spells it enable_log_requests.
    if "disable_log_requests" in config:
        config.setdefault("enable_log_requests", not config.pop("disable_log_requests"))
    return config


def fit_engine_config(config, accepted, on_cpu):
    """Drop keys that would fail the load for no good reason; return (config, notes).

    GPU-only keys on a CPU and keys of older vLLMs are dropped with a note; any other
    unknown key is a mistake and fails the load with a suggestion.
    """
    config, notes = dict(config), []
    for key in list(config):
        if on_cpu and key in sampling.CPU_IGNORED_ENGINE_KEYS:
            why = sampling.CPU_IGNORED_ENGINE_KEYS[key]
            notes.append(f"model.json: ignoring {key}={config.pop(key)!r} on CPU ({why})")
        elif key not in accepted and key in sampling.RETIRED_ENGINE_KEYS:
            notes.append(f"model.json: ignoring {key}={config.pop(key)!r} (this vLLM no longer has it)")
        elif key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise pb_utils.TritonModelException(f"model.json: unknown engine argument {key!r}{hint}")
    return config, notes


def _first(request, name, default=None):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return default
    value = tensor.as_numpy().reshape(-1)[0]
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _request_parameters(request):
    """sampling_parameters, or the request's parameters when that input is absent (as NVIDIA's)."""
    tensor = pb_utils.get_input_tensor_by_name(request, "sampling_parameters")
    if tensor is not None:
        raw = tensor.as_numpy().reshape(-1)[0]
        return raw.decode("utf-8") if isinstance(raw, bytes) else raw
    params = json.loads(request.parameters() or "{}")
    # triton_* are the server's own request parameters, never sampling keys.
    return {k: v for k, v in params.items() if not k.startswith("triton_")}


def _logprobs_json(positions):
    """vLLM's per-position {token id: Logprob} as NVIDIA's JSON; "null" when none were asked."""
    if positions is None:
        return "null"
    return json.dumps([
        {str(token): {"logprob": lp.logprob, "rank": lp.rank, "decoded_token": lp.decoded_token}
         for token, lp in position.items()}
        for position in positions
    ])


def _response(returns, text, completion, *, positions, num_input, num_output):
    """One response of the contract: text_output plus the outputs whose return_* flag is set."""
    tensors = [pb_utils.Tensor("text_output", np.array([text.encode("utf-8")], dtype=np.object_))]
    if returns["return_finish_reason"]:
        reason = str(completion.finish_reason)
        tensors.append(pb_utils.Tensor("finish_reason", np.array([reason], dtype=np.object_)))
    if returns["return_cumulative_logprob"]:  # None (no logprobs asked) becomes NaN, as NVIDIA's
        cumulative = np.array([completion.cumulative_logprob], dtype=np.float32)
        tensors.append(pb_utils.Tensor("cumulative_logprob", cumulative))
    if returns["return_logprobs"]:
        logprobs = _logprobs_json(positions).encode("utf-8")
        tensors.append(pb_utils.Tensor("logprobs", np.array([logprobs], dtype=np.object_)))
    if returns["return_num_input_tokens"]:
        tensors.append(pb_utils.Tensor("num_input_tokens", np.asarray(num_input, dtype=np.uint32)))
    if returns["return_num_output_tokens"]:
        tensors.append(pb_utils.Tensor("num_output_tokens", np.array([num_output], dtype=np.uint32)))
    return pb_utils.InferenceResponse(output_tensors=tensors)


def _error_response(message):
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))


class TritonPythonModel:
    """One vLLM AsyncLLM per model instance, shared by all its requests."""

    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        """Declare the tensors and the decoupled policy so config.pbtxt can stay minimal."""
        sampling.declare_tensors(auto_complete_model_config)
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
        from vllm.platforms import current_platform
        from vllm.sampling_params import (
            RepetitionDetectionParams,
            RequestOutputKind,
            SamplingParams,
            StructuredOutputsParams,
        )
        from vllm.v1.engine.async_llm import AsyncLLM

        self._sampling_cls = SamplingParams
        self._delta = RequestOutputKind.DELTA
        # JSON objects become the engine's parameter classes.
        self._objects = {"structured_outputs": StructuredOutputsParams,
                         "repetition_detection": RepetitionDetectionParams,
                         "prompt_logprob_token_ids": np.asarray}
        accepted = [field.name for field in dataclasses.fields(AsyncEngineArgs)]
        engine_config, notes = fit_engine_config(engine_config, accepted, current_platform.is_cpu())
        for note in notes:
            pb_utils.Logger.log_warn(f"vllm backend: {self._name}: {note}")
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
        # Absent, it defaults to "prepend the prompt" except when streaming (NVIDIA's rule).
        exclude = bool(_first(request, "exclude_input_in_output", stream))
        if stream and not exclude:
            raise ValueError("streaming is only supported with exclude_input_in_output=true")
        returns = {flag: bool(_first(request, flag, False)) for flag in sampling.RETURN_FLAGS}
        params = self._sampling_params(sampling.parse(_request_parameters(request)))
        # Always ask for per-token deltas: cancellation is then checked every token.
        params.output_kind = self._delta
        return prompt, stream, exclude, returns, params

    def _sampling_params(self, kwargs):
        if kwargs.pop("lora_name", None) is not None:
            raise ValueError("LoRA feature is not enabled.")
        constraint = sampling.structured_outputs(kwargs)  # guided_decoding is mapped onto it (NVIDIA's rule)
        if constraint is not None:
            kwargs["structured_outputs"] = constraint
        if kwargs.get("n", 1) != 1:
            raise ValueError("only n=1 is supported")
        try:
            for key, build in self._objects.items():
                if key in kwargs:
                    value = kwargs[key]
                    kwargs[key] = build(**value) if isinstance(value, dict) else build(value)
            return self._sampling_cls(**kwargs)
        except Exception as exc:  # vLLM's own range checks (temperature < 0, ...)
            raise ValueError(f"invalid sampling parameters: {exc}") from None

    async def _generate(self, sender, prompt, stream, exclude, returns, params):
        final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        request_id = uuid.uuid4().hex
        pieces, positions, num_output = [], None, 0
        finished, last = False, None
        try:
            async for output in self._engine.generate({"prompt": prompt}, params, request_id):
                if sender.is_cancelled():
                    await self._engine.abort(request_id)
                    pb_utils.Logger.log_info(f"vllm backend: cancelled request {request_id}")
                    sender.send(flags=final)
                    return
                last, finished = output, output.finished
                completion = output.outputs[0]
                if stream:  # one response per engine step, as NVIDIA's: deltas only
                    response = _response(returns, completion.text, completion, positions=completion.logprobs,
                                         num_input=len(output.prompt_token_ids or ()),
                                         num_output=len(completion.token_ids))
                    sender.send(response, flags=final if finished else 0)
                    continue
                pieces.append(completion.text)
                num_output += len(completion.token_ids)
                if completion.logprobs is not None:
                    positions = [] if positions is None else positions
                    positions.extend(completion.logprobs)
            if not stream and last is not None:
                completion = last.outputs[0]
                text = "".join(pieces) if exclude else prompt + "".join(pieces)
                response = _response(returns, text, completion, positions=positions,
                                     num_input=len(last.prompt_token_ids or ()), num_output=num_output)
                sender.send(response, flags=final)
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

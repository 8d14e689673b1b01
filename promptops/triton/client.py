"""Talk to Triton over gRPC: stream or complete answers of a vLLM-contract model, embed texts.

This is the model-server client the gateway, CLI and test runner use; the app SDK that fetches approved
prompt versions from the gateway is `promptops.client`.

Every request opens its own bi-directional `ModelStreamInfer` stream: Triton
2.51 can abort when an unknown-model request reuses a stream that already
carried responses, and one stream per request also makes cancelling a single
request exact (cancelling the call cancels the request on the server).

Requests are built with tritonclient's generated gRPC stub and protobufs on a
`grpc.aio` channel rather than `tritonclient.grpc.aio.InferenceServerClient.
stream_infer`, because that method cannot ask for the empty final response: a
model that ends a stream with a bare "final" flag (NVIDIA's vLLM backend does
on cancellation) would otherwise leave the client waiting until its timeout.

Three calls: `stream` (text deltas as they come, then one `Answer`), `complete` (the `Answer` of one
non-streamed response) and `embed` (vectors and the model's token count). Every answer asks for the
contract's `return_*` outputs: the model's own token counts, finish reason and (asked with
`logprobs=True`) log probabilities. Streamed responses carry deltas of `num_output_tokens` and
`logprobs` (NVIDIA's vLLM backend semantics); the client sums them. `Answer` is the one type of a
finished answer, from here to the chat pipeline, the gateway, the UI and the assertions.

The CLI is synchronous: `run_sync` and `iterate_sync` run a call on one shared background loop.

Imports of grpc/tritonclient happen inside functions so `import promptops` stays fast.
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
import threading
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from promptops.errors import (
    InferenceError,
    InferenceTimeout,
    ModelError,
    ModelNotFound,
    NotAnEmbeddingModel,
    ServerUnavailable,
)
from promptops.prompt import sampling as contract

T = TypeVar("T")

START_HINT = "start it with `promptops up` (or check PROMPTOPS_TRITON_URL)"
# What every answer asks for; logprobs=True adds return_logprobs and return_cumulative_logprob.
USAGE_FLAGS = ("return_finish_reason", "return_num_input_tokens", "return_num_output_tokens")
LOGPROB_FLAGS = ("return_logprobs", "return_cumulative_logprob")


@dataclass(frozen=True)
class Answer:
    """One finished answer: the model's own counts and finish reason (never estimated) and the clock's timing.

    Two answers are equal when the model said the same: the timing is not compared."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None  # "stop", "length", "abort", ... ; None if the model never said
    ttft_s: float | None = field(default=None, compare=False)  # to the first text; None when none came
    total_s: float = field(default=0.0, compare=False)
    logprobs: list[dict[str, Any]] | None = None  # per generated token: {token id: {logprob, rank, decoded_token}}
    cumulative_logprob: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def latency_ms(self) -> float:
        return self.total_s * 1000

    def usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}

    def timing(self) -> dict[str, float | None]:
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 3)

        return {"ttft_ms": ms(self.ttft_s), "total_ms": ms(self.total_s)}


def _bytes_tensor(value: bytes) -> bytes:
    """One-element BYTES tensor in Triton's raw layout: 4-byte little-endian length + data."""
    return struct.pack("<I", len(value)) + value


def _decode_bytes_tensor(raw: bytes) -> str:
    """Concatenate every element of a raw BYTES tensor as UTF-8 text."""
    parts, offset = [], 0
    while offset + 4 <= len(raw):
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        parts.append(raw[offset:offset + size])
        offset += size
    return b"".join(parts).decode("utf-8", errors="replace")


def build_request(model: str, prompt: str, sampling: Mapping[str, Any] | None, *,
                  stream: bool = True, exclude_input: bool = True,
                  request_id: str | None = None, returns: Iterable[str] = ()) -> Any:
    """A `ModelInferRequest` following the vLLM backend's tensor contract.

    `returns` names `return_*` flags (promptops.sampling.RETURN_FLAGS) to set; their outputs are asked for.
    """
    from tritonclient.grpc import service_pb2

    returns = tuple(returns)
    for flag in returns:
        if flag not in contract.RETURN_FLAGS:
            raise ValueError(f"unknown return flag {flag!r}")
    request = service_pb2.ModelInferRequest(model_name=model, id=request_id or uuid.uuid4().hex)
    params = json.dumps(contract.normalise(sampling)).encode()
    tensors = [
        ("text_input", "BYTES", _bytes_tensor(prompt.encode("utf-8"))),
        ("stream", "BOOL", b"\x01" if stream else b"\x00"),
        ("sampling_parameters", "BYTES", _bytes_tensor(params)),
        ("exclude_input_in_output", "BOOL", b"\x01" if exclude_input else b"\x00"),
        *((flag, "BOOL", b"\x01") for flag in returns),
    ]
    for name, datatype, raw in tensors:
        tensor = request.inputs.add()
        tensor.name, tensor.datatype = name, datatype
        tensor.shape.append(1)
        request.raw_input_contents.append(raw)
    request.outputs.add().name = "text_output"
    for flag in returns:
        request.outputs.add().name = flag.removeprefix("return_")
    # Lets a stream that ends with a bare final flag still tell the client it is over.
    request.parameters["triton_enable_empty_final_response"].bool_param = True
    return request


def _response_text(infer_response: Any) -> str:
    for index, output in enumerate(infer_response.outputs):
        if output.name != "text_output":
            continue
        if index < len(infer_response.raw_output_contents):
            return _decode_bytes_tensor(infer_response.raw_output_contents[index])
        return "".join(b.decode("utf-8", errors="replace") for b in output.contents.bytes_contents)
    return ""


def _outputs(infer_response: Any) -> dict[str, tuple[str, bytes]]:
    """Every output of a response as name -> (datatype, raw bytes)."""
    raw = infer_response.raw_output_contents
    return {output.name: (output.datatype, raw[index] if index < len(raw) else b"")
            for index, output in enumerate(infer_response.outputs)}


class _Tally:
    """Adds up the extra outputs of one request's responses into an Answer."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.finish_reason: str | None = None
        self.logprobs: list[dict[str, Any]] | None = None
        self.cumulative_logprob: float | None = None

    def add(self, infer_response: Any, text: str) -> None:
        self.text.append(text)
        outputs = _outputs(infer_response)
        if "num_input_tokens" in outputs:  # a total, sent with every response
            self.prompt_tokens = _first_number(*outputs["num_input_tokens"])
        if "num_output_tokens" in outputs:  # a delta per streamed response
            self.completion_tokens = (self.completion_tokens or 0) + _first_number(*outputs["num_output_tokens"])
        if "finish_reason" in outputs:  # "None" until the last response
            reason = _decode_bytes_tensor(outputs["finish_reason"][1])
            self.finish_reason = None if reason == "None" else reason
        if "cumulative_logprob" in outputs:  # a running total; NaN when no logprobs were computed
            value = _first_number(*outputs["cumulative_logprob"])
            self.cumulative_logprob = None if math.isnan(value) else value
        if "logprobs" in outputs:  # JSON list of new positions, or null
            positions = json.loads(_decode_bytes_tensor(outputs["logprobs"][1]) or "null")
            if positions is not None:
                self.logprobs = self.logprobs or []
                self.logprobs.extend(positions)

    def answer(self, model: str, ttft_s: float | None, total_s: float) -> Answer:
        if self.prompt_tokens is None or self.completion_tokens is None:
            raise ModelError(f"model {model!r} did not report token counts",
                             fix="serve it with the vllm backend contract (num_input_tokens, num_output_tokens)")
        return Answer("".join(self.text), self.prompt_tokens, self.completion_tokens, self.finish_reason,
                      ttft_s=ttft_s, total_s=total_s, logprobs=self.logprobs,
                      cumulative_logprob=self.cumulative_logprob)


def _first_number(datatype: str, raw: bytes) -> Any:
    """The first element of a numeric tensor (shape [] or [n])."""
    fmt = {"UINT32": "<I", "INT32": "<i", "UINT64": "<Q", "INT64": "<q", "FP32": "<f", "FP64": "<d"}[datatype]
    return struct.unpack_from(fmt, raw)[0]


def _is_final(infer_response: Any) -> bool:
    param = infer_response.parameters.get("triton_final_response")
    return bool(param is not None and param.bool_param)


def _model_error(model: str, message: str) -> InferenceError:
    """Map an error message carried inside the stream to the right exception."""
    lowered = message.lower()
    if "unknown model" in lowered or "is not found" in lowered or "not ready" in lowered:
        return ModelNotFound(f"model {model!r} is not served: {message}",
                             fix="load it (promptops up --model NAME) or pick a served model")
    return ModelError(f"model {model!r} failed: {message}")


def map_grpc_error(exc: BaseException, url: str, model: str | None = None,
                   timeout_s: float | None = None) -> InferenceError:
    """Translate grpc.aio.AioRpcError / InferenceServerException into promptops errors."""
    code = getattr(exc, "code", None)
    code_name = str(code() if callable(code) else getattr(exc, "status", lambda: "")() or "")
    details = getattr(exc, "details", None)
    message = str(details() if callable(details) else exc) or repr(exc)
    if "UNAVAILABLE" in code_name or "connection refused" in message.lower():
        return ServerUnavailable(f"Triton at {url} is not reachable: {message}", fix=START_HINT)
    if "DEADLINE_EXCEEDED" in code_name:
        return InferenceTimeout(f"no complete answer from {model or 'Triton'} within {timeout_s} s",
                                fix="raise the timeout or ask for fewer tokens")
    if "NOT_FOUND" in code_name:
        return ModelNotFound(f"model {model!r} is not served: {message}")
    return ModelError(f"request to {model or 'Triton'} failed ({code_name or 'error'}): {message}")


class InferenceClient:
    """Async client for one Triton gRPC endpoint; safe to share between tasks of one loop."""

    def __init__(self, url: str, timeout_s: float = 60.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._channel: Any = None
        self._stub: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def _get_stub(self) -> Any:
        import grpc

        # A channel in TRANSIENT_FAILURE fails calls at once until its reconnect backoff ends; a
        # Triton that came back meanwhile is reached sooner through a fresh channel.
        if self._channel is not None and self._channel.get_state() is grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            self._drop_failed_channel()
        # A grpc.aio channel belongs to the loop that created it.
        loop = asyncio.get_running_loop()
        if self._stub is None or self._loop is not loop:
            from tritonclient.grpc import service_pb2_grpc

            self._channel = grpc.aio.insecure_channel(self.url, options=[
                ("grpc.max_send_message_length", 2**31 - 1),
                ("grpc.max_receive_message_length", 2**31 - 1),
                # gRPC's default reconnect backoff grows to 2 minutes while Triton is down; a
                # restarted server must be used within a second (tests/reliability).
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
                # Subchannels are shared process-wide by default, so a fresh channel would inherit the
                # old one's backoff and fail with "Connection refused" against a server that is back.
                ("grpc.use_local_subchannel_pool", 1),
            ])
            self._stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)
            self._loop = loop
        return self._stub

    def stream(self, model: str, prompt: str, sampling: Mapping[str, Any] | None = None, *,
               logprobs: bool = False, timeout_s: float | None = None,
               metadata: Mapping[str, str] | None = None) -> AsyncIterator[str | Answer]:
        """Yield text deltas as the model produces them, then one `Answer` (the model's counts and finish
        reason, the time to first text and in total).

        `logprobs=True` also asks for log probabilities (sampling `logprobs` defaults to 0: the chosen
        token only). Cancelling the consuming task or closing the generator cancels the request on the
        server. Raises ServerUnavailable, ModelNotFound, ModelError or InferenceTimeout.

        `metadata` (lower-case keys) goes with the gRPC call: the gateway passes the W3C `traceparent` of
        its Triton span there, which Triton continues when it runs with OpenTelemetry tracing.
        """
        return self._answer(model, prompt, sampling, stream=True, logprobs=logprobs, timeout_s=timeout_s,
                            metadata=metadata)

    async def complete(self, model: str, prompt: str, sampling: Mapping[str, Any] | None = None, *,
                       logprobs: bool = False, timeout_s: float | None = None,
                       metadata: Mapping[str, str] | None = None) -> Answer:
        """The whole answer (without the prompt) in one non-streamed response; errors and `metadata` as `stream`."""
        *_, answer = [event async for event in self._answer(model, prompt, sampling, stream=False,
                                                            logprobs=logprobs, timeout_s=timeout_s,
                                                            metadata=metadata)]
        assert isinstance(answer, Answer)  # _answer always ends with one
        return answer

    async def _answer(self, model: str, prompt: str, sampling: Mapping[str, Any] | None, *, stream: bool,
                      logprobs: bool, timeout_s: float | None,
                      metadata: Mapping[str, str] | None = None) -> AsyncIterator[str | Answer]:
        started = time.perf_counter()
        ttft_s: float | None = None
        sampling, returns = _with_returns(sampling, logprobs)
        tally = _Tally()
        # aclosing: closing this generator must cancel the request now, not when the inner one is collected.
        responses = self._responses(model, prompt, sampling, stream=stream, timeout_s=timeout_s, returns=returns,
                                    metadata=metadata)
        async with aclosing(responses):
            async for response, text in responses:
                tally.add(response, text)
                if text:
                    if ttft_s is None:
                        ttft_s = time.perf_counter() - started
                    yield text
        yield tally.answer(model, ttft_s, time.perf_counter() - started)

    async def _responses(self, model: str, prompt: str, sampling: Mapping[str, Any] | None, *,
                         stream: bool, timeout_s: float | None, returns: Iterable[str] = (),
                         metadata: Mapping[str, str] | None = None) -> AsyncIterator[tuple[Any, str]]:
        """Each response of one request with its text, up to and including the final one."""
        import grpc

        timeout = self.timeout_s if timeout_s is None else timeout_s
        request = build_request(model, prompt, sampling, stream=stream, exclude_input=True, returns=returns)
        finished = asyncio.Event()

        async def requests() -> AsyncIterator[Any]:
            yield request
            # Keep our half of the stream open until the answer is complete.
            await finished.wait()

        call = self._get_stub().ModelStreamInfer(requests(), timeout=timeout,
                                                 metadata=tuple(metadata.items()) if metadata else None)
        completed = False
        try:
            async for response in call:
                if response.error_message:
                    raise _model_error(model, response.error_message)
                yield response.infer_response, _response_text(response.infer_response)
                if _is_final(response.infer_response):
                    completed = True
                    break
            if not completed:
                raise ModelError(f"model {model!r} ended the stream without a final response")
        except grpc.aio.AioRpcError as exc:
            error = map_grpc_error(exc, self.url, model, timeout)
            if isinstance(error, ServerUnavailable):
                self._drop_failed_channel()
            raise error from None
        finally:
            finished.set()
            if not completed:
                # Covers errors, task cancellation and aclose(): the server sees the cancel.
                call.cancel()

    async def embed(self, model: str, texts: Sequence[str], *, timeout_s: float | None = None) -> Embeddings:
        """Vectors for `texts` (in order) and the model's own token count, from a model with the
        embedding contract (input `text`, outputs `embedding` and `num_input_tokens`).

        Unary `ModelInfer` calls (the model is not decoupled) of at most EMBED_BATCH texts each, one
        after the other; `timeout_s` bounds the whole call. Raises ServerUnavailable, ModelNotFound,
        ModelError (also for a model without that contract) or InferenceTimeout.
        """
        import grpc

        texts = list(texts)
        if not all(isinstance(text, str) for text in texts):
            raise TypeError("texts must be strings")
        timeout = self.timeout_s if timeout_s is None else timeout_s
        deadline = asyncio.get_running_loop().time() + timeout
        vectors: list[list[float]] = []
        tokens = 0
        for start in range(0, len(texts), EMBED_BATCH):
            chunk = texts[start:start + EMBED_BATCH]
            remaining = max(deadline - asyncio.get_running_loop().time(), 0.001)
            try:
                response = await self._get_stub().ModelInfer(build_embed_request(model, chunk), timeout=remaining)
            except grpc.aio.AioRpcError as exc:
                error = _embed_error(exc, self.url, model, timeout)
                if isinstance(error, ServerUnavailable):
                    self._drop_failed_channel()
                raise error from None
            chunk_vectors, chunk_tokens = _embed_result(model, response, len(chunk))
            vectors += chunk_vectors
            tokens += chunk_tokens
        return Embeddings(vectors, tokens)

    async def is_ready(self, model: str | None = None, *, timeout_s: float = 2.0) -> bool:
        """True when the server (and `model`, if given) is ready; False when unreachable."""
        import grpc
        from tritonclient.grpc import service_pb2

        stub = self._get_stub()
        try:
            if model is None:
                response = await stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=timeout_s)
            else:
                response = await stub.ModelReady(service_pb2.ModelReadyRequest(name=model),
                                                 timeout=timeout_s)
        except grpc.aio.AioRpcError:
            self._drop_failed_channel()
            return False
        return bool(response.ready)

    def _drop_failed_channel(self) -> None:
        """After a failed connection, let the next call connect at once instead of waiting out the backoff.

        Only a channel in TRANSIENT_FAILURE is dropped: it carries no working calls. It is closed in
        the background so that a call that just picked it up ends normally.
        """
        import grpc

        channel = self._channel
        if channel is None or channel.get_state() is not grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            return
        self._channel = self._stub = None
        task = asyncio.get_running_loop().create_task(channel.close(grace=self.timeout_s))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Close the channel (pending calls are cancelled)."""
        if self._channel is not None:
            channel, self._channel, self._stub = self._channel, None, None
            await channel.close()

    async def __aenter__(self) -> InferenceClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _with_returns(sampling: Mapping[str, Any] | None, logprobs: bool) -> tuple[dict[str, Any], tuple[str, ...]]:
    params = dict(sampling or {})
    if not logprobs:
        return params, USAGE_FLAGS
    params.setdefault("logprobs", 0)
    return params, USAGE_FLAGS + LOGPROB_FLAGS


class _BackgroundLoop:
    """One event loop in a daemon thread for every blocking call of this process.

    grpc.aio binds its completion queue to a loop; a fresh loop per call (asyncio.run)
    leaves callbacks aimed at closed loops ("Event loop is closed" noise).
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="promptops-grpc",
                                 daemon=True).start()
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop())
        try:
            return future.result()
        except BaseException:
            # Ctrl-C (or any error) while waiting: stop the work on the loop too.
            future.cancel()
            raise


_background = _BackgroundLoop()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on promptops' shared background loop and wait for its result."""
    return _background.run(coro)


def iterate_sync(events: AsyncIterator[T]) -> Iterator[T]:
    """Iterate an async generator on promptops' shared background loop, blocking; closing the iterator
    (or Ctrl-C) closes the generator there (a Triton request it holds is cancelled)."""
    agen: Any = events.__aiter__()
    try:
        while True:
            try:
                yield run_sync(agen.__anext__())
            except StopAsyncIteration:
                return
    finally:
        run_sync(agen.aclose())


# -- embeddings: a batched, non-decoupled model (model_repository/all-minilm-l6-v2) --------------------------

# Texts per Triton request: the embedding model's max_batch_size must be at least this.
EMBED_BATCH = 32
_NOT_EMBEDDING = ("unexpected inference input", "decoupled", "unexpected inference output")


@dataclass(frozen=True)
class Embeddings:
    """Vectors for a list of texts (in order) and the tokens the model read for all of them
    (its own tokenizer's count, never estimated)."""

    vectors: list[list[float]]
    prompt_tokens: int


def build_embed_request(model: str, texts: Sequence[str], request_id: str | None = None) -> Any:
    """A `ModelInferRequest` of the embedding contract: BYTES input `text` shaped [n, 1]."""
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name=model, id=request_id or uuid.uuid4().hex)
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = "text", "BYTES"
    tensor.shape.extend([len(texts), 1])
    request.raw_input_contents.append(b"".join(_bytes_tensor(text.encode("utf-8")) for text in texts))
    for name in ("embedding", "num_input_tokens"):
        request.outputs.add().name = name
    return request


def _embed_result(model: str, response: Any, count: int) -> tuple[list[list[float]], int]:
    """(vectors, summed token count) from a `ModelInferResponse` of the embedding contract."""
    raw = response.raw_output_contents
    outputs = {output.name: (output, raw[index] if index < len(raw) else b"")
               for index, output in enumerate(response.outputs)}
    vectors, tokens = outputs.get("embedding"), outputs.get("num_input_tokens")
    shape = list(vectors[0].shape) if vectors else []
    if (vectors is None or tokens is None or vectors[0].datatype != "FP32" or tokens[0].datatype != "UINT32"
            or len(shape) != 2 or shape[0] != count or len(vectors[1]) != 4 * count * shape[1]
            or len(tokens[1]) != 4 * count):
        raise ModelError(f"model {model!r} did not answer with the embedding contract "
                         "(FP32 `embedding` [n, d] and UINT32 `num_input_tokens` [n, 1])",
                         fix="use an embedding model such as all-minilm-l6-v2")
    dimensions = shape[1]
    flat = struct.unpack(f"<{count * dimensions}f", vectors[1])
    return ([list(flat[i * dimensions:(i + 1) * dimensions]) for i in range(count)],
            sum(struct.unpack(f"<{count}I", tokens[1])))


def _embed_error(exc: BaseException, url: str, model: str, timeout_s: float) -> InferenceError:
    """`map_grpc_error`, saying so when the model exists but is not an embedding model."""
    error = map_grpc_error(exc, url, model, timeout_s)
    if type(error) is ModelError and any(marker in error.message for marker in _NOT_EMBEDDING):
        return NotAnEmbeddingModel(f"model {model!r} is not an embedding model: {error.message}",
                          fix="use an embedding model such as all-minilm-l6-v2")
    return error


__all__ = ["Answer", "EMBED_BATCH", "Embeddings", "InferenceClient", "build_embed_request", "build_request",
           "iterate_sync", "map_grpc_error", "run_sync"]

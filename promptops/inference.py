"""Talk to Triton over gRPC: stream or generate text from a vLLM-contract model.

Every request opens its own bi-directional `ModelStreamInfer` stream: Triton
2.51 can abort when an unknown-model request reuses a stream that already
carried responses, and one stream per request also makes cancelling a single
request exact (cancelling the call cancels the request on the server).

Requests are built with tritonclient's generated gRPC stub and protobufs on a
`grpc.aio` channel rather than `tritonclient.grpc.aio.InferenceServerClient.
stream_infer`, because that method cannot ask for the empty final response: a
model that ends a stream with a bare "final" flag (NVIDIA's vLLM backend does
on cancellation) would otherwise leave the client waiting until its timeout.

Imports of grpc/tritonclient happen inside functions so `import promptops` stays fast.
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping
from typing import Any, TypeVar

from promptops.errors import (
    InferenceError,
    InferenceTimeout,
    ModelError,
    ModelNotFound,
    ServerUnavailable,
)

T = TypeVar("T")

DEFAULT_URL = "localhost:8001"
START_HINT = "start it with `promptops up` (or check PROMPTOPS_TRITON_URL)"


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
                  request_id: str | None = None) -> Any:
    """A `ModelInferRequest` following the vLLM backend's tensor contract."""
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name=model, id=request_id or uuid.uuid4().hex)
    tensors = [
        ("text_input", "BYTES", _bytes_tensor(prompt.encode("utf-8"))),
        ("stream", "BOOL", b"\x01" if stream else b"\x00"),
        ("sampling_parameters", "BYTES", _bytes_tensor(json.dumps(dict(sampling or {})).encode())),
        ("exclude_input_in_output", "BOOL", b"\x01" if exclude_input else b"\x00"),
    ]
    for name, datatype, raw in tensors:
        tensor = request.inputs.add()
        tensor.name, tensor.datatype = name, datatype
        tensor.shape.append(1)
        request.raw_input_contents.append(raw)
    request.outputs.add().name = "text_output"
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

    def __init__(self, url: str = DEFAULT_URL, timeout_s: float = 60.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._channel: Any = None
        self._stub: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def _get_stub(self) -> Any:
        # A grpc.aio channel belongs to the loop that created it.
        loop = asyncio.get_running_loop()
        if self._stub is None or self._loop is not loop:
            import grpc
            from tritonclient.grpc import service_pb2_grpc

            self._channel = grpc.aio.insecure_channel(self.url, options=[
                ("grpc.max_send_message_length", 2**31 - 1),
                ("grpc.max_receive_message_length", 2**31 - 1),
                # gRPC's default reconnect backoff grows to 2 minutes while Triton is down; a
                # restarted server must be used within a second (tests/reliability).
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
            ])
            self._stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)
            self._loop = loop
        return self._stub

    async def stream(self, model: str, prompt: str, sampling: Mapping[str, Any] | None = None,
                     *, timeout_s: float | None = None) -> AsyncIterator[str]:
        """Yield text deltas as the model produces them.

        Cancelling the consuming task or closing the generator cancels the
        request on the server. Raises ServerUnavailable, ModelNotFound,
        ModelError or InferenceTimeout.
        """
        async for text in self._run(model, prompt, sampling, stream=True, timeout_s=timeout_s):
            yield text

    async def generate(self, model: str, prompt: str, sampling: Mapping[str, Any] | None = None,
                       *, timeout_s: float | None = None) -> str:
        """The whole answer (without the prompt) as one string."""
        parts = [t async for t in self._run(model, prompt, sampling, stream=False, timeout_s=timeout_s)]
        return "".join(parts)

    async def _run(self, model: str, prompt: str, sampling: Mapping[str, Any] | None, *,
                   stream: bool, timeout_s: float | None) -> AsyncIterator[str]:
        import grpc

        timeout = self.timeout_s if timeout_s is None else timeout_s
        request = build_request(model, prompt, sampling, stream=stream, exclude_input=True)
        finished = asyncio.Event()

        async def requests() -> AsyncIterator[Any]:
            yield request
            # Keep our half of the stream open until the answer is complete.
            await finished.wait()

        call = self._get_stub().ModelStreamInfer(requests(), timeout=timeout)
        completed = False
        try:
            async for response in call:
                if response.error_message:
                    raise _model_error(model, response.error_message)
                text = _response_text(response.infer_response)
                if text:
                    yield text
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


class _BackgroundLoop:
    """One event loop in a daemon thread for every blocking call of this process.

    grpc.aio binds its completion queue to a loop; a fresh loop per call (asyncio.run)
    leaves callbacks aimed at closed loops ("Event loop is closed" noise).
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, float], InferenceClient] = {}

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

    def client(self, url: str, timeout_s: float) -> InferenceClient:
        with self._lock:
            return self._clients.setdefault((url, timeout_s), InferenceClient(url, timeout_s))


_background = _BackgroundLoop()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on promptops' shared background loop and wait for its result."""
    return _background.run(coro)


def generate_sync(model: str, prompt: str, sampling: Mapping[str, Any] | None = None, *,
                  url: str = DEFAULT_URL, timeout_s: float = 60.0) -> str:
    """Blocking `InferenceClient.generate` for the CLI."""
    return run_sync(_background.client(url, timeout_s).generate(model, prompt, sampling))


def stream_sync(model: str, prompt: str, sampling: Mapping[str, Any] | None = None, *,
                url: str = DEFAULT_URL, timeout_s: float = 60.0) -> Iterator[str]:
    """Blocking `InferenceClient.stream`; closing the iterator (or Ctrl-C) cancels the request."""
    agen = _background.client(url, timeout_s).stream(model, prompt, sampling).__aiter__()
    try:
        while True:
            try:
                yield run_sync(agen.__anext__())
            except StopAsyncIteration:
                return
    finally:
        run_sync(agen.aclose())


__all__ = ["InferenceClient", "build_request", "generate_sync", "map_grpc_error", "run_sync", "stream_sync",
           "DEFAULT_URL"]

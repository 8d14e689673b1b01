"""OpenTelemetry traces of generation requests (the `[otel]` extra), exported over OTLP/HTTP (protobuf).

Off unless `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set (and
`OTEL_SDK_DISABLED` is not `true`): then `install(app)` (called by `create_app`) builds a tracer provider
with a batch span processor and the OTLP/HTTP exporter, and adds `TraceMiddleware`. Nothing here imports
OpenTelemetry until then; when off, every hook is one module-level `None` check.

One generation request (`POST /v1/chat`, `/v1/chat/completions`, `/prompt`) is one trace:

- `chat {prompt}` (SERVER): its parent is the caller's W3C `traceparent`, if sent. GenAI attributes
  (`gen_ai.operation.name`, `gen_ai.request.*`, `gen_ai.usage.*`, `gen_ai.response.finish_reasons`) and
  `promptops.prompt.{name,version,label,commit}`;
- `resolve {prompt}` and `render {prompt}` (INTERNAL): `Service.serve` and `Service.prepare`;
- `chat {model}` (CLIENT): the Triton stream, with a `gen_ai.first_token` event at the first text. Its
  context goes to Triton as the gRPC metadata `traceparent` (Triton's own spans join the trace when it
  runs with `--trace-config mode=opentelemetry`).

The server and Triton spans end in `Service.generate`'s `finally`: when the stream ends, not when the
response headers go out. Prompt text and answers stay out of spans unless `PROMPTOPS_TRACE_CONTENT=1`.

The provider is the gateway's own, not OpenTelemetry's global one (which can be set once per process):
tests install one with `setup(endpoint)` and remove it with `shutdown()`, and FastAPI's own HTTP telemetry
(FastAPI >= 0.165 traces when a *global* provider is configured) does not add a second server span.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from promptops.chat import Answer, Prepared

log = logging.getLogger("gateway.tracing")

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# The routes whose requests are generation requests: one server span each.
GENERATION_PATHS = frozenset({"/v1/chat", "/v1/chat/completions", "/prompt"})

tracer: Any = None  # the gateway's tracer; None: tracing is off (the hot path's only check)
content = False  # PROMPTOPS_TRACE_CONTENT=1: the rendered prompt and the answer go into spans
_provider: Any = None
_request: ContextVar[_Request | None] = ContextVar("promptops_trace_request", default=None)


def endpoint_from_env() -> str | None:
    """The OTLP traces endpoint the environment asks for; None when tracing is off."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return None
    for variable in ENDPOINT_VARIABLES:
        if os.environ.get(variable, "").strip():
            return os.environ[variable].strip()
    return None


def setup(endpoint: str | None = None, *, schedule_delay_ms: int | None = None,
          trace_content: bool | None = None) -> Any:
    """Start exporting: a tracer provider with a batch processor and the OTLP/HTTP exporter; returns it.

    `endpoint` is the full traces URL (`http://collector:4318/v1/traces`); None: the exporter reads
    `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`. The resource's
    `service.name` is `OTEL_SERVICE_NAME`, else `promptops-gateway`. Replaces a provider set up before."""
    global tracer, content, _provider
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    shutdown()
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "promptops-gateway"}
    provider = TracerProvider(resource=Resource.create(attributes))
    exporter = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=schedule_delay_ms))
    _provider, tracer = provider, provider.get_tracer("promptops.gateway")
    content = (os.environ.get("PROMPTOPS_TRACE_CONTENT", "") in ("1", "true", "yes")
               if trace_content is None else trace_content)
    return provider


def shutdown() -> None:
    """Export what is queued and stop tracing (back to off)."""
    global tracer, _provider
    provider, _provider, tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def flush(timeout_ms: int = 5000) -> bool:
    """Export the finished spans now (True when done, or when tracing is off)."""
    return _provider.force_flush(timeout_ms) if _provider is not None else True


def install(app: FastAPI) -> None:
    """Add `TraceMiddleware` to `app` when tracing is on: set up already, or asked for by the environment."""
    if tracer is None and endpoint_from_env() is not None:
        try:
            setup()
        except ImportError:
            log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: no traces "
                        "(install the extra: pip install 'promptops-git[otel]')")
            return
    if tracer is not None:
        app.add_middleware(TraceMiddleware)


class _Request:
    """One generation request's server span, and whether it has ended."""

    __slots__ = ("span", "ended")

    def __init__(self, span: Any) -> None:
        self.span = span
        self.ended = False

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.span.end()


class TraceMiddleware:
    """Opens the server span of a generation request, continuing the caller's `traceparent`.

    A plain ASGI middleware. The span is current while the request is handled, so the resolve, render and
    Triton spans are its children; `Service.generate` ends it when the answer ends (a request refused
    before generating ends it here)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (tracer is None or scope["type"] != "http" or scope["method"] != "POST"
                or scope["path"] not in GENERATION_PATHS):
            return await self.app(scope, receive, send)
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        carrier = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
                   if key in (b"traceparent", b"tracestate")}
        parent = propagate.extract(carrier)
        span = tracer.start_span("chat", context=parent, kind=SpanKind.SERVER, attributes={
            "gen_ai.operation.name": "chat", "http.request.method": "POST", "http.route": scope["path"],
            "url.path": scope["path"]})
        request = _Request(span)
        token = context.attach(trace.set_span_in_context(span, parent))
        reset = _request.set(request)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and not request.ended:
                status = message["status"]
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                    span.set_attribute("error.type", str(status))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except BaseException as exc:
            if not request.ended:
                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute("error.type", type(exc).__qualname__)
            raise
        finally:
            _request.reset(reset)
            context.detach(token)
            request.end()  # normally already ended by Service.generate


class _Span:
    """A context manager for a child span of the current one (`span`)."""

    __slots__ = ("name", "attributes", "_manager")

    def __init__(self, name: str, attributes: dict[str, Any]) -> None:
        self.name, self.attributes = name, attributes

    def __enter__(self) -> Any:
        from opentelemetry.trace import SpanKind

        self._manager = tracer.start_as_current_span(self.name, kind=SpanKind.INTERNAL, attributes=self.attributes)
        return self._manager.__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        self._manager.__exit__(*exc_info)


class _Off:
    """`span` when tracing is off: enters and exits, nothing else."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: Any) -> None:
        return None


_OFF = _Off()


def span(step: str, prompt: str) -> _Span | _Off:
    """`with tracing.span("resolve", name):` a `{step} {prompt}` child span (a no-op when tracing is off).
    The server span of the request is named `chat {prompt}` here, at its first step."""
    if tracer is None:
        return _OFF
    request = _request.get()
    if request is not None and not request.ended:
        request.span.update_name(f"chat {prompt}")
        request.span.set_attribute("promptops.prompt.name", prompt)
    return _Span(f"{step} {prompt}", {"promptops.prompt.name": prompt})


def _prompt_attributes(prepared: Prepared) -> dict[str, Any]:
    out: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.request.model": prepared.model,
                           "promptops.prompt.name": prepared.name, "promptops.prompt.version": prepared.version,
                           "promptops.prompt.commit": prepared.commit}
    if prepared.label is not None:
        out["promptops.prompt.label"] = prepared.label
    for key in ("max_tokens", "temperature", "top_p", "seed"):
        value = prepared.sampling.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[f"gen_ai.request.{key}"] = value
    return out


class Generation:
    """The spans of one answer from Triton: `Service.generate` calls `first_token` and `end`."""

    __slots__ = ("request", "span", "started", "metadata", "model")

    def __init__(self, prepared: Prepared, request: _Request | None) -> None:
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import SpanKind

        attributes = _prompt_attributes(prepared)
        self.request, self.model = request, prepared.model
        if request is not None and not request.ended:
            request.span.update_name(f"chat {prepared.name}")
            request.span.set_attributes(attributes)
            parent = trace.set_span_in_context(request.span)
        else:  # a generation outside a traced request (the UI): this span is the trace's root
            self.request = None
            parent = context.get_current()
        self.span = tracer.start_span(f"chat {prepared.model}", context=parent, kind=SpanKind.CLIENT,
                                      attributes={**attributes, "gen_ai.provider.name": "triton",
                                                  "rpc.system": "grpc",
                                                  "rpc.service": "inference.GRPCInferenceService",
                                                  "rpc.method": "ModelStreamInfer"})
        if content:
            self.span.set_attribute("gen_ai.input.messages", json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": prepared.text}]}], ensure_ascii=False))
        self.metadata: dict[str, str] = {}
        propagate.inject(self.metadata, context=trace.set_span_in_context(self.span))
        self.started = time.perf_counter()

    def first_token(self) -> None:
        """The first text came: an event on the Triton span, with the time to it."""
        self.span.add_event("gen_ai.first_token",
                            {"gen_ai.server.time_to_first_token": time.perf_counter() - self.started})

    def end(self, answer: Answer | None, error: str | None) -> None:
        """End the Triton span and the request's server span: the model's counts, or the error."""
        from opentelemetry.trace import Status, StatusCode

        spans = [self.span] + ([self.request.span] if self.request is not None else [])
        for one in spans:
            if answer is not None:
                one.set_attributes({"gen_ai.usage.input_tokens": answer.prompt_tokens,
                                    "gen_ai.usage.output_tokens": answer.completion_tokens,
                                    "gen_ai.response.model": self.model})
                if answer.finish_reason is not None:
                    one.set_attribute("gen_ai.response.finish_reasons", [answer.finish_reason])
            if error is not None:
                one.set_attribute("error.type", error)
                one.set_status(Status(StatusCode.ERROR))
        if content and answer is not None:
            self.span.set_attribute("gen_ai.output.messages", json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": answer.text}],
                  "finish_reason": answer.finish_reason}], ensure_ascii=False))
        self.span.end()
        if self.request is not None:
            self.request.end()


def generation(prepared: Prepared) -> Generation | None:
    """The spans of an answer about to be asked of Triton; None when tracing is off."""
    if tracer is None:
        return None
    return Generation(prepared, _request.get())


__all__ = ["Generation", "TraceMiddleware", "endpoint_from_env", "flush", "generation", "install", "setup",
           "shutdown", "span"]

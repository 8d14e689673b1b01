"""OpenTelemetry traces end to end: the real OTLP/HTTP exporter, configured by the environment, sending to a
real receiver on loopback; a gateway on the echo Triton; the spans decoded from the protobuf bodies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs the [otel] extra")

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span  # noqa: E402

from gateway import tracing  # noqa: E402
from promptops.triton.client import InferenceClient  # noqa: E402

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP traces receiver: POST /v1/traces with an ExportTraceServiceRequest (protobuf)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.spans: list[Span] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        with self.server.lock:
            self.server.paths.append(self.path)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    self.server.spans.extend(scope.spans)
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def traced(receiver: Receiver, make_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[Callable[..., Any]]:
    """`traced(**settings)`: a gateway client exporting traces to `receiver`, set up from the standard variables
    by create_app; the gRPC metadata of every Triton stream is recorded in `traced.metadata`."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.server_port}")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    metadata: list[dict[str, str]] = []
    real = InferenceClient._get_stub

    class Stub:
        def __init__(self, stub: Any) -> None:
            self.stub = stub

        def __getattr__(self, name: str) -> Any:
            return getattr(self.stub, name)

        def ModelStreamInfer(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 (the gRPC method's name)
            metadata.append(dict(kwargs.get("metadata") or ()))
            return self.stub.ModelStreamInfer(*args, **kwargs)

    monkeypatch.setattr(InferenceClient, "_get_stub", lambda self: Stub(real(self)))

    def make(**changes: Any) -> Any:
        return make_client(**changes)

    make.metadata = metadata  # type: ignore[attr-defined]
    yield make
    tracing.shutdown()


def exported(receiver: Receiver, count: int) -> list[Span]:
    """Flush the exporter and return the spans the receiver got (at least `count`)."""
    assert tracing.flush()
    with receiver.lock:
        spans = list(receiver.spans)
    assert len(spans) >= count, [s.name for s in spans]
    assert set(receiver.paths) == {"/v1/traces"}
    return spans


def attrs(span: Span) -> dict[str, Any]:
    """A span's attributes as plain Python values."""
    out: dict[str, Any] = {}
    for kv in span.attributes:
        value = kv.value
        kind = value.WhichOneof("value")
        if kind == "array_value":
            out[kv.key] = [getattr(v, v.WhichOneof("value")) for v in value.array_value.values]
        else:
            out[kv.key] = getattr(value, kind)
    return out


def trace_of(spans: list[Span], server: Span) -> dict[str, Span]:
    """The spans of `server`'s trace, by name."""
    return {s.name: s for s in spans if s.trace_id == server.trace_id}


def servers(spans: list[Span]) -> list[Span]:
    return [s for s in spans if s.kind == Span.SPAN_KIND_SERVER]


def no_content(spans: list[Span], *texts: str) -> None:
    for span in spans:
        blob = json.dumps(attrs(span)) + json.dumps([attrs(e) | {"name": e.name} for e in span.events])
        for text in texts:
            assert text not in blob, (span.name, text)


def test_streamed_chat_continues_the_callers_trace_to_triton(traced, receiver, labelled):
    client = traced()
    response = client.post("/v1/chat", json={"prompt": "support", "message": "hello there", "stream": True},
                           headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200 and "event: done" in response.text
    spans = exported(receiver, 4)
    [server] = servers(spans)
    # The server span continues the caller's trace: its parent is the caller's span.
    assert (server.trace_id.hex(), server.parent_span_id.hex()) == (TRACE_ID, PARENT_ID)
    named = trace_of(spans, server)
    assert set(named) == {"chat support", "resolve support", "render support", "chat echo"}
    for child in ("resolve support", "render support", "chat echo"):
        assert named[child].parent_span_id == server.span_id, child
    resolve, render, triton = named["resolve support"], named["render support"], named["chat echo"]
    assert (resolve.kind, render.kind, triton.kind) == (Span.SPAN_KIND_INTERNAL, Span.SPAN_KIND_INTERNAL,
                                                        Span.SPAN_KIND_CLIENT)
    assert resolve.end_time_unix_nano <= render.start_time_unix_nano <= triton.start_time_unix_nano
    # The server span ends with the stream (in Service.generate's finally), after Triton's answer.
    assert triton.end_time_unix_nano <= server.end_time_unix_nano

    facts = attrs(server)
    assert {k: facts[k] for k in (
        "gen_ai.operation.name", "gen_ai.request.model", "gen_ai.request.max_tokens", "gen_ai.request.temperature",
        "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.response.finish_reasons",
        "promptops.prompt.name", "promptops.prompt.version", "promptops.prompt.label", "promptops.prompt.commit",
        "http.response.status_code")} == {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "echo", "gen_ai.request.max_tokens": 256,
        "gen_ai.request.temperature": 1.0, "gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 3,
        "gen_ai.response.finish_reasons": ["stop"], "promptops.prompt.name": "support",
        "promptops.prompt.version": "1", "promptops.prompt.label": "production",
        "promptops.prompt.commit": labelled["support@1"], "http.response.status_code": 200}
    assert attrs(triton)["gen_ai.usage.output_tokens"] == 3 and attrs(triton)["rpc.method"] == "ModelStreamInfer"
    # Time to first token: an event on the Triton span, inside it.
    [first] = [e for e in triton.events if e.name == "gen_ai.first_token"]
    assert triton.start_time_unix_nano < first.time_unix_nano <= triton.end_time_unix_nano
    assert 0 < attrs(first)["gen_ai.server.time_to_first_token"] < 60
    # The Triton span's context went to Triton as gRPC metadata.
    assert traced.metadata == [{"traceparent": f"00-{TRACE_ID}-{triton.span_id.hex()}-01"}]
    no_content(spans, "hello there", "S1 ")


def test_json_chat_without_traceparent_starts_a_trace(traced, receiver):
    client = traced()
    response = client.post("/v1/chat", json={"prompt": "support", "message": "hello there"})
    assert response.json()["text"] == "S1 hello there"
    spans = exported(receiver, 4)
    [server] = servers(spans)
    assert server.parent_span_id == b"" and server.name == "chat support"
    named = trace_of(spans, server)
    assert named["chat echo"].parent_span_id == server.span_id
    facts = attrs(server)
    assert (facts["gen_ai.usage.input_tokens"], facts["gen_ai.usage.output_tokens"]) == (3, 3)
    assert "promptops.prompt.label" not in facts  # no labels.json: the newest approved version answered
    assert server.end_time_unix_nano >= named["chat echo"].end_time_unix_nano
    no_content(spans, "hello there", "S1 ")


def test_openai_completion_with_traceparent(traced, receiver):
    client = traced()
    response = client.post("/v1/chat/completions", headers={"traceparent": TRACEPARENT}, json={
        "model": "support", "messages": [{"role": "user", "content": "hello there"}],
        "max_tokens": 16, "temperature": 0.5})
    body = response.json()
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    spans = exported(receiver, 4)
    [server] = servers(spans)
    assert (server.trace_id.hex(), server.parent_span_id.hex(), server.name) == (TRACE_ID, PARENT_ID, "chat support")
    facts = attrs(server)
    assert (facts["gen_ai.request.max_tokens"], facts["gen_ai.request.temperature"]) == (16, 0.5)
    assert (facts["gen_ai.usage.input_tokens"], facts["gen_ai.usage.output_tokens"]) == (3, 3)
    assert facts["gen_ai.response.finish_reasons"] == ["stop"]
    assert set(trace_of(spans, server)) == {"chat support", "resolve support", "render support", "chat echo"}
    assert traced.metadata[0]["traceparent"].startswith(f"00-{TRACE_ID}-")
    no_content(spans, "hello there", "S1 ")


def test_a_refused_request_ends_its_span_without_triton(traced, receiver):
    client = traced()
    response = client.post("/v1/chat", json={"prompt": "fresh", "message": "hello"},
                           headers={"traceparent": TRACEPARENT})
    assert response.status_code == 404  # never approved: not served
    spans = exported(receiver, 2)
    [server] = servers(spans)
    assert server.name == "chat fresh" and attrs(server)["http.response.status_code"] == 404
    assert set(trace_of(spans, server)) == {"chat fresh", "resolve fresh"}
    assert traced.metadata == []


def test_content_only_when_asked(traced, receiver, monkeypatch):
    monkeypatch.setenv("PROMPTOPS_TRACE_CONTENT", "1")
    client = traced()
    client.post("/v1/chat", json={"prompt": "support", "message": "hello there"})
    spans = exported(receiver, 4)
    [triton] = [s for s in spans if s.kind == Span.SPAN_KIND_CLIENT]
    facts = attrs(triton)
    assert json.loads(facts["gen_ai.input.messages"])[0]["parts"][0]["content"] == "S1 hello there"
    assert json.loads(facts["gen_ai.output.messages"])[0]["parts"][0]["content"] == "S1 hello there"


def test_off_without_the_variable_imports_no_sdk():
    """Without OTEL_EXPORTER_OTLP_ENDPOINT, gateway/tracing.py imports no OpenTelemetry module, and the gateway
    adds none to the ones FastAPI itself imports (FastAPI >= 0.165 imports the OpenTelemetry API for its own
    telemetry): no SDK, no exporter."""
    code = (
        "import sys\n"
        "import gateway.tracing\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'gateway.tracing imported it'\n"
        "import fastapi\n"
        "before = {m for m in sys.modules if m.startswith('opentelemetry')}\n"
        "from gateway import tracing\n"
        "from gateway.app import create_app\n"
        "tracing.install(fastapi.FastAPI())\n"
        "after = {m for m in sys.modules if m.startswith('opentelemetry')}\n"
        "assert tracing.tracer is None, 'tracing is on'\n"
        "assert after == before, sorted(after - before)\n"
        "assert not [m for m in after if m.startswith(('opentelemetry.sdk', 'opentelemetry.exporter'))], after\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_endpoint_from_the_standard_variables(monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED",
                 "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    assert tracing.endpoint_from_env() is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert tracing.endpoint_from_env() == "http://collector:4318"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4318/v1/traces")
    assert tracing.endpoint_from_env() == "http://traces:4318/v1/traces"
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing.endpoint_from_env() is None

"""Capture (promptops/capture.py): redacted, sampled, bounded rows written off the caller's path."""

import json
import os
import threading
import time

import pytest
from typer.testing import CliRunner

from promptops.capture import Capture, CaptureSettings, redact, row, sampled
from promptops.chat import Prepared
from promptops.cli.app import app
from promptops.errors import PromptOpsError
from promptops.prompt.render import Turn
from promptops.triton.client import Answer
from tests.conftest import prompt_doc

PREPARED = Prepared(name="support", version="3", commit="abc", model="echo", text="", sampling={}, label="production")


def captured(message, request_id="r1", answer="ok", history=()):
    return row(PREPARED, Answer(answer, 3, 1, "stop", total_s=0.25), request_id=request_id, message=message,
               history=history, at=1700000000.0)


def capture(tmp_path, **settings):
    return Capture(CaptureSettings(**{"capture": "on", "directory": tmp_path / "cap", **settings}))


def test_a_row_is_a_dataset_row_with_the_requests_facts():
    data = captured("Hi", history=[Turn("user", "Hello"), {"role": "assistant", "content": "Hey"}])
    assert data == {"vars": {"user": "Hi"}, "history": [{"role": "user", "content": "Hello"},
                                                        {"role": "assistant", "content": "Hey"}],
                    "__captured": {"request_id": "r1", "at": 1700000000.0, "prompt": "support", "version": 3,
                                   "label": "production", "canary": False, "answer": "ok", "prompt_tokens": 3,
                                   "completion_tokens": 1, "latency_ms": 250.0}}


SECRETS = ["ada.lovelace@example.co.uk", "sk-proj-4f9XkQ2mZ7rT1vB8nL3p", "ghp_1234567890abcdefghijABCDEFGHIJ",
           "AKIAIOSFODNN7EXAMPLE", "4111 1111 1111 1111", "+49 30 1234567"]


def test_emails_keys_and_long_numbers_never_reach_the_disk(tmp_path):
    writer = capture(tmp_path)
    message = "mail " + SECRETS[0] + " key " + SECRETS[1] + " and Bearer abcdefgh12345678"
    assert writer.record(captured(message, answer=" ".join(SECRETS[2:]) + " — order 42 ok"))
    writer.close()
    data = (tmp_path / "cap" / "support.jsonl").read_bytes()
    assert not [s for s in [*SECRETS, "abcdefgh12345678"] if s.encode() in data]
    stored = json.loads(data)
    assert stored["vars"]["user"] == "mail [email] key [key] and Bearer [key]"
    assert stored["__captured"]["answer"] == "[key] [key] [number] [number] — order 42 ok"
    assert stored["__captured"]["request_id"] == "r1"  # metadata is kept as is


@pytest.mark.parametrize(("extra", "text", "expected"), [
    ("ACME-\\d+", "ticket ACME-12 for a@b.io", "ticket [redacted] for [email]"),
    ('["secret\\\\w*", "Ada"]', "secretive Ada", "[redacted] [redacted]"),
])
def test_extra_redactions_come_from_the_settings(extra, text, expected):
    assert redact(text, CaptureSettings(redact=extra).patterns()) == expected


@pytest.mark.parametrize(("values", "message"), [
    ({"rate": 1.5}, "PROMPTOPS_CAPTURE_RATE=1.5 is not valid"),
    ({"capture": "support, Bad Name"}, "'Bad Name' is not a prompt name"),
    ({"redact": "("}, "'(' is not a regular expression"),
])
def test_bad_settings_say_which_variable(values, message):
    with pytest.raises(PromptOpsError) as error:
        CaptureSettings(**values)
    assert message in error.value.message


def test_settings_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMPTOPS_CAPTURE", "support,faq")
    monkeypatch.setenv("PROMPTOPS_CAPTURE_RATE", "0.25")
    settings = CaptureSettings.from_env(tmp_path)
    assert (settings.prompts, settings.rate, settings.folder()) == (
        {"support", "faq"}, 0.25, tmp_path / ".promptops" / "captures")
    assert [settings.enabled_for(n) for n in ("support", "other")] == [True, False]


def test_files_rotate_and_stay_within_the_bound(tmp_path):
    writer = capture(tmp_path, max_bytes=12_000)
    for n in range(400):
        writer.record(captured(f"question number {n:04d} " + "x" * 100, request_id=f"r{n}"))
    writer.close()
    files = sorted(p.name for p in (tmp_path / "cap").iterdir())
    assert files == ["support.1.jsonl", "support.2.jsonl", "support.jsonl"]
    assert sum(p.stat().st_size for p in (tmp_path / "cap").iterdir()) <= 12_000
    last = json.loads((tmp_path / "cap" / "support.jsonl").read_text().splitlines()[-1])
    assert last["__captured"]["request_id"] == "r399" and writer.stats.written == 400


def test_record_returns_at_once_while_the_writer_is_stuck(tmp_path):
    (tmp_path / "cap").mkdir()
    os.mkfifo(tmp_path / "cap" / "support.jsonl")  # opening it to write blocks until a reader comes
    writer = Capture(CaptureSettings(capture="on", directory=tmp_path / "cap"), queue_size=10)
    started = time.perf_counter()
    kept = [writer.record(captured("Hi", request_id=f"r{n}")) for n in range(200)]
    assert time.perf_counter() - started < 0.5
    assert writer.stats.dropped == 200 - sum(kept) > 150  # the queue (10) and what the writer took are kept
    reader = threading.Thread(target=lambda: (tmp_path / "cap" / "support.jsonl").read_bytes())
    reader.start()  # unblock the writer, so the test ends cleanly
    writer.close()
    reader.join(5)


def test_sampling_keeps_the_rate_and_the_same_decision_per_id():
    ids = [f"req-{n}" for n in range(2000)]
    kept = [sampled(i, 0.3) for i in ids]
    assert 0.26 <= sum(kept) / len(ids) <= 0.34
    assert kept == [sampled(i, 0.3) for i in ids]


def test_a_prompt_not_captured_and_a_sampled_out_id_are_not_queued(tmp_path):
    writer = capture(tmp_path, capture="faq")
    assert not writer.record(captured("Hi"))
    assert not capture(tmp_path, rate=0.0).record(captured("Hi"))


def test_promptops_test_runs_a_captured_file(repo, echo_server, monkeypatch, tmp_path):
    monkeypatch.setenv("PROMPTOPS_MODEL", "echo")
    repo.commit({"prompts/support.json": prompt_doc("{system} {user}", system="Be brief.")}, "v1")
    writer = capture(tmp_path)
    for n, message in enumerate(["Hi", "mail me at a@b.io"]):
        writer.record(captured(message, request_id=f"r{n}"))
    writer.close()
    result = CliRunner().invoke(app, ["--triton-url", echo_server.grpc_url, "test", "support", "--dataset",
                                      str(tmp_path / "cap" / "support.jsonl"), "--format", "json", "--no-save"])
    assert result.exit_code == 0, result.output
    assert [c["output"] for c in json.loads(result.output)["cases"]] == ["Be brief. Hi", "Be brief. mail me at [email]"]


def test_captured_history_is_replayed_where_the_prompt_puts_it(repo, echo_server, monkeypatch, tmp_path):
    monkeypatch.setenv("PROMPTOPS_MODEL", "echo")
    repo.commit({"prompts/support.json": prompt_doc("{history}{user}", turn_template="{role}: {content}\n")}, "v1")
    writer = capture(tmp_path)
    writer.record(captured("And you?", history=[Turn("user", "Hi"), Turn("assistant", "Hello")]))
    writer.close()
    result = CliRunner().invoke(app, ["--triton-url", echo_server.grpc_url, "test", "support", "--dataset",
                                      str(tmp_path / "cap" / "support.jsonl"), "--format", "json", "--no-save"])
    assert [c["output"] for c in json.loads(result.output)["cases"]] == ["user: Hi\nassistant: Hello\nAnd you?"]

"""The gateway captures what it served (PROMPTOPS_CAPTURE), redacted before it reaches disk."""

from __future__ import annotations

import json


def test_served_inputs_are_captured_redacted(make_client, repo, monkeypatch):
    monkeypatch.setenv("PROMPTOPS_CAPTURE", "support")
    client = make_client()
    secret = "mail ada@example.com key sk-abcdefghijklmnopqrstuvwx"
    answered = client.post("/v1/chat", json={"prompt": "support", "message": secret,
                                             "history": [{"role": "user", "content": "earlier"},
                                                         {"role": "assistant", "content": "ok"}]})
    client.__exit__(None, None, None)  # shutdown flushes the capture
    data = (repo.path / ".promptops" / "captures" / "support.jsonl").read_text()
    assert "ada@example.com" not in data and "sk-abcdef" not in data
    row = json.loads(data.splitlines()[0])
    assert (row["vars"]["user"], row["history"][0]["content"]) == ("mail [email] key [key]", "earlier")
    assert row["__captured"]["request_id"] == answered.headers["X-Request-Id"]

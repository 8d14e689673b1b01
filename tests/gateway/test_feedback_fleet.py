"""Two gateway replicas sharing one real PostgreSQL (Debian's server, started by tests/state/conftest.py)."""

from __future__ import annotations

import time

from tests.gateway.test_canary_serving import ask, canary  # noqa: F401 (a fixture)
from tests.state.conftest import pg_url, postgres  # noqa: F401 (fixtures)


def test_two_replicas_share_records_and_feedback(make_client, canary, pg_url):  # noqa: F811 (fixtures)
    replica_a, replica_b = make_client(state_url=pg_url, replica="a"), make_client(state_url=pg_url, replica="b")
    answered = ask(replica_a, "k3")
    request_id = answered.headers["X-Request-Id"]
    deadline = time.monotonic() + 5  # a's writer batches every 100 ms; feedback comes later in real life
    while (sent := replica_b.post("/v1/feedback", json={"request_id": request_id, "thumbs": "up"})).status_code == 404:
        assert time.monotonic() < deadline, sent.text
        time.sleep(0.05)
    assert sent.status_code == 200 and sent.json()["version"] == int(answered.headers["X-Prompt-Version"])
    seen_by_a = replica_a.app.state.service.state.feedback_of("support")  # written by b, read by a
    assert [(record.id, record.replica, feedback.score) for record, feedback in seen_by_a] == [(request_id, "a", 1.0)]

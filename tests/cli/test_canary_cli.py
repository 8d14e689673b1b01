"""`promptops canary status` on a repository with a canary label and a SQLite state store of seeded requests."""

from __future__ import annotations

import json

import pytest

from promptops.cli.canary import parse_since
from promptops.state import StateStore
from tests.cli.test_versions import run
from tests.conftest import GitRepo, prompt_doc
from tests.core.test_canary_status import served

LABELS = {"protected": ["production"],
          "labels": {"support": {"production": {"version": 1, "canary": {"version": 2, "weight": 10}}}}}


@pytest.fixture
def canary_repo(repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    """support v1 and v2, both approved; production serves v1 with v2 as a 10% canary; 400 requests each,
    40 of them rated."""
    monkeypatch.delenv("PROMPTOPS_STATE_URL", raising=False)
    for n in (1, 2):
        repo.commit({"prompts/support.json": prompt_doc(user=f"u{n}")}, f"v{n}")
        repo.git("tag", "-a", "-m", "ok", f"prompts/support/v{n}")
    repo.commit({"labels.json": LABELS}, "canary")
    old, new = served(1, 400, seed=1), served(2, 400, seed=2, is_canary=True, error_rate=0.15, shift_ms=200)
    with StateStore.open(None, repo.path) as state:
        for record in old + new:
            state.record(record)
        for i in range(40):  # thumbs: mostly up for v1, mostly down for v2
            state.add_feedback(old[i].id, float(i % 10 != 0))
            state.add_feedback(new[i].id, float(i % 10 == 0))
    return repo


def test_the_table_shows_each_measures_verdict(canary_repo: GitRepo) -> None:
    code, out, err = run("canary", "status", "support")
    rows = {line.split("\t")[0]: line.split("\t") for line in out.splitlines()}
    assert code == 0 and err.startswith("support production: v1, canary v2 at 10% (since ")
    assert rows["measure"] == ["measure", "v1 (primary)", "v2 (canary)", "test", "p-value", "verdict"]
    assert rows["error rate"][3:] == ["two-proportion z", "<0.0001", "significant: canary higher (worse)"]
    assert rows["latency ms p50 / p95"][5] == "significant: canary higher (worse)"
    assert rows["completion tokens mean"][5] == "no significant difference"
    assert rows["feedback score mean"][1:3] == ["0.90 (n=40)", "0.10 (n=40)"]
    assert rows["feedback score mean"][5] == "significant: canary lower (worse)"


def test_json_parses(canary_repo: GitRepo) -> None:
    code, out, _ = run("canary", "status", "support", "--format", "json", "--min-count", "500")
    document = json.loads(out)
    assert (code, document["weight"], document["primary"]["requests"], document["canary"]["version"]) == (0, 10, 400, 2)
    assert document["comparisons"][0]["verdict"] == "not enough data: primary has 400 and canary has 400 of the 500 needed"
    assert all(c["p_value"] is None and not c["significant"] for c in document["comparisons"])
    assert document["canary"]["feedback_count"] == 40


@pytest.mark.parametrize(("args", "code", "message"), [
    (("--label", "staging"), 1, "Error: prompt 'support' has no label staging\n"),
    (("--since", "yesterday"), 2, "'yesterday': use a span such as 24h, 7d or 30m, or an ISO date"),
])
def test_refusals(canary_repo: GitRepo, args: tuple[str, ...], code: int, message: str) -> None:
    result = run("canary", "status", "support", *args)
    assert result[0] == code and message in result[2]


@pytest.mark.parametrize(("text", "expected"), [("24h", 1_000_000 - 86400), ("30m", 1_000_000 - 1800),
                                                ("2w", 1_000_000 - 1_209_600), ("1970-01-12T13:46:40+00:00", 1e6)])
def test_parse_since(text: str, expected: float) -> None:
    assert parse_since(text, now=1_000_000) == expected

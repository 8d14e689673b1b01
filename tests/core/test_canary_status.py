"""promptops.canary.status: seeded differences are found, identical versions are not, small samples are not tested."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from promptops import canary
from promptops.state.records import Feedback, RequestRecord


def served(version: int, n: int, *, seed: int, is_canary: bool = False, error_rate: float = 0.02,
           shift_ms: float = 0.0, tokens: int = 120, at: float = 1000.0) -> list[RequestRecord]:
    """n records of `version`: latencies ~ N(800 + shift, 150) ms, TTFT a quarter of that, the given error rate."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        latency, ok = rng.gauss(800 + shift_ms, 150), rng.random() >= error_rate
        rows.append(RequestRecord(id=f"{version}-{is_canary}-{i}", at=at + i, prompt="support", version=version,
                                  label="production", canary=is_canary, endpoint="/v1/chat/completions", ok=ok,
                                  error=None if ok else "timeout", latency_ms=latency, ttft_ms=latency / 4,
                                  prompt_tokens=50, completion_tokens=tokens + rng.randint(-20, 20), replica="r1"))
    return rows


def rated(records: list[RequestRecord], up_share: float, seed: int) -> list[tuple[RequestRecord, Feedback]]:
    rng = random.Random(seed)
    return [(r, Feedback(request_id=r.id, score=float(rng.random() < up_share), comment=None, user=None, at=r.at + 5))
            for r in records]


def compare(canary_changes: dict[str, Any], up: tuple[float, float] = (0.8, 0.8), n: int = 400) -> canary.CanaryStatus:
    old, new = served(3, n, seed=1), served(4, n, seed=2, is_canary=True, **canary_changes)
    return canary.status(old + new, rated(old, up[0], 3) + rated(new, up[1], 4), primary=3, canary=4)


def by_measure(result: canary.CanaryStatus) -> dict[str, canary.Comparison]:
    return {c.measure: c for c in result.comparisons}


@pytest.mark.parametrize(("changes", "up", "measure", "verdict"), [
    ({"error_rate": 0.15}, (0.8, 0.8), "error rate", "significant: canary higher (worse)"),
    ({"shift_ms": 200}, (0.8, 0.8), "latency ms p50 / p95", "significant: canary higher (worse)"),
    ({"shift_ms": -200}, (0.8, 0.8), "TTFT ms p50", "significant: canary lower (better)"),
    ({"tokens": 160}, (0.8, 0.8), "completion tokens mean", "significant: canary higher"),
    ({}, (0.8, 0.5), "feedback score mean", "significant: canary lower (worse)"),
])
def test_a_seeded_difference_is_significant(changes: dict[str, Any], up: tuple[float, float], measure: str,
                                            verdict: str) -> None:
    found = by_measure(compare(changes, up))[measure]
    assert found.significant and found.p_value is not None and found.p_value < 1e-4
    assert found.verdict == verdict


def test_seeded_latency_and_error_rate_values() -> None:
    result = compare({"shift_ms": 200, "error_rate": 0.15})
    assert 0.01 < result.primary.error_rate < 0.03 and 0.12 < result.canary.error_rate < 0.18
    assert 150 < result.canary.latency_p50_ms - result.primary.latency_p50_ms < 250


def test_identical_distributions_are_not_significant() -> None:
    result = compare({})
    assert [(c.significant, c.verdict) for c in result.comparisons] == [(False, "no significant difference")] * 5
    assert all(c.p_value > 0.05 for c in result.comparisons)


@pytest.mark.parametrize(("n_canary", "rated_share", "verdict"), [
    (12, 1.0, "not enough data: canary has 12 of the 30 needed"),
    (400, 0.05, "not enough data: canary has 20 of the 30 needed"),
])
def test_below_min_count_is_not_tested(n_canary: int, rated_share: float, verdict: str) -> None:
    old, new = served(3, 400, seed=1), served(4, n_canary, seed=2, is_canary=True, error_rate=0.5)
    result = canary.status(old + new, rated(old, 0.8, 3) + rated(new[:round(n_canary * rated_share)], 0.1, 4),
                           primary=3, canary=4)
    found = by_measure(result)["feedback score mean"]
    assert (found.p_value, found.significant, found.verdict) == (None, False, verdict)


def test_both_sides_short_names_both() -> None:
    result = canary.status(served(3, 5, seed=1) + served(4, 3, seed=2, is_canary=True), [], primary=3, canary=4)
    assert by_measure(result)["error rate"].verdict == "not enough data: primary has 5 and canary has 3 of the 30 needed"


@pytest.mark.parametrize("share", [(0.8, 0.8), (0.8, 0.72), (0.5, 0.6)])
def test_u_on_thumbs_agrees_with_the_two_proportion_z_test(share: tuple[float, float]) -> None:
    rng = random.Random(7)
    old, new = ([float(rng.random() < s) for _ in range(300)] for s in share)
    u_p, z_p = canary.mann_whitney_u(old, new)[0], canary.two_proportion_z(old, new)[0]
    assert u_p == pytest.approx(z_p, rel=0.05, abs=2e-3)


def test_only_each_sides_own_records_in_the_canarys_window_count() -> None:
    old, new = served(3, 100, seed=1, at=0.0), served(4, 40, seed=2, is_canary=True, at=60.0)
    noise = served(4, 30, seed=5) + served(2, 30, seed=6, at=80.0) + served(3, 10, seed=7, is_canary=True)
    again = [(r, Feedback(request_id=f.request_id, score=0.0, comment=None, user=None, at=f.at + 1))
             for r, f in rated(new, 1.0, 4)]
    result = canary.status(old + new + noise, rated(new, 1.0, 4) + again, primary=3, canary=4)
    assert (result.primary.requests, result.canary.requests, result.since) == (40, 40, 60.0)
    assert (result.canary.feedback_count, result.canary.feedback_mean) == (40, 0.0)


def test_no_canary_reports_the_primary_alone() -> None:
    result = canary.status(served(3, 50, seed=1), [], primary=3, canary=None)
    assert result.canary is None and result.comparisons == () and result.columns()[1:3] == ("v3 (primary)",
                                                                                          "(no canary)")
    assert result.rows()[0] == ("requests", "50", "", "", "", "")


def test_rows_and_json() -> None:
    result = compare({"error_rate": 0.15})
    row = next(r for r in result.rows() if r[0] == "error rate")
    assert row[3:] == ("two-proportion z", "<0.0001", "significant: canary higher (worse)")
    assert row[2].endswith(f"({result.canary.errors}/400)")
    document = json.loads(json.dumps(result.to_dict()))
    assert document["canary"]["version"] == 4 and document["comparisons"][0]["test"] == "two-proportion z"

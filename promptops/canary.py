"""Comparing a label's canary with its primary: the measures per version and a test for each difference.

`status` takes the request records and the feedback the state store keeps (promptops.state) and the two
versions of one label, and returns per version: requests, errors and error rate, p50/p95 latency, p50
time to first token, mean completion tokens, feedback count and mean score; then, for each measure, the
canary against the primary with a p-value. Nothing here reads the store, the labels or the clock: the
CLI (`promptops canary status`) and the Viewer tab pass what they read.

Which records count. The primary's side is the requests its version answered as the primary (record
`canary` false), the canary's side those its version answered as the canary: a version that was the
primary last week and is the canary now is not mixed, and records of older primaries are left out. The
primary's records from before the canary's first request are dropped, so both sides cover the same
hours (traffic mix and load change over a day; a week of primary against an hour of canary would
compare the hours as much as the versions). Latency, TTFT and tokens are of the answers that succeeded:
a failure's latency says how fast it failed, and failures are counted by the error rate. Feedback
counts once per answer, with its latest score, whoever gave it: several people (or one caller under
several names) scoring one request add no evidence about the version, only weight to that request.

The tests, both two-sided, significant at p < 0.05 (ALPHA):
- error rate: the pooled two-proportion z-test (`errors/requests` on each side; p from the normal tail).
  Requests are many and the outcome is yes/no, which is that test's case.
- latency, TTFT, completion tokens, feedback scores: Mann-Whitney U. These are skewed (latency has a
  long tail, tokens are bounded by max_tokens) and t-tests on means are pulled by a few slow answers;
  U compares whole distributions by rank, with no assumption on their shape.
- thumbs: no separate thumbs-up-share test. Thumbs are stored as scores 1.0 and 0.0, and U on 0/1 data
  (with its tie correction) is the two-proportion z-test on the up share: the p-values agree to a few
  parts in a thousand (tests/core/test_canary_status.py checks it). One test on every score keeps
  graded scores (0.7) and thumbs in one number, and one test fewer means one false alarm fewer.

Below `min_count` observations on either side a measure is reported, not tested: "not enough data".
Read the p-values as a guide, not a proof: five tests on identical versions flag one at p < 0.05
about a fifth of the time, looking every hour until something is significant raises that further,
and one user's requests (sticky to one side) are not independent of each other.

scipy is imported inside the test functions: importing it costs ~0.3 s, which a command that never
compares should not pay.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from promptops.state.records import Feedback, RequestRecord
    from promptops.store.labels import Canary

ALPHA = 0.05
Z_TEST = "two-proportion z"
U_TEST = "Mann-Whitney U"
COLUMNS = ("measure", "test", "p-value", "verdict")  # with the two version columns after "measure"


@dataclass(frozen=True)
class VersionStats:
    """One version's measures over the compared records (None where it has no observation)."""

    version: int
    role: str  # "primary" | "canary"
    requests: int
    errors: int
    error_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    ttft_p50_ms: float | None
    completion_tokens_mean: float | None
    feedback_count: int
    feedback_mean: float | None


@dataclass(frozen=True)
class Comparison:
    """One measure, canary against primary: the values, the test, its p-value and what it means."""

    measure: str
    primary: float | None
    canary: float | None
    test: str
    n_primary: int
    n_canary: int
    p_value: float | None  # None: not tested (not enough data)
    significant: bool
    verdict: str


@dataclass(frozen=True)
class CanaryStatus:
    """A label's primary and canary (None when the label has none) and the comparisons between them."""

    primary: VersionStats
    canary: VersionStats | None
    comparisons: tuple[Comparison, ...]
    min_count: int
    since: float | None  # the start of the compared window (the canary's first request), unix seconds

    def to_dict(self) -> dict[str, Any]:
        return {"primary": asdict(self.primary), "canary": asdict(self.canary) if self.canary else None,
                "since": self.since, "min_count": self.min_count, "alpha": ALPHA,
                "comparisons": [asdict(c) for c in self.comparisons]}

    def columns(self) -> tuple[str, ...]:
        """The table's header: measure, vN (primary), vM (canary), test, p-value, verdict."""
        canary = f"v{self.canary.version} (canary)" if self.canary else "(no canary)"
        return (COLUMNS[0], f"v{self.primary.version} (primary)", canary, *COLUMNS[1:])

    def rows(self) -> list[tuple[str, ...]]:
        """One row of display text per measure (the CLI's and the Viewer's table)."""
        tested = {c.measure: c for c in self.comparisons}
        rows = [("requests", str(self.primary.requests), _text(self.canary, "requests"), "", "", "")]
        for measure, *_ in MEASURES:
            found = tested.get(measure)
            values = (_cell(measure, self.primary), _cell(measure, self.canary) if self.canary else "")
            if found is None:
                rows.append((measure, *values, "", "", ""))
            else:
                p = "" if found.p_value is None else "<0.0001" if found.p_value < 1e-4 else f"{found.p_value:.4f}"
                rows.append((measure, *values, found.test, p, found.verdict))
        return rows


# (measure, the test, the better direction: "lower", "higher" or None, the VersionStats value it shows)
MEASURES: tuple[tuple[str, str, str | None, str], ...] = (
    ("error rate", Z_TEST, "lower", "error_rate"),
    ("latency ms p50 / p95", U_TEST, "lower", "latency_p50_ms"),
    ("TTFT ms p50", U_TEST, "lower", "ttft_p50_ms"),
    ("completion tokens mean", U_TEST, None, "completion_tokens_mean"),
    ("feedback score mean", U_TEST, "higher", "feedback_mean"),
)


def status(records: Iterable[RequestRecord], feedback: Iterable[tuple[RequestRecord, Feedback]], *,
           primary: int, canary: int | None, min_count: int = 30) -> CanaryStatus:
    """Measure `primary` and `canary` (versions of one label) and test each difference.

    `records` are one label's request records and `feedback` (record, feedback) pairs, as
    StateStore.records and StateStore.feedback_of return them.
    """
    records = list(records)
    since = min((r.at for r in records if r.canary and canary is not None and r.version == canary), default=None)

    def side(record: RequestRecord) -> str | None:
        """Which side a request counts for (None: neither)."""
        if record.canary:
            return "canary" if canary is not None and record.version == canary else None
        return "primary" if record.version == primary and (since is None or record.at >= since) else None

    latest: dict[str, tuple[RequestRecord, Feedback]] = {}
    for record, given in feedback:
        key = given.request_id  # one vote per answer: several people scoring one request is not more evidence
        if key not in latest or given.at >= latest[key][1].at:
            latest[key] = (record, given)
    versions = {"primary": primary, "canary": canary}
    rows = {role: [r for r in records if side(r) == role] for role in versions}
    scores = {role: [given.score for record, given in latest.values() if side(record) == role] for role in versions}
    samples = {role: _samples(rows[role], scores[role]) for role in versions}
    stats = {role: _stats(version, role, rows[role], scores[role]) for role, version in versions.items()
             if version is not None}
    comparisons = () if canary is None else tuple(
        _compare(measure, test, better, samples["primary"][measure], samples["canary"][measure],
                 (getattr(stats["primary"], shown), getattr(stats["canary"], shown)), min_count)
        for measure, test, better, shown in MEASURES)
    return CanaryStatus(stats["primary"], stats.get("canary"), comparisons, min_count, since)


def heading(name: str, label: str, result: CanaryStatus, split: Canary | None) -> str:
    """`support production: v3, canary v4 at 10%` and the start of the compared window (local time)."""
    text = f"{name} {label}: v{result.primary.version}, " + (f"canary {split}" if split else "no canary")
    if result.since is not None:
        from datetime import datetime

        text += f" (since {datetime.fromtimestamp(result.since):%Y-%m-%d %H:%M}, the canary's first request)"
    return text


def _samples(records: Sequence[RequestRecord], scores: list[float]) -> dict[str, list[float]]:
    """Per measure, the observations a test compares (error rate: 1.0 per failed request, 0.0 per answer)."""
    ok = [r for r in records if r.ok]
    return {"error rate": [0.0 if r.ok else 1.0 for r in records],
            "latency ms p50 / p95": [r.latency_ms for r in ok if r.latency_ms is not None],
            "TTFT ms p50": [r.ttft_ms for r in ok if r.ttft_ms is not None],
            "completion tokens mean": [float(r.completion_tokens) for r in ok if r.completion_tokens is not None],
            "feedback score mean": scores}


def _stats(version: int, role: str, records: Sequence[RequestRecord], scores: list[float]) -> VersionStats:
    samples = _samples(records, scores)
    errors = sum(not r.ok for r in records)
    latency = samples["latency ms p50 / p95"]
    return VersionStats(version, role, len(records), errors, errors / len(records) if records else None,
                        _quantile(latency, 0.5), _quantile(latency, 0.95), _quantile(samples["TTFT ms p50"], 0.5),
                        _mean(samples["completion tokens mean"]), len(scores), _mean(scores))


def _quantile(values: list[float], q: float) -> float | None:
    """The q-quantile, linear between the two nearest observations (numpy's default)."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _compare(measure: str, test: str, better: str | None, primary: list[float], canary: list[float],
             shown: tuple[float | None, float | None], min_count: int) -> Comparison:
    short = [f"{side} has {len(values)}" for side, values in (("primary", primary), ("canary", canary))
             if len(values) < min_count]
    if short:
        verdict = f"not enough data: {' and '.join(short)} of the {min_count} needed"
        return Comparison(measure, *shown, test, len(primary), len(canary), None, False, verdict)
    p, direction = (two_proportion_z(primary, canary) if test == Z_TEST else mann_whitney_u(primary, canary))
    significant = p < ALPHA
    if not significant or direction is None:
        verdict = "no significant difference"
    else:
        judged = "" if better is None else " (better)" if direction == better else " (worse)"
        verdict = f"significant: canary {direction}{judged}"
    return Comparison(measure, *shown, test, len(primary), len(canary), p, significant, verdict)


def two_proportion_z(primary: Sequence[float], canary: Sequence[float]) -> tuple[float, str | None]:
    """(two-sided p, "higher"/"lower"/None for the canary's share) of 0/1 observations, pooled variance."""
    from scipy.stats import norm

    n1, n2 = len(primary), len(canary)
    p1, p2 = sum(primary) / n1, sum(canary) / n2
    pooled = (sum(primary) + sum(canary)) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:  # no failure (or only failures) on both sides: nothing differs
        return 1.0, None
    z = (p2 - p1) / se
    return float(2 * norm.sf(abs(z))), "higher" if z > 0 else "lower" if z < 0 else None


def mann_whitney_u(primary: Sequence[float], canary: Sequence[float]) -> tuple[float, str | None]:
    """(two-sided p, whether the canary's values tend to be "higher" or "lower") by Mann-Whitney U."""
    from scipy.stats import mannwhitneyu

    result = mannwhitneyu(canary, primary, alternative="two-sided")
    middle = len(canary) * len(primary) / 2  # U of the canary when neither side tends higher
    direction = "higher" if result.statistic > middle else "lower" if result.statistic < middle else None
    p = float(result.pvalue)
    return (1.0 if math.isnan(p) else p), direction


def _text(stats: VersionStats | None, attribute: str) -> str:
    return "" if stats is None else str(getattr(stats, attribute))


def _cell(measure: str, stats: VersionStats) -> str:
    """A version's value for the table: percentages, whole milliseconds, counts in brackets."""
    def number(value: float | None, digits: int = 0) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    if measure == "error rate":
        rate = "-" if stats.error_rate is None else f"{stats.error_rate * 100:.1f}%"
        return f"{rate} ({stats.errors}/{stats.requests})"
    if measure == "latency ms p50 / p95":
        return f"{number(stats.latency_p50_ms)} / {number(stats.latency_p95_ms)}"
    if measure == "TTFT ms p50":
        return number(stats.ttft_p50_ms)
    if measure == "completion tokens mean":
        return number(stats.completion_tokens_mean, 1)
    return f"{number(stats.feedback_mean, 2)} (n={stats.feedback_count})"

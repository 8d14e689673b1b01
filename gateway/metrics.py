"""Prometheus metrics of one app, in a registry of its own (tests build many apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Tiny echo requests take ~1 ms, real models seconds: buckets cover both.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# A wait in the Gate's line: 0 (no wait) in the first bucket, up to queue_wait_s (10 s by default) and past it.
QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """Requests, errors, latency, time to first token and tokens (prompt and completion, the model's counts),
    labelled by prompt, version, release label and endpoint.

    `label` is the release label that chose the version (`production` for a bare name, `staging` for
    `name@staging`) or "" for a pin: a handful of values per prompt, so cardinality stays that of versions.

    Two unlabelled series to scale on (docs/deployment.md "Scaling"): `in_flight`, the generations holding
    a slot now (taken and given back in `Service.generate`), and `queue_wait`, how long each generation
    that reached the server-wide Gate waited in its line (0 when a slot was free; a wait that ran out and
    was answered 429 counts too).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("prompt", "version", "label", "endpoint")
        self.requests = Counter("promptops_requests", "Generation requests answered.", labels,
                                registry=self.registry)
        self.errors = Counter("promptops_errors", "Generation requests that failed.", (*labels, "type"),
                              registry=self.registry)
        self.latency = Histogram("promptops_request_seconds", "Whole request time (to the last token).", labels,
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.ttft = Histogram("promptops_time_to_first_token_seconds", "Time to the first token.", labels,
                              buckets=LATENCY_BUCKETS, registry=self.registry)
        self.prompt_tokens = Counter("promptops_prompt_tokens", "Prompt tokens read (the model's own count).",
                                     labels, registry=self.registry)
        self.tokens = Counter("promptops_completion_tokens", "Tokens generated (the model's own count).", labels,
                              registry=self.registry)
        self.in_flight = Gauge("promptops_requests_in_flight", "Generations in flight now (streams included).",
                               registry=self.registry)
        self.queue_wait = Histogram("promptops_queue_wait_seconds",
                                    "Time a generation waited in line for a slot (0: no wait).",
                                    buckets=QUEUE_BUCKETS, registry=self.registry)

    def observe(self, prompt: str, version: str, label: str, endpoint: str, *, latency_s: float,
                ttft_s: float | None, prompt_tokens: int = 0, completion_tokens: int = 0,
                error: str | None = None) -> None:
        """Record one finished (or failed) request (`label`: the release label that chose the version, or "").

        Token counts are the model's (`num_input_tokens`/`num_output_tokens`); a request that failed or was
        cancelled before the model reported them adds none."""
        labels = (prompt, version, label, endpoint)
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(latency_s)
        if ttft_s is not None:
            self.ttft.labels(*labels).observe(ttft_s)
        if prompt_tokens:
            self.prompt_tokens.labels(*labels).inc(prompt_tokens)
        if completion_tokens:
            self.tokens.labels(*labels).inc(completion_tokens)
        if error is not None:
            self.errors.labels(*labels, error).inc()

"""Schemathesis against the gateway's own OpenAPI schema, over real HTTP, with a real Triton (echo model).

Every operation, positive and negative data, signed in as the owner (so writes get past the credential
check into validation and git): no 5xx, every refusal is a JSON `{"error": {"message"}}`,
and the gateway still answers /healthz afterwards. CI runs 12 cases per operation; the slow run 60.
(Driven with Hypothesis directly: schemathesis' pytest plugin does not support pytest 9 yet.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from gateway.app import create_app
from gateway.settings import GatewaySettings

SCHEMA = schemathesis.openapi.from_dict(create_app(GatewaySettings(repo=".", store_url=None), ui=False).openapi())
OPERATIONS = {op.label: op for op in (result.ok() for result in SCHEMA.get_all_operations())}
STATUSES: Counter[int] = Counter()


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    print(f"\nschemathesis: {sum(STATUSES.values())} cases, statuses {dict(sorted(STATUSES.items()))}")


def aimed(case: schemathesis.Case, ref: str | None) -> schemathesis.Case:
    """Half the cases name a prompt that exists, so they get past the lookup into render, Triton and git."""
    if ref is not None:
        if case.path_parameters and "name" in case.path_parameters:
            case.path_parameters["name"] = ref.partition("@")[0]
        if isinstance(case.body, dict):
            case.body.update({k: ref for k in ("prompt", "model") if k in case.body})
    return case


def fuzz(label: str, examples: int, base_url: str, authorization: str) -> None:
    # Both modes in one strategy: operations without parameters have no negative data at all.
    cases = st.one_of(*(OPERATIONS[label].as_strategy(mode) for mode in GenerationMode))

    @given(case=st.builds(aimed, cases, st.sampled_from([None, "support", "support@1", "support@head"])))
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, headers={"authorization": authorization}, timeout=30)
        STATUSES[response.status_code] += 1
        case.validate_response(response, checks=[not_a_server_error])
        if response.status_code >= 400:
            assert response.json()["error"]["message"], response.text

    run()


@pytest.mark.parametrize("label", OPERATIONS)
def test_no_server_errors(gateway, echo_server, label):
    client = gateway(echo_server.grpc_url, request_timeout_s=5)
    fuzz(label, 12, str(client.base_url), client.headers["authorization"])
    assert client.get("/healthz").status_code == 200


@pytest.mark.slow
@pytest.mark.parametrize("label", OPERATIONS)
def test_no_server_errors_long(gateway, echo_server, label):
    client = gateway(echo_server.grpc_url, request_timeout_s=5)
    fuzz(label, 60, str(client.base_url), client.headers["authorization"])
    assert client.get("/healthz").status_code == 200

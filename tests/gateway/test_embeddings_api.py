"""POST /v1/embeddings against a real Triton serving all-MiniLM-L6-v2 (and the official `openai` client)."""

from __future__ import annotations

import base64
import math
import struct

import openai
import pytest

from gateway.app import create_app
from gateway.server import ServerThread
from gateway.settings import GatewaySettings
from tests.triton.test_embeddings import CAT, CAT_TOO, MODEL, REVENUE, TEXTS, cosine, reference


@pytest.fixture
def client(make_client, embedding_server):
    """A gateway whose Triton is the embedding server."""
    return make_client(triton_url=embedding_server.grpc_url)


def test_a_list_of_texts_gives_vectors_in_order_with_the_models_token_counts(client, tmp_path_factory):
    response = client.post("/v1/embeddings", json={"model": MODEL, "input": list(TEXTS)})
    assert response.status_code == 200
    body = response.json()
    expected = reference(TEXTS, tmp_path_factory)
    assert (body["object"], body["model"]) == ("list", MODEL)
    assert [(row["object"], row["index"]) for row in body["data"]] == [("embedding", i) for i in range(len(TEXTS))]
    for row, want in zip(body["data"], expected, strict=True):
        assert max(abs(x - y) for x, y in zip(row["embedding"], want["embedding"], strict=True)) < 1e-4
    tokens = sum(row["tokens"] for row in expected)
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_a_single_string_gives_one_unit_vector(client, tmp_path_factory):
    body = client.post("/v1/embeddings", json={"model": MODEL, "input": CAT}).json()
    [row] = body["data"]
    assert len(row["embedding"]) == 384 and math.isclose(sum(x * x for x in row["embedding"]), 1, abs_tol=1e-5)
    assert body["usage"]["prompt_tokens"] == reference(TEXTS, tmp_path_factory)[0]["tokens"]


def test_base64_is_little_endian_float32(client):
    floats = client.post("/v1/embeddings", json={"model": MODEL, "input": CAT}).json()["data"][0]["embedding"]
    body = client.post("/v1/embeddings", json={"model": MODEL, "input": CAT, "encoding_format": "base64"}).json()
    raw = base64.b64decode(body["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == floats


@pytest.mark.parametrize("payload, status, kind", [
    ({"model": "nope", "input": "x"}, 404, "unknown_model"),
    ({"model": MODEL, "input": []}, 400, "prompt_ops_error"),
    ({"model": MODEL, "input": ["a", ""]}, 400, "prompt_ops_error"),
    ({"model": MODEL, "input": "x" * 10, "dimensions": 128}, 400, "prompt_ops_error"),
    ({"model": MODEL, "input": [[101, 102]]}, 422, "invalid_request"),
    ({"input": "x"}, 422, "invalid_request"),
])
def test_errors_follow_the_gateway_map(client, payload, status, kind):
    response = client.post("/v1/embeddings", json=payload)
    assert response.status_code == status
    assert response.json()["error"]["type"] == kind


def test_the_openai_client_gets_similar_vectors_for_similar_sentences(repo, prompts, embedding_server,
                                                                     tmp_path_factory):
    settings = GatewaySettings(repo=repo.path, triton_url=embedding_server.grpc_url, admin_token=None,
                               serve_drafts=False, store_url=None)
    with ServerThread(create_app(settings, ui=False)) as url:
        with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as oai:
            # The client asks for base64 and decodes it itself.
            result = oai.embeddings.create(model=MODEL, input=[CAT, CAT_TOO, REVENUE])
            with pytest.raises(openai.NotFoundError):  # 404: the caller named a model this Triton lacks
                oai.embeddings.create(model="nope", input="x")
    cat, cat_too, revenue = (row.embedding for row in result.data)
    assert cosine(cat, cat_too) > 0.7 and cosine(cat, revenue) < 0.4
    assert result.usage.prompt_tokens == sum(row["tokens"] for row in reference(TEXTS, tmp_path_factory)[:3])

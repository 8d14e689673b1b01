"""The embedding model (model_repository/all-minilm-l6-v2) on a real Triton, through the client's `embed`.

The reference vectors are computed by transformers itself in the serving environment, one text at a time
(no padding, plain mean over the tokens), so the model's batched, masked path is checked against it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from promptops.errors import ModelError, ModelNotFound, ServerUnavailable
from promptops.triton import launcher as triton
from promptops.triton.client import EMBED_BATCH, InferenceClient, run_sync
from tests.conftest import ask

MODEL = "all-minilm-l6-v2"
CAT, CAT_TOO, REVENUE = "The cat sat on the mat", "A cat is sitting on a mat", "Quarterly revenue grew 4%"
# Unicode and a text past the model's 256-token limit (counted after truncation) as well.
TEXTS = (CAT, CAT_TOO, REVENUE, "naïve café 🙂 — Zürich", "word " * 300)
PREPARE = triton.REPO_ROOT / "scripts" / "prepare_embeddings.py"

REFERENCE = r"""
import json, sys
import torch
from transformers import AutoModel, AutoTokenizer
sys.path.insert(0, sys.argv[1])
import prepare_embeddings as prep
repo = prep.repo_folder(prep.hf_home())
folder = repo / "snapshots" / (repo / "refs" / "main").read_text().strip()
tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
out = []
for text in json.load(sys.stdin):
    batch = tokenizer(text, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state[0]
    out.append({"embedding": torch.nn.functional.normalize(hidden.mean(dim=0), dim=0).tolist(),
                "tokens": int(batch["input_ids"].shape[1])})
json.dump(out, sys.stdout)
"""


def serve_python() -> Path:
    return triton.TritonConfig().python_env / "bin" / "python"


def reference(texts: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """[{"embedding", "tokens"}] per text, computed in-process by transformers in .venv-serve.

    Kept for the session in its temp folder: the gateway tests import this module under another name."""
    key = hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:16]
    path = tmp_path_factory.getbasetemp() / f"embedding-reference-{key}.json"
    if not path.exists():
        result = subprocess.run([str(serve_python()), "-c", REFERENCE, str(PREPARE.parent)],
                                input=json.dumps(texts), capture_output=True, text=True, timeout=300, check=True,
                                env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"})
        path.write_text(result.stdout)
    return json.loads(path.read_text())


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def embed(server: triton.TritonConfig | str, texts: list[str], model: str = MODEL, timeout_s: float = 60.0
          ) -> list[list[float]]:
    url = server if isinstance(server, str) else server.grpc_url
    return ask(url, lambda client: client.embed(model, texts), timeout_s).vectors


def test_similar_sentences_are_close_and_unrelated_ones_far(embedding_server):
    cat, cat_too, revenue = embed(embedding_server, [CAT, CAT_TOO, REVENUE])
    assert cosine(cat, cat_too) > 0.7
    assert cosine(cat, revenue) < 0.4


def test_vectors_have_384_dimensions_and_unit_length(embedding_server):
    for vector in embed(embedding_server, list(TEXTS)):
        assert len(vector) == 384
        assert math.isclose(math.fsum(x * x for x in vector), 1.0, abs_tol=1e-5)


def test_vectors_and_token_counts_equal_a_transformers_reference(embedding_server, tmp_path_factory):
    result = ask(embedding_server.grpc_url, lambda client: client.embed(MODEL, list(TEXTS)))
    expected = reference(TEXTS, tmp_path_factory)
    for got, want in zip(result.vectors, expected, strict=True):
        assert max(abs(x - y) for x, y in zip(got, want["embedding"], strict=True)) < 1e-4
    assert result.prompt_tokens == sum(row["tokens"] for row in expected)
    assert expected[-1]["tokens"] == 256  # the long text was cut to the model's limit, and counted so


def test_a_batch_of_three_equals_three_single_requests(embedding_server):
    batch = embed(embedding_server, [CAT, CAT_TOO, REVENUE])
    singles = [embed(embedding_server, [text])[0] for text in (CAT, CAT_TOO, REVENUE)]
    for got, want in zip(batch, singles, strict=True):
        assert max(abs(x - y) for x, y in zip(got, want, strict=True)) < 1e-5


def test_more_texts_than_one_request_holds_keep_their_order(embedding_server):
    texts = [f"sentence number {i} is about {'cats' if i % 2 else 'revenue'}" for i in range(2 * EMBED_BATCH + 3)]
    vectors = embed(embedding_server, texts)
    assert len(vectors) == len(texts)
    for index in (0, EMBED_BATCH, len(texts) - 1):
        assert cosine(vectors[index], embed(embedding_server, [texts[index]])[0]) > 0.99999


def test_concurrent_requests_each_get_their_own_vectors(embedding_server):
    texts = [f"request {i}: {text}" for i, text in enumerate(TEXTS * 2)]

    async def main():
        async with InferenceClient(embedding_server.grpc_url) as client:
            return await asyncio.gather(*(client.embed(MODEL, [text, text.upper()]) for text in texts))

    answers = run_sync(main())
    for text, (vector, upper) in zip(texts, (answer.vectors for answer in answers), strict=True):
        single = embed(embedding_server, [text])[0]
        assert cosine(vector, single) > 0.99999
        assert cosine(upper, single) > 0.99999  # the tokenizer lower-cases


def test_an_empty_list_sends_nothing():
    assert embed("127.0.0.1:1", []) == []


def test_an_unknown_model_is_model_not_found(embedding_server):
    with pytest.raises(ModelNotFound, match="'nope' is not served"):
        embed(embedding_server, ["x"], "nope")


def test_a_generation_model_is_not_an_embedding_model(echo_server):
    with pytest.raises(ModelError, match="'echo' is not an embedding model") as caught:
        embed(echo_server, ["x"], "echo")
    assert "all-minilm-l6-v2" in caught.value.fix


def test_server_down_is_server_unavailable():
    port = triton.free_ports(1)[0]
    with pytest.raises(ServerUnavailable):
        embed(f"127.0.0.1:{port}", ["x"], timeout_s=5)


def test_prepare_fills_the_hugging_face_cache_once(tmp_path):
    def prepare() -> Path:
        done = subprocess.run([str(serve_python()), str(PREPARE), "--quiet"], capture_output=True, text=True,
                              env={**os.environ, "PROMPTOPS_HF_HOME": str(tmp_path)}, timeout=120, check=True)
        return Path(done.stdout.strip())

    if not serve_python().exists():
        pytest.skip("no serving environment")
    folder = prepare()
    repo = tmp_path / "hub" / "models--sentence-transformers--all-MiniLM-L6-v2"
    assert folder == repo / "snapshots" / (repo / "refs" / "main").read_text()
    manifest = json.loads((folder / ".promptops-manifest.json").read_text())
    assert {"config.json", "model.safetensors", "tokenizer.json", "1_Pooling/config.json"} <= set(manifest["files"])
    (folder / "config.json").write_text("{}")  # damaged: unpacked again, to the same revision
    again = prepare()
    assert again == folder and json.loads((folder / "config.json").read_text())["hidden_size"] == 384

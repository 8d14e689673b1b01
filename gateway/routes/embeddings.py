"""OpenAI-compatible `POST /v1/embeddings`, answered by an embedding model on Triton.

`model` names a Triton model with the embedding contract (`model_repository/all-minilm-l6-v2`), not a
prompt: embeddings have no template. `input` is a string or a list of strings (token arrays are not
accepted); the answer is OpenAI's list of `embedding` objects in input order, each vector unit-length,
and `usage` counts the tokens the model's own tokenizer read (special tokens included, after its
truncation to 256 tokens). `encoding_format: "base64"` (what the `openai` Python client asks for by
default) sends each vector as base64 of little-endian float32, as OpenAI does.
"""

from __future__ import annotations

import base64
import struct
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.deps import service_of
from promptops.errors import ModelNotFound, NotAnEmbeddingModel, PromptOpsError, UnknownModel

router = APIRouter(prefix="/v1", tags=["openai"])

MAX_INPUTS = 2048  # OpenAI's limit per request


class EmbeddingRequest(BaseModel):
    """The OpenAI fields promptops honours; the others are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(..., min_length=1)
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None

    def texts(self) -> list[str]:
        """The inputs as a list, refused (400) when empty or over MAX_INPUTS."""
        texts = [self.input] if isinstance(self.input, str) else self.input
        if not texts:
            raise PromptOpsError("`input` is an empty list", fix="send a string or a non-empty list of strings")
        if len(texts) > MAX_INPUTS:
            raise PromptOpsError(f"`input` holds {len(texts)} texts, more than {MAX_INPUTS}",
                                 fix=f"send at most {MAX_INPUTS} texts per request")
        empty = next((i for i, text in enumerate(texts) if not text), None)
        if empty is not None:
            raise PromptOpsError(f"`input` text {empty} is empty", fix="send non-empty strings")
        return texts


def _encode(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


@router.post("/embeddings", response_model=None)
async def embeddings(body: EmbeddingRequest, request: Request) -> JSONResponse:
    """OpenAI Embeddings: one unit-length vector per input text, from `model` on Triton."""
    texts = body.texts()
    try:
        result = await service_of(request).client.embed(body.model, texts)
    except (ModelNotFound, NotAnEmbeddingModel) as exc:  # the caller chose the model: a client error
        raise UnknownModel(exc.message, fix="name an embedding model this server loads, e.g. all-minilm-l6-v2") \
            from None
    size = len(result.vectors[0])
    if body.dimensions is not None and body.dimensions != size:
        raise PromptOpsError(f"{body.model} gives {size}-dimensional vectors; `dimensions` {body.dimensions} "
                             "is not available", fix=f"leave `dimensions` out or set it to {size}")
    data: list[dict[str, Any]] = [{"object": "embedding", "index": index,
                                   "embedding": _encode(vector, body.encoding_format)}
                                  for index, vector in enumerate(result.vectors)]
    return JSONResponse({"object": "list", "data": data, "model": body.model,
                         "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}})

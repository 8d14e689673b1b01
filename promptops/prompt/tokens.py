"""A prompt's length in the model's own tokens, and whether it fits the model's context with its answer.

How vLLM counts, matched here: the backend hands the engine the rendered text (`{"prompt": text}`), and
the engine encodes it with the model's tokenizer, special tokens included (`add_special_tokens=True`, what
`tokenizer(text).input_ids` gives; tests/triton/test_vllm.py checks the engine's counts against it). The
engine refuses a prompt of `max_model_len` tokens or more; with no `max_tokens` it generates up to the rest
of the context, and a `max_tokens` past the context is cut short there without a word. So
:func:`check_fits` refuses, before Triton, a prompt that leaves no room for an answer and a prompt plus
`max_tokens` over the context (as vLLM's own OpenAI server does): a caller's mistake, answered as one.

- The tokenizer is `tokenizer.json` in the folder promptops/prompt/chat_template.py finds through the model's
  model.json (`tokenizer`, else `model`: a local folder, or a hub id's snapshot in the local Hugging Face
  cache: never downloaded from here), loaded with the `tokenizers` library (the Rust tokenizers transformers'
  fast tokenizers wrap; imported lazily, ~7 ms) with truncation and padding off, as transformers calls it.
- The context is model.json's `max_model_len` (:func:`model_context`).
- Both are read once per model per process (SmolLM2's tokenizer.json: ~50 ms). A model without either
  is not checked (None): a count is never guessed. A miss is looked up again after `RETRY_S`, so weights
  fetched while a server runs are picked up.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptops.errors import ContextTooLong, PromptOpsError

TOKENIZER_FILE = "tokenizer.json"
RETRY_S = 60.0  # how long a model without a tokenizer or context stays unchecked before looking again


def model_context(model: str, repositories: Iterable[Path]) -> int | None:
    """`max_model_len` of the newest version's `model.json` of `model`; None when absent or unreadable."""
    from promptops.prompt.chat_template import model_json_of

    try:
        value = json.loads(model_json_of(model, [Path(r) for r in repositories]).read_text(encoding="utf-8"))
        value = value.get("max_model_len")
    except (PromptOpsError, OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _tokenizer(model: str, repositories: Sequence[Path] | None) -> Any | None:
    """The model's `tokenizers.Tokenizer`, or None when it has none on this machine."""
    from promptops.prompt.chat_template import tokenizer_folder

    try:
        path = tokenizer_folder(model, repositories, download=False, files=(TOKENIZER_FILE,)) / TOKENIZER_FILE
        if not path.is_file():
            return None
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path))
    except Exception:  # noqa: BLE001 - no model.json, no cache entry, a file tokenizers cannot read: unchecked
        return None
    tokenizer.no_truncation()  # transformers turns both off for a plain call; a tokenizer.json may set them
    tokenizer.no_padding()
    return tokenizer


@dataclass(frozen=True)
class ModelTokens:
    """A model's tokenizer and context length (either None when unknown), as read once per process."""

    model: str
    tokenizer: Any | None = field(repr=False)
    context: int | None
    read_at: float = field(default=0.0, repr=False)

    def count(self, text: str) -> int | None:
        """The prompt tokens vLLM counts for `text` (special tokens included); None without a tokenizer."""
        return None if self.tokenizer is None else len(self.tokenizer.encode(text, add_special_tokens=True))

    def check_fits(self, text: str, max_tokens: int | None) -> int | None:
        """The prompt's token count, or ContextTooLong; None (nothing checked) without tokenizer or context."""
        if self.tokenizer is None or self.context is None:
            return None
        prompt, context = self.count(text) or 0, self.context
        if max_tokens is None and prompt < context:
            return prompt
        if max_tokens is not None and prompt + max_tokens <= context:
            return prompt
        where = f"the {context:,}-token context of {self.model}"
        if max_tokens is None:
            message = f"the prompt is {prompt:,} tokens, which leaves no room for an answer in {where}"
        else:
            message = f"the prompt is {prompt:,} tokens and asks for up to {max_tokens:,} more, over {where}"
        room = context - prompt
        fix = "send fewer history turns or a shorter message" + (
            f", or lower max_tokens (at most {room:,} fits)" if max_tokens is not None and room > 0 else "")
        raise ContextTooLong(message, fix=fix, prompt_tokens=prompt, max_tokens=max_tokens, context=context)


_cache: dict[tuple[Any, ...], ModelTokens] = {}
_lock = threading.Lock()


def for_model(model: str, repositories: Sequence[Path] | None = None) -> ModelTokens:
    """Model `model`'s tokenizer and context, read once per process and repositories (`repositories` default
    to the launcher's: PROMPTOPS_MODEL_REPOSITORY, else model_repository/)."""
    # Keyed by the variables that choose the default folders, as chat_template.for_model: this runs per request.
    key = (model, tuple(map(Path, repositories)) if repositories is not None else None,
           *(os.environ.get(name) for name in ("PROMPTOPS_MODEL_REPOSITORY", "PROMPTOPS_HF_HOME", "HF_HOME")))
    found = _cache.get(key)
    if found is None or ((found.tokenizer is None or found.context is None)
                         and time.monotonic() - found.read_at > RETRY_S):
        found = _read(model, repositories)
        with _lock:
            _cache[key] = found
    return found


def _read(model: str, repositories: Sequence[Path] | None) -> ModelTokens:
    from promptops.prompt.chat_template import _repositories

    try:
        where = _repositories(repositories)
    except PromptOpsError:  # a bad PROMPTOPS_* port variable: the launcher will say so; nothing is checked here
        return ModelTokens(model, None, None, time.monotonic())
    return ModelTokens(model, _tokenizer(model, where), model_context(model, where), time.monotonic())


def count(model: str, text: str, repositories: Sequence[Path] | None = None) -> int | None:
    """`text`'s length in model `model`'s own tokens; None when its tokenizer is not on this machine."""
    return for_model(model, repositories).count(text)


def check_fits(model: str, text: str, max_tokens: int | None, repositories: Sequence[Path] | None = None) -> int | None:
    """The prompt's token count when `text` plus up to `max_tokens` fits the model's context (None: the
    rest of the context, as vLLM does); raises ContextTooLong naming the numbers otherwise. None: the
    model's tokenizer or context length is unknown here, so nothing was checked."""
    return for_model(model, repositories).check_fits(text, max_tokens)


def clear_cache() -> None:
    """Forget every model's tokenizer and context (tests; a model folder changed on disk)."""
    with _lock:
        _cache.clear()


__all__ = ["ModelTokens", "check_fits", "clear_cache", "count", "for_model", "model_context"]

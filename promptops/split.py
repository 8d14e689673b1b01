"""Who gets a label's canary: a deterministic split of sticky keys, pure and stdlib only.

Each (prompt, label, sticky key) falls in a fixed bucket in [0, 100): the first 8 bytes of a
SHA-256 of the three, read as a fraction of 2**64. A key is served the canary when its bucket is
below the canary's weight, so

- the same key always gets the same answer (no state, the same on every replica and restart);
- raising the weight only moves keys to the canary, lowering it only moves keys back;
- a key's bucket differs per prompt and label, so one caller is not everyone's canary.

The sticky key is chosen by the edge (a signed-in user, `X-Prompt-Sticky`, the OpenAI `user`,
else the client address); a pinned ref (`NAME@N`) is never split.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from promptops.store.labels import Canary

_TOP = math.nextafter(100.0, 0.0)  # the largest bucket: int / 2**64 rounds to 1.0 for the top few ints


def bucket(prompt: str, label: str, key: str) -> float:
    """The key's bucket for this prompt and label, in [0, 100)."""
    # surrogatepass: a key is whatever a caller sent (an OpenAI `user` may hold a lone surrogate from JSON)
    digest = hashlib.sha256(f"{prompt}\0{label}\0{key}".encode("utf-8", "surrogatepass")).digest()
    return min(int.from_bytes(digest[:8], "big") / 2**64 * 100, _TOP)


def serves_canary(canary: Canary | None, prompt: str, label: str, key: str) -> bool:
    """True when `key` is served the canary (its bucket is below the canary's weight); False without one."""
    return canary is not None and bucket(prompt, label, key) < canary.weight

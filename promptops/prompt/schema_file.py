"""The prompt JSON Schema file itself: where it is and its parsed form (standard library only, no promptops
imports, so the output contract can read the schema's definitions without importing validation)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "prompt.schema.json"


@lru_cache(maxsize=1)
def schema_bytes() -> bytes:
    """The prompt JSON Schema's bytes (from `schemas/`, or the copy packaged with promptops)."""
    path = SCHEMA_PATH if SCHEMA_PATH.exists() else Path(__file__).with_name("prompt.schema.json")
    return path.read_bytes()


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The prompt JSON Schema, parsed."""
    return json.loads(schema_bytes())

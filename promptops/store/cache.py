"""A validation-result cache keyed by file stat, like ruff's: unchanged files are not re-read.

The key is (path, size, mtime_ns) under a header made of the schema's hash and
the promptops version, so a new schema or release invalidates everything.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from promptops import __version__
from promptops.errors import Problem
from promptops.files import atomic_write

CACHE_FILE = "validate-v1.json"


class ValidationCache:
    """Problems per file from earlier runs; `get` misses whenever the file's stat changed."""

    def __init__(self, directory: Path, schema_bytes: bytes) -> None:
        self.path = directory / CACHE_FILE
        self.header = f"{__version__}:{hashlib.sha256(schema_bytes).hexdigest()[:16]}"
        self.entries: dict[str, list] = {}
        self.dirty = False
        try:
            stored = json.loads(self.path.read_bytes())
            if stored.get("header") == self.header:
                self.entries = stored["entries"]
        except (OSError, ValueError, KeyError, AttributeError):
            pass  # a missing or corrupt cache is an empty one

    @staticmethod
    def _stamp(path: str) -> list[int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return [st.st_size, st.st_mtime_ns]

    def get(self, path: str, display: str) -> list[Problem] | None:
        """Cached problems for `path`, or None when it must be checked again."""
        entry = self.entries.get(display)
        if entry is None or entry[0] != self._stamp(path):
            return None
        return [Problem(**p) for p in entry[1]]

    def put(self, path: str, display: str, problems: list[Problem]) -> None:
        stamp = self._stamp(path)
        if stamp is not None:
            self.entries[display] = [stamp, [asdict(p) for p in problems]]
            self.dirty = True

    def save(self) -> None:
        """Write the cache atomically; failing to cache never fails validation."""
        if not self.dirty:
            return
        try:
            atomic_write(self.path, json.dumps({"header": self.header, "entries": self.entries}).encode())
        except OSError:
            pass

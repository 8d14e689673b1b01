"""`promptops` as a real process, with the echo model's test knob `delay_ms` let through (slow streams).

The gateway validates a request's `config` with the prompt schema, which does not know `delay_ms`;
this is the only change (the same one as test_stalls.py's `slow_echo` fixture, for a subprocess).
Usage: python slow_serve.py serve --triton-url URL --no-ui --port P
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from promptops import chat
from promptops.cli import main


def with_overrides(prompt: Any, overrides: Mapping[str, Any]) -> Mapping[str, Any]:
    return {**prompt.config, **overrides}


chat.with_overrides = with_overrides
raise SystemExit(main())

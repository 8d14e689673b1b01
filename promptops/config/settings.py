"""The one settings model: every `PROMPTOPS_*` variable, its type and default, declared once.

`Settings` (core: repository, model server, approval policy) and
`gateway.settings.GatewaySettings` (its subclass: the server) are frozen dataclasses, so a
value can be built directly in code and tests. :func:`from_env` fills them from the
environment through pydantic-settings (``promptops.settings_env``), which checks each value
and names the variable and the accepted forms when one is wrong (``PROMPTOPS_REFRESH='5min'
is not a duration: use 30, 30s, 5m, 1h or 250ms``).

Speed: importing pydantic-settings costs ~130 ms, more than a whole `promptops log`; when
no variable of the model is set there is nothing to parse, so :func:`from_env` returns the
declared defaults without importing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

ENV_PREFIX = "PROMPTOPS_"
Duration = Annotated[float, "duration"]  # seconds; written 30, 30s, 5m, 1h or 250ms


def find_repo_root(start: Path | None = None) -> Path:
    """The git toplevel above `start` (no git subprocess: this runs on every command)."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            return candidate
    return here


def _config_dir() -> Path:
    from promptops.config.users import config_dir

    return config_dir()


def env(name: str, **kwargs: Any) -> Any:
    """A field read from `PROMPTOPS_<name>` (default: the field name in upper case)."""
    return field(metadata={"env": name}, **kwargs)


@dataclass(frozen=True)
class Settings:
    """Where prompts live, which model server and model to use, and the approval policy."""

    repo: Path = field(default_factory=find_repo_root)
    prompts_dir: str = "prompts"
    branch: str | None = None
    triton_url: str | None = None  # None: the local Triton that `promptops triton up` starts
    default_model: str = env("MODEL", default="smollm2-135m")
    # "signed": an approval counts only when its SSH signature verifies against allowed_signers.
    approvals: Literal["any", "signed"] = "any"
    four_eyes: bool = False  # the author of a version may not approve it
    users_file: Path = field(default_factory=lambda: _config_dir() / "users.json")

    @property
    def signed_approvals(self) -> bool:
        return self.approvals == "signed"

    @property
    def prompts_path(self) -> Path:
        return self.repo / self.prompts_dir

    def with_(self: S, **changes: Any) -> S:
        """A copy with some fields changed."""
        return replace(self, **changes)


S = TypeVar("S", bound=Settings)


def env_name(item: Any) -> str:
    """The environment variable of a dataclass field."""
    return ENV_PREFIX + item.metadata.get("env", item.name.upper())


__all__ = ["Duration", "Settings", "env", "env_name", "find_repo_root"]

"""The one settings model: every `PROMPTOPS_*` variable, its type and default, declared once.

`Settings` (core: repository, model server, approval policy),
`gateway.settings.GatewaySettings` (its subclass: the server) and `TritonSettings` (the local
Triton server the launcher starts) are frozen dataclasses, so a value can be built directly in
code and tests. :func:`promptops.config.reader.from_env` fills them from the environment
through pydantic-settings, which checks each value and names the variable and the accepted
forms when one is wrong (``PROMPTOPS_REFRESH='5min' is not valid: use a duration: 30, 30s, 5m,
1h or 250ms``).

Speed: importing pydantic-settings costs ~130 ms, more than a whole `promptops log`; when
no variable of the model is set there is nothing to parse, so :func:`from_env` returns the
declared defaults without importing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

ENV_PREFIX = "PROMPTOPS_"
# Types read from a variable in their own way (promptops.config.reader), marked here.
Duration = Annotated[float, "duration"]  # seconds; written 30, 30s, 5m, 1h or 250ms
Port = Annotated[int, "port"]  # 1-65535
Paths = Annotated[tuple[Path, ...], "paths"]  # separated by os.pathsep (":" on Linux), `~` expanded
Names = Annotated[tuple[str, ...], "names"]  # comma-separated


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
    # gRPC host:port of the Triton to use. None (the one default, for the CLI and the gateway alike): the local
    # server of promptops/triton/launcher.py (`local_grpc_url`: where the runtime folder's server listens, else
    # 127.0.0.1 and PROMPTOPS_TRITON_GRPC_PORT, else 8001).
    triton_url: str | None = None
    default_model: str = env("MODEL", default="smollm2-135m")
    # "signed": an approval counts only when its SSH signature verifies against allowed_signers.
    approvals: Literal["any", "signed"] = "any"
    four_eyes: bool = False  # the author of a version may not approve it
    users_file: Path = field(default_factory=lambda: _config_dir() / "users.json")

    @property
    def signed_approvals(self) -> bool:
        return self.approvals == "signed"

    def with_(self: S, **changes: Any) -> S:
        """A copy with some fields changed."""
        return replace(self, **changes)


S = TypeVar("S", bound=Settings)


@dataclass(frozen=True)
class TritonSettings:
    """The local Triton server's variables, read by promptops/triton/launcher.py's `TritonConfig`.

    None: the variable is unset and the launcher's default applies (in its comment here). A port that is
    None is a default, which the launcher moves to a free port when it is taken; a port that is set is
    fixed: taken, it is an error naming its variable.
    """

    runtime_dir: Path | None = env("TRITON_DIR", default=None)  # <repo>/.promptops/triton: PID file, log, backends
    model_repositories: Paths | None = env("MODEL_REPOSITORY", default=None)  # <repo>/model_repository
    models: Names | None = env("TRITON_MODELS", default=None)  # launcher.DEFAULT_CPU_MODELS
    http_port: Port | None = env("TRITON_HTTP_PORT", default=None)  # 8000
    grpc_port: Port | None = env("TRITON_GRPC_PORT", default=None)  # 8001
    metrics_port: Port | None = env("TRITON_METRICS_PORT", default=None)  # 8002
    python_env: Path | None = env("SERVE_VENV", default=None)  # <repo>/.venv-serve: tritonserver, vLLM
    hf_home: Path | None = env("HF_HOME", default=None)  # else $HF_HOME, else ~/.cache/promptops/hf


def env_name(item: Any) -> str:
    """The environment variable of a dataclass field."""
    return ENV_PREFIX + item.metadata.get("env", item.name.upper())


__all__ = ["Duration", "Names", "Paths", "Port", "Settings", "TritonSettings", "env", "env_name", "find_repo_root"]

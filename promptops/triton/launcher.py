"""Start, watch and stop a local Triton server (the real `tritonserver` binary, CPU).

The binary, its Python backend and the backend stubs come from the
`nvidia-pytriton` wheel installed in the serving environment (`.venv-serve`,
made by `scripts/setup-serving.sh`). At start a backend directory is assembled
in the runtime folder (default `<repo>/.promptops/triton/`):

    backends/python/   Triton's Python backend + the stub for that env's Python
    backends/vllm/     promptops' CPU `vllm` backend (a Python-based backend)

The server runs in its own session (it outlives the CLI that started it); a
PID file and a log file in the runtime folder let any later process find it.
The PID file also names the server's *owner* when one was given to `up()` (the
`promptops serve` that started it and stops it on exit): a server whose owner
has died (a `serve` killed with SIGKILL) is reported as `orphaned`.
`promptops triton up` records no owner: its server runs until `triton down`.

When the server dies on its own (a crash, a SIGKILL), whoever finds it dead
(`TritonServer.check_exit`: the watcher of `promptops serve`, `status()`, `stop()`)
cleans up after it: the rest of its process group (the Python backend stubs,
vLLM's engine) is killed, the server is reaped when this process is its parent
(the stubs only exit once their parent is *gone*, and a zombie is not gone), the
server's own shared-memory regions are removed, and how it ended is written to
the PID file, where `status()` reads it.

Ports: a port set on purpose (its variable below, or a flag the CLI passes in
`TritonConfig.fixed_ports`) must be free, and the error names that setting. A
default port that is taken (8000 often is) is moved to a free one by `start()`,
which writes the ports it used into the config and the PID file.

Environment variables choose the defaults of :class:`TritonConfig` (each one is
what `promptops serve` uses for its embedded server); they are declared, with their types, in
the one settings model (`promptops.config.settings.TritonSettings`) and read through it:

    PROMPTOPS_TRITON_DIR          runtime folder (PID file, log, backends)
    PROMPTOPS_MODEL_REPOSITORY    model repositories, separated by os.pathsep
    PROMPTOPS_TRITON_MODELS       models to load, comma-separated
    PROMPTOPS_TRITON_HTTP_PORT / PROMPTOPS_TRITON_GRPC_PORT / PROMPTOPS_TRITON_METRICS_PORT
    PROMPTOPS_SERVE_VENV          serving environment (tritonserver, vLLM)
    PROMPTOPS_HF_HOME             the server's Hugging Face home (else HF_HOME, else ~/.cache/promptops/hf)

Models are named by hub id in `model.json`; the server runs with `HF_HUB_OFFLINE=1` and
`HF_HOME` set to that folder, where `scripts/setup-serving.sh` prepared the weights in the
hub's own cache layout (`scripts/prepare_weights.py`).

This module prints nothing and raises :class:`TritonLaunchError`.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

from promptops.config.reader import from_env
from promptops.config.settings import TritonSettings, env_name
from promptops.errors import PromptOpsError, TritonLaunchError

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # promptops/
REPO_ROOT = PACKAGE_DIR.parent
VLLM_BACKEND_SOURCE = PACKAGE_DIR / "triton" / "backend" / "vllm" / "model.py"
SAMPLING_SOURCE = PACKAGE_DIR / "prompt" / "sampling.py"  # the one sampling contract, copied beside the backend
# The models of model_repository/ loaded by default on a CPU. Not opt-125m: no registry ships its
# weights, so it serves only where the hub is reachable (model_repository/opt-125m/README.md).
# all-minilm-l6-v2 (embeddings, /v1/embeddings) adds ~0.5-1 s to a ~21 s start and ~0.5 GB (docs/deployment.md).
DEFAULT_CPU_MODELS: tuple[str, ...] = ("smollm2-135m", "all-minilm-l6-v2")
SETUP_HINT = "run scripts/setup-serving.sh"
# Variables that would move the hub cache away from $HF_HOME/hub: not passed to the server.
HF_CACHE_OVERRIDES = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE")
SHM_DIR = Path("/dev/shm")
SHM_BASE = "triton_python_backend_shm_region_"
# Each port field of TritonConfig and the variable that sets it (declared in TritonSettings), and its default.
PORT_VARIABLES: dict[str, str] = {item.name: env_name(item) for item in dataclass_fields(TritonSettings)
                                  if item.name.endswith("_port")}
DEFAULT_PORTS: dict[str, int] = {"http_port": 8000, "grpc_port": 8001, "metrics_port": 8002}
PORT_LABELS: dict[str, str] = {"http_port": "HTTP", "grpc_port": "gRPC", "metrics_port": "metrics"}
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def settings() -> TritonSettings:
    """The launcher's PROMPTOPS_* variables; a bad one is a TritonLaunchError naming it and its accepted forms."""
    try:
        return from_env(TritonSettings)
    except PromptOpsError as exc:
        raise TritonLaunchError(exc.message, fix=exc.fix) from None


def _setting(name: str, default: Any) -> Any:
    """A TritonConfig default: the variable's value (a path with `~` expanded), else `default`."""
    value = getattr(settings(), name)
    if value is None:
        return default
    return value.expanduser() if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value


def default_hf_home() -> Path:
    """PROMPTOPS_HF_HOME, else HF_HOME, else ~/.cache/promptops/hf (scripts/prepare_weights.py uses the same rule)."""
    value = settings().hf_home or os.environ.get("HF_HOME")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "promptops" / "hf"


@dataclass
class TritonConfig:
    """Everything needed to start (or find) one local server."""

    model_repositories: list[Path] = field(default_factory=lambda: _setting(
        "model_repositories", [REPO_ROOT / "model_repository"]))
    models: list[str] = field(default_factory=lambda: _setting("models", list(DEFAULT_CPU_MODELS)))
    http_port: int = field(default_factory=lambda: _setting("http_port", DEFAULT_PORTS["http_port"]))
    grpc_port: int = field(default_factory=lambda: _setting("grpc_port", DEFAULT_PORTS["grpc_port"]))
    metrics_port: int = field(default_factory=lambda: _setting("metrics_port", DEFAULT_PORTS["metrics_port"]))
    # The port fields chosen on purpose (by their variable, or a flag): start() refuses one that is taken.
    # The others are defaults, which start() moves to a free port when taken.
    fixed_ports: frozenset[str] = field(default_factory=lambda: frozenset(
        name for name in PORT_VARIABLES if getattr(settings(), name) is not None))
    # The calling command's flag for each port field, named in port errors next to the variable.
    port_flags: dict[str, str] = field(default_factory=dict)
    address: str = "127.0.0.1"
    runtime_dir: Path = field(default_factory=lambda: _setting("runtime_dir", REPO_ROOT / ".promptops" / "triton"))
    python_env: Path = field(default_factory=lambda: _setting("python_env", REPO_ROOT / ".venv-serve"))
    hf_home: Path = field(default_factory=default_hf_home)
    extra_args: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def grpc_url(self) -> str:
        """`host:port` for tritonclient.grpc."""
        return f"{self.address}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        """Base URL of the HTTP endpoint."""
        return f"http://{self.address}:{self.http_port}"

    def port_setting(self, name: str) -> str:
        """How a user changes port field `name`: `PROMPTOPS_TRITON_HTTP_PORT (or --triton-http-port)`."""
        flag = self.port_flags.get(name)
        return PORT_VARIABLES[name] + (f" (or {flag})" if flag else "")

    @property
    def pid_path(self) -> Path:
        return self.runtime_dir / "tritonserver.pid"

    @property
    def log_path(self) -> Path:
        return self.runtime_dir / "tritonserver.log"


@dataclass(frozen=True)
class ModelState:
    """One model as the server's repository index reports it."""

    name: str
    version: str
    state: str
    reason: str = ""


@dataclass(frozen=True)
class TritonExit:
    """How a server ended on its own (not through `stop()`), as recorded in its PID file."""

    pid: int
    how: str  # "killed by signal 9 (SIGKILL)", "exited with status 1", or why that is unknown
    cleaned: int  # processes of its group (Python backend stubs, their children) killed after it
    at: float

    def __str__(self) -> str:
        plural = "es" if self.cleaned != 1 else ""
        left = f"{self.cleaned} stub process{plural} cleaned up" if self.cleaned else "no stub process was left"
        return f"{self.how}; {left}"


@dataclass(frozen=True)
class TritonStatus:
    """What `status()` found: a PID file, a live process, a ready server, its models.

    `owner` is the PID of the process that started the server and will stop it
    (None: nobody owns it, e.g. `promptops triton up`); `orphaned` is True when
    the server runs but that owner has died. `exit` says how the PID file's
    server ended when it died on its own. The URLs are the PID file's while its
    server runs (`start()` may have moved a default port), else the config's.
    """

    running: bool
    ready: bool
    pid: int | None
    grpc_url: str
    http_url: str
    log_path: Path
    started_at: float | None = None
    models: tuple[ModelState, ...] = ()
    owner: int | None = None
    orphaned: bool = False
    exit: TritonExit | None = None


@dataclass(frozen=True)
class ServeEnvironment:
    """The parts of the serving Python environment the server needs."""

    python: Path
    tritonserver: Path
    python_backend: Path
    stub: Path
    libdir: str
    bundled_libs: Path


def locate(python_env: Path) -> ServeEnvironment:
    """Find tritonserver, the Python backend and the stub matching the env's Python."""
    python = python_env / "bin" / "python"
    if not python.exists():
        raise TritonLaunchError(f"serving environment {python_env} does not exist", fix=SETUP_HINT)
    probe = ("import sys, sysconfig, importlib.util as u; s = u.find_spec('pytriton'); "
             "print(sysconfig.get_config_var('LIBDIR')); print('%d.%d' % sys.version_info[:2]); "
             "print(list(s.submodule_search_locations)[0] if s else '')")
    try:
        out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True,
                             check=True, timeout=60).stdout.splitlines()
    except (OSError, subprocess.SubprocessError) as exc:
        raise TritonLaunchError(f"cannot run {python}: {exc}", fix=SETUP_HINT) from exc
    libdir, version, pytriton_dir = (out + ["", "", ""])[:3]
    if not pytriton_dir:
        raise TritonLaunchError(f"nvidia-pytriton is not installed in {python_env}", fix=SETUP_HINT)
    root = Path(pytriton_dir) / "tritonserver"
    env = ServeEnvironment(
        python=python,
        tritonserver=root / "bin" / "tritonserver",
        python_backend=root / "backends" / "python",
        stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
        libdir=libdir,
        bundled_libs=Path(pytriton_dir).parent / "nvidia_pytriton.libs",
    )
    for path in (env.tritonserver, env.python_backend / "libtriton_python.so", env.stub):
        if not path.exists():
            raise TritonLaunchError(f"{path} is missing from the serving environment", fix=SETUP_HINT)
    return env


def assemble_backends(runtime_dir: Path, env: ServeEnvironment) -> Path:
    """Build `<runtime>/backends` (python + stub, vllm) and return it.

    The backend files are copied: Triton refuses a backend library whose real
    path escapes the backend directory. The stub is a symlink: an executable's
    $ORIGIN is its real path, so its RPATH still finds the wheel's bundled
    libraries; the copied library finds them through LD_LIBRARY_PATH.
    """
    backends = runtime_dir / "backends"
    python_dir, vllm_dir = backends / "python", backends / "vllm"
    shutil.rmtree(backends, ignore_errors=True)
    python_dir.mkdir(parents=True)
    vllm_dir.mkdir(parents=True)
    for item in env.python_backend.iterdir():
        if item.name != "__pycache__":
            shutil.copy2(item, python_dir / item.name)
    (python_dir / env.stub.name).symlink_to(env.stub)
    shutil.copy2(VLLM_BACKEND_SOURCE, vllm_dir / "model.py")
    # The request contract (sampling keys, extra outputs): model.py loads it from beside itself.
    shutil.copy2(SAMPLING_SOURCE, vllm_dir / "sampling.py")
    return backends


def port_in_use(host: str, port: int) -> bool:
    """True when a TCP server cannot bind `host:port` because something else holds it.

    A bind test, not a connect: it also sees a port bound but not listening yet, and a gRPC
    server's SO_REUSEPORT socket (Triton's would otherwise share the port silently).
    SO_REUSEADDR as servers set it, so connections of a stopped server in TIME_WAIT do not count.
    Any other failure (an unknown host) is left to the server to report.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except OSError:
        return False
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def become_subreaper() -> bool:
    """Adopt this process's orphaned descendants (Linux PR_SET_CHILD_SUBREAPER); False where unsupported.

    A killed server's stubs are re-parented when it dies; with this they come to us, so
    `check_exit()` reaps them, instead of to PID 1, which in some containers never reaps (zombies).
    For a long-running owner of a server (`promptops serve`), not for a library caller.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _stat(pid: int | str) -> list[str]:
    """Fields 3.. of /proc/PID/stat (state, ppid, pgrp, ...), or [] when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _start_ticks(pid: int) -> int | None:
    """When a live (non-zombie) process started, in clock ticks since boot; None when it is gone."""
    fields = _stat(pid)
    return int(fields[19]) if len(fields) > 19 and fields[0] != "Z" else None


def _is_tritonserver(pid: int) -> bool:
    """True when `pid` is alive and is a tritonserver (guards against PID reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z" and b"tritonserver" in cmdline


def _group(pgid: int) -> dict[int, list[str]]:
    """Every process of process group `pgid`, zombies included, with its /proc stat fields."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(entry.name)
            if len(fields) > 2 and fields[2] == str(pgid):
                found[int(entry.name)] = fields
    return found


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group `pgid` (the server, its stubs, vLLM's engine)."""
    return [pid for pid, fields in _group(pgid).items() if fields[0] != "Z"]


def _group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process is in process group `pgid`."""
    return bool(_group_members(pgid))


def _end_group(pgid: int, timeout: float = 5.0) -> int:
    """SIGKILL what is left of a dead server's process group; return how many processes that was.

    Safe after the leader died: Linux does not reuse a PID while it names a live group.
    Returns once every one is dead and those re-parented to us (`become_subreaper`) are reaped.
    A multi-threaded process shows as a zombie before it can be reaped, and its own children
    come to us only when its last thread is gone, hence the polling.
    """
    members = [pid for pid in _group_members(pgid) if pid != pgid]
    if members:
        _kill(pgid, signal.SIGKILL, group=True)
    me = str(os.getpid())

    def settled() -> bool:
        left = {pid: fields for pid, fields in _group(pgid).items() if pid != pgid}
        for pid, fields in list(left.items()):
            if fields[0] == "Z" and fields[1] == me and _reap(pid) is not None:
                del left[pid]
        # Zombies of other parents (PID 1 where we are no subreaper) are not ours to wait for.
        return all(fields[0] == "Z" and fields[1] != me and int(fields[1]) not in left
                   for fields in left.values())

    _wait(settled, timeout)
    return len(members)


def _child_ended(process: subprocess.Popen[bytes]) -> bool:
    """True once our child has exited, without reaping it: its zombie keeps its PID (and group) ours."""
    if process.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _how_it_ended(returncode: int | None, log_path: Path) -> str:
    """How a server ended, from its exit status (known to its parent only), else from its log."""
    if returncode is None:  # not our child: only a fatal signal Triton caught leaves a trace, in its log
        found = re.findall(r"Signal \((\d+)\) received", _log_tail(log_path, 200))
        if not found:
            return "how it ended is unknown here (another process started it; see its log)"
        returncode = -int(found[-1])
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown"
        return f"killed by signal {-returncode} ({name})"
    return f"exited with status {returncode}"


def _owner_alive(owner: object) -> bool:
    """True when the PID file's `owner` ({"pid", "start"}) is still the same live process."""
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return False
    start = _start_ticks(owner["pid"])
    return start is not None and start == owner.get("start")


def _http_get(url: str, timeout: float = 1.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except (OSError, ValueError):
        return 0, b""


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class TritonServer:
    """One local server, identified by its runtime folder's PID file."""

    def __init__(self, config: TritonConfig | None = None) -> None:
        self.config = config or TritonConfig()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """The server's combined stdout/stderr."""
        return self.config.log_path

    def _read_pid_file(self) -> dict[str, object] | None:
        try:
            return json.loads(self.config.pid_path.read_text())
        except (OSError, ValueError):
            return None

    def _write_pid_file(self, info: dict[str, object]) -> None:
        tmp = self.config.pid_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(self.config.pid_path)

    def pid(self) -> int | None:
        """PID of this runtime folder's server when it is alive, else None."""
        info = self._read_pid_file()
        pid = info.get("pid") if info else None
        return pid if isinstance(pid, int) and _is_tritonserver(pid) else None

    def command(self, backends: Path, env: ServeEnvironment, shm_prefix: str) -> list[str]:
        """The tritonserver command line."""
        c = self.config
        cmd = [str(env.tritonserver)]
        cmd += [f"--model-repository={Path(repo).resolve()}" for repo in c.model_repositories]
        cmd += [f"--backend-directory={backends}", "--model-control-mode=explicit"]
        cmd += [f"--load-model={name}" for name in c.models]
        cmd += [f"--http-address={c.address}", f"--http-port={c.http_port}",
                f"--grpc-address={c.address}", f"--grpc-port={c.grpc_port}",
                f"--metrics-address={c.address}", f"--metrics-port={c.metrics_port}",
                "--allow-gpu-metrics=false", "--exit-on-error=true", "--strict-readiness=true",
                # A per-server prefix tells this server's shared memory apart from others'.
                f"--backend-config=python,shm-region-prefix-name={shm_prefix}"]
        return cmd + list(c.extra_args)

    def environment(self, env: ServeEnvironment) -> dict[str, str]:
        """The server's environment: the serving venv first, its libpython, offline vLLM on CPU."""
        c = self.config
        base = {k: v for k, v in os.environ.items()
                if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", *HF_CACHE_OVERRIDES)}
        # The stub's embedded Python uses the first python3 on PATH and its packages.
        base["PATH"] = f"{env.python.parent}{os.pathsep}{base.get('PATH', '/usr/bin:/bin')}"
        base["VIRTUAL_ENV"] = str(c.python_env)
        # Without the env's own libpython the system one is loaded against its stdlib.
        libs = [env.libdir, str(env.bundled_libs), base.get("LD_LIBRARY_PATH", "")]
        base["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in libs if p)
        base.update({
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
            "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
            # Hub ids in model.json resolve from $HF_HOME/hub, never from the network.
            "HF_HOME": str(c.hf_home),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        })
        base.update(c.extra_env)
        return base

    def _check_model_paths(self) -> None:
        """Fail early, with the fix, when a requested model's weights are not on this machine.

        `model` in model.json is a hub id (looked up in the offline cache under `hf_home`) or a
        local folder (absolute, or starting with `.`: relative to the version folder).
        """
        for name in self.config.models:
            found = [Path(r) / name for r in self.config.model_repositories if (Path(r) / name).is_dir()]
            if not found:
                raise TritonLaunchError(f"model {name!r} is in none of the model repositories",
                                        fix="check --model / the model repository paths")
            for model_json in found[0].glob("*/model.json"):
                try:
                    target = json.loads(model_json.read_text()).get("model", "")
                except (OSError, ValueError) as exc:
                    raise TritonLaunchError(f"cannot read {model_json}: {exc}") from exc
                if not isinstance(target, str) or not target:
                    raise TritonLaunchError(f"{model_json} names no model", fix='set "model" to a hub id')
                if target.startswith(("/", ".")):
                    path = (model_json.parent / target).resolve()
                    if not (path / "config.json").exists():
                        raise TritonLaunchError(f"weights of {name!r} are missing: {path}", fix=SETUP_HINT)
                elif hub_snapshot(self.config.hf_home, target) is None:
                    raise TritonLaunchError(
                        f"weights of {name!r} ({target}) are not in the offline Hugging Face cache "
                        f"{self.config.hf_home / 'hub'}",
                        fix=f"{SETUP_HINT} (it prepares the CPU models), or put {target} in that cache "
                            f"(PROMPTOPS_HF_HOME / HF_HOME) or choose another --model")

    def _place_ports(self) -> None:
        """Move each taken default port to a free one; a taken port that was set on purpose is an error."""
        c = self.config
        for name in PORT_VARIABLES:
            port = getattr(c, name)
            if not port_in_use(c.address, port):
                continue
            if name in c.fixed_ports:
                raise TritonLaunchError(
                    f"port {port} on {c.address} is already in use (Triton's {PORT_LABELS[name]} port)",
                    fix=f"stop whatever listens there, or set {c.port_setting(name)} to a free port")
            taken = {c.http_port, c.grpc_port, c.metrics_port}
            setattr(c, name, next(p for p in free_ports(4, c.address) if p not in taken))

    def start(self, owner: int | None = None) -> int:
        """Start the server in the background and return its PID (does not wait for ready).

        `owner`: the PID of the process that will stop the server (recorded in the PID
        file with its start time, so a later process can tell an orphan from a server in use).
        A taken default port is replaced by a free one in `self.config` (see the module doc).
        """
        c = self.config
        if self.pid() is not None:
            raise TritonLaunchError(f"a server from {c.runtime_dir} is already running (pid {self.pid()})",
                                    fix="stop it first (promptops triton down)")
        self._place_ports()
        env = locate(c.python_env)
        self._check_model_paths()
        c.runtime_dir.mkdir(parents=True, exist_ok=True)
        backends = assemble_backends(c.runtime_dir, env)
        shm_prefix = f"{SHM_BASE}promptops_{uuid.uuid4().hex[:12]}_"
        cmd = self.command(backends, env, shm_prefix)
        with c.log_path.open("wb") as log:
            try:
                self._process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL, env=self.environment(env),
                                                 cwd=c.runtime_dir, start_new_session=True)
            except OSError as exc:
                raise TritonLaunchError(f"cannot start {env.tritonserver}: {exc}") from exc
        info = {"pid": self._process.pid, "started_at": time.time(), "shm_prefix": shm_prefix,
                "grpc_url": c.grpc_url, "http_url": c.http_url, "models": c.models,
                "owner": None if owner is None else {"pid": owner, "start": _start_ticks(owner)}}
        self._write_pid_file(info)
        return self._process.pid

    def up(self, timeout: float = 180.0, on_tick: Callable[[float], None] | None = None,
           owner: int | None = None) -> TritonStatus:
        """Start the server and wait until it is ready; on failure stop it and raise.

        Whatever `on_tick` raises (e.g. a caller's "a stop signal arrived") also stops
        the server before it propagates. `owner`: see :meth:`start`.
        """
        try:
            self.start(owner=owner)
            self.wait_ready(timeout=timeout, on_tick=on_tick)
        except BaseException:
            if self._process is not None:  # this call started it (not "already running")
                self.stop(timeout=10.0)
            raise
        return self.status()

    def urls(self) -> tuple[str, str]:
        """(gRPC, HTTP) addresses: the PID file's while its server runs (start() may have moved a
        default port), else the config's."""
        info = self._read_pid_file() or {}
        grpc, http = info.get("grpc_url"), info.get("http_url")
        if isinstance(grpc, str) and isinstance(http, str) and self.pid() is not None:
            return grpc, http
        return self.config.grpc_url, self.config.http_url

    def is_ready(self) -> bool:
        """True when the HTTP health endpoint says ready."""
        return _http_get(f"{self.urls()[1]}/v2/health/ready", timeout=0.5)[0] == 200

    def wait_ready(self, timeout: float = 180.0, on_tick: Callable[[float], None] | None = None,
                   interval: float = 0.25) -> float:
        """Poll until ready; return the seconds waited. `on_tick(elapsed)` runs every poll.

        Raises TritonLaunchError (with the log's tail) if the server exits or time runs out.
        """
        started = time.monotonic()
        while True:
            elapsed = time.monotonic() - started
            if self.is_ready():
                return elapsed
            if self._exited():
                raise TritonLaunchError(
                    f"tritonserver exited during startup; last log lines:\n{_log_tail(self.log_path)}",
                    fix=f"see {self.log_path}")
            if elapsed > timeout:
                raise TritonLaunchError(
                    f"tritonserver not ready after {timeout:.0f} s; last log lines:\n"
                    f"{_log_tail(self.log_path)}", fix=f"see {self.log_path}")
            if on_tick is not None:
                on_tick(elapsed)
            time.sleep(interval)

    def _exited(self) -> bool:
        if self._process is not None:
            return self._process.poll() is not None
        return self.pid() is None

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM, then SIGKILL to the server's process group after `timeout`.

        Returns once the server and every process of its group (the Python
        stubs, vLLM's engine) are gone. Removes the PID file and this server's
        shared-memory files. Returns False when there was nothing to stop (what
        a dead server left behind is still cleaned up).
        """
        info = self._read_pid_file() or {}
        pid = self.pid()
        if pid is None and self._process is not None and not _child_ended(self._process):
            pid = self._process.pid  # started by this instance, PID file not written yet
        if pid is not None:
            _kill(pid, signal.SIGTERM)
            if not self._wait_gone(pid, timeout):
                _kill(pid, signal.SIGKILL, group=True)
                self._wait_gone(pid, 10.0)
            _reap(pid)
            _wait(lambda: not _group_alive(pid), 5.0)  # stubs left to exit on their own first
            _end_group(pid)
        else:
            self.check_exit()
        self._process = None
        _remove_shm(info)
        self.config.pid_path.unlink(missing_ok=True)
        return pid is not None

    def check_exit(self) -> TritonExit | None:
        """If the PID file's server has died on its own, clean up after it and say how it ended.

        None while it runs, or when there is no PID file. Once it is dead: the rest of its
        process group is killed, it is reaped when this process started it (no zombie), its
        shared-memory regions are removed, and the exit is recorded in the PID file (for
        `status()` in any process). Cheap and idempotent: a watcher may call it every second.
        """
        info = self._read_pid_file()
        pid = info.get("pid") if info else None
        if info is None or not isinstance(pid, int):
            return None
        ours = self._process if self._process is not None and self._process.pid == pid else None
        alive = not _child_ended(ours) if ours is not None else _is_tritonserver(pid)
        if alive:
            return None
        recorded = info.get("exit")
        previous = _exit_of(pid, recorded) if isinstance(recorded, dict) else None
        cleaned = _end_group(pid)
        if previous is not None and not cleaned and (ours is None or ours.returncode is not None):
            return previous  # nothing new since it was recorded
        # Reaping is what lets go of the server: a zombie still "exists" for its stubs' parent check.
        returncode = ours.wait() if ours is not None else _reap(pid)
        _remove_shm(info)
        if previous is not None and returncode is None:
            how = previous.how  # recorded by another process, which knew as little as this one
        else:
            how = _how_it_ended(returncode, self.log_path)
        ended = TritonExit(pid=pid, how=how, cleaned=cleaned + (previous.cleaned if previous else 0),
                           at=previous.at if previous else time.time())
        if self._read_pid_file() == info:  # not replaced meanwhile by a new server's start()
            self._write_pid_file({**info, "exit": {"how": ended.how, "cleaned": ended.cleaned, "at": ended.at}})
        return ended

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        if self._process is not None and self._process.pid == pid:
            process = self._process
            return _wait(lambda: process.poll() is not None, timeout)
        return _wait(lambda: not _is_tritonserver(pid), timeout)

    def status(self) -> TritonStatus:
        """PID file, liveness, readiness and the repository index (when reachable).

        A server found dead is cleaned up after first (:meth:`check_exit`), so the answer
        says how it ended.
        """
        c = self.config
        ended = self.check_exit()
        info = self._read_pid_file() or {}
        pid = self.pid()
        grpc_url, http_url = self.urls()
        ready = pid is not None and self.is_ready()
        models = _repository_index(http_url) if ready else ()
        started = info.get("started_at")
        owner = info.get("owner")
        owner_pid = owner.get("pid") if isinstance(owner, dict) else None
        return TritonStatus(running=pid is not None, ready=ready, pid=pid, grpc_url=grpc_url,
                            http_url=http_url, log_path=c.log_path,
                            started_at=float(started) if isinstance(started, (int, float)) else None,
                            models=models, owner=owner_pid if isinstance(owner_pid, int) else None,
                            orphaned=pid is not None and owner_pid is not None and not _owner_alive(owner),
                            exit=ended)


def _kill(pid: int, sig: int, group: bool = False) -> None:
    """Send `sig` to the process (or its whole group); a process already gone is fine."""
    try:
        (os.killpg if group else os.kill)(pid, sig)
    except ProcessLookupError:
        pass


def _wait(done: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `done()` until it is true (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def _reap(pid: int) -> int | None:
    """Collect `pid`'s exit status if it is our exited child (as a returncode: -9 for SIGKILL), else None."""
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status) if reaped else None


def _remove_shm(info: dict[str, object]) -> None:
    """Remove the shared-memory regions of the server a PID file describes (only its own prefix)."""
    prefix = info.get("shm_prefix")
    if isinstance(prefix, str) and prefix.startswith(SHM_BASE):
        for leftover in SHM_DIR.glob(f"{prefix}*"):
            leftover.unlink(missing_ok=True)


def _exit_of(pid: int, record: dict[str, object]) -> TritonExit:
    """The `exit` entry of a PID file, read defensively (it is a file anyone may edit)."""
    cleaned, at = record.get("cleaned"), record.get("at")
    return TritonExit(pid=pid, how=str(record.get("how", "exited")), cleaned=cleaned if isinstance(cleaned, int) else 0,
                      at=float(at) if isinstance(at, (int, float)) else 0.0)


def hub_snapshot(hf_home: Path, repo_id: str) -> Path | None:
    """The folder `refs/main` names for hub model `repo_id` under `hf_home`, when it holds a config.json."""
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    try:
        revision = (repo / "refs" / "main").read_text().strip()
    except OSError:
        return None
    snapshot = repo / "snapshots" / revision
    return snapshot if revision and (snapshot / "config.json").is_file() else None


def _repository_index(http_url: str) -> tuple[ModelState, ...]:
    request = urllib.request.Request(f"{http_url}/v2/repository/index", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=2.0) as response:
            rows = json.loads(response.read() or b"[]")
    except (OSError, ValueError):
        return ()
    return tuple(ModelState(name=r.get("name", ""), version=str(r.get("version", "")),
                            state=r.get("state", ""), reason=r.get("reason", "")) for r in rows)


def up(config: TritonConfig | None = None, timeout: float = 180.0,
       on_tick: Callable[[float], None] | None = None, owner: int | None = None) -> TritonStatus:
    """Start a server and wait until it is ready (see :meth:`TritonServer.up`)."""
    return TritonServer(config).up(timeout=timeout, on_tick=on_tick, owner=owner)


def down(config: TritonConfig | None = None, timeout: float = 30.0) -> bool:
    """Stop the server of this runtime folder; False when none was running."""
    return TritonServer(config).stop(timeout=timeout)


def status(config: TritonConfig | None = None) -> TritonStatus:
    """Status of the server of this runtime folder."""
    return TritonServer(config).status()


def local_grpc_url(config: TritonConfig | None = None) -> str:
    """Where this runtime folder's server takes gRPC (see :meth:`TritonServer.urls`)."""
    return TritonServer(config).urls()[0]


def free_ports(count: int = 3, address: str = "127.0.0.1") -> list[int]:
    """`count` distinct TCP ports that were free a moment ago (for tests and side-by-side servers)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((address, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


__all__: Sequence[str] = ("TritonConfig", "TritonServer", "TritonStatus", "TritonExit", "ModelState",
                          "ServeEnvironment", "DEFAULT_CPU_MODELS", "DEFAULT_PORTS", "PORT_VARIABLES", "settings",
                          "locate", "assemble_backends",
                          "up", "down", "status", "local_grpc_url", "free_ports", "port_in_use",
                          "become_subreaper")

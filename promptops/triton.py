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

Environment variables choose the defaults of :class:`TritonConfig` (each one is
what `promptops serve` uses for its embedded server):

    PROMPTOPS_TRITON_DIR          runtime folder (PID file, log, backends)
    PROMPTOPS_MODEL_REPOSITORY    model repositories, separated by os.pathsep
    PROMPTOPS_TRITON_MODELS       models to load, comma-separated
    PROMPTOPS_TRITON_HTTP_PORT / PROMPTOPS_TRITON_GRPC_PORT / PROMPTOPS_TRITON_METRICS_PORT
    PROMPTOPS_SERVE_VENV          serving environment (tritonserver, vLLM)
    PROMPTOPS_HF_HOME             the server's Hugging Face home (else HF_HOME, else ~/.cache/promptops/hf)

Models are named by hub id in `model.json`; the server runs with `HF_HUB_OFFLINE=1` and
`HF_HOME` set to that folder, where `scripts/setup-serving.sh` prepared the weights in the
hub's own cache layout (`serving/prepare_weights.py`).

This module prints nothing and raises :class:`TritonLaunchError`.
"""

from __future__ import annotations

import json
import os
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
from pathlib import Path

from promptops.errors import TritonLaunchError

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
VLLM_BACKEND_SOURCE = PACKAGE_DIR / "backends" / "vllm" / "model.py"
# The models of model_repository/ loaded by default on a CPU. Not opt-125m: no registry ships its
# weights, so it serves only where the hub is reachable (model_repository/opt-125m/README.md).
# all-minilm-l6-v2 (embeddings, /v1/embeddings) adds ~0.5-1 s to a ~21 s start and ~0.5 GB (docs/deployment.md).
DEFAULT_CPU_MODELS: tuple[str, ...] = ("smollm2-135m", "all-minilm-l6-v2")
SETUP_HINT = "run scripts/setup-serving.sh"
# Variables that would move the hub cache away from $HF_HOME/hub: not passed to the server.
HF_CACHE_OVERRIDES = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE")
SHM_DIR = Path("/dev/shm")
SHM_BASE = "triton_python_backend_shm_region_"


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else default


def default_hf_home() -> Path:
    """PROMPTOPS_HF_HOME, else HF_HOME, else ~/.cache/promptops/hf (serving/prepare_weights.py uses the same rule)."""
    value = os.environ.get("PROMPTOPS_HF_HOME") or os.environ.get("HF_HOME")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "promptops" / "hf"


def _env_paths(name: str, default: list[Path]) -> list[Path]:
    value = os.environ.get(name)
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p] if value else default


def _env_names(name: str, default: Sequence[str]) -> list[str]:
    value = os.environ.get(name)
    return [n.strip() for n in value.split(",") if n.strip()] if value else list(default)


def _env_port(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise TritonLaunchError(f"{name}={value!r} is not a port number", fix=f"set {name} to 1-65535 or unset it")
    return int(value)


@dataclass
class TritonConfig:
    """Everything needed to start (or find) one local server."""

    model_repositories: list[Path] = field(default_factory=lambda: _env_paths(
        "PROMPTOPS_MODEL_REPOSITORY", [REPO_ROOT / "model_repository"]))
    models: list[str] = field(default_factory=lambda: _env_names("PROMPTOPS_TRITON_MODELS", DEFAULT_CPU_MODELS))
    http_port: int = field(default_factory=lambda: _env_port("PROMPTOPS_TRITON_HTTP_PORT", 8000))
    grpc_port: int = field(default_factory=lambda: _env_port("PROMPTOPS_TRITON_GRPC_PORT", 8001))
    metrics_port: int = field(default_factory=lambda: _env_port("PROMPTOPS_TRITON_METRICS_PORT", 8002))
    address: str = "127.0.0.1"
    runtime_dir: Path = field(default_factory=lambda: _env_path("PROMPTOPS_TRITON_DIR",
                                                                REPO_ROOT / ".promptops" / "triton"))
    python_env: Path = field(default_factory=lambda: _env_path("PROMPTOPS_SERVE_VENV",
                                                               REPO_ROOT / ".venv-serve"))
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
class TritonStatus:
    """What `status()` found: a PID file, a live process, a ready server, its models.

    `owner` is the PID of the process that started the server and will stop it
    (None: nobody owns it, e.g. `promptops triton up`); `orphaned` is True when
    the server runs but that owner has died.
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
    shutil.copy2(PACKAGE_DIR / "sampling.py", vllm_dir / "sampling.py")
    return backends


def _port_in_use(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((address, port)) == 0


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


def _group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process is in process group `pgid` (the server's stubs, vLLM)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(entry.name)
            if len(fields) > 2 and fields[0] != "Z" and fields[2] == str(pgid):
                return True
    return False


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

    def start(self, owner: int | None = None) -> int:
        """Start the server in the background and return its PID (does not wait for ready).

        `owner`: the PID of the process that will stop the server (recorded in the PID
        file with its start time, so a later process can tell an orphan from a server in use).
        """
        c = self.config
        if self.pid() is not None:
            raise TritonLaunchError(f"a server from {c.runtime_dir} is already running (pid {self.pid()})",
                                    fix="stop it first (promptops down)")
        for port in (c.http_port, c.grpc_port, c.metrics_port):
            if _port_in_use(c.address, port):
                raise TritonLaunchError(f"port {port} on {c.address} is already in use",
                                        fix="stop whatever listens there or choose other ports")
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
        tmp = c.pid_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(c.pid_path)
        return self._process.pid

    def is_ready(self) -> bool:
        """True when the HTTP health endpoint says ready."""
        return _http_get(f"{self.config.http_url}/v2/health/ready", timeout=0.5)[0] == 200

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
        shared-memory files. Returns False when there was nothing to stop.
        """
        info = self._read_pid_file() or {}
        pid = self.pid()
        if pid is None and self._process is not None and self._process.poll() is None:
            pid = self._process.pid  # started by this instance, PID file not written yet
        if pid is not None:
            _kill(pid, signal.SIGTERM)
            if not self._wait_gone(pid, timeout):
                _kill(pid, signal.SIGKILL, group=True)
                self._wait_gone(pid, 10.0)
            _reap(pid)
            if not _wait(lambda: not _group_alive(pid), 5.0):
                _kill(pid, signal.SIGKILL, group=True)
                _wait(lambda: not _group_alive(pid), 5.0)
        if self._process is not None:
            self._process = None
        prefix = info.get("shm_prefix")
        if isinstance(prefix, str) and prefix.startswith(SHM_BASE):
            for leftover in SHM_DIR.glob(f"{prefix}*"):
                leftover.unlink(missing_ok=True)
        self.config.pid_path.unlink(missing_ok=True)
        return pid is not None

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        if self._process is not None and self._process.pid == pid:
            process = self._process
            return _wait(lambda: process.poll() is not None, timeout)
        return _wait(lambda: not _is_tritonserver(pid), timeout)

    def status(self) -> TritonStatus:
        """PID file, liveness, readiness and the repository index (when reachable)."""
        c = self.config
        info = self._read_pid_file() or {}
        pid = self.pid()
        ready = pid is not None and self.is_ready()
        models: tuple[ModelState, ...] = ()
        if ready:
            models = _repository_index(c.http_url)
        started = info.get("started_at")
        owner = info.get("owner")
        owner_pid = owner.get("pid") if isinstance(owner, dict) else None
        return TritonStatus(running=pid is not None, ready=ready, pid=pid, grpc_url=c.grpc_url,
                            http_url=c.http_url, log_path=c.log_path,
                            started_at=float(started) if isinstance(started, (int, float)) else None,
                            models=models, owner=owner_pid if isinstance(owner_pid, int) else None,
                            orphaned=pid is not None and owner_pid is not None and not _owner_alive(owner))


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


def _reap(pid: int) -> None:
    """Collect the exit status if the server was our child (another instance may have started it)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


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
    """Start a server and wait until it is ready; on failure stop it and raise.

    Whatever `on_tick` raises (e.g. a caller's "a stop signal arrived") also stops
    the server before it propagates. `owner`: see :meth:`TritonServer.start`.
    """
    server = TritonServer(config)
    try:
        server.start(owner=owner)
        server.wait_ready(timeout=timeout, on_tick=on_tick)
    except BaseException:
        if server._process is not None:  # this call started it (not "already running")
            server.stop(timeout=10.0)
        raise
    return server.status()


def down(config: TritonConfig | None = None, timeout: float = 30.0) -> bool:
    """Stop the server of this runtime folder; False when none was running."""
    return TritonServer(config).stop(timeout=timeout)


def status(config: TritonConfig | None = None) -> TritonStatus:
    """Status of the server of this runtime folder."""
    return TritonServer(config).status()


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


__all__: Sequence[str] = ("TritonConfig", "TritonServer", "TritonStatus", "ModelState", "ServeEnvironment",
                          "DEFAULT_CPU_MODELS", "locate", "assemble_backends", "up", "down", "status",
                          "free_ports")

"""Shared fixtures: real git repositories built from dicts of files."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from promptops.config.users import Users
from promptops.errors import TritonLaunchError
from promptops.triton import launcher as triton
from promptops.triton.client import Answer, InferenceClient, run_sync

T = TypeVar("T")

ECHO_REPOSITORY = Path(__file__).resolve().parent / "model_repository"

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada Author", "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Author", "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` and return its stdout (raises on failure)."""
    result = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                            env={**os.environ, **GIT_ENV})
    return result.stdout.strip()


class GitRepo:
    """A real repository in a temp dir; `commit({...})` writes files and commits them in one call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        git(path, "init", "-q", "-b", "main")
        git(path, "config", "user.name", "Ada Author")
        git(path, "config", "user.email", "ada@example.com")
        git(path, "config", "commit.gpgsign", "false")
        git(path, "config", "tag.gpgsign", "false")

    def write(self, files: dict[str, Any]) -> None:
        """Write files (dicts become prompt JSON; None deletes) without committing."""
        for rel, content in files.items():
            target = self.path / rel
            if content is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            text = content if isinstance(content, str | bytes) else json.dumps(content, indent=2) + "\n"
            target.write_bytes(text if isinstance(text, bytes) else text.encode())

    def commit(self, files: dict[str, Any], message: str = "change") -> str:
        """Write `files`, commit everything, return the commit SHA."""
        self.write(files)
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.path, "rev-parse", "HEAD")

    def git(self, *args: str) -> str:
        return git(self.path, *args)


@pytest.fixture(autouse=True)
def config_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh XDG_CONFIG_HOME (users file, local token) for every test: the real ~/.config is never touched."""
    home = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


@pytest.fixture
def users(config_home: Path) -> Users:
    """The users file the test gateways read (empty until a test adds people)."""
    return Users(config_home / "promptops" / "users.json")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitRepo]:
    """An empty git repository; the working directory is changed into it."""
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROMPTOPS_REPO", raising=False)
    yield GitRepo(tmp_path)


def prompt_doc(template: str = "{system}{user}", **fields: Any) -> dict[str, Any]:
    """A small valid prompt document (seed layout unless overridden)."""
    doc: dict[str, Any] = {"config": {"temperature": "1.0", "top_p": "0.95", "max_tokens": "256"},
                           "system": "", "user": "", "template": template}
    doc.update(fields)
    return doc


@pytest.fixture
def make_prompt() -> Callable[..., dict[str, Any]]:
    return prompt_doc


def require_serving() -> None:
    """Fail (or skip with PROMPTOPS_SKIP_SERVING=1) when the serving environment is missing."""
    try:
        triton.locate(triton.TritonConfig().python_env)
    except TritonLaunchError as exc:
        if os.environ.get("PROMPTOPS_SKIP_SERVING") == "1":
            pytest.skip(f"serving tests skipped (PROMPTOPS_SKIP_SERVING=1): {exc.message}")
        pytest.fail(f"{exc.message}: run scripts/setup-serving.sh "
                    "(or set PROMPTOPS_SKIP_SERVING=1 to skip the serving tests)", pytrace=False)


def _server(tmp: Path, repositories: list[Path], models: list[str]) -> Iterator[triton.TritonConfig]:
    require_serving()
    http, grpc, metrics = triton.free_ports(3)
    config = triton.TritonConfig(model_repositories=repositories, models=models, http_port=http,
                                 grpc_port=grpc, metrics_port=metrics, runtime_dir=tmp)
    triton.up(config, timeout=300)
    try:
        yield config
    finally:
        triton.down(config)


def ask(url: str, call: Callable[[InferenceClient], Awaitable[T]], timeout_s: float = 60.0) -> T:
    """`call(client)` on a fresh client of the Triton at `url`, blocking (the client is closed after)."""
    async def main() -> T:
        async with InferenceClient(url, timeout_s) as client:
            return await call(client)

    return run_sync(main())


def complete(url: str, model: str, prompt: str, sampling: dict[str, Any] | None = None, *, timeout_s: float = 60.0,
             logprobs: bool = False) -> Answer:
    """`InferenceClient.complete`, blocking."""
    return ask(url, lambda client: client.complete(model, prompt, sampling, logprobs=logprobs), timeout_s)


def stream(url: str, model: str, prompt: str, sampling: dict[str, Any] | None = None, *, timeout_s: float = 60.0,
           logprobs: bool = False) -> list[str | Answer]:
    """Every event of `InferenceClient.stream`, blocking: the text deltas, then the Answer."""
    async def collect(client: InferenceClient) -> list[str | Answer]:
        return [event async for event in client.stream(model, prompt, sampling, logprobs=logprobs)]

    return ask(url, collect, timeout_s)


@pytest.fixture(scope="session")
def echo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[triton.TritonConfig]:
    """A real Triton serving only the deterministic echo model (one for the whole session)."""
    yield from _server(tmp_path_factory.mktemp("triton-echo"), [ECHO_REPOSITORY], ["echo"])


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[triton.TritonConfig]:
    """A real Triton serving the embedded SmolLM2 model through the CPU vllm backend."""
    yield from _server(tmp_path_factory.mktemp("triton-vllm"),
                       [triton.REPO_ROOT / "model_repository"], ["smollm2-135m"])


@pytest.fixture(scope="session")
def embedding_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[triton.TritonConfig]:
    """A real Triton serving only the all-MiniLM-L6-v2 embedding model (Python backend, transformers on CPU)."""
    yield from _server(tmp_path_factory.mktemp("triton-embeddings"),
                       [triton.REPO_ROOT / "model_repository"], ["all-minilm-l6-v2"])


def echo_twin(folder: Path, name: str = "echo-b") -> Path:
    """A model repository in `folder` serving the echo model under another name (a two-model matrix).

    model.py is linked, not copied: it finds promptops/prompt/sampling.py from its own resolved path.
    """
    model = folder / name
    (model / "1").mkdir(parents=True)
    config = (ECHO_REPOSITORY / "echo" / "config.pbtxt").read_text().replace('name: "echo"', f'name: "{name}"')
    (model / "config.pbtxt").write_text(config)
    (model / "1" / "model.py").symlink_to(ECHO_REPOSITORY / "echo" / "1" / "model.py")
    return folder


@pytest.fixture(scope="session")
def evaluation_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[triton.TritonConfig]:
    """A real Triton serving echo, the same echo as `echo-b`, and the all-MiniLM-L6-v2 embeddings model."""
    tmp = tmp_path_factory.mktemp("triton-evaluation")
    twins = echo_twin(tmp / "models")
    yield from _server(tmp, [ECHO_REPOSITORY, twins, triton.REPO_ROOT / "model_repository"],
                       ["echo", "echo-b", "all-minilm-l6-v2"])


@pytest.fixture(scope="session")
def judge_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[triton.TritonConfig]:
    """A real Triton serving echo (answers to judge) and SmolLM2 through vLLM (the judge of llm-rubric)."""
    yield from _server(tmp_path_factory.mktemp("triton-judge"),
                       [ECHO_REPOSITORY, triton.REPO_ROOT / "model_repository"], ["echo", "smollm2-135m"])

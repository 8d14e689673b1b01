"""The served model's own chat template, found from its Triton model folder and applied like transformers.

A chat prompt (`messages`) is rendered by the Jinja chat template that ships with the model's
tokenizer, so one prompt file fits every model family. The rules below are read from
transformers (`utils/chat_template_utils.py`, `tokenization_utils_base.py`, 4.4x-5.x) and
re-implemented here: transformers is not in the app environment and costs seconds to import.

- The template is the tokenizer folder's `chat_template.jinja` when there is one (it wins),
  else `tokenizer_config.json`'s `chat_template` (a string, or named templates: "default").
- Jinja's `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)` with the
  `loopcontrols` extension and the `{% generation %}` block tag (it only marks assistant text
  for training masks, so here it renders its body); `tojson` is `json.dumps(ensure_ascii=False)`
  (Jinja's own escapes HTML); globals `raise_exception(message)` and `strftime_now(format)`.
- Variables: the named special tokens (`bos_token`, `eos_token`, `unk_token`, `sep_token`,
  `pad_token`, `cls_token`, `mask_token`) from tokenizer_config.json, then `messages`,
  `tools=None`, `documents=None` and `add_generation_prompt`. The output is not stripped.

Where the tokenizer lives: `model_repository/<model>/<version>/model.json`'s `tokenizer` (else
`model`) key, read as the vLLM backend reads it: a local folder (absolute, or starting with `.`:
relative to the version folder) or a hub id such as `HuggingFaceTB/SmolLM2-135M-Instruct`, found
in the Hugging Face cache the launcher gives the server (`TritonConfig.hf_home`), then `$HF_HOME`,
then huggingface_hub's default, and downloaded only when it is in none of them and
`HF_HUB_OFFLINE` is not set. The cache's `refs/main` snapshot is read directly first: importing
huggingface_hub costs ~200 ms, more than a whole `promptops render`. Each model's template is
read once per process; jinja2 and huggingface_hub are imported lazily. That rule is
:func:`tokenizer_folder`; promptops/prompt/tokens.py finds the model's `tokenizer.json` through it too.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from promptops.errors import TemplateError

TEMPLATE_FILE = "chat_template.jinja"
TOKENIZER_CONFIG = "tokenizer_config.json"
SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


class ChatTemplateError(TemplateError):
    """A model without a usable chat template, or a template that fails on the messages."""


@dataclass(frozen=True)
class ChatTemplate:
    """A model's chat template and its special tokens; `origin` says where it was read."""

    source: str
    special_tokens: Mapping[str, str] = field(default_factory=dict)
    origin: str = "<inline>"

    @property
    def supports_tools(self) -> bool:
        """Whether the template reads `tools` (transformers passes a prompt's tools only to such templates)."""
        return "tools" in self.source

    def apply(self, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = True,
              tools: Sequence[Mapping[str, Any]] | None = None) -> str:
        """The prompt text for `messages` (and OpenAI `tools`), as transformers'
        `apply_chat_template(tokenize=False)` gives it."""
        import jinja2

        compiled = _compile(self.source, self.origin)
        try:
            return compiled.render(messages=[dict(m) for m in messages], tools=list(tools) if tools else None,
                                   documents=None,
                                   add_generation_prompt=add_generation_prompt, **self.special_tokens)
        except jinja2.TemplateError as exc:
            raise ChatTemplateError(f"the chat template of {self.origin} failed: {exc}",
                                    fix="check the prompt's message roles and order (many templates want "
                                        "system first, then user and assistant alternating)") from None


@lru_cache(maxsize=32)
def _compile(source: str, origin: str) -> Any:
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(jinja2.ext.Extension):
        """`{% generation %}...{% endgeneration %}` renders its body (transformers uses it for masks)."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return str(caller())

    def raise_exception(message: str) -> None:
        raise jinja2.TemplateError(message)

    def tojson(value: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
               sort_keys: bool = False) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(source)
    except jinja2.TemplateError as exc:
        raise ChatTemplateError(f"the chat template of {origin} does not compile: {exc}",
                                fix="fix the model's chat_template.jinja (or tokenizer_config.json)") from None


def _token(value: Any) -> str | None:
    if isinstance(value, dict):  # an AddedToken as older tokenizer configs serialise it
        value = value.get("content")
    return value if isinstance(value, str) else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ChatTemplateError(f"cannot read {path}: {exc}", fix="restore the tokenizer files") from None
    return data if isinstance(data, dict) else {}


def from_folder(folder: Path | str) -> ChatTemplate:
    """The chat template of a tokenizer folder (`chat_template.jinja` or `tokenizer_config.json`)."""
    folder = Path(folder)
    config_path = folder / TOKENIZER_CONFIG
    config = _read_json(config_path) if config_path.is_file() else {}
    tokens = {name: token for name in SPECIAL_TOKENS if (token := _token(config.get(name))) is not None}
    if (folder / TEMPLATE_FILE).is_file():
        return ChatTemplate((folder / TEMPLATE_FILE).read_text(encoding="utf-8"), tokens, str(folder / TEMPLATE_FILE))
    source = config.get("chat_template")
    if isinstance(source, list):  # named templates: [{"name": "default", "template": "..."}, ...]
        source = {t.get("name"): t.get("template") for t in source if isinstance(t, dict)}.get("default")
    if not isinstance(source, str) or not source:
        raise ChatTemplateError(f"no chat template in {folder} (neither {TEMPLATE_FILE} nor a "
                                f"chat_template in {TOKENIZER_CONFIG})",
                                fix="use an instruct/chat model, add its chat template to the tokenizer folder, "
                                    "or write the prompt with `template` instead of `messages`")
    return ChatTemplate(source, tokens, str(config_path))


def _hf_homes() -> list[Path | None]:
    """Hugging Face homes to look in: the server's (the launcher's rule), $HF_HOME, huggingface_hub's default."""
    from promptops.triton.launcher import default_hf_home

    homes: list[Path | None] = [default_hf_home()]
    if os.environ.get("HF_HOME"):
        homes.append(Path(os.environ["HF_HOME"]).expanduser())
    return [*dict.fromkeys(homes), None]  # None: huggingface_hub's own default


def _main_snapshot(home: Path, repo_id: str, files: Sequence[str] = (TEMPLATE_FILE, TOKENIZER_CONFIG)) -> Path | None:
    """`<home>/hub/models--ORG--NAME/snapshots/<refs/main>` when it holds one of `files`."""
    repo = home / "hub" / ("models--" + repo_id.replace("/", "--"))
    try:
        snapshot = repo / "snapshots" / (repo / "refs" / "main").read_text().strip()
    except OSError:
        return None
    return snapshot if any((snapshot / f).is_file() for f in files) else None


def hub_folder(repo_id: str, hf_homes: Iterable[Path | None] | None = None, download: bool | None = None,
               files: Sequence[str] = (TEMPLATE_FILE, TOKENIZER_CONFIG)) -> Path:
    """The local snapshot folder of hub model `repo_id` holding one of `files` (the tokenizer files to read):
    from the local Hugging Face cache, else downloaded where allowed (`download` None: unless HF_HUB_OFFLINE)."""
    homes = list(_hf_homes() if hf_homes is None else hf_homes)
    for home in homes:
        if home is not None and (snapshot := _main_snapshot(home, repo_id, files)) is not None:
            return snapshot
    from huggingface_hub import constants, snapshot_download

    patterns = list(files)
    for home in homes:
        try:
            folder = snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True,
                                       cache_dir=home / "hub" if home else None)
        except Exception:  # noqa: BLE001 - not in this cache (huggingface_hub raises several kinds)
            continue
        return Path(folder)
    where = ", ".join(str(h) if h else "the default Hugging Face cache" for h in homes)
    if download is None:
        download = not constants.HF_HUB_OFFLINE
    if not download:
        raise ChatTemplateError(f"the tokenizer of {repo_id} is not in {where} and downloads are off (HF_HUB_OFFLINE)",
                                fix="run scripts/setup-serving.sh, or unset HF_HUB_OFFLINE to download it")
    home = homes[0]
    try:
        folder = snapshot_download(repo_id, allow_patterns=patterns, cache_dir=home / "hub" if home else None)
    except Exception as exc:  # noqa: BLE001 - network, auth and not-found errors all mean the same here
        raise ChatTemplateError(f"cannot download the tokenizer of {repo_id}: {exc}",
                                fix="check the hub id in model.json and the network, or fill the cache") from None
    return Path(folder)


def from_hub(repo_id: str, hf_homes: Iterable[Path | None] | None = None, download: bool | None = None) -> ChatTemplate:
    """The chat template of a hub model: from the local Hugging Face cache, else downloaded where allowed."""
    return from_folder(hub_folder(repo_id, hf_homes, download))


def model_json_of(model: str, repositories: Sequence[Path]) -> Path:
    """The newest numbered version's model.json of `model` in the first repository that has it."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", model):
        raise ChatTemplateError(f"{model!r} is not a Triton model name", fix="name a folder of model_repository/")
    for repository in repositories:
        found = [p for p in Path(repository, model).glob("*/model.json") if p.parent.name.isdigit()]
        if found:
            return max(found, key=lambda p: int(p.parent.name))
    where = ", ".join(map(str, repositories)) or "no repository"
    raise ChatTemplateError(f"model {model!r} has no model.json in {where}",
                            fix="set the prompt's `model` to a folder of model_repository/ (or of "
                                "PROMPTOPS_MODEL_REPOSITORY)")


def _repositories(repositories: Sequence[Path] | None) -> tuple[Path, ...]:
    from promptops.triton.launcher import TritonConfig

    return tuple(map(Path, repositories if repositories is not None else TritonConfig().model_repositories))


def tokenizer_folder(model: str, repositories: Sequence[Path] | None = None, *, download: bool | None = None,
                     files: Sequence[str] = (TEMPLATE_FILE, TOKENIZER_CONFIG)) -> Path:
    """The folder holding Triton model `model`'s tokenizer, found through its model.json (`tokenizer`, else
    `model`): a local folder, or a hub id's snapshot holding one of `files` (see :func:`hub_folder`).

    `repositories` default to the launcher's (`PROMPTOPS_MODEL_REPOSITORY`, else model_repository/).
    Raises ChatTemplateError when there is no model.json, no target, or no such folder.
    """
    model_json = model_json_of(model, _repositories(repositories))
    engine = _read_json(model_json)
    target = engine.get("tokenizer") or engine.get("model")
    if not isinstance(target, str) or not target:
        raise ChatTemplateError(f"{model_json} names no model", fix='set "model" to a hub id or a local folder')
    if target.startswith(("/", ".")):  # a local folder, as the vLLM backend resolves it
        folder = (model_json.parent / target).resolve()
        if not folder.is_dir():
            raise ChatTemplateError(f"the tokenizer of model {model!r} is not found: {folder} (from {model_json})",
                                    fix="run scripts/setup-serving.sh to fetch the weights, or fix the path")
        return folder
    if not _HUB_ID.fullmatch(target):
        raise ChatTemplateError(f"{model_json}: {target!r} is neither a hub id (ORG/NAME) nor a folder",
                                fix="write a hub id, an absolute path, or a path starting with ./")
    return hub_folder(target, download=download, files=files)


def locate(model: str, repositories: Sequence[Path] | None = None) -> ChatTemplate:
    """Read (uncached) the chat template of Triton model `model` through its model.json.

    `repositories` default to the launcher's (`PROMPTOPS_MODEL_REPOSITORY`, else model_repository/).
    """
    return from_folder(tokenizer_folder(model, repositories))


_cache: dict[tuple[Any, ...], ChatTemplate] = {}
_lock = threading.Lock()


def for_model(model: str, repositories: Sequence[Path] | None = None) -> ChatTemplate:
    """The chat template of Triton model `model`, read once per process and repositories (failures are not cached)."""
    # Keyed by the variables that choose the default folders, not by building a TritonConfig: this is per request.
    key = (model, tuple(map(Path, repositories)) if repositories is not None else None,
           *(os.environ.get(name) for name in ("PROMPTOPS_MODEL_REPOSITORY", "PROMPTOPS_HF_HOME", "HF_HOME")))
    found = _cache.get(key)
    if found is None:
        found = locate(model, repositories)
        with _lock:
            found = _cache.setdefault(key, found)
    return found


def clear_cache() -> None:
    """Forget every model's template (tests; a model folder changed on disk)."""
    with _lock:
        _cache.clear()


__all__ = ["ChatTemplate", "ChatTemplateError", "clear_cache", "for_model", "from_folder", "from_hub", "hub_folder",
           "locate", "model_json_of", "tokenizer_folder"]

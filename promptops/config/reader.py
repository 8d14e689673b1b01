"""Reading the settings dataclasses (promptops.config.settings: Settings, GatewaySettings, TritonSettings)
from `PROMPTOPS_*` variables.

:func:`from_env` parses nothing when no variable of the class is set: the declared defaults are the answer.
Otherwise pydantic-settings reads them, through a model generated from the dataclass's fields, so each
variable is declared once. pydantic is imported only then: it costs ~130 ms (it imports asyncio), which
`validate` and `log` cannot afford.
"""

from __future__ import annotations

import os
import typing
from dataclasses import MISSING, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from promptops.config.settings import Settings, env_name
from promptops.errors import PromptOpsError

S = TypeVar("S")

_UNITS = (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0))


def parse_duration(value: Any) -> float:
    """`30`, `30s`, `5m`, `1h` or `250ms` as seconds; 0 disables."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().lower()
    for suffix, scale in _UNITS:
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * scale
    if text.replace(".", "", 1).isdigit():
        return float(text)
    raise ValueError("not a duration")


def check_port(value: int | None) -> int | None:
    if value is not None and not 0 < value < 65536:
        raise ValueError("not a port number")
    return value


def split_paths(value: Any) -> Any:
    """`a:b` (os.pathsep) as paths, `~` expanded; empty parts are skipped."""
    if not isinstance(value, str):
        return value
    return tuple(Path(part).expanduser() for part in value.split(os.pathsep) if part)


def split_names(value: Any) -> Any:
    """`a, b` as names; empty parts are skipped."""
    return tuple(name.strip() for name in value.split(",") if name.strip()) if isinstance(value, str) else value


# Each marked type (promptops.config.settings): what a value is read as, and the forms named when it is wrong.
FORMS = {"duration": "a duration: 30, 30s, 5m, 1h or 250ms (0 disables)", "port": "a port number: 1-65535",
         "paths": f"paths separated by {os.pathsep!r}", "names": "comma-separated names"}


def _marker(hint: Any) -> str | None:
    """The marker of an `Annotated[T, "marker"]` hint, also inside `... | None`."""
    for candidate in (hint, *get_args(hint)):
        if get_origin(candidate) is typing.Annotated:
            return next((extra for extra in get_args(candidate)[1:] if isinstance(extra, str)), None)
    return None


def _annotation(hint: Any) -> Any:
    from pydantic import AfterValidator, BeforeValidator
    from pydantic_settings import NoDecode

    marker = _marker(hint)
    if marker is None:
        return hint
    read: Any = {"duration": (float, BeforeValidator(parse_duration)),
                 "port": (int, AfterValidator(check_port)),
                 "paths": (tuple[Path, ...], NoDecode, BeforeValidator(split_paths)),  # NoDecode: not JSON
                 "names": (tuple[str, ...], NoDecode, BeforeValidator(split_names))}[marker]
    base = typing.Optional[read[0]] if type(None) in get_args(hint) else read[0]  # noqa: UP045 - built at runtime
    return typing.Annotated[(base, *read[1:])]


def _accepted(hint: Any) -> str:
    """The forms a value may take, for the error message."""
    if (marker := _marker(hint)) is not None:
        return FORMS[marker]
    args = [a for a in get_args(hint) if a is not type(None)]
    base = args[0] if get_origin(hint) is not Literal and args else hint
    if get_origin(hint) is Literal or get_origin(base) is Literal:
        return "one of " + ", ".join(map(str, get_args(base if get_origin(base) is Literal else hint)))
    return {bool: "1/0, true/false, yes/no or on/off", int: "a whole number", float: "a number"}.get(
        base, "a non-empty value")


@lru_cache(maxsize=8)
def _model(cls: type[Any]) -> tuple[type[Any], dict[str, Any]]:
    from pydantic import Field, create_model
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class _Base(BaseSettings):
        # Unset and empty variables keep the dataclass default; other PROMPTOPS_* names are not ours to judge.
        model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True)

    hints = typing.get_type_hints(cls, include_extras=True)
    spec: dict[str, Any] = {}
    for item in fields(cls):
        default: dict[str, Any] = (
            {"default": item.default} if item.default is not MISSING
            else {"default_factory": item.default_factory} if item.default_factory is not MISSING else {})
        spec[item.name] = (_annotation(hints[item.name]), Field(validation_alias=env_name(item), **default))
    model = create_model(f"{cls.__name__}FromEnv", __base__=_Base, **spec)
    return model, hints


def from_env(cls: type[S] = Settings, **overrides: Any) -> S:  # type: ignore[assignment]
    """A settings dataclass from `PROMPTOPS_*` variables; `overrides` (command-line options) win over them.

    Raises PromptOpsError naming every bad variable and its accepted forms.
    """
    present = {item.name for item in fields(cls)  # type: ignore[arg-type]
               if env_name(item) in os.environ and item.name not in overrides}
    if not present:
        return cls(**overrides)
    return parse(cls, overrides)


def parse(cls: type[Any], overrides: dict[str, Any]) -> Any:
    """`cls` filled from the environment, `overrides` winning; PromptOpsError lists every bad variable."""
    from pydantic import ValidationError

    model, hints = _model(cls)
    try:
        values = model(**{env_name(f): overrides[f.name] for f in fields(cls) if f.name in overrides})
    except ValidationError as exc:
        names = {env_name(f): f.name for f in fields(cls)}
        lines = []
        for error in exc.errors():
            variable = str(error["loc"][0]) if error["loc"] else "?"
            hint = hints.get(names.get(variable, ""), str)
            lines.append(f"{variable}={error.get('input')!r} is not valid: use {_accepted(hint)}")
        raise PromptOpsError("; ".join(lines), fix="fix or unset the variable(s) named above") from None
    return cls(**{f.name: getattr(values, f.name) for f in fields(cls)})

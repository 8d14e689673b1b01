"""Reading the settings dataclasses from the environment with pydantic-settings.

Imported only when a `PROMPTOPS_*` variable is set (see :func:`promptops.settings.from_env`):
the model is generated from the dataclass's fields, so each variable is declared once.
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, fields
from functools import lru_cache
from typing import Any, Literal, get_args, get_origin

from pydantic import BeforeValidator, Field, ValidationError, create_model
from pydantic_settings import BaseSettings, SettingsConfigDict

from promptops.errors import PromptOpsError
from promptops.settings import Settings, env_name

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


def _annotation(hint: Any) -> Any:
    if get_origin(hint) is typing.Annotated and "duration" in get_args(hint)[1:]:
        return typing.Annotated[float, BeforeValidator(parse_duration)]
    return hint


def _accepted(hint: Any) -> str:
    """The forms a value may take, for the error message."""
    if get_origin(hint) is typing.Annotated and "duration" in get_args(hint)[1:]:
        return "a duration: 30, 30s, 5m, 1h or 250ms (0 disables)"
    args = [a for a in get_args(hint) if a is not type(None)]
    base = args[0] if get_origin(hint) is not Literal and args else hint
    if get_origin(hint) is Literal or get_origin(base) is Literal:
        return "one of " + ", ".join(map(str, get_args(base if get_origin(base) is Literal else hint)))
    return {bool: "1/0, true/false, yes/no or on/off", int: "a whole number", float: "a number"}.get(
        base, "a non-empty value")


class _Base(BaseSettings):
    # Unset and empty variables keep the dataclass default; other PROMPTOPS_* names are not ours to judge.
    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True)


@lru_cache(maxsize=8)
def _model(cls: type[Settings]) -> tuple[type[BaseSettings], dict[str, Any]]:
    hints = typing.get_type_hints(cls, include_extras=True)
    spec: dict[str, Any] = {}
    for item in fields(cls):
        default: dict[str, Any] = (
            {"default": item.default} if item.default is not MISSING
            else {"default_factory": item.default_factory} if item.default_factory is not MISSING else {})
        spec[item.name] = (_annotation(hints[item.name]), Field(validation_alias=env_name(item), **default))
    model = create_model(f"{cls.__name__}FromEnv", __base__=_Base, **spec)
    return model, hints


def parse(cls: type[Any], overrides: dict[str, Any]) -> Any:
    """`cls` filled from the environment, `overrides` winning; PromptOpsError lists every bad variable."""
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

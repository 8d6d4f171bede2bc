"""Reading configs: YAML files, ``--set key.path=value`` overrides, readable errors."""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from bpexp.errors import InvalidInputError


class ConfigError(InvalidInputError):
    """A config file or override is invalid; the message names the file and key path."""


def read_yaml(path: str | Path) -> dict:
    """Parse a YAML mapping, turning parse errors into :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """``"model.hidden=[128,64]"`` -> ``("model.hidden", [128, 64])``; values are YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: expected KEY.PATH=VALUE, e.g. optimizer.lr=0.01")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: value is not valid YAML: {exc}") from None
    return key, value


def apply_overrides(data: dict, overrides: dict[str, Any]) -> dict:
    """Return a copy of ``data`` with dotted-path ``overrides`` set (sections created as needed)."""
    data = copy.deepcopy(data)
    for path, value in overrides.items():
        node = data
        parts = path.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if child is None or child is True:  # e.g. `early_stopping: true` = all defaults
                child = node[part] = {}
            elif isinstance(child, str):  # shorthand `schedule: cosine` = {name: cosine}
                child = node[part] = {"name": child}
            if not isinstance(child, dict):
                raise ConfigError(
                    f"--set {path}: {'.'.join(parts[: i + 1])} is a value ({child!r}), not a section"
                )
            node = child
        node[parts[-1]] = value
    return data


def validate(model_cls: type[BaseModel], data: dict, *, source: str, overridden: set[str] = frozenset()):
    """Validate ``data`` against ``model_cls`` or raise a :class:`ConfigError` listing every problem.

    Each line names the source, the key path and what was expected, e.g.
    ``experiments/digits.yaml: model.hiden: unknown key (did you mean 'hidden'?)``.
    """
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(err, model_cls, data, overridden) for err in exc.errors()]
        raise ConfigError(f"{source}: invalid config\n" + "\n".join(f"  - {line}" for line in lines)) from None


def _describe(err: dict, model_cls: type[BaseModel], data: dict, overridden: set[str]) -> str:
    loc = _clean_loc(err["loc"])
    path = ".".join(str(p) for p in loc) or "(top level)"
    kind, given = err["type"], err.get("input")
    if kind == "extra_forbidden":
        valid = _field_names(model_cls, loc[:-1], data)
        hint = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        msg = "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else "") + f"; expected one of {valid}"
    elif kind == "missing":
        msg = "required key is missing"
    else:
        msg = err["msg"]
        if not isinstance(given, dict):
            msg += f"; got {given!r}"
    origin = " (from --set)" if path in overridden else ""
    return f"{path}{origin}: {msg}"


def _clean_loc(loc: tuple) -> tuple:
    """Drop the discriminator tags pydantic puts in paths into tagged unions (``schedule.cosine.x``)."""
    out = []
    for part in loc:
        if out and out[-1] == "schedule" and isinstance(part, str) and part in _SCHEDULE_TAGS:
            continue
        out.append(part)
    return tuple(out)


_SCHEDULE_TAGS = {"constant", "step", "exponential", "cosine", "plateau"}


def _field_names(model_cls: type[BaseModel], loc: tuple, data: Any) -> list[str]:
    """Valid keys of the section at ``loc`` (best effort: [] when the path is not a model).

    ``data`` is the raw input, used to pick the member of a tagged union by its ``name``.
    """
    cls = model_cls
    for part in loc:
        field = cls.model_fields.get(str(part))
        data = data.get(part) if isinstance(data, dict) else None
        if field is None:
            return []
        cls = _model_in(field.annotation, data)
        if cls is None:
            return []
    return list(cls.model_fields)


def _model_in(annotation, data: Any) -> type[BaseModel] | None:
    """The model class inside ``annotation``; for unions, the member whose ``name`` matches ``data``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    members = [m for arg in getattr(annotation, "__args__", ()) if (m := _model_in(arg, data)) is not None]
    if len(members) > 1 and isinstance(data, dict):
        for m in members:
            name_field = m.model_fields.get("name")
            if name_field is not None and data.get("name") in getattr(name_field.annotation, "__args__", ()):
                return m
    return members[0] if members else None

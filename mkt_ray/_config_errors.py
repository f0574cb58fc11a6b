"""What is wrong with a settings file or value, said so that the fix is plain: one line a problem, the key
named as it is written (`pipeline.shards`), the nearest known key for a misspelt one, and no secret echoed."""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

# a value under a key with one of these in its path is never shown back
_SECRET_WORDS = ("password", "secret", "key", "token")


def yaml_file_problem(path: Path) -> str | None:
    """Why a settings file cannot be read as settings (not YAML, or YAML that is not a mapping), or None."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        return f"config file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})"
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return f"config file {path} is not valid YAML{where}: {problem}"
    if data is not None and not isinstance(data, dict):
        return (f"config file {path} must be a mapping of settings (e.g. `pipeline: {{shards: 4}}`), "
                f"not a YAML {type(data).__name__}")
    return None


def describe_validation(exc: ValidationError, model: type[BaseModel]) -> str:
    """One line a problem: `  pipeline.shardz: unknown setting; did you mean shards?`."""
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        key = ".".join(loc) or "(settings)"
        if error["type"] == "extra_forbidden":
            known = _known_keys(model, loc[:-1])
            close = difflib.get_close_matches(loc[-1], known, n=1) if known else []
            message = "unknown setting" + (f"; did you mean {close[0]}?" if close else
                                           f"; known here: {', '.join(sorted(known))}" if known else "")
        else:
            message = error["msg"]
            if "input" in error and not any(word in part.lower() for part in loc for word in _SECRET_WORDS):
                message += f" (got {_shown(error['input'])})"
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _known_keys(model: type[BaseModel], path: list[str]) -> list[str] | None:
    """The keys a mapping at `path` under `model` may hold; None where that is not a settings model."""
    current: Any = model
    for part in path:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                return None
            current = _model_in(field.annotation)
        elif typing.get_origin(current) is dict:  # a mapping's key (a tenant id): its value type next
            current = _model_in(typing.get_args(current)[1])
        else:
            return None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def _model_in(annotation: Any) -> Any:
    """The settings model (or dict of them) an annotation holds, through `X | None`."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        found = [a for a in typing.get_args(annotation) if a is not type(None)]
        return found[0] if len(found) == 1 else annotation
    return annotation

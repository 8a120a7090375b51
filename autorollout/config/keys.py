"""Which keys of a config file the models know: unknown keys found (with a did-you-mean) and set aside.

Upstream ignores keys it does not know, so a file written for a newer upstream (or with a harmless
extra key) must still load: unknown keys are reported as warnings, or as problems in strict mode.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel

from autorollout.config.document import Loc

__all__ = ["model_at", "split_unknown_keys", "suggestion"]


def split_unknown_keys(data: Any, model: type[BaseModel]) -> tuple[Any, list[Loc]]:
    """`data` without the keys `model` does not know (at any depth), and the paths of those keys."""
    unknown: list[Loc] = []
    return _prune(data, model, (), unknown), unknown


def _prune(data: Any, model: type[BaseModel], loc: Loc, unknown: list[Loc]) -> Any:
    if not isinstance(data, dict):
        return data  # not a mapping: the model's validation says so
    fields = {(field.alias or name): field for name, field in model.model_fields.items()}
    kept: dict[Any, Any] = {}
    for key, value in data.items():
        field = fields.get(key) if isinstance(key, str) else None
        if field is None:
            unknown.append((*loc, str(key)))
            continue
        inner = _model_in(field.annotation)
        if inner is None:
            kept[key] = value
        elif isinstance(value, list):
            kept[key] = [_prune(item, inner, (*loc, key, i), unknown) for i, item in enumerate(value)]
        else:
            kept[key] = _prune(value, inner, (*loc, key), unknown)
    return kept


def suggestion(model: type[BaseModel], loc: Loc) -> str:
    """ "; did you mean X?" for an unknown key at `loc`, or the keys known at that level."""
    parent = model_at(model, loc[:-1])
    if parent is None or not isinstance(loc[-1], str):
        return ""
    known = {(field.alias or name): name for name, field in parent.model_fields.items()}
    typed = loc[-1]
    by_snake = {name: alias for alias, name in known.items()}
    if typed in by_snake:
        return f"; did you mean {by_snake[typed]}?"
    close = difflib.get_close_matches(typed, list(known), n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]}?"
    return f"; expected one of: {', '.join(sorted(known))}"


def model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model that describes the mapping at `loc` (list indexes skipped), or None."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = next(
            (f for name, f in current.model_fields.items() if part in (name, f.alias)),
            None,
        )
        if field is None:
            return None
        current = _model_in(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside `X`, `list[X]` or `X | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None

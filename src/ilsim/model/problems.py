"""Pydantic's validation errors as Problems: a field path (``processes[3].rate``), a message, a hint."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from ilsim.errors import Problem, did_you_mean
from ilsim.limits import MAX_EXCERPT, excerpt


def field_path(loc: tuple) -> str:
    """('processes', 3, 'rate') -> 'processes[3].rate'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "union[", "list[", "float", "str", "json-or")):
            continue  # pydantic's names for union members, not fields of the user's file
        else:
            out += f".{part}" if out else str(part)
    return out


def problems_from_validation(exc: ValidationError, source: str | None, root=None) -> list[Problem]:
    """Pydantic errors as Problems with field paths; ``root`` is the schema validated (for hints)."""
    problems: dict[str, Problem] = {}
    for err in exc.errors():
        path = field_path(err["loc"])
        kind = err["type"]
        if kind == "missing":
            msg = f"missing required field '{path.rsplit('.', 1)[-1]}'"
            path = path.rsplit(".", 1)[0] if "." in path else ""
            if "initial" in msg:
                msg = "missing initial value ('initial')"
        elif kind == "extra_forbidden":
            field = path.rsplit(".", 1)[-1]
            parent_loc = tuple(p for p in err["loc"][:-1])
            allowed = _allowed_fields(parent_loc, root)
            msg = f"unknown field '{field}'{did_you_mean(field, allowed)}"
        elif kind in ("float_parsing", "float_type", "int_parsing", "int_type"):
            msg = f"expected a number, got {excerpt(repr(err['input']))}"
        elif kind == "literal_error":
            expected = (err.get("ctx") or {}).get("expected", "")
            allowed = expected.replace("'", "").replace(" or ", ", ").split(", ")
            msg = (f"got {excerpt(repr(err['input']))}{did_you_mean(str(err['input'])[:MAX_EXCERPT], allowed)}; "
                   f"{err['msg'].replace('Input should be', 'expected')}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
        problems.setdefault((path, msg), Problem(path, msg, source))
    return list(problems.values())


def _allowed_fields(loc: tuple, root=None) -> list[str]:
    """Field names allowed at a location, for 'did you mean' hints (none without the schema)."""
    model = root
    if model is None:
        return []
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        if info is None:  # a key of a mapping of entries (population.parameters.<name>): same model
            continue
        ann = info.annotation
        inner = getattr(ann, "__args__", (ann,))
        model = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return []
    return list(model.model_fields)

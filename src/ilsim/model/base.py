"""Pieces shared by every schema (model files, the interleukin catalogue)."""

from __future__ import annotations

import keyword
import re

from pydantic import BaseModel, ConfigDict, field_validator

from ilsim.model.expressions import CONSTANTS, FUNCTIONS, TIME

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED = {TIME, "time", *FUNCTIONS, *CONSTANTS, *keyword.kwlist}


def _check_name(name: str) -> str:
    """Names become variables of generated code: identifiers only, none of ours."""
    if not _NAME.match(name):
        raise ValueError(f"'{name}' is not a valid name (letters, digits and _, not starting with a digit)")
    if name in RESERVED:
        raise ValueError(f"'{name}' is reserved (the time, a function, a constant or a keyword); choose another name")
    return name


class _Strict(BaseModel):
    """Unknown fields are errors (a typo is never silently ignored); assignments are re-validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Reference(_Strict):
    citation: str
    doi: str | None = None
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _web_address(cls, v):
        if v is not None and not v.lower().startswith(("http://", "https://")):
            raise ValueError(f"a reference url must start with http:// or https://, got {v!r}")
        return v


def _check_expression_type(value):
    """A value given where an expression is expected must be text or a number (not a list, mapping or bool)."""
    # A rate must be text or a number; a list or mapping is a mistake worth naming.
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected an expression (text or a number), got {type(value).__name__} {value!r}")
    return value

"""Pieces shared by every schema (model files, the interleukin catalogue)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Strict(BaseModel):
    """Unknown fields are errors (a typo is never silently ignored); assignments are re-validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Reference(_Strict):
    citation: str
    doi: str | None = None
    url: str | None = None

"""Cell types: a vocabulary (Cell Ontology identifiers) that a species names with ``cell_type:``.

Read and merged exactly like the interleukin catalogue: a data file beside this module validated
by its schema (``ilsim.model.sections.cell_types``), new types declared in a model file's ``cell_types:`` section, lookups by name
or alias ignoring case and spacing, unknown names answered with the closest known one.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

from pydantic import Field, ValidationError

from ilsim.biology.catalogue import Catalogue, _problems
from ilsim.errors import ModelError
from ilsim.model.base import _Strict
from ilsim.model.load import read_yaml
from ilsim.model.sections.cell_types import CellType  # the schema lives with the model's; re-exported

__all__ = ["CellType", "CellTypeFile", "builtin_cell_types", "load_cell_types"]

DATA_FILE = Path(__file__).with_name("cell_types.yaml")
LISTING = dict(kind="cell type", section="cell_types", listing="ilsim cell-types")


class CellTypeFile(_Strict):
    cell_types: list[CellType] = Field(min_length=1)


def _validated(data, source: str | None) -> list[CellType]:
    try:
        return CellTypeFile.model_validate(data).cell_types
    except ValidationError as exc:
        raise ModelError(_problems(exc, source, root=CellTypeFile)) from None


@functools.lru_cache(maxsize=1)
def builtin_cell_types() -> Catalogue:
    return Catalogue(_validated(read_yaml(DATA_FILE, "cell-type file"), str(DATA_FILE)), str(DATA_FILE), **LISTING)


def load_cell_types(extra: Iterable[CellType | dict] = (), source: str | None = None) -> Catalogue:
    """The built-in cell types plus those a model declares (``cell_types:``)."""
    extra = list(extra)
    if not extra:
        return builtin_cell_types()
    return builtin_cell_types().merged(_validated({"cell_types": extra}, source), source)

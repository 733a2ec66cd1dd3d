"""SBML import: an SBML Level 2 or 3 core model as an ilsim ModelSpec (``ilsim.load("model.xml")``).

``read_sbml(path)`` gives the spec; ``import_sbml(path)`` also says how to read each SBML id back
from a run (amounts and concentrations of species), for comparisons with other simulators;
``write_yaml(spec, path)`` writes the spec as an ilsim model file, atomically.
"""

from __future__ import annotations

from pathlib import Path

from ilsim.io.atomic import atomic_file
from ilsim.io.sbml_import.document import read_document
from ilsim.io.sbml_import.importer import Quantity, SbmlModel, import_document
from ilsim.model.load import dump_spec
from ilsim.model.spec import ModelSpec

SBML_SUFFIXES = (".xml", ".sbml")

__all__ = ["SBML_SUFFIXES", "Quantity", "SbmlModel", "import_sbml", "read_sbml", "write_yaml"]


def import_sbml(path: str | Path, initial_expressions: bool = False) -> SbmlModel:
    """Read, check and map an SBML file; ModelError names every problem (with libsbml's line numbers).
    ``initial_expressions``: species' initial assignments over parameters stay expressions (for fitting)."""
    return import_document(read_document(path), str(path), initial_expressions)


def read_sbml(path: str | Path) -> ModelSpec:
    """The ModelSpec of an SBML file."""
    return import_sbml(path).spec


def write_yaml(spec: ModelSpec, path: str | Path) -> None:
    """Write a spec as a YAML model file: a temporary file beside it, renamed when complete."""
    with atomic_file(path) as tmp:
        tmp.write_text(dump_spec(spec), encoding="utf-8")

"""Cell types: species name them; unknown names are refused with the closest known one."""

import pytest
from typer.testing import CliRunner

import ilsim
from ilsim.biology.cell_types import builtin_cell_types
from ilsim.cli import app

MODEL = """
metadata: {name: cells}
cell_types:
  - {name: tissue-resident memory T cell, ontology_id: "CL:0001050", description: "stays in the tissue"}
species:
  - {name: M, kind: cell, initial: 1, cell_type: Mphi}
  - {name: T, kind: cell, initial: 1, cell_type: treg}
  - {name: R, kind: cell, initial: 1, cell_type: tissue-resident memory T cell}
processes:
  - {name: turnover, rate: "0.1*M", consumes: {M: 1}}
"""


def test_built_in_cell_types_have_ontology_ids_and_resolve_aliases():
    cells = builtin_cell_types()
    assert cells.get("Treg").name == "regulatory T cell"
    assert cells.get("CD8 T cell").ontology_id == "CL:0000910"
    assert all(c.ontology_id and c.ontology_id.startswith("CL:") for c in cells)


def test_species_name_built_in_and_declared_cell_types(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(MODEL)
    assert ilsim.compile(path).species == ("M", "T", "R")


def test_unknown_cell_type_is_refused_with_the_closest_name(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(MODEL.replace("cell_type: Mphi", "cell_type: macrophag").replace("cell_type: treg", "cell_type: osteoclast"))
    with pytest.raises(ilsim.ModelError) as info:
        ilsim.compile(path)
    messages = {p.field: p.message for p in info.value.problems}
    assert messages["species[0].cell_type"] == "unknown cell type 'macrophag' (did you mean 'macrophage'?)"
    assert "`ilsim cell-types` lists the known ones" in messages["species[1].cell_type"]


def test_declared_cell_type_may_not_redefine_a_built_in_one(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(MODEL.replace("name: tissue-resident memory T cell, ontology_id", "name: macrophage, ontology_id"))
    with pytest.raises(ilsim.ModelError, match=r"cell_types\[0\].name: 'macrophage' is already in the catalogue"):
        ilsim.compile(path)


def test_cell_types_command_lists_them():
    result = CliRunner().invoke(app, ["cell-types"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "regulatory T cell" in result.output and "CL:0000815" in result.output

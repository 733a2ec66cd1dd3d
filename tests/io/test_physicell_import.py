"""`ilsim import-physicell`: the imported numbers against the XML's own (read here with ElementTree, PhysiCell's µm and
minutes being ilsim's tissue units), the samples in ../shared/data/physicell either refused with the elements named or
imported into a model that `ilsim tissue` runs, and bad input refused with nothing written."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
import yaml

from ilsim.io.physicell import import_physicell

SAMPLES = ("virus_macrophage", "immune_function", "pc4covid19")


def _settings(shared_data, sample):
    return shared_data(f"physicell/{sample}", "PhysiCell_settings.xml")


def _value(el, path, missing=None):
    found = el.find(path)
    if found is None and missing is not None:  # PhysiCell's default where a secretion entry leaves a rate out
        return missing
    return float(found.text)


@pytest.mark.parametrize("sample", SAMPLES)
def test_strict_import_refuses_naming_the_elements(cli, refused, shared_data, sample, tmp_path):
    """Every sample needs its custom C++ code: the strict import refuses, naming custom_data and user_parameters."""
    out = tmp_path / "m.yaml"
    text = refused(cli("import-physicell", _settings(shared_data, sample), "--out", out),
                   "user_parameters: no ilsim equivalent: read only by the project's custom C++ code", "--skip-unmapped")
    assert "custom_data" in text
    assert list(tmp_path.iterdir()) == []


def test_virus_macrophage_names_adhesion_and_the_custom_parameters(cli, refused, shared_data, tmp_path):
    text = refused(cli("import-physicell", _settings(shared_data, "virus_macrophage"), "--out", tmp_path / "m.yaml"),
                   "cell_definition[@name='epithelial cell']/phenotype/mechanics/cell_cell_adhesion_strength",
                   "number_of_infected_cells")
    assert "chemotaxis" not in text  # mapped: biased turns


@pytest.mark.parametrize("sample", SAMPLES)
def test_numbers_match_the_xml(shared_data, sample):
    path = _settings(shared_data, sample)
    root = ET.parse(path).getroot()
    tissue = import_physicell(path, partial=True).data["tissue"]
    dom = root.find("domain")
    assert tissue["domain"]["size"] == [_value(dom, "x_max") - _value(dom, "x_min"), _value(dom, "y_max") - _value(dom, "y_min")]
    assert tissue["domain"]["voxel"] == _value(dom, "dx")
    assert tissue["t_end"] == _value(root, "overall/max_time") and tissue["dt"] == _value(root, "overall/dt_mechanics")
    variables = root.findall("microenvironment_setup/variable")
    assert len(tissue["fields"]) == len(variables)
    for field, v in zip(tissue["fields"], variables):
        assert field["diffusion"] == _value(v, "physical_parameter_set/diffusion_coefficient")
        assert field["decay"] == _value(v, "physical_parameter_set/decay_rate")
    names = {v.get("name"): f["species"] for v, f in zip(variables, tissue["fields"])}
    plain = [d for d in root.findall("cell_definitions/cell_definition") if not d.get("parent_type")]
    agents = {a["species"]: a for a in tissue["agents"]}
    for d in plain:
        agent = agents[d.get("name").replace(" ", "_")]
        ph = d.find("phenotype")
        assert 4 / 3 * math.pi * agent["radius"] ** 3 == pytest.approx(_value(ph, "volume/total"), rel=1e-12)
        assert agent.get("repulsion", 0.0) == _value(ph, "mechanics/cell_cell_repulsion_strength")
        for s in ph.findall("secretion/substrate"):
            up = {u["field"]: u["rate"] for u in agent.get("uptake", [])}
            assert up.get(names[s.get("name")], 0.0) == _value(s, "uptake_rate", 0.0)
            target = {g["field"]: (g["rate"], g["target"]) for g in agent.get("secretion_target", [])}
            if _value(s, "secretion_rate", 0.0) > 0:
                assert target[names[s.get("name")]] == (_value(s, "secretion_rate"), _value(s, "secretion_target"))
        if ph.find("motility/options/enabled").text.strip() == "true":
            assert (agent["speed"], agent["persistence"]) == (_value(ph, "motility/speed"),
                                                               _value(ph, "motility/persistence_time"))
            if ph.find("motility/options/chemotaxis/enabled").text.strip() == "true":
                chemo = ph.find("motility/options/chemotaxis")
                assert agent["chemotaxis"] == {"field": names[chemo.find("substrate").text.strip()],
                                               "bias": _value(ph, "motility/migration_bias") * _value(chemo, "direction")}
        else:
            assert "speed" not in agent


def test_inherited_cell_types_take_the_parents_values(shared_data):
    """pc4covid19: 'CD8 Tcell' < 'immune' < 'default'; its own volume and death rate, the speed of 'immune'."""
    tissue = import_physicell(_settings(shared_data, "pc4covid19"), partial=True).data["tissue"]
    cd8 = next(a for a in tissue["agents"] if a["species"] == "CD8_Tcell")
    assert 4 / 3 * math.pi * cd8["radius"] ** 3 == pytest.approx(478, rel=1e-12)
    assert cd8["death"] == pytest.approx(2.8e-4, rel=1e-12)
    assert (cd8["speed"], cd8["persistence"]) == (4, 5)


def test_partial_import_runs(cli, shared_data, tmp_path):
    """immune_function without what has no equivalent: its 28 cells, moved so the domain starts at 0, run 1 minute."""
    path = _settings(shared_data, "immune_function")
    model = tmp_path / "immune.yaml"
    res = cli("import-physicell", path, "--out", model, "--skip-unmapped")
    assert res.exit_code == 0, res.output
    assert "left out: cell_rules/rulesets/ruleset" in res.output
    spec = yaml.safe_load(model.read_text())
    assert "Left out (no ilsim equivalent)" in spec["metadata"]["description"]
    cells = pd.read_csv(tmp_path / "immune.cells.csv")
    source = pd.read_csv(path.parent / "cells.csv")
    assert len(cells) == len(source) == 28
    assert list(cells.x) == list(source.x + 250) and list(cells.y) == list(source.y + 250)
    assert list(cells.type) == [t.replace(" ", "_") for t in source.type]
    out = tmp_path / "run"
    res = cli("tissue", model, "--out", out, "--t-end", "1", "--save-every", "1", "--no-report", "--quiet")
    assert res.exit_code == 0, res.output
    agents = pd.read_parquet(out / "agents.parquet")
    assert (agents.time == 0).sum() == 28


XML = """<PhysiCell_settings>
  <domain><x_min>-100</x_min><x_max>100</x_max><y_min>-50</y_min><y_max>50</y_max><z_min>-10</z_min><z_max>10</z_max>
    <dx>10</dx><dy>10</dy><dz>10</dz><use_2D>true</use_2D></domain>
  <overall><max_time units="min">10</max_time><dt_mechanics>0.1</dt_mechanics></overall>
  <microenvironment_setup>
    <variable name="IL-2" ID="0">
      <physical_parameter_set><diffusion_coefficient>600</diffusion_coefficient><decay_rate>0.02</decay_rate>
      </physical_parameter_set><initial_condition>0</initial_condition>
      <Dirichlet_boundary_condition enabled="true">0.5</Dirichlet_boundary_condition>
    </variable>
  </microenvironment_setup>
  <cell_definitions>
    <cell_definition name="T cell" ID="0"><phenotype>
      <cycle code="6"><phase_transition_rates>
        <rate start_index="0" end_index="1">0.01</rate><rate start_index="1" end_index="2">0.002</rate>
        <rate start_index="2" end_index="3">0.004</rate><rate start_index="3" end_index="0">0.02</rate>
      </phase_transition_rates></cycle>
      <death><model code="100" name="apoptosis"><death_rate>0.001</death_rate></model>
             <model code="101" name="necrosis"><death_rate>0.0005</death_rate></model></death>
      <volume><total>1000</total></volume>
      <secretion><substrate name="IL-2"><net_export_rate>3</net_export_rate></substrate></secretion>
      <cell_transformations><transformation_rates><transformation_rate name="Treg">0.003</transformation_rate>
      </transformation_rates></cell_transformations>
    </phenotype></cell_definition>
    <cell_definition name="Treg" ID="1"><phenotype><volume><total>500</total></volume>
      <cell_interactions><live_phagocytosis_rates><phagocytosis_rate name="T cell">0.05</phagocytosis_rate>
      </live_phagocytosis_rates></cell_interactions>
    </phenotype></cell_definition>
  </cell_definitions>
  CELLS
</PhysiCell_settings>
"""
ENABLED = ('<initial_conditions><cell_positions type="csv" enabled="true"><folder>./config</folder>'
           '<filename>cells.csv</filename></cell_positions></initial_conditions>')


def test_hand_made_project_maps_every_rate(tmp_path):
    """Cycle: one division per mean cycle time (100 + 500 + 250 + 50 min); death: apoptosis + necrosis; export;
    transformation; live phagocytosis as contact killing; a Dirichlet value on every side; cells CSV version 1 (IDs)."""
    (tmp_path / "PhysiCell_settings.xml").write_text(XML.replace("CELLS", ENABLED))
    (tmp_path / "cells.csv").write_text("-90,0,0,0\n95,-45,0,1\n")
    imported = import_physicell(tmp_path / "PhysiCell_settings.xml")
    tissue = imported.data["tissue"]
    t, treg = tissue["agents"]
    assert t["division"] == pytest.approx(1 / (100 + 500 + 250 + 50), rel=1e-12)
    assert t["death"] == pytest.approx(0.0015, rel=1e-12)
    assert t["secretion"] == [{"field": "IL_2", "rate": 3.0}]
    assert t["differentiation"] == {"into": "Treg", "rate": 0.003}
    assert treg["kills"] == [{"target": "T_cell", "rate": 0.05}]
    assert tissue["domain"]["boundary"] == {s: {"kind": "fixed", "value": 0.5} for s in ("x_min", "x_max", "y_min", "y_max")}
    assert imported.cells == [(10.0, 50.0, "T_cell"), (195.0, 5.0, "Treg")]


def test_bad_input_is_refused_with_nothing_written(cli, refused, tmp_path):
    settings = tmp_path / "PhysiCell_settings.xml"
    settings.write_text(XML.replace("CELLS", ENABLED))
    (tmp_path / "cells.csv").write_text("-90,0,0,0\n150,0,0,1\n")
    out = tmp_path / "m.yaml"
    refused(cli("import-physicell", settings, "--out", out), "cells.csv line 2", "(150, 0, 0) lies outside the domain")
    (tmp_path / "cells.csv").write_text("-90,0,0,7\n")
    refused(cli("import-physicell", settings, "--out", out), "line 1", "'7' is not a cell definition")
    settings.write_text(XML.replace("CELLS", "").replace("<dx>10</dx>", "<dx>ten</dx>"))
    refused(cli("import-physicell", settings, "--out", out), "domain/dx", "expected a number, got 'ten'")
    settings.write_text("<PhysiCell_settings><domain>")
    refused(cli("import-physicell", settings, "--out", out), "not well-formed XML")
    refused(cli("import-physicell", tmp_path / "absent.xml", "--out", out), "cannot read")
    settings.write_text(XML.replace("CELLS", ENABLED))
    refused(cli("import-physicell", settings, "--cells", tmp_path / "absent.csv", "--out", out),
            "cannot read the cells file", "absent.csv", "--cells", "no such file")
    assert not out.exists() and not (tmp_path / "m.cells.csv").exists()
    settings.write_text(XML.replace("CELLS", ENABLED))
    (tmp_path / "cells.csv").write_text("-90,0,0,0\n")
    (tmp_path / "m.cells.csv").write_text("mine")
    refused(cli("import-physicell", settings, "--out", out), "m.cells.csv")
    assert (tmp_path / "m.cells.csv").read_text() == "mine" and not out.exists()


def test_the_cells_file_the_settings_enable_is_never_overwritten(cli, refused, tmp_path):
    """--out onto the cells CSV found beside the settings (an input the user did not name) is refused even with
    --overwrite, as --out onto the settings file is."""
    settings = tmp_path / "PhysiCell_settings.xml"
    settings.write_text(XML.replace("CELLS", ENABLED))
    (tmp_path / "cells.csv").write_text("-90,0,0,0\n")
    refused(cli("import-physicell", settings, "--out", tmp_path / "cells.csv", "--overwrite"),
            "is the input file", "cells.csv")
    assert (tmp_path / "cells.csv").read_text() == "-90,0,0,0\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["PhysiCell_settings.xml", "cells.csv"]

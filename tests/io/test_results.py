"""What a run writes: labelled results with units and provenance, files, and the report."""

import json

import xarray as xr

import ilsim


def test_dataset_has_units_roles_and_provenance():
    ds = ilsim.simulate("kirschner-panetta-1998", 100, points=101, parameters={"c": 0.03})
    assert ds["time"].attrs["units"] == "day"
    assert ds["E"].attrs["units"] == "cells" and ds["E"].attrs["role"] == "species"
    assert ds["tumour_burden"].attrs["role"] == "observable"
    attrs = ds.attrs
    assert attrs["model_name"] == "kirschner-panetta-1998"
    assert len(attrs["model_hash"]) == 64
    assert json.loads(attrs["parameters"])["c"] == 0.03
    assert attrs["engine"] == "ode" and attrs["method"] == "LSODA"
    assert attrs["rtol"] > 0 and attrs["atol"] > 0 and attrs["wall_time_s"] > 0
    assert attrs["ilsim_version"] == ilsim.__version__


def test_run_writes_every_file_and_they_read_back(tmp_path):
    out = tmp_path / "kp"
    ds, summary = ilsim.run("kirschner-panetta-1998", out, t_end=200, points=201)
    assert sorted(p.name for p in out.iterdir()) == [
        ".ilsim-result", "figures", "model.yaml", "report.html", "results.csv", "results.nc", "summary.json"]
    back = xr.open_dataset(out / "results.nc")
    assert back["T"].attrs["units"] == "cells"
    assert float(back["T"][-1]) == float(ds["T"][-1])
    assert back.attrs["model_hash"] == ds.attrs["model_hash"]
    back.close()
    header = (out / "results.csv").read_text().splitlines()[0]
    assert header.startswith("time [day],E [cells],T [cells],I [IL-2 units]")
    stored = json.loads((out / "summary.json").read_text())
    assert stored["variables"]["E"]["peak"] == summary["variables"]["E"]["peak"]
    assert stored["outcome"] == summary["outcome"] == ds.attrs["outcome"]
    assert ilsim.load(out / "model.yaml").content_hash() == ds.attrs["model_hash"]
    assert not list(tmp_path.glob(".*partial"))


def test_report_is_self_contained_and_cites_sources(tmp_path):
    ilsim.run("reynolds-2006", tmp_path / "r", t_end=100)
    html = (tmp_path / "r" / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert "src='http" not in html and 'src="http' not in html and "<link" not in html
    assert "10.1016/j.jtbi.2006.02.016" in html
    assert "Reynolds et al. 2006, Table 1" in html
    assert "dN/dt = snr*R*R_rate/(munr + R*R_rate) - mun*N" in html  # R_rate = 1/hour: the paper's own equation in balanced units


def test_rerun_replaces_an_earlier_result_folder(tmp_path):
    out = tmp_path / "kp"
    ilsim.run("kirschner-panetta-1998", out, report=False, t_end=10)
    ilsim.run("kirschner-panetta-1998", out, report=False, t_end=20)
    assert json.loads((out / "summary.json").read_text())["t_end"] == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kp"]


def test_saved_model_and_hash_include_parameter_overrides(tmp_path):
    out = tmp_path / "kp"
    ds, summary = ilsim.run("kirschner-panetta-1998", out, report=False, t_end=50, parameters={"c": 0.035})
    saved = ilsim.load(out / "model.yaml")
    assert {p.name: p.value for p in saved.parameters}["c"] == 0.035
    assert saved.content_hash() == ds.attrs["model_hash"] == summary["model_hash"]
    again = ilsim.simulate(saved, 50)
    assert float(again["T"][-1]) == float(ds["T"][-1])


def test_a_readout_that_is_undefined_everywhere_is_reported_as_null(tmp_path):
    m = ilsim.Model(name="nan").add_species("X", 0.0).add_observable("ratio", "X/X")
    m.add_process("decay", "X", consumes={"X": 1})
    summary = ilsim.summarise(ilsim.simulate(m, 1))
    assert summary["variables"]["ratio"]["peak"] is None
    ilsim.run(m, tmp_path / "out", t_end=1)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["variables"]["ratio"]["final"] is None


def test_report_shows_grades_and_the_dose_log(tmp_path):
    ilsim.run("aldesleukin", tmp_path / "a", t_end=120)
    html = (tmp_path / "a" / "report.html").read_text()
    assert "Side effects (CTCAE v5.0 grades)" in html and "Hypotension" in html
    assert "Dose log" in html and "given" in html

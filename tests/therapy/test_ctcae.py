"""CTCAE v5.0 grading of side-effect readouts: thresholds, durations, baselines, flags, bad input."""

import numpy as np
import pytest
import xarray as xr
from pydantic import ValidationError

from ilsim.errors import ModelError
from ilsim.therapy import ctcae
from ilsim.therapy.ctcae import ToxicityEntry, ToxicitySpec, get_term, grade_dataset, grade_series, terms


def grades(term, values, **kw):
    return grade_series(term, values, np.arange(len(values), dtype=float), **kw).tolist()


def test_the_built_in_terms_are_the_ctcae_names():
    names = {t.name for t in terms()}
    assert names == {"Hypotension", "Fever", "Chills", "Nausea", "Vomiting", "Weight gain", "Edema limbs",
                     "Platelet count decreased", "Neutrophil count decreased", "Anemia"}
    for t in terms():
        for s in t.scales:
            for c in s.grades:
                assert c.basis == "ctcae" or c.source, (t.name, c.grade)


def test_lookup_ignores_case_and_knows_aliases():
    assert get_term("FEVER").name == "Fever"
    assert get_term("weight GAIN").name == "Weight gain"
    assert get_term("oedema limbs").name == "Edema limbs"
    assert get_term("Thrombocytopenia").name == "Platelet count decreased"


def test_unknown_term_is_refused_with_the_closest_name():
    with pytest.raises(ModelError) as info:
        get_term("Fevre")
    assert "unknown CTCAE term 'Fevre' (did you mean 'Fever'?)" in str(info.value)
    assert "Platelet count decreased" in str(info.value)  # the known terms are listed


# --- each threshold boundary

def test_fever_boundaries():
    assert grades("Fever", [37.9, 38.0, 39.0, 39.01, 40.0, 40.01]) == [0, 1, 1, 2, 2, 3]


def test_fever_above_40_for_more_than_24_hours_is_grade_4():
    t = np.arange(0, 31, 1.0)  # hours
    temp = np.where(t >= 2, 40.5, 37.0)  # above 40 from t = 2 h
    g = grade_series("Fever", temp, t)
    assert g[2] == 3 and g[26] == 3  # 24 h above 40: not yet more than 24 h
    assert g[27] == 4 and g[30] == 4
    # the same in days and in minutes
    assert grade_series("Fever", temp, t / 24, time_units="day").tolist() == g.tolist()
    assert grade_series("Fever", temp, t * 60, time_units="minute").tolist() == g.tolist()


def test_fever_duration_restarts_after_a_break():
    t = np.arange(0, 40, 1.0)
    temp = np.full_like(t, 40.5)
    temp[20] = 39.5  # a break: the 24 h count starts again
    g = grade_series("Fever", temp, t)
    assert g[20] == 2 and g.max() == 3


def test_fever_in_fahrenheit_is_converted():
    assert grade_series("Fever", [100.3, 100.5], [0, 1], units="degF").tolist() == [0, 1]


def test_weight_gain_is_relative_to_the_first_value_or_a_given_baseline():
    assert grades("Weight gain", [70, 73.4, 73.5, 76.9, 77.0, 83.9, 84.0]) == [0, 0, 1, 1, 2, 2, 3]
    assert grades("Weight gain", [73.5, 77.0], baseline=70) == [1, 2]
    assert grades("Weight gain", [73.5, 77.0]) == [0, 0]
    with pytest.raises(ModelError, match="baseline"):
        grades("Weight gain", [1.0, 2.0], baseline=0)


def test_edema_limbs_boundaries():
    assert grades("Edema limbs", [4.9, 5, 10, 10.1, 30, 30.1]) == [0, 1, 1, 2, 2, 3]


def test_platelet_boundaries_with_the_lower_limit_of_normal():
    assert grades("Platelet count decreased", [150000, 149999, 75000, 74999, 50000, 49999, 25000, 24999]) == \
        [0, 1, 1, 2, 2, 3, 3, 4]
    assert grades("Platelet count decreased", [140000], lln=130000) == [0]


def test_neutrophil_boundaries():
    lln = get_term("Neutrophil count decreased").scale().lln.value
    assert grades("Neutrophil count decreased", [lln, lln - 1, 1500, 1499, 1000, 999, 500, 499]) == [0, 1, 1, 2, 2, 3, 3, 4]


def test_anemia_boundaries():
    assert grades("Anemia", [12.0, 11.9, 10.0, 9.9, 8.0, 7.9]) == [0, 1, 1, 2, 2, 3]
    assert grades("Anemia", [12.5], lln=13.0) == [1]
    assert grades("Anemia", [79.0, 80.0], units="g/L") == [3, 2]


def test_hypotension_surrogate_boundaries_on_both_scales():
    assert grades("Hypotension", [100, 99.9, 90, 89.9, 80, 79.9, 70, 69.9]) == [0, 1, 1, 2, 2, 3, 3, 4]
    assert grades("Hypotension", [70, 69.9, 65, 64.9], scale="MAP") == [0, 1, 1, 4]
    with pytest.raises(ModelError, match="no scale 'DBP'"):
        grades("Hypotension", [80], scale="DBP")


def test_vomiting_episodes_and_index_terms():
    assert grades("Vomiting", [0.9, 1, 2.9, 3, 5.9, 6]) == [0, 1, 1, 2, 2, 3]
    assert grades("Nausea", [0.9, 1, 2, 3]) == [0, 1, 2, 3]
    assert grades("Chills", [0.5, 1.5, 2.5, 3.5]) == [0, 1, 2, 3]


# --- summaries of a run

def _dataset(time_units="day"):
    t = np.linspace(0, 10, 41)  # days
    on = (t >= 2) & (t < 5)  # the drug is given from day 2 to day 5
    sbp = np.where(on, 75.0, 120.0)
    sbp[(t >= 3) & (t < 4)] = 65.0
    temp = np.where(on, 39.5, 37.0)
    plt = np.where(on, 60000.0, 250000.0)
    return xr.Dataset(
        {
            "systolic_bp": ("time", sbp, {"units": "mmHg"}),
            "temperature": ("time", temp, {"units": "degC"}),
            "platelets": ("time", plt, {"units": "cells/uL"}),
            "weight": ("time", 70 + 5 * on, {"units": "kg"}),
        },
        coords={"time": ("time", t, {"units": time_units})},
        attrs={"time_units": time_units},
    )


def test_grade_dataset_summarises_grades_flags_and_recovery():
    out = grade_dataset(_dataset(), {"Hypotension": "systolic_bp", "fever": "temperature",
                                     "Platelet count decreased": "platelets", "Weight gain": "weight"})
    hypo = out["Hypotension"]
    assert hypo["max_grade"] == 4 and hypo["time_of_max"] == 3.0
    assert hypo["first_time_at_or_above"] == {1: 2.0, 2: 2.0, 3: 2.0, 4: 3.0}
    assert hypo["hospitalisation"] and hypo["intensive_care"]
    assert hypo["recovered_by"] == 5.0
    fever = out["Fever"]
    assert fever["max_grade"] == 2 and not fever["hospitalisation"] and not fever["intensive_care"]
    assert fever["recovered_by"] == 5.0
    plt = out["Platelet count decreased"]
    assert plt["max_grade"] == 2 and plt["flags"] == [] and plt["units"] == "cells/uL"
    assert out["Weight gain"]["max_grade"] == 1


def test_hospitalisation_without_intensive_care_and_no_recovery():
    t = np.arange(0.0, 5.0)
    g = grade_series("Hypotension", [120, 85, 79, 79, 79], t)
    s = ctcae.summarise_grades("Hypotension", g, t)
    assert s["max_grade"] == 3 and s["hospitalisation"] and not s["intensive_care"]
    assert s["recovered_by"] is None
    s = ctcae.summarise_grades("Platelet count decreased", np.array([0, 4, 0]), np.arange(3.0))
    assert s["flags"] == ["bleeding_risk"] and not s["hospitalisation"] and s["recovered_by"] == 2.0
    s = ctcae.summarise_grades("Fever", np.zeros(3, dtype=int), np.arange(3.0))
    assert s["max_grade"] == 0 and s["time_of_max"] is None and s["recovered_by"] is None


def test_fever_duration_uses_the_datasets_time_units():
    t = np.arange(0, 3.01, 0.25)  # days
    ds = xr.Dataset({"T": ("time", np.full_like(t, 40.5), {"units": "degC"})},
                    coords={"time": ("time", t)}, attrs={"time_units": "day"})
    out = grade_dataset(ds, {"Fever": "T"})
    assert out["Fever"]["first_time_at_or_above"][4] == 1.25  # first sample more than 24 h in


def test_grade_dataset_reports_every_problem_at_once():
    with pytest.raises(ModelError) as info:
        grade_dataset(_dataset(), {"Fevre": "temperature", "Hypotension": "sbp", "Anemia": "platelets"})
    messages = [p.message for p in info.value.problems]
    assert any("unknown CTCAE term 'Fevre' (did you mean 'Fever'?)" in m for m in messages)
    assert any("Hypotension: the results have no variable 'sbp'" in m for m in messages)
    assert any("Anemia is graded from hemoglobin concentration in 'g/dL', but 'platelets' has units 'cells/uL'" in m
               for m in messages)


def test_unit_spellings():
    assert ctcae.units_match("cells/uL", "/mm3") and ctcae.units_match("10^9/L", "/mm3")
    assert ctcae.units_match("°C", "degC") and ctcae.units_match("mm Hg", "mmHg")
    assert not ctcae.units_match("mg/L", "g/dL") and not ctcae.units_match("kPa", "mmHg")


# --- the model file's section

def test_toxicity_section_validates_terms_and_scales():
    spec = ToxicitySpec.model_validate({"toxicity": [{"term": "Fever", "readout": "temperature"},
                                                     {"term": "hypotension", "readout": "map", "scale": "MAP"}]})
    assert [e.term for e in spec.toxicity] == ["Fever", "hypotension"]
    with pytest.raises(ValidationError, match=r"unknown CTCAE term 'Hypotenson' \(did you mean 'Hypotension'\?\)"):
        ToxicityEntry(term="Hypotenson", readout="sbp")
    with pytest.raises(ValidationError, match="no scale 'DBP'"):
        ToxicityEntry(term="Hypotension", readout="sbp", scale="DBP")
    with pytest.raises(ValidationError, match="'lln' does not apply"):
        ToxicityEntry(term="Fever", readout="T", lln=37)
    with pytest.raises(ValidationError, match="extra"):
        ToxicityEntry(term="Fever", readout="T", grade=3)


def test_toxicity_problems_name_the_entry():
    entries = [ToxicityEntry(term="Fever", readout="temprature"), ToxicityEntry(term="Anemia", readout="Hb")]
    problems = ctcae.toxicity_problems(entries, {"temperature": "degC", "Hb": "mmol/L"}, source="m.yaml")
    text = [str(p) for p in problems]
    assert text[0] == ("m.yaml: toxicity[0].readout: unknown readout 'temprature' (did you mean 'temperature'?); "
                       "it must be a species or an observable")
    assert text[1].startswith("m.yaml: toxicity[1].readout: Anemia is graded from hemoglobin concentration in 'g/dL'")


def test_grade_toxicity_uses_the_entries_options():
    ds = _dataset()
    entries = [ToxicityEntry(term="Platelet count decreased", readout="platelets", lln=300000)]
    out = ctcae.grade_toxicity(ds, entries)
    assert out["Platelet count decreased"]["first_time_at_or_above"][1] == 0.0  # 250,000 < LLN 300,000


# --- the data file itself

def test_malformed_data_file_names_the_file_and_the_field(tmp_path):
    bad = tmp_path / "ctcae.yaml"
    text = ctcae.DATA_FILE.read_text()
    bad.write_text(text.replace("direction: below", "direction: downwards", 1))
    with pytest.raises(ModelError) as info:
        ctcae.read_terms(bad)
    where = str(info.value)
    assert str(bad) in where and "terms[0].scales[0].direction" in where and "downwards" in where

    bad.write_text(text.replace("{grade: 2, threshold: 39.0,", "{grade: 2, threshold: 41.0,", 1))
    with pytest.raises(ModelError, match=r"terms\[1\].*threshold of grade 3 \(40\) must be above that of grade 2 \(41\)"):
        ctcae.read_terms(bad)

    bad.write_text(text.replace("soc: Vascular disorders", "sco: Vascular disorders", 1))
    with pytest.raises(ModelError, match=r"terms\[0\].sco: unknown field 'sco' \(did you mean 'soc'\?\)"):
        ctcae.read_terms(bad)


def test_grade_thresholds_are_the_printed_boundaries_in_the_readouts_units():
    from ilsim.therapy.ctcae import grade_thresholds

    # CTCAE v5.0 prints platelet count decreased grades 2-4 as <75,000, <50,000 and <25,000 /mm3
    per_mm3 = dict(grade_thresholds("Platelet count decreased"))
    assert [per_mm3[g] for g in (2, 3, 4)] == [75000.0, 50000.0, 25000.0]
    per_litre = dict(grade_thresholds("Platelet count decreased", units="10^9/L"))  # 1e9/L = 1000 /mm3
    assert all(per_litre[g] == pytest.approx(per_mm3[g] / 1000.0) for g in per_mm3)
    fahrenheit = dict(grade_thresholds("Fever", units="degF"))  # 38.0 degC = 100.4 degF
    assert fahrenheit[1] == pytest.approx(100.4)

"""The interleukin catalogue: built-in content, lookups, user-declared entries, bad files, the CLI."""

from __future__ import annotations

import re

import pytest
import yaml

from ilsim.biology.catalogue import (
    DATA_FILE,
    EFFECT_KINDS,
    HalfLife,
    Interleukin,
    builtin_catalogue,
    load_catalogue,
    read_catalogue,
)
from ilsim.errors import IlsimError, ModelError

REQUIRED = ["IL-1b", "IL-2", "IL-4", "IL-5", "IL-6", "IL-7", "IL-10", "IL-11", "IL-12", "IL-13", "IL-15", "IL-17A",
            "IL-21", "IL-22", "IL-23", "TNF", "IFN-g", "TGF-b"]
PARTNERS = {"TNF", "IFN-g", "TGF-b"}
THERAPEUTICS = {  # medicine -> interleukins it is or targets
    "aldesleukin": ["IL-2"], "basiliximab": ["IL-2"], "anakinra": ["IL-1b"], "canakinumab": ["IL-1b"],
    "tocilizumab": ["IL-6"], "sarilumab": ["IL-6"], "siltuximab": ["IL-6"], "ustekinumab": ["IL-12", "IL-23"],
    "guselkumab": ["IL-23"], "risankizumab": ["IL-23"], "secukinumab": ["IL-17A"], "ixekizumab": ["IL-17A"],
    "dupilumab": ["IL-4", "IL-13"], "mepolizumab": ["IL-5"], "reslizumab": ["IL-5"], "benralizumab": ["IL-5"],
    "oprelvekin": ["IL-11"], "infliximab": ["TNF"], "adalimumab": ["TNF"], "etanercept": ["TNF"],
    "emapalumab": ["IFN-g"],
}
DOI = re.compile(r"^10\.\d{4,9}/\S+$")

# A made-up interleukin with every field, as a user would declare it in a model file.
IL41 = {
    "name": "IL-41",
    "aliases": ["IL41", "interleukin-41"],
    "category": "interleukin",
    "description": "A hypothetical interleukin used to test user-declared entries.",
    "producers": ["macrophages"],
    "targets": ["T cells", "fibroblasts"],
    "receptor": "unknown",
    "effects": [{"kind": "regeneration", "description": "Promotes repair in the test."}],
    "half_life": {"value": 30, "units": "min", "context": "plasma, made up", "source": "this test"},
    "therapeutics": [{"name": "testakinumab", "kind": "monoclonal antibody", "action": "neutralises IL-41",
                      "indications": ["nothing"], "source": "this test"}],
    "references": [{"citation": "Nobody N. A test. J Tests. 2030;1:1."}],
}


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


# ------------------------------------------------------------------------------- built-in content


def test_every_required_entry_is_present(catalogue):
    assert set(REQUIRED) <= set(catalogue.names())
    assert len(catalogue) >= len(REQUIRED)


@pytest.mark.parametrize("name", REQUIRED)
def test_each_entry_is_complete_and_sourced(catalogue, name):
    il = catalogue.get(name)
    assert il.category == ("partner cytokine" if name in PARTNERS else "interleukin")
    assert il.effects and il.producers and il.targets and il.receptor and il.description
    assert {e.kind for e in il.effects} <= set(EFFECT_KINDS)
    assert il.references and any(r.doi for r in il.references)
    for r in il.references:
        assert r.doi is None or DOI.match(r.doi), r.doi
    for hl in [il.half_life] + [t.half_life for t in il.therapeutics]:
        assert hl is None or (hl.hours > 0 and hl.context and hl.source)
    for t in il.therapeutics:
        assert t.source and t.indications and t.action


def test_effect_kinds_are_the_allowed_set():
    assert set(EFFECT_KINDS) == {"pain", "fever", "inflammation", "allergic reaction", "regeneration",
                                 "activation/proliferation", "suppression/resolution"}
    used = {e.kind for il in builtin_catalogue() for e in il.effects}
    assert used == set(EFFECT_KINDS)  # every kind is used by some entry


@pytest.mark.parametrize("medicine, targets", THERAPEUTICS.items())
def test_the_main_therapeutics_are_listed_under_their_interleukins(catalogue, medicine, targets):
    for name in targets:
        assert medicine in [t.name for t in catalogue.get(name).therapeutics]


def test_published_half_lives(catalogue):
    def half_life(il, medicine=None):
        entry = catalogue.get(il)
        return entry.half_life if medicine is None else next(t for t in entry.therapeutics if t.name == medicine).half_life

    assert half_life("IL-2", "aldesleukin").hours == pytest.approx(85 / 60)
    assert "13 min" in half_life("IL-2", "aldesleukin").context  # distribution phase
    assert (half_life("IL-1b", "anakinra").hours, half_life("IL-1b", "anakinra").upper_hours) == (4, 6)
    assert half_life("IL-6", "tocilizumab").value == 11 and half_life("IL-6", "tocilizumab").upper == 13
    assert half_life("IL-11", "oprelvekin").hours == pytest.approx(6.9)
    assert half_life("IL-17A", "secukinumab").units == "day"
    assert half_life("IL-4", "dupilumab") is None  # no single figure published: left out, not guessed
    assert half_life("IL-12") is None


def test_half_life_units_convert_to_hours():
    assert HalfLife(value=30, units="min", context="c", source="s").hours == 0.5
    assert HalfLife(value=2, units="day", context="c", source="s").hours == 48
    assert str(HalfLife(value=4, upper=6, units="hour", context="c", source="s")) == "4-6 h"
    with pytest.raises(ValueError, match="upper"):
        HalfLife(value=6, upper=4, units="hour", context="c", source="s")


# ------------------------------------------------------------------------------------------ lookups


@pytest.mark.parametrize("query, name", [
    ("IL-6", "IL-6"), ("il6", "IL-6"), ("IL6", "IL-6"), ("il-6", "IL-6"), ("IL_6", "IL-6"), ("interleukin-6", "IL-6"),
    ("BSF-2", "IL-6"), ("bsf2", "IL-6"), ("IL-1β", "IL-1b"), ("il1b", "IL-1b"), ("IL-17", "IL-17A"),
    ("TNF-alpha", "TNF"), ("tnfα", "TNF"), ("IFN-γ", "IFN-g"), ("interferon gamma", "IFN-g"), ("TGF-beta", "TGF-b"),
])
def test_lookup_ignores_case_and_accepts_aliases(catalogue, query, name):
    assert catalogue.get(query).name == name
    assert query in catalogue


@pytest.mark.parametrize("query, suggestion", [("IL-16", "IL-6"), ("il_16", "IL-6"), ("IL-1a", "IL-1b"),
                                               ("IL-17F", "IL-17A"), ("TNF-b", "TNF")])
def test_unknown_name_suggests_the_closest(catalogue, query, suggestion):
    with pytest.raises(ModelError) as info:
        catalogue.get(query)
    assert isinstance(info.value, IlsimError)
    assert f"unknown interleukin '{query}' (did you mean '{suggestion}'?)" in str(info.value)
    assert query not in catalogue


def test_unknown_name_far_from_all_points_to_the_list(catalogue):
    with pytest.raises(ModelError, match="unknown interleukin 'zzz'; `ilsim interleukins` lists"):
        catalogue.get("zzz")


def test_lookup_can_name_the_field_and_file_that_asked(catalogue):
    with pytest.raises(ModelError) as info:
        catalogue.get("IL-66", field="species[2].interleukin", source="model.yaml")
    assert str(info.value).startswith("model.yaml: species[2].interleukin: unknown interleukin 'IL-66'")


# --------------------------------------------------------------------------- user-declared entries


def test_user_declared_interleukin_is_merged_and_found():
    merged = load_catalogue([IL41], source="model.yaml")
    assert merged.get("il41").name == "IL-41" and merged.get("Interleukin 41").name == "IL-41"
    assert merged.get("IL-6") is builtin_catalogue().get("IL-6")  # built-ins are still there
    assert len(merged) == len(builtin_catalogue()) + 1
    assert "IL-41" not in builtin_catalogue()  # merging does not change the built-in catalogue
    assert load_catalogue([Interleukin.model_validate(IL41)]).get("IL-41").half_life.hours == 0.5


def test_exact_copy_of_a_builtin_is_accepted():
    il6 = builtin_catalogue().get("IL-6")
    assert len(load_catalogue([il6.model_dump()])) == len(builtin_catalogue())


def test_builtin_name_with_different_content_is_refused_naming_the_field():
    changed = builtin_catalogue().get("IL-6").model_dump() | {"receptor": "something else"}
    with pytest.raises(ModelError) as info:
        load_catalogue([IL41, changed], source="model.yaml")
    message = str(info.value)
    assert message.startswith("model.yaml: interleukins[1].name: 'IL-6' is already in the catalogue")
    assert "differs in receptor" in message


def test_alias_of_a_builtin_is_refused_naming_the_field():
    with pytest.raises(ModelError, match=r"model.yaml: interleukins\[0\]\.aliases\[1\]: 'BSF-2' is already a name "
                                         r"or alias of 'IL-6'"):
        load_catalogue([IL41 | {"aliases": ["IL41", "BSF-2"]}], source="model.yaml")


def test_two_user_entries_with_one_name_are_refused():
    other = IL41 | {"receptor": "IL-41R"}
    with pytest.raises(ModelError, match=r"interleukins\[1\]\.name: 'IL-41' is already in the catalogue"):
        load_catalogue([IL41, other])


@pytest.mark.parametrize("change, fragments", [
    ({"effects": [{"kind": "itch", "description": "x"}]}, ["interleukins[0].effects[0].kind", "got 'itch'"]),
    ({"effects": [{"kind": "inflamation", "description": "x"}]}, ["did you mean 'inflammation'?"]),
    ({"effects": []}, ["interleukins[0].effects"]),
    ({"references": []}, ["interleukins[0].references"]),
    ({"half_life": {"value": 0, "units": "min", "context": "c", "source": "s"}}, ["interleukins[0].half_life.value"]),
    ({"half_life": {"value": 1, "units": "hours", "context": "c", "source": "s"}}, ["did you mean 'hour'?"]),
    ({"category": "chemokine"}, ["interleukins[0].category"]),
    ({"producer": ["x"]}, ["interleukins[0].producer: unknown field 'producer'", "did you mean 'producers'?"]),
])
def test_user_declared_mistakes_name_the_field(change, fragments):
    with pytest.raises(ModelError) as info:
        load_catalogue([IL41 | change], source="model.yaml")
    for fragment in fragments:
        assert fragment in str(info.value)


# ------------------------------------------------------------------------------- catalogue files


def test_the_builtin_file_is_read_through_the_same_loader():
    assert read_catalogue(DATA_FILE).names() == builtin_catalogue().names()


def write(tmp_path, data, name="catalogue.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_malformed_catalogue_names_file_and_field(tmp_path):
    entry = dict(IL41)
    entry["produers"] = entry.pop("producers")
    entry["effects"] = [{"kind": "pian", "description": "x"}]
    path = write(tmp_path, {"interleukins": [IL41 | {"name": "IL-42", "aliases": []}, entry]})
    with pytest.raises(ModelError) as info:
        read_catalogue(path)
    fields = {(p.source, p.field) for p in info.value.problems}
    assert (str(path), "interleukins[1].produers") in fields
    assert (str(path), "interleukins[1]") in fields  # missing 'producers'
    assert (str(path), "interleukins[1].effects[0].kind") in fields
    message = str(info.value)
    assert "did you mean 'producers'?" in message and "did you mean 'pain'?" in message


@pytest.mark.parametrize("text, fragment", [
    ("interleukins:\n  - name: IL-41\n    name: IL-42\n", "line 3, column 5: malformed YAML: the key 'name' appears twice"),
    ("interleukins: [\n", "malformed YAML"),
    ("", "the file is empty"),
    ("- IL-41\n", "a catalogue must be a mapping at the top level, got list"),
    ("interleukin: []\n", "unknown field 'interleukin' (did you mean 'interleukins'?)"),
    ("interleukins: []\n", "interleukins"),
])
def test_unreadable_catalogues_are_refused_with_the_file_named(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ModelError) as info:
        read_catalogue(path)
    assert str(info.value).startswith(f"{path}: ")
    assert fragment in str(info.value)


def test_duplicate_names_within_a_catalogue_file_are_refused(tmp_path):
    path = write(tmp_path, {"interleukins": [IL41, IL41 | {"name": "IL-42", "aliases": ["il41"]}]})
    with pytest.raises(ModelError, match=re.escape(f"{path}: interleukins[1].aliases[0]: 'il41' is already")):
        read_catalogue(path)


def test_the_docs_table_lists_every_builtin_entry():
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "interleukins.md").read_text(encoding="utf-8")
    rows = [line for line in text.split("## The entries")[1].splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip().rstrip(" *") for row in rows[1:]] == builtin_catalogue().names()


def test_missing_catalogue_file(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        read_catalogue(tmp_path / "nowhere.yaml")


# -------------------------------------------------------------------------------------------- CLI


def test_cli_lists_the_catalogue(cli):
    result = cli("interleukins")
    assert result.exit_code == 0, result.output
    for text in ["IL-1b", "IL-6", "IL-17A", "TGF-b", "producers", "half-life", "85 min", "activation/proliferation"]:
        assert text in result.stdout


def test_cli_shows_one_entry(cli):
    result = cli("interleukins", "il6")
    assert result.exit_code == 0, result.output
    for text in ["IL-6 (interleukin)", "receptor:", "gp130", "fever:", "tocilizumab", "11-13 days", "siltuximab",
                 "doi:10.1101/cshperspect.a016295", "BSF-2"]:
        assert text in result.stdout, text


def test_cli_json(cli):
    import json

    one = json.loads(cli("interleukins", "IL-2", "--json").stdout)
    assert one["name"] == "IL-2" and one["therapeutics"][0]["half_life"]["value"] == 85
    everything = json.loads(cli("interleukins", "--json").stdout)
    assert [e["name"] for e in everything] == builtin_catalogue().names()


def test_cli_unknown_interleukin_exits_2_with_a_suggestion(cli, refused):
    refused(cli("interleukins", "IL-16"), "unknown interleukin 'IL-16'", "did you mean 'IL-6'?")
    refused(cli("interleukins", "IL-16", "--json"), "did you mean 'IL-6'?")


def test_a_model_links_species_to_built_in_and_declared_interleukins(tmp_path):
    import ilsim

    path = tmp_path / "m.yaml"
    path.write_text(
        "metadata: {name: link}\n"
        "interleukins:\n"
        "  - name: IL-41\n"
        "    description: a newly described cytokine\n"
        "    category: interleukin\n"
        "    producers: [macrophages]\n"
        "    targets: [T cells]\n"
        "    receptor: unknown\n"
        "    effects: [{kind: inflammation, description: pro-inflammatory}]\n"
        "    references: [{citation: 'Example 2026'}]\n"
        "species:\n"
        "  - {name: IL6, kind: cytokine, initial: 0, interleukin: il-6}\n"
        "  - {name: IL41, kind: cytokine, initial: 0, interleukin: IL-41}\n"
        "  - {name: IL16, kind: cytokine, initial: 0, interleukin: IL-16}\n"
        "  - {name: IL99, kind: cytokine, initial: 0, interleukin: IL-99}\n"
        "processes:\n"
        "  - {name: decay, rate: IL6, consumes: {IL6: 1}}\n"
    )
    with pytest.raises(ilsim.ModelError) as info:
        ilsim.compile(path)
    fields = {p.field: p.message for p in info.value.problems}
    assert set(fields) == {"species[2].interleukin", "species[3].interleukin"}
    assert "did you mean 'IL-6'" in fields["species[2].interleukin"]

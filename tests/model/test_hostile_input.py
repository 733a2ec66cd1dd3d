"""Small model files that expand without bound (YAML aliases, includes, dose schedules), includes reaching
outside the model's folder, huge quoted values, and kernel cache files that are not what their names say.

Each file is written here in tmp_path; the oracles are the limits of ilsim.limits (docs/limits.md), the exact
size of what would have been expanded, and the bytes of the cache files.
"""

import time

import numpy as np
import pytest

import ilsim
from ilsim.limits import MAX_DOSES, MAX_INCLUDES, MAX_MESSAGE, MAX_YAML_NODES
from ilsim.model import compile as compile_module

BASE = """\
metadata: {name: base, time_units: day}
species: [{name: x, initial: 1}]
parameters: [{name: k, value: 0.5}]
processes: [{name: decay, rate: k*x, consumes: {x: 1}}]
"""


def write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------ YAML aliases

def alias_bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for k in range(1, levels):
        lines.append(f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 9)}]")
    lines.append(f"metadata: {{name: bomb}}\nspecies: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_quickly_with_a_short_message(tmp_path):
    path = write(tmp_path, "bomb.yaml", alias_bomb(9))  # 9**9 = 387 million strings from under 1 KB
    assert path.stat().st_size < 1024
    start = time.perf_counter()
    with pytest.raises(ilsim.ModelError) as err:
        ilsim.load(path)
    assert time.perf_counter() - start < 10
    message = str(err.value)
    assert f"expands to more than {MAX_YAML_NODES:,} values through its aliases" in message
    assert len(message) < 1000


def test_aliases_below_the_limit_still_work(tmp_path):
    text = BASE.replace("parameters: [{name: k, value: 0.5}]", "parameters: [&k {name: k, value: 0.5}]")
    text += "events: [{name: reset, at: 1, set: {x: 1}}]\n"
    assert ilsim.compile(write(tmp_path, "ok.yaml", text)).parameters == ("k",)


def test_a_huge_value_is_quoted_as_an_excerpt(tmp_path):
    # 300,000 characters where a number is expected, inside the limit on nodes: the error quotes 200 of them
    path = write(tmp_path, "long.yaml", BASE.replace("value: 0.5", "value: [" + ", ".join(["lol"] * 50_000) + "]"))
    with pytest.raises(ilsim.ModelError) as err:
        ilsim.load(path)
    message = str(err.value)
    assert "more characters)" in message and len(message) < MAX_MESSAGE + 500
    long_rate = "x" + " + x" * 20_000
    with pytest.raises(ilsim.ModelError) as err:
        ilsim.compile(write(tmp_path, "rate.yaml", BASE.replace("rate: k*x", f'rate: "{long_rate} +"')))
    assert "invalid expression 'x + x" in str(err.value) and len(str(err.value)) < 1000


# ------------------------------------------------------------------------------ includes

def test_includes_that_double_at_each_level_stop_at_the_limit(tmp_path):
    write(tmp_path, "m0.yaml", "metadata: {name: m0, time_units: day}\n")  # nothing to clash when read twice
    write(tmp_path, "c0.yaml", "metadata: {name: c0, time_units: day}\n")
    for k in range(1, 16):  # m_k and its copy c_k both include m_(k-1) and c_(k-1): 2**15 reads, 15 deep
        for name in (f"m{k}", f"c{k}"):
            write(tmp_path, f"{name}.yaml", f"metadata: {{name: {name}, time_units: day}}\n"
                                            f"include: [m{k - 1}.yaml, c{k - 1}.yaml]\n")
    start = time.perf_counter()
    with pytest.raises(ilsim.ModelError, match=rf"more than {MAX_INCLUDES} model files in all"):
        ilsim.compile(tmp_path / "m15.yaml")
    assert time.perf_counter() - start < 60
    for k in range(1, 23):  # a chain: one include per level
        write(tmp_path, f"chain{k}.yaml", f"metadata: {{name: chain{k}, time_units: day}}\ninclude: [chain{k - 1}.yaml]\n")
    write(tmp_path, "chain0.yaml", BASE)
    with pytest.raises(ilsim.ModelError, match=r"includes nested more than 20 deep"):
        ilsim.compile(tmp_path / "chain22.yaml")
    assert ilsim.compile(tmp_path / "chain19.yaml").species == ("x",)


def test_the_same_file_twice_in_one_include_list_is_refused(tmp_path):
    write(tmp_path, "base.yaml", BASE)
    top = write(tmp_path, "top.yaml", "metadata: {name: top, time_units: day}\ninclude: [base.yaml, ./base.yaml]\n")
    with pytest.raises(ilsim.ModelError, match=r"include\[1\]: './base.yaml' is included twice"):
        ilsim.compile(top)


@pytest.mark.parametrize("reference", ["/etc/passwd", "../outside/base.yaml", "notes.txt"])
def test_an_include_outside_the_models_folder_or_not_a_model_file_is_refused(tmp_path, reference):
    write(tmp_path, "outside/base.yaml", BASE)
    write(tmp_path, "model/notes.txt", BASE)
    top = write(tmp_path, "model/top.yaml", f"metadata: {{name: top, time_units: day}}\ninclude: [{reference}]\n")
    with pytest.raises(ilsim.ModelError) as err:
        ilsim.compile(top)
    message = str(err.value)
    assert "include[0]" in message and ("outside the model's folder" in message or "not a model file" in message)
    assert "root:" not in message  # nothing of the file read


def test_includes_below_the_folder_built_ins_and_trusted_folders_are_read(tmp_path, monkeypatch):
    write(tmp_path, "model/parts/base.yaml", BASE)
    top = write(tmp_path, "model/top.yaml", "metadata: {name: top, time_units: day}\ninclude: [parts/base.yaml]\n")
    assert ilsim.compile(top).species == ("x",)
    write(tmp_path, "shared/base.yaml", BASE)
    other = write(tmp_path, "model/other.yaml", "metadata: {name: o, time_units: day}\ninclude: [../shared/base.yaml]\n")
    with pytest.raises(ilsim.ModelError, match="ILSIM_INCLUDE_PATH"):
        ilsim.compile(other)
    monkeypatch.setenv("ILSIM_INCLUDE_PATH", str(tmp_path / "shared"))
    assert ilsim.compile(other).species == ("x",)


# ------------------------------------------------------------------------------ doses

DOSED = """\
metadata: {name: dosed, time_units: day}
species: [{name: T, initial: 1}]
processes: [{name: growth, rate: 0.1*T, produces: {T: 1}}]
pk: [{drug: drugA, compartments: 1, volume: 5, k10: 0.3, amount_units: mg}]
"""


def test_a_dose_schedule_of_millions_is_refused_before_it_is_expanded(tmp_path):
    path = write(tmp_path, "many.yaml", DOSED + "doses: [{drug: drugA, route: iv_bolus, amount: 1, units: mg, every: 0.001, "
                 "count: 1000000, cycles: 1000, cycle_length: 1000}]\n")
    with pytest.raises(ilsim.ModelError, match=r"gives 1,000,000,000 doses; a model is limited to 10,000"):
        ilsim.load(path)


def test_dose_schedules_are_limited_in_total(tmp_path):
    entry = "  - {drug: drugA, route: iv_bolus, amount: 1, units: mg, every: 0.01, count: 4000}\n"
    path = write(tmp_path, "total.yaml", DOSED + "doses:\n" + entry * 3)
    with pytest.raises(ilsim.ModelError, match=rf"give 12,000 doses in all; a model is limited to {MAX_DOSES:,}"):
        ilsim.compile(path)
    fine = write(tmp_path, "fine.yaml", DOSED + "doses:\n" + entry.replace("4000", "10"))
    ds = ilsim.simulate(fine, 1, points=2, rtol=1e-10, atol=1e-12)  # 10 boluses of 1 mg at 0, 0.01, ..., 0.09
    exact = sum(np.exp(-0.3 * (1 - 0.01 * i)) for i in range(10))  # each eliminated at k10 = 0.3 until t = 1
    assert float(ds["drugA_central"].values[-1]) == pytest.approx(exact, rel=1e-8)


# ------------------------------------------------------------------------------ the kernel cache

def test_a_kernel_file_that_is_not_its_source_is_written_again_not_run(tmp_path, monkeypatch):
    monkeypatch.setenv("ILSIM_CACHE", str(tmp_path / "cache"))
    source = "def answer():\n    return 42\n"
    module = compile_module._import_generated(source, jit=False)
    path = tmp_path / "cache" / "kernels" / f"{module.__name__}.py"
    assert path.read_text().endswith(source) and module.answer() == 42
    # another process (the module is not loaded): a planted file with the kernel's name is replaced, not imported
    import sys

    del sys.modules[module.__name__]
    path.write_text("raise SystemExit('planted code ran')\n")
    again = compile_module._import_generated(source, jit=False)
    assert again.answer() == 42 and path.read_text().endswith(source)


def test_a_cached_jacobian_is_imported_only_with_its_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("ILSIM_CACHE", str(tmp_path / "cache"))
    source = "def jac():\n    return 1\n"
    name = "ilsim_kernel_test_jac_into"
    compile_module._import_generated(source, jit=False, name=name)
    import sys

    del sys.modules[name]
    assert compile_module._import_cached(name).jac() == 1  # intact: imported
    del sys.modules[name]
    path = tmp_path / "cache" / "kernels" / f"{name}.py"
    path.write_text(path.read_text().replace("return 1", "return 2"))  # content no longer matches its hash
    assert compile_module._import_cached(name) is None  # so it is derived again, not run


def test_a_cache_folder_others_can_write_is_not_used(tmp_path, monkeypatch):
    folder = tmp_path / "cache" / "kernels"
    folder.mkdir(parents=True)
    monkeypatch.setenv("ILSIM_CACHE", str(tmp_path / "cache"))
    folder.chmod(0o777)
    assert compile_module.trusted_cache_dir() == folder  # ours: its open mode is closed
    assert folder.stat().st_mode & 0o022 == 0
    np.testing.assert_equal(compile_module._owned_privately(folder), True)

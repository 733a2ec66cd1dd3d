"""Imports point one way (docs/architecture.md, "Layers"), and `import ilsim` stays light.

The contracts live in pyproject.toml ([tool.importlinter]); `lint-imports` checks them here, so a
layer imported upwards or an import cycle fails the test suite (and CI, which runs it).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ilsim

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(ilsim.__file__).resolve().parents[1]  # the ilsim under test (the worktree's src/, or site-packages)
HEAVY = ("numba", "scipy", "xarray", "pandas", "matplotlib", "dask", "sympy", "libsbml")

# `lint-imports` run by this interpreter (import-linter is in the test extra: a missing one fails, never skips)
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def lint(src: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([sys.executable, "-c", LINT, "--no-cache", "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    result = lint(SRC)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def lint_with_import(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess:
    """``lint`` of a copy of ilsim in which ``module`` (a path under ilsim/) also runs ``line``."""
    copy = tmp_path / "src"
    shutil.copytree(SRC / "ilsim", copy / "ilsim", ignore=shutil.ignore_patterns("__pycache__"))
    path = copy / "ilsim" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa: E402,F401\n")
    return lint(copy)


def test_a_cycle_inside_one_layer_fails_the_contracts(tmp_path):
    # model.base imports model.expressions; the reverse import makes a cycle inside the model layer,
    # which the layers contract alone would allow
    result = lint_with_import(tmp_path, "model/expressions.py", "from ilsim.model import base")
    assert result.returncode != 0
    assert "No import cycles between sibling modules or packages, at any depth BROKEN" in result.stdout
    assert "Layers point one way: each layer imports only the ones below it KEPT" in result.stdout


def test_an_upward_import_fails_the_contracts(tmp_path):
    result = lint_with_import(tmp_path, "model/units.py", "from ilsim.therapy import dosing")
    assert result.returncode != 0
    assert "Layers point one way: each layer imports only the ones below it BROKEN" in result.stdout
    assert "ilsim.model is not allowed to import ilsim.therapy.dosing" in result.stdout


def loaded_after(code: str) -> list[str]:
    """The heavy packages in sys.modules after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_ilsim_loads_no_heavy_package():
    assert loaded_after("import ilsim") == []


def test_ilsim_help_loads_no_heavy_package():
    code = ("import sys\nsys.argv = ['ilsim', '--help']\nfrom ilsim.cli import app\n"
            "try:\n    app()\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code")
    assert loaded_after(code) == []


def test_public_names_load_on_first_use():
    # the lazy names are the real objects, and a spec's simulate reaches ilsim.simulate through the package
    from ilsim.api import simulate
    from ilsim.model.spec import ModelSpec

    assert ilsim.simulate is simulate and ilsim.Model is ModelSpec and ilsim.ModelSpec is ModelSpec
    assert set(ilsim.__all__) <= set(dir(ilsim))
    with pytest.raises(AttributeError, match="no attribute 'simulat'"):
        ilsim.simulat  # noqa: B018
    model = ilsim.Model(name="decay").add_species("x", 2.0).add_parameter("k", 0.5).add_process(
        "loss", "k*x", consumes={"x": 1})
    ds = model.simulate(4.0, points=5, method="RK45", rtol=1e-10, atol=1e-12)
    assert ds["x"].values[-1] == pytest.approx(2.0 * 2.718281828459045 ** -2.0, rel=1e-7)  # x(4) = 2 exp(-0.5 * 4)


# a decay A -> B with units (second, mole, litre): importing it reads every unit label through pint
SBML_DECAY = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core" level="3" version="1">
  <model id="decay" timeUnits="second" substanceUnits="mole" volumeUnits="litre" extentUnits="mole">
    <listOfUnitDefinitions>
      <unitDefinition id="per_second"><listOfUnits>
        <unit kind="second" exponent="-1" scale="0" multiplier="1"/></listOfUnits></unitDefinition>
    </listOfUnitDefinitions>
    <listOfCompartments><compartment id="c" size="1" spatialDimensions="3" units="litre" constant="true"/></listOfCompartments>
    <listOfSpecies>
      <species id="A" compartment="c" initialAmount="2" substanceUnits="mole" hasOnlySubstanceUnits="true"
               boundaryCondition="false" constant="false"/>
      <species id="B" compartment="c" initialAmount="0" substanceUnits="mole" hasOnlySubstanceUnits="true"
               boundaryCondition="false" constant="false"/>
    </listOfSpecies>
    <listOfParameters><parameter id="k" value="0.5" units="per_second" constant="true"/></listOfParameters>
    <listOfReactions>
      <reaction id="r" reversible="false" fast="false">
        <listOfReactants><speciesReference species="A" stoichiometry="1" constant="true"/></listOfReactants>
        <listOfProducts><speciesReference species="B" stoichiometry="1" constant="true"/></listOfProducts>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML"><apply><times/><ci>k</ci><ci>A</ci></apply></math>
        </kineticLaw>
      </reaction>
    </listOfReactions>
  </model>
</sbml>
"""


def test_loading_an_sbml_file_loads_only_what_reading_it_needs(tmp_path):
    # a new model's first run starts with importing modules: ilsim.load of an SBML file reads it with libsbml
    # and its units with pint, and loads none of the engines' modules (SciPy's integrators, numba), nor
    # xarray/pandas, nor dask (which pint imports for its dask arrays unless told otherwise)
    path = tmp_path / "decay.xml"
    path.write_text(SBML_DECAY)
    code = (f"import sys, ilsim\nspec = ilsim.load({str(path)!r})\nassert spec.metadata.time_units == 'second'\n"
            "assert 'pint' in sys.modules and 'scipy.integrate' not in sys.modules")
    assert loaded_after(code) == ["scipy", "libsbml"]  # scipy's package alone (pint looks for it), not its integrators


def test_a_first_run_of_an_sbml_file_loads_no_dask_numba_or_xarray(tmp_path):
    # import + compile + simulate as bench/biomodels_survey.py times it; the answer checks that it ran:
    # A(t) = 2 exp(-0.5 t)
    path = tmp_path / "decay.xml"
    path.write_text(SBML_DECAY)
    code = (f"import numpy as np\nfrom ilsim.engines.ode import OdeEngine\nfrom ilsim.io.sbml_import import import_sbml\n"
            f"from ilsim.model.compile import compile_model\nmodel = import_sbml({str(path)!r})\n"
            "compiled = compile_model(model.spec, jit=False)\n"
            "traj = OdeEngine().run(compiled, np.linspace(0.0, 4.0, 5), compiled.p0)\n"
            "a = traj.y[:, compiled.species.index('A')]\n"
            "assert np.allclose(a, 2.0 * np.exp(-0.5 * traj.t), rtol=1e-4), a")
    assert loaded_after(code) == ["scipy", "libsbml"]

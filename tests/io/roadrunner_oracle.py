"""An SBML file run by libroadrunner (the oracle) and by ilsim's import and SciPy engine, species amounts side by
side: shared by the tests of SBML event semantics and of per-species tolerances."""

from __future__ import annotations

import numpy as np
import pytest

from ilsim.engines.ode import OdeEngine
from ilsim.io.sbml_import import import_sbml
from ilsim.model import expressions as ex
from ilsim.model.compile import compile_model


def sbml_file(tmp_path, antimony_text: str):
    """The SBML of an Antimony model, written to tmp_path/model.xml."""
    antimony = pytest.importorskip("antimony", reason="antimony (a test-only dependency) is not installed")
    antimony.clearPreviousLoads()
    assert antimony.loadAntimonyString(antimony_text) >= 0, antimony.getLastError()
    path = tmp_path / "model.xml"
    path.write_text(antimony.getSBMLString(antimony.getMainModuleName()))
    return path


def amounts(path, t: np.ndarray, engine, rr_rtol: float, rr_atol: float):
    """(ilsim's amounts, libroadrunner's amounts), times x floating species, and the imported model; ``engine``: an
    OdeEngine (its run raises where it fails) or any other engine (its solve must end with status 0)."""
    roadrunner = pytest.importorskip("roadrunner", reason="libroadrunner (a test-only dependency) is not installed")
    rr = roadrunner.RoadRunner(str(path))
    rr.integrator.relative_tolerance, rr.integrator.absolute_tolerance = rr_rtol, rr_atol
    species = list(rr.model.getFloatingSpeciesIds())
    rr.timeCourseSelections = ["time", *species]  # a bare species id selects its amount
    theirs = np.asarray(rr.simulate(times=t))[:, 1:]
    model = import_sbml(path)
    compiled = compile_model(model.spec, source=str(path))
    if isinstance(engine, OdeEngine):
        traj = engine.run(compiled, t, compiled.p0)
        ys, ps = traj.y, traj.p
    else:
        result = engine.solve(compiled, t, compiled.p0[None, :], record_parameters=True)
        assert result.status[0] == 0, result.messages[0]
        ys, ps = result.Y[0], result.P_t[0]
    ours = np.array([[float(ex.evaluate(model.quantities[s].amount, compiled.namespace(tt, y, p))) for s in species]
                     for tt, y, p in zip(t, ys, ps)])
    return ours, theirs, model

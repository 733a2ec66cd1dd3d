"""Running SBML Test Suite cases (semantic, deterministic) through the importer and the ODE engine.

A case folder ``NNNNN/`` holds the SBML file, ``NNNNN-settings.txt`` (start, duration, steps,
variables, absolute and relative tolerances, which variables are amounts or concentrations) and
``NNNNN-results.csv`` (expected values). A case passes when
``|expected - simulated| <= absolute + relative * |expected|`` at every output point.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ilsim.engines.ode import OdeEngine, Trajectory
from ilsim.errors import IlsimError, ModelError
from ilsim.io.sbml_import import SbmlModel, import_sbml
from ilsim.model import expressions as ex
from ilsim.model.compile import CompiledModel, compile_model

RTOL = 1e-10  # the integrator must never be the reason a case fails
ATOL_FRACTION = 1e-5  # absolute tolerance of the integrator, as a fraction of the case's own


@dataclass(frozen=True)
class Settings:
    start: float
    duration: float
    steps: int
    variables: tuple[str, ...]
    absolute: float
    relative: float
    amounts: frozenset[str]
    concentrations: frozenset[str]


@dataclass(frozen=True)
class CaseResult:
    case: str
    status: str  # passed, failed, refused
    reason: str = ""


def read_settings(path: Path) -> Settings:
    fields: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()

    def names(key: str) -> tuple[str, ...]:
        return tuple(v.strip() for v in fields.get(key, "").split(",") if v.strip())

    return Settings(float(fields["start"]), float(fields["duration"]), int(fields["steps"]), names("variables"),
                    float(fields["absolute"]), float(fields["relative"]), frozenset(names("amount")),
                    frozenset(names("concentration")))


def model_file(case_dir: Path) -> Path:
    """The case's SBML file (the suite's folder keeps the highest level available)."""
    files = sorted(case_dir.glob("*-sbml-l*.xml"))
    if not files:
        raise FileNotFoundError(f"no SBML file in {case_dir}")
    return files[-1]


def quantity_tree(model: SbmlModel, sbml_id: str, kind: str | None) -> ex.Expr:
    """The tree giving an SBML id's value as an amount, a concentration or (kind None) what it means in math."""
    if sbml_id not in model.quantities:
        raise KeyError(f"'{sbml_id}' is not a symbol of the model")
    q = model.quantities[sbml_id]
    if kind == "amount" and q.amount is not None:
        return q.amount
    if kind == "concentration" and q.concentration is not None:
        return q.concentration
    return q.value


def read_back(compiled: CompiledModel, traj: Trajectory, trees: list[ex.Expr]) -> np.ndarray:
    """Evaluate trees over ilsim names along a trajectory (times x trees); parameters as events left them."""
    values: dict[str, np.ndarray] = {ex.TIME: traj.t}
    values.update({n: traj.y[:, i] for i, n in enumerate(compiled.species)})
    values.update({n: traj.p[:, j] for j, n in enumerate(compiled.parameters)})
    obs = compiled.observe(traj.t, traj.y, traj.p.T)
    values.update({n: obs[:, k] for k, n in enumerate(compiled.observables)})
    out = np.empty((len(traj.t), len(trees)))
    with np.errstate(all="ignore"):
        for k, tree in enumerate(trees):
            out[:, k] = np.broadcast_to(np.asarray(_evaluate(tree, values), dtype=float), (len(traj.t),))
    return out


def _evaluate(tree: ex.Expr, values: dict):
    if isinstance(tree, ex.BinOp):  # quantities are products and quotients of names: NumPy does them
        a, b = _evaluate(tree.left, values), _evaluate(tree.right, values)
        return {"*": np.multiply, "/": np.divide, "+": np.add, "-": np.subtract, "**": np.power}[tree.op](a, b)
    if isinstance(tree, ex.Name):
        return values[tree.id]
    if isinstance(tree, ex.Num):
        return tree.value
    return np.array([ex.evaluate(tree, {k: float(v[i]) if np.ndim(v) else float(v) for k, v in values.items()})
                     for i in range(len(values[ex.TIME]))])


def run_case(case_dir: str | Path, method: str = "LSODA") -> CaseResult:
    """Import, simulate and check one case: passed, failed (with the worst point) or refused (with the reason)."""
    case_dir = Path(case_dir)
    case = case_dir.name
    settings = read_settings(case_dir / f"{case}-settings.txt")
    with open(case_dir / f"{case}-results.csv") as f:
        rows = list(csv.reader(f))
    header = [h.strip() for h in rows[0]]
    expected = np.array([[float(v) for v in row] for row in rows[1:] if row], dtype=float)
    try:
        model = import_sbml(model_file(case_dir))
        compiled = compile_model(model.spec, source=str(model_file(case_dir)), jit=False)
    except ModelError as exc:
        return CaseResult(case, "refused", "; ".join(f"{p.field}: {p.message}" if p.field else p.message
                                                    for p in exc.problems)[:300])
    t = np.linspace(settings.start, settings.start + settings.duration, settings.steps + 1)
    if expected.shape[0] == len(t) and np.allclose(expected[:, 0], t, rtol=1e-6, atol=1e-9):
        t = expected[:, 0]  # the suite's own times (some are rounded in the file)
    wanted = header[1:]
    try:
        trees = [quantity_tree(model, v, "amount" if v in settings.amounts else
                               "concentration" if v in settings.concentrations else None) for v in wanted]
    except KeyError as exc:
        return CaseResult(case, "failed", str(exc))
    scale = np.nanmax(np.abs(expected[:, 1:])) if expected.shape[1] > 1 else 1.0
    atol = max(settings.absolute * ATOL_FRACTION, 1e-300) if scale > 0 else 1e-12
    try:
        traj = OdeEngine(method, RTOL, min(atol, 1e-10)).run(compiled, t, compiled.p0)
        got = read_back(compiled, traj, trees)
    except IlsimError as exc:
        return CaseResult(case, "failed", f"simulation: {exc}"[:300])
    return _check(case, t, expected, got, wanted, settings)


def _check(case: str, t: np.ndarray, expected: np.ndarray, got: np.ndarray, names: list[str], s: Settings) -> CaseResult:
    if expected.shape[0] != len(t) or not np.allclose(expected[:, 0], t, rtol=1e-9, atol=1e-12):
        return CaseResult(case, "failed", "the expected times differ from the settings' grid")
    want = expected[:, 1:]
    both_nan = np.isnan(want) & np.isnan(got)
    same_inf = np.isinf(want) & (want == got)
    with np.errstate(invalid="ignore"):
        excess = np.abs(want - got) - (s.absolute + s.relative * np.abs(want))
    excess[both_nan | same_inf] = -1.0
    excess[np.isnan(excess)] = math.inf
    if (excess <= 0).all():
        return CaseResult(case, "passed")
    i, k = np.unravel_index(np.argmax(excess), excess.shape)
    return CaseResult(case, "failed", f"{names[k]} at t = {t[i]:g}: expected {want[i, k]:.6g}, got {got[i, k]:.6g}")


def subset_cases(root: Path, subset: str | None) -> list[str]:
    """Case ids of a subset (T1..T4, from the suite's lists) or every case."""
    files = {"T1": "T1_reactions_params_compartments.txt", "T2": "T2_plus_assignment_rate_rules.txt",
             "T3": "T3_plus_events_nodelay.txt", "T4": "T4_plus_initassign_funcdef_time.txt"}
    if subset is None:
        return sorted(p.name for p in (root / "cases").iterdir() if p.is_dir())
    return [line.strip() for line in (root / files[subset]).read_text().splitlines() if line.strip()]

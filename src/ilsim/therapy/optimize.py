"""Schedule optimisation: search doses, intervals, numbers of doses (and parameters) for the best
efficacy under toxicity limits, and the efficacy-toxicity Pareto front.

Each candidate is the model with some dose fields (``doses[0].amount``, ``doses[0].every``,
``doses[0].count``, ``doses[0].hold.stop_after``, ...) or parameters (``param:NAME``) replaced,
rebuilt through the model validator and simulated. The objective (``max:reduction(T)``), the
constraints (``grade(Platelet count decreased) <= 2``) and the toxicity measure are small
expressions over the quantities of a run's summary (``QUANTITIES``): each quantity call is
rewritten into a name before the text goes to ilsim's safe expression parser; nothing is eval'd.

The default search is a grid: schedules have few variables, several of them whole numbers (the
number of doses, of cycles, of held doses before stopping), a grid of a few hundred runs costs
seconds to minutes, and it gives the whole efficacy-toxicity trade-off, not only one optimum.
``method="nelder-mead"`` or ``"differential-evolution"`` (SciPy) search continuous ranges instead,
with the constraints as penalties; every schedule they evaluate is reported in the same table.
"""

from __future__ import annotations

import copy
import csv
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ilsim import api
from ilsim.errors import ExpressionError, IlsimError, ModelError, did_you_mean
from ilsim.errors import argument as arg
from ilsim.io.results import atomic_folder, check_out, summarise, time_series, write_json
from ilsim.model import expressions as ex
from ilsim.model.compose import include as include_models
from ilsim.model.load import spec_from_dict
from ilsim.therapy.ctcae import get_term

MAX_CANDIDATES = 2000  # a larger grid needs force=True
METHODS = ("grid", "nelder-mead", "differential-evolution")
PENALTY = 1e6  # per unit of relative constraint violation, for the SciPy methods
FAILED_PENALTY = 1e12

# quantity -> (what its arguments are, description); the vocabulary of objectives and constraints
QUANTITIES: dict[str, tuple[tuple[str, ...], str]] = {
    "initial": (("variable",), "value at t = 0"),
    "final": (("variable",), "value at the end of the run"),
    "peak": (("variable",), "largest value"),
    "nadir": (("variable",), "smallest value"),
    "peak_time": (("variable",), "time of the largest value"),
    "nadir_time": (("variable",), "time of the smallest value"),
    "reduction": (("variable",), "1 - final/initial (0.9: a 90% reduction)"),
    "auc": (("variable",), "area under the curve over the run (trapezoid rule)"),
    "at": (("variable", "time"), "value at a time (linear interpolation between output times)"),
    "grade": (("term",), "worst CTCAE grade of a term the model grades (0: never graded 1 or more)"),
    "hospitalisation": (("term",), "1 when the term's worst grade implies hospitalisation, else 0"),
    "intensive_care": (("term",), "1 when the term's worst grade implies intensive care, else 0"),
    "worst_grade": ((), "worst CTCAE grade over every term the model grades"),
    "doses_given": (("drug",), "number of doses of a drug given (not held)"),
    "doses_held": (("drug",), "number of scheduled doses of a drug held by a hold rule"),
}
DOSE_FIELDS = ("amount", "every", "count", "start", "duration", "cycles", "cycle_length")
HOLD_FIELDS = ("stop_after",)
INTEGER_FIELDS = {"count", "cycles", "stop_after"}
_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
_QUANTITY = re.compile(r"\b(" + "|".join(QUANTITIES) + r")\s*\(([^()]*)\)")
_DOSE_KEY = re.compile(r"^doses\[(\d+)\]\.(\w+)(?:\.(\w+))?$")


# ----------------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Quantity:
    func: str
    args: tuple[str, ...]

    @property
    def text(self) -> str:
        return f"{self.func}({', '.join(self.args)})"


@dataclass
class Criterion:
    """An objective, constraint or toxicity measure: its text, its tree and the quantities it uses."""

    text: str
    tree: ex.Expr
    quantities: dict[str, Quantity]
    sense: str = ""  # "min" or "max" (objective, toxicity measure)
    op: str = ""  # constraints: < <= > >=
    left: ex.Expr | None = None
    right: ex.Expr | None = None

    def value(self, run: Run, node: ex.Expr | None = None) -> float:
        values = {name: run.quantity(q) for name, q in self.quantities.items()}
        return float(ex.evaluate(self.tree if node is None else node, values))


def parse_quantities(text: str, what: str) -> tuple[ex.Expr, dict[str, Quantity]]:
    """An expression over run quantities -> (tree with a name per quantity call, name -> quantity)."""
    if not isinstance(text, str) or not text.strip():
        raise IlsimError(f"{what} is empty")
    if text.count("(") != text.count(")"):
        raise IlsimError(f"{what} '{text}': syntax error: unbalanced parentheses")
    quantities: dict[str, Quantity] = {}

    def rewrite(m: re.Match) -> str:
        func, inner = m.group(1), m.group(2)
        args = tuple(a.strip() for a in inner.split(",")) if inner.strip() else ()
        want = QUANTITIES[func][0]
        if len(args) != len(want) or any(not a for a in args):
            form = f"{func}({', '.join(want).upper()})"
            raise IlsimError(f"{what} '{text}': {func}() takes {len(want) or 'no'} argument(s): {form}")
        q = Quantity(func, args)
        name = next((n for n, old in quantities.items() if old == q), None) or f"q_{len(quantities)}"
        quantities[name] = q
        return f" {name} "

    rewritten = _QUANTITY.sub(rewrite, text)
    for m in _CALL.finditer(rewritten):
        name = m.group(1)
        if name in QUANTITIES:
            raise IlsimError(f"{what} '{text}': the arguments of {name}() are names and numbers, not expressions")
        if name not in ex.FUNCTIONS:
            raise IlsimError(f"{what} '{text}': unknown quantity or function '{name}'"
                             f"{did_you_mean(name, [*QUANTITIES, *ex.FUNCTIONS])}; quantities: {', '.join(QUANTITIES)}")
    try:
        tree = ex.parse(rewritten)
    except ExpressionError as exc:
        message = str(exc).replace(f"'{rewritten}'", f"'{text}'")
        for name in sorted(quantities, key=len, reverse=True):
            message = message.replace(name, quantities[name].text)
        raise IlsimError(f"{what}: {message}") from None
    stray = sorted(tree.names() - set(quantities))
    if stray:
        raise IlsimError(f"{what} '{text}': unknown name '{stray[0]}'; name a quantity of the run, e.g. final({stray[0]}), "
                         f"peak({stray[0]}) or grade(TERM); quantities: {', '.join(QUANTITIES)}")
    return tree, quantities


def parse_objective(text: str, what: str = "objective") -> Criterion:
    """'max:reduction(T)' or 'min:final(T)'."""
    sense, sep, body = str(text).partition(":")
    sense = sense.strip().lower()
    if not sep or sense not in ("min", "max"):
        raise IlsimError(f"{what} '{text}': start it with 'max:' or 'min:', e.g. max:reduction(T)")
    tree, quantities = parse_quantities(body, what)
    if ex.is_condition(tree):
        raise IlsimError(f"{what} '{text}': expected a quantity to {sense}imise, not a condition")
    if not quantities:
        raise IlsimError(f"{what} '{text}': uses no quantity of the run")
    return Criterion(text, tree, quantities, sense=sense)


def parse_constraint(text: str) -> Criterion:
    """'grade(Hypotension) <= 2', 'nadir(platelets) >= 50000'."""
    tree, quantities = parse_quantities(text, "constraint")
    if not isinstance(tree, ex.Compare) or tree.op not in ("<", "<=", ">", ">="):
        raise IlsimError(f"constraint '{text}': expected one comparison with <, <=, > or >=, e.g. grade(Hypotension) <= 2 "
                         "(give several constraints separately)")
    if not quantities:
        raise IlsimError(f"constraint '{text}': uses no quantity of the run")
    return Criterion(text, tree, quantities, op=tree.op, left=tree.left, right=tree.right)


def toxicity_measure(toxicity: str | None, constraints: list[Criterion]) -> Criterion:
    """The measure on the Pareto front's toxicity axis: ``toxicity`` ('EXPR' = 'min:EXPR', or
    'max:EXPR' when higher is safer), else the quantity side of the first constraint."""
    if toxicity is not None:
        text = toxicity if re.match(r"^\s*(min|max)\s*:", toxicity) else f"min:{toxicity}"
        return parse_objective(text, "toxicity measure")
    if not constraints:
        raise IlsimError("no toxicity measure for the Pareto front: give a constraint or a toxicity expression "
                         f"({arg('toxicity')})")
    c = constraints[0]
    side, op = c.left, c.op
    if not (c.left.names() & set(c.quantities)):  # '2 >= grade(X)': the quantity is on the right
        side, op = c.right, {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[op]
    text = ex.to_text(side)
    for name, q in c.quantities.items():
        text = re.sub(rf"\b{name}\b", q.text, text)
    sense = "min" if op in ("<", "<=") else "max"
    return Criterion(text, side, {n: q for n, q in c.quantities.items() if n in side.names()}, sense=sense)


# ------------------------------------------------------------------------------------------- runs


@dataclass
class Run:
    """A simulated candidate: its summary and trajectories, from which quantities are read."""

    summary: dict
    time: np.ndarray
    series: dict[str, np.ndarray]

    @classmethod
    def of(cls, ds) -> Run:
        return cls(summarise(ds), np.asarray(ds["time"].values, dtype=float),
                   {name: np.asarray(ds[name].values, dtype=float) for name in time_series(ds)})

    def quantity(self, q: Quantity) -> float:
        f, a = q.func, q.args
        if f in ("initial", "final", "peak", "nadir", "peak_time", "nadir_time"):
            return float(self.summary["variables"][a[0]][f])
        if f == "reduction":
            v = self.summary["variables"][a[0]]
            return 1.0 - v["final"] / v["initial"] if v["initial"] else math.nan
        if f == "auc":
            y = self.series[a[0]]
            return float(np.sum(np.diff(self.time) * (y[1:] + y[:-1]) / 2.0))
        if f == "at":
            return float(np.interp(float(a[1]), self.time, self.series[a[0]]))
        tox = self.summary.get("toxicity") or {}
        if f == "worst_grade":
            return float(max((e["max_grade"] for e in tox.values()), default=0))
        if f in ("grade", "hospitalisation", "intensive_care"):
            entry = tox[_term_name(a[0])]
            return float(entry["max_grade"]) if f == "grade" else float(bool(entry.get(f)))
        status = "given" if f == "doses_given" else "held"
        return float(sum(1 for e in self.summary["dose_log"] if e["drug"] == a[0] and e["status"] == status))


def _term_name(text: str) -> str:
    return get_term(text).name


def check_quantities(criteria: list[Criterion], run: Run, drugs: list[str]) -> None:
    """Every variable, CTCAE term, drug and time a criterion names exists in the model's runs."""
    variables = list(run.summary["variables"])
    graded = list(run.summary.get("toxicity") or {})
    t_end = float(run.time[-1])
    for c in criteria:
        for q in c.quantities.values():
            role = QUANTITIES[q.func][0]
            where = f"'{c.text}': {q.text}"
            if "variable" in role and q.args[0] not in variables:
                raise IlsimError(f"{where}: the model has no variable '{q.args[0]}'{did_you_mean(q.args[0], variables)}")
            if "time" in role:
                try:
                    t = float(q.args[1])
                except ValueError:
                    raise IlsimError(f"{where}: the time must be a number, got '{q.args[1]}'") from None
                if not 0 <= t <= t_end:
                    raise IlsimError(f"{where}: the time {t:g} is outside the run (0 to {t_end:g})")
            if "term" in role:
                try:
                    name = _term_name(q.args[0])
                except ModelError as exc:
                    raise IlsimError(f"{where}: {exc.problems[0].message}") from None
                if name not in graded:
                    grades = f"it grades {', '.join(graded)}" if graded else "it has no toxicity: section"
                    raise IlsimError(f"{where}: the model does not grade {name} ({grades}); add it to the model's toxicity: "
                                     "section")
            if q.func == "worst_grade" and not graded:
                raise IlsimError(f"{where}: the model grades no side effect (it has no toxicity: section)")
            if "drug" in role and q.args[0] not in drugs:
                raise IlsimError(f"{where}: no drug '{q.args[0]}' is dosed{did_you_mean(q.args[0], drugs)}"
                                 + (f"; the model doses {', '.join(drugs)}" if drugs else ""))


# ------------------------------------------------------------------------------------- variables


@dataclass
class Variable:
    key: str
    values: list[float]
    dose: int | None = None  # index into doses, or None for a parameter
    path: tuple[str, ...] = ()  # ("amount",) or ("hold", "stop_after"); for a parameter ("NAME",)
    integer: bool = False
    bounds: tuple[float, float] = field(default=(0.0, 0.0))


def resolve_vary(spec, parameters: list[str], vary: dict) -> list[Variable]:
    """The variables of a search, checked against the model (fields, indices, parameter names)."""
    if not vary:
        raise IlsimError("nothing to vary: give at least one dose field (doses[0].amount) or parameter (param:NAME)")
    out = []
    for key, spec_values in vary.items():
        key = str(key).strip()
        if key.startswith("param:"):
            name = key.removeprefix("param:").strip()
            if name not in parameters:
                raise IlsimError(f"{arg('vary')} '{key}': the model has no parameter '{name}'{did_you_mean(name, parameters)}")
            var = Variable(key, [], None, (name,), False)
        else:
            m = _DOSE_KEY.match(key)
            if not m:
                raise IlsimError(f"{arg('vary')} '{key}': address a dose field as doses[I].FIELD (e.g. doses[0].amount, "
                                 "doses[0].hold.stop_after) or a parameter as param:NAME")
            index, name, sub = int(m.group(1)), m.group(2), m.group(3)
            if index >= len(spec.doses):
                have = f"doses[0] to doses[{len(spec.doses) - 1}]" if spec.doses else "no doses: section"
                raise IlsimError(f"{arg('vary')} '{key}': the model has {have}")
            if sub is None:
                if name not in DOSE_FIELDS:
                    raise IlsimError(f"{arg('vary')} '{key}': cannot vary the dose field "
                                     f"'{name}'{did_you_mean(name, DOSE_FIELDS)}; "
                                     f"numeric dose fields: {', '.join(DOSE_FIELDS)}")
                path = (name,)
            else:
                if name != "hold" or sub not in HOLD_FIELDS:
                    raise IlsimError(f"{arg('vary')} '{key}': cannot vary '{name}.{sub}'"
                                     f"{did_you_mean(f'{name}.{sub}', [f'hold.{h}' for h in HOLD_FIELDS])}; "
                                     f"of a hold rule only {', '.join(HOLD_FIELDS)} can be varied")
                if spec.doses[index].hold is None:
                    raise IlsimError(f"{arg('vary')} '{key}': doses[{index}] has no hold rule")
                path = (name, sub)
            var = Variable(key, [], index, path, path[-1] in INTEGER_FIELDS)
        var.values = _values(key, spec_values, var.integer)
        var.bounds = (min(var.values), max(var.values))
        out.append(var)
    keys = [v.key for v in out]
    if len(set(keys)) != len(keys):
        raise IlsimError("a field is varied twice")
    return out


def _values(key: str, given, integer: bool) -> list[float]:
    """[v1, v2, ...] as given, or (lo, hi, n): n evenly spaced values from lo to hi."""
    if isinstance(given, tuple):
        if len(given) != 3:
            raise IlsimError(f"{arg('vary')} '{key}': a range is (lo, hi, n), got {given!r}")
        lo, hi, n = given
        try:
            lo, hi, n = float(lo), float(hi), int(n)
        except (TypeError, ValueError):
            raise IlsimError(f"{arg('vary')} '{key}': a range is (lo, hi, n) of numbers, got {given!r}") from None
        if n < 1:
            raise IlsimError(f"{arg('vary')} '{key}': the range has no values (n = {n}); the grid would be empty")
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
            raise IlsimError(f"{arg('vary')} '{key}': a range needs finite lo <= hi, got {lo:g} to {hi:g}")
        values = list(np.linspace(lo, hi, n)) if n > 1 else [lo]
        if integer:
            values = [float(round(v)) for v in values]
    else:
        try:
            values = [float(v) for v in given]
        except (TypeError, ValueError):
            raise IlsimError(f"{arg('vary')} '{key}': values must be numbers, got {given!r}") from None
        if not values:
            raise IlsimError(f"{arg('vary')} '{key}': no values; the grid would be empty")
        if not all(math.isfinite(v) for v in values):
            raise IlsimError(f"{arg('vary')} '{key}': values must be finite numbers")
        if integer and any(v != round(v) for v in values):
            raise IlsimError(f"{arg('vary')} '{key}': {key.rsplit('.', 1)[-1]} takes whole numbers, got {given!r}")
    return [int(v) if integer else float(v) for v in dict.fromkeys(values)]


# -------------------------------------------------------------------------------------- optimize


def optimize(model, vary: dict, objective: str, constraints: list[str] | tuple = (), out: str | Path | None = None,
             method: str = "grid", *, toxicity: str | None = None, force: bool = False, max_evaluations: int = 200,
             allow_high_dose: bool = False, overwrite: bool = False, **simulate_options) -> dict:
    """Search schedules for the best feasible objective and the efficacy-toxicity Pareto front.

    ``vary`` maps ``doses[I].FIELD`` / ``doses[I].hold.stop_after`` / ``param:NAME`` to a list of
    values or a range ``(lo, hi, n)``; ``objective`` is ``max:EXPR`` or ``min:EXPR`` and each
    constraint a comparison, over the quantities in ``QUANTITIES``. ``toxicity`` is the Pareto
    front's toxicity axis (default: the first constraint's quantity). With ``out``, writes
    optimize.csv, optimize.json, pareto.png and summary.json (the best schedule's run) atomically.
    ``simulate_options`` (t_end, points, method, rtol, atol, parameters, faults, or ``engine``: any engine object) go
    to ``simulate``.

    Returns a dict: ``best`` (None when no schedule is feasible), ``standard`` (the model's own
    schedule, evaluated the same way), ``candidates`` (every evaluated schedule, with status,
    objective, constraint values, toxicity and feasible/pareto/best flags), ``pareto`` (ids).
    """
    if method not in METHODS:
        raise IlsimError(f"unknown search method '{method}'{did_you_mean(method, METHODS)}; choose one of {', '.join(METHODS)}")
    if out is not None:
        check_out(out, overwrite)
    obj = parse_objective(objective)
    cons = [parse_constraint(c) for c in constraints]
    tox = toxicity_measure(toxicity, cons)
    spec = model if not isinstance(model, (str, Path)) else api.load(model)
    if hasattr(spec, "spec") and not hasattr(spec, "doses"):  # a CompiledModel: optimise its spec
        spec = spec.spec
    source = str(model) if isinstance(model, (str, Path)) else None
    spec = include_models(spec, source)  # doses of included models can be varied too
    standard_model = api.compile(spec, allow_high_dose=allow_high_dose)
    base_parameters = dict(simulate_options.pop("parameters", None) or {})
    for name in ("doses", "t_eval"):
        if simulate_options.get(name) is not None:
            raise IlsimError(f"'{name}' cannot be given to optimize: vary the model's own doses instead")
    visible = [p.name for p in standard_model.spec.parameters if p.source != "dosing bookkeeping"]
    variables = resolve_vary(spec, visible, vary)
    if method == "grid":
        n = math.prod(len(v.values) for v in variables)
        if n > MAX_CANDIDATES and not force:
            raise IlsimError(f"the grid has {n} candidates, more than {MAX_CANDIDATES}; use fewer values or force it "
                             f"({arg('force')})")
    elif max_evaluations < 1:
        raise IlsimError(f"max_evaluations must be at least 1, got {max_evaluations}")
    data = spec.model_dump(mode="json", exclude_defaults=True)
    data["metadata"] = spec.metadata.model_dump(mode="json", exclude_defaults=True)
    drugs = sorted({d.drug for d in spec.doses})
    only_parameters = all(v.dose is None for v in variables)

    def simulate(assignment: dict[str, float]) -> Run:
        params = {**base_parameters, **{v.path[0]: assignment[v.key] for v in variables if v.dose is None}}
        if only_parameters:
            compiled = standard_model
        else:
            candidate = copy.deepcopy(data)
            for v in variables:
                if v.dose is not None:
                    target = candidate["doses"][v.dose]
                    for part in v.path[:-1]:
                        target = target[part]
                    target[v.path[-1]] = assignment[v.key]
            compiled = api.compile(spec_from_dict(candidate, source), allow_high_dose=allow_high_dose)
        return Run.of(api.simulate(compiled, parameters=params or None, **simulate_options))

    standard_values = {v.key: _standard_value(v, spec, standard_model) for v in variables}
    standard_run = Run.of(api.simulate(standard_model, parameters=base_parameters or None, **simulate_options))
    check_quantities([obj, *cons, tox], standard_run, drugs)

    rows: list[dict] = []
    summaries: dict = {}
    cache: dict[tuple, dict] = {}

    def evaluate(assignment: dict[str, float], standard: bool = False) -> dict:
        key = tuple(assignment[v.key] for v in variables)
        if key in cache and not standard:
            return cache[key]
        row = {"id": "standard" if standard else len([r for r in rows if not r["standard"]]) + 1, "standard": standard,
               "values": dict(assignment), "status": "ok", "reason": "", "objective": None, "toxicity": None,
               "constraints": [], "feasible": False, "pareto": False, "best": False}
        try:
            run = standard_run if standard else simulate(assignment)
            row["objective"] = obj.value(run)
            row["toxicity"] = tox.value(run)
            for c in cons:
                row["constraints"].append({"constraint": c.text, "op": c.op, "value": c.value(run, c.left),
                                           "limit": c.value(run, c.right), "ok": bool(c.value(run))})
            if not math.isfinite(row["objective"]):
                raise ArithmeticError(f"the objective is {row['objective']} for this schedule")
            row["feasible"] = all(c["ok"] for c in row["constraints"])
            summaries[row["id"]] = run.summary
        except (IlsimError, ArithmeticError, ValueError, np.linalg.LinAlgError) as exc:
            row.update(status="failed", reason=_reason(exc), feasible=False)
        rows.append(row)
        if not standard:
            cache[key] = row
        return row

    evaluate(standard_values, standard=True)
    if method == "grid":
        for combo in itertools.product(*(v.values for v in variables)):
            evaluate(dict(zip((v.key for v in variables), combo)))
    else:
        _scipy_search(method, variables, standard_values, evaluate, obj, cons, max_evaluations)

    _flag(rows, obj, tox)
    best = next((r for r in rows if r["best"]), None)
    standard = rows[0]
    result = {
        "model": spec.metadata.name,
        "method": method,
        "objective": obj.text,
        "constraints": [c.text for c in cons],
        "toxicity": {"measure": tox.text, "better": "lower" if tox.sense == "min" else "higher"},
        "vary": {v.key: v.values for v in variables} if method == "grid" else {v.key: list(v.bounds) for v in variables},
        "evaluated": len(rows) - 1,
        "failed": sum(r["status"] == "failed" for r in rows),
        "best": best,
        "standard": standard,
        "pareto": [r["id"] for r in rows if r["pareto"]],
        "candidates": rows,
    }
    if out is not None:
        _write(out, result, variables, summaries.get(best["id"] if best else "standard") or standard_run.summary, overwrite)
    return result


def _standard_value(v: Variable, spec, compiled) -> float | None:
    if v.dose is None:
        return float(compiled.p0[compiled.parameters.index(v.path[0])])
    target = spec.doses[v.dose]
    for part in v.path:
        target = getattr(target, part)
    return target


def _reason(exc: Exception) -> str:
    if isinstance(exc, ModelError):
        return "; ".join(str(p) for p in exc.problems)
    return str(exc) or exc.__class__.__name__


def _flag(rows: list[dict], obj: Criterion, tox: Criterion) -> None:
    """Mark the best feasible schedule and the Pareto front (over every schedule that ran)."""
    ok = [r for r in rows if r["status"] == "ok" and r["toxicity"] is not None and math.isfinite(r["toxicity"])]
    sign_e = 1.0 if obj.sense == "max" else -1.0
    sign_t = 1.0 if tox.sense == "min" else -1.0
    if ok:
        e = np.array([sign_e * r["objective"] for r in ok])  # larger is better
        t = np.array([sign_t * r["toxicity"] for r in ok])  # smaller is better
        dominated = ((e[None, :] >= e[:, None]) & (t[None, :] <= t[:, None])
                     & ((e[None, :] > e[:, None]) | (t[None, :] < t[:, None]))).any(axis=1)
        for r, d in zip(ok, dominated):
            r["pareto"] = not bool(d)
    feasible = [r for r in rows if r["feasible"]]
    if feasible:
        best = max(feasible, key=lambda r: (sign_e * r["objective"],
                                            -sign_t * r["toxicity"] if r["toxicity"] is not None and math.isfinite(
                                                r["toxicity"]) else -math.inf))
        best["best"] = True


def _scipy_search(method, variables, standard_values, evaluate, obj, cons, max_evaluations) -> None:
    """Minimise -objective (or objective) plus penalties for violated constraints and failed runs."""
    from scipy import optimize as so  # lazy: heavy (scipy.optimize, for the SciPy search methods only)

    sign = -1.0 if obj.sense == "max" else 1.0
    bounds = [v.bounds for v in variables]
    count = {"n": 0}

    def assignment(x) -> dict:
        out = {}
        for v, xi, (lo, hi) in zip(variables, x, bounds):
            xi = min(max(float(xi), lo), hi)
            out[v.key] = int(round(xi)) if v.integer else xi
        return out

    def f(x) -> float:
        count["n"] += 1
        row = evaluate(assignment(x))
        if row["status"] != "ok":
            return FAILED_PENALTY
        violation = 0.0
        for c in row["constraints"]:
            gap = c["value"] - c["limit"] if c["op"].startswith("<") else c["limit"] - c["value"]
            if not c["ok"]:
                violation += max(gap, 0.0) / max(abs(c["limit"]), 1e-12) + 1e-3
        return sign * row["objective"] + PENALTY * violation

    if method == "nelder-mead":
        x0 = [standard_values[v.key] if standard_values[v.key] is not None else sum(b) / 2 for v, b in zip(variables, bounds)]
        x0 = [min(max(float(x), lo), hi) for x, (lo, hi) in zip(x0, bounds)]
        so.minimize(f, x0, method="Nelder-Mead", bounds=bounds, options={"maxfev": max_evaluations, "xatol": 1e-3,
                                                                         "fatol": 1e-6})
    else:
        so.differential_evolution(f, bounds, seed=0, polish=False, integrality=[v.integer for v in variables],
                                  maxiter=max(1, max_evaluations // (15 * len(variables))),
                                  callback=lambda *a, **k: count["n"] >= max_evaluations)


# ---------------------------------------------------------------------------------------- output


def table_rows(result: dict) -> tuple[list[str], list[list]]:
    """The table of every evaluated schedule: header and rows (for the CSV file and the CLI)."""
    keys = list(result["vary"])
    cons = result["constraints"]
    header = ["id", *keys, "objective", "toxicity", *cons, "feasible", "pareto", "best", "status", "reason"]
    rows = []
    for r in result["candidates"]:
        values = [r["values"].get(k) for k in keys]
        limits = [c["value"] for c in r["constraints"]] if r["constraints"] else [None] * len(cons)
        rows.append([r["id"], *values, r["objective"], r["toxicity"], *limits, r["feasible"], r["pareto"], r["best"],
                     r["status"], r["reason"]])
    return header, rows


def _write(out, result: dict, variables: list[Variable], summary: dict, overwrite: bool = False) -> None:
    with atomic_folder(out, overwrite) as tmp:
        header, rows = table_rows(result)
        with open(tmp / "optimize.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(["" if v is None else v for v in row] for row in rows)
        write_json(result, tmp / "optimize.json")
        plot_pareto(result, tmp / "pareto.png")
        write_json(summary, tmp / "summary.json")  # the best schedule's run (the standard's when none is feasible)


def plot_pareto(result: dict, path: Path) -> Path:
    """Efficacy against toxicity: every schedule, the feasible ones filled, the Pareto front joined,
    the standard schedule and the best feasible one marked."""
    from ilsim.report.figures import plt  # lazy: heavy (matplotlib)
    from ilsim.report.safe_text import figure_text

    ok = [r for r in result["candidates"] if r["status"] == "ok" and r["toxicity"] is not None
          and math.isfinite(r["toxicity"])]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    feasible = [r for r in ok if r["feasible"] and not r["standard"]]
    infeasible = [r for r in ok if not r["feasible"] and not r["standard"]]
    if feasible:
        ax.scatter([r["toxicity"] for r in feasible], [r["objective"] for r in feasible], s=22, color="C0",
                   label="feasible schedule", zorder=2)
    if infeasible:
        ax.scatter([r["toxicity"] for r in infeasible], [r["objective"] for r in infeasible], s=26, color="C3", marker="x",
                   label="violates a constraint", zorder=2)
    front = sorted((r for r in ok if r["pareto"]), key=lambda r: (r["toxicity"], r["objective"]))
    if front:
        ax.plot([r["toxicity"] for r in front], [r["objective"] for r in front], "-", color="C2", lw=1.5, zorder=1)
        ax.scatter([r["toxicity"] for r in front], [r["objective"] for r in front], s=70, facecolors="none",
                   edgecolors="C2", lw=1.5, label="Pareto front", zorder=3)
    std = result["standard"]
    if std["status"] == "ok" and std["toxicity"] is not None and math.isfinite(std["toxicity"]):
        ax.scatter([std["toxicity"]], [std["objective"]], s=160, marker="*", color="black", label="standard schedule",
                   zorder=4)
    best = result["best"]
    if best is not None:
        ax.scatter([best["toxicity"]], [best["objective"]], s=200, facecolors="none", edgecolors="C1", lw=2.2,
                   label="best feasible", zorder=5)
    tox = result["toxicity"]
    ax.set_xlabel(figure_text(f"toxicity: {tox['measure']} ({tox['better']} is better)"))
    ax.set_ylabel(figure_text(f"efficacy: {result['objective']}"))
    ax.set_title(figure_text(f"{result['model']}: efficacy against toxicity ({result['evaluated']} schedules)"), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

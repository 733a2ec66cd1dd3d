"""A PEtab v1 problem (read and linted with the ``petab`` library) as a FitProblem.

Supported: one SBML model, conditions setting model parameters or species' initial values (numbers or
parameters), preequilibration, observables with normal noise on the linear, log or log10 scale, noise
formulas, observable and noise parameters per measurement, parameter scales lin/log/log10, bounds, and
normal objective priors (``normal``, ``parameterScaleNormal``). Anything else is refused with a message that
names the feature.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import numpy as np

from ilsim.fit import formulas
from ilsim.fit.problem import SCALES, ConditionMap, FitError, FitProblem, Measurements, Observable, Parameters, Simulation, where
from ilsim.model.compile import compile_model

PRIORS = ("normal", "parameterScaleNormal")


def _name(path: Path) -> str:
    return path.name


class _Errors(logging.Handler):
    """Collects what the petab linter logs at ERROR: its verdict comes as log records."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def load_petab(path: str | Path, lint: bool = True) -> FitProblem:
    """Read, check and map a PEtab v1 problem (its YAML file); FitError names the file, row and column of a problem."""
    import petab.v1 as petab  # lazy: optional (the fit extra)

    path = Path(path)
    if not path.is_file():
        raise FitError(f"{path}: no such PEtab problem file")
    try:
        config = petab.load_yaml(path)
        petab.validate(config, path_prefix=path.parent)
    except Exception as exc:  # the library's own schema errors: jsonschema, YAML, missing files
        raise FitError(f"{path}: not a valid PEtab v1 problem file: {_first_line(exc)}") from None
    if len(config.get("problems", [])) != 1:
        raise FitError(f"{path}: problems: exactly one problem is supported (composite PEtab problems are not)")
    files = config["problems"][0]
    if len(files.get("sbml_files", [])) != 1:
        raise FitError(f"{path}: sbml_files: exactly one SBML model is supported")
    for key in ("mapping_files",):
        if files.get(key):
            raise FitError(f"{path}: {key}: PEtab mapping tables are not supported")
    if config.get("extensions"):
        raise FitError(f"{path}: extensions: PEtab extensions are not supported ({', '.join(config['extensions'])})")
    names = {
        "parameters": path.parent / config["parameter_file"],
        "conditions": path.parent / files["condition_files"][0],
        "measurements": path.parent / files["measurement_files"][0],
        "observables": path.parent / files["observable_files"][0],
        "model": path.parent / files["sbml_files"][0],
    }
    for key in ("condition_files", "measurement_files", "observable_files"):
        if len(files.get(key, [])) != 1:
            raise FitError(f"{path}: {key}: exactly one file is supported")
    try:
        problem = petab.Problem.from_yaml(str(path))
    except Exception as exc:
        raise FitError(f"{path}: the PEtab problem cannot be read: {_first_line(exc)}") from None

    _check_tables(problem, names)
    if lint:
        handler = _Errors()
        logger = logging.getLogger("petab")
        logger.addHandler(handler)
        try:
            failed = petab.lint_problem(problem)
        except Exception as exc:
            failed, handler.messages = True, [*handler.messages, _first_line(exc)]
        finally:
            logger.removeHandler(handler)
        if failed:
            detail = "; ".join(dict.fromkeys(handler.messages)) or "see the petab linter's output"
            raise FitError(f"{path}: the PEtab problem does not pass the petab linter: {detail}")
    return _build(problem, names, path)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _is_number(value) -> bool:
    if isinstance(value, (int, float, np.floating, np.integer)):
        return True
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def _check_tables(problem, names: dict[str, Path]) -> None:
    """The mistakes a user makes most, each told with its file, row and column before the linter runs."""
    pfile, mfile, ofile = _name(names["parameters"]), _name(names["measurements"]), _name(names["observables"])
    pdf = problem.parameter_df
    for row, (pid, r) in enumerate(pdf.iterrows(), start=2):
        scale = r.get("parameterScale", "lin")
        if scale not in SCALES:
            raise FitError(f"{where(pfile, row, 'parameterScale')}: '{pid}': unknown scale '{scale}' "
                           f"(known: {', '.join(SCALES)})")
        lo, hi = float(r["lowerBound"]), float(r["upperBound"])
        if not (math.isfinite(lo) and math.isfinite(hi)) and int(r["estimate"]) == 1:
            raise FitError(f"{where(pfile, row, 'lowerBound')}: '{pid}': an estimated parameter needs finite bounds")
        if lo > hi:
            raise FitError(f"{where(pfile, row, 'lowerBound')}: '{pid}': lower bound {lo:g} is above upper bound {hi:g}")
        if scale in ("log", "log10") and (lo <= 0 or hi <= 0):
            column = "lowerBound" if lo <= 0 else "upperBound"
            bound = lo if lo <= 0 else hi
            raise FitError(f"{where(pfile, row, column)}: '{pid}' is on the {scale} scale, so its bounds must be positive; "
                           f"got {bound:g}")
        prior = r.get("objectivePriorType")
        if isinstance(prior, str) and prior and prior not in PRIORS:
            raise FitError(f"{where(pfile, row, 'objectivePriorType')}: '{pid}': prior '{prior}' is not supported "
                           f"(supported: {', '.join(PRIORS)})")
    odf = problem.observable_df
    for row, (oid, r) in enumerate(odf.iterrows(), start=2):
        dist = r.get("noiseDistribution", "normal")
        if isinstance(dist, str) and dist not in ("normal", ""):
            raise FitError(f"{where(ofile, row, 'noiseDistribution')}: '{oid}': noise distribution '{dist}' is not supported "
                           f"(normal only)")
    conditions = set(problem.condition_df.index)
    transforms = {oid: (r.get("observableTransformation") if isinstance(r.get("observableTransformation"), str) else "lin")
                  for oid, r in odf.iterrows()}
    mdf = problem.measurement_df
    for i, (_, r) in enumerate(mdf.iterrows()):
        row = i + 2
        oid = r["observableId"]
        if oid not in transforms:
            raise FitError(f"{where(mfile, row, 'observableId')}: unknown observable '{oid}' (not in {ofile})")
        for column in ("simulationConditionId", "preequilibrationConditionId"):
            cid = r.get(column)
            if column == "preequilibrationConditionId" and (not isinstance(cid, str) or not cid):
                continue
            if cid not in conditions:
                raise FitError(f"{where(mfile, row, column)}: unknown condition '{cid}' (not in {_name(names['conditions'])})")
        value, time = float(r["measurement"]), float(r["time"])
        if not math.isfinite(value):
            raise FitError(f"{where(mfile, row, 'measurement')}: the measurement is {value}; every measurement must be a number")
        if transforms[oid] in ("log", "log10") and value <= 0:
            raise FitError(f"{where(mfile, row, 'measurement')}: observable '{oid}' has log-normal noise "
                           f"({transforms[oid]} transformation), so its measurements must be positive; got {value:g}")
        if math.isinf(time):
            raise FitError(f"{where(mfile, row, 'time')}: steady-state measurements (time inf) are not supported")
        if not math.isfinite(time) or time < 0:
            raise FitError(f"{where(mfile, row, 'time')}: time must be a finite number >= 0, got {time:g}")


def _build(problem, names: dict[str, Path], path: Path) -> FitProblem:
    import petab.v1 as petab  # lazy: optional (the fit extra)

    from ilsim.io.sbml_import import import_sbml  # lazy: heavy (libsbml)

    sbml = import_sbml(names["model"], initial_expressions=True)
    if sbml.spec.events:
        raise FitError(f"{_name(names['model'])}: SBML events are not supported in fitting (model has {len(sbml.spec.events)})")
    with warnings.catch_warnings():  # unit mismatches of SBML files: `ilsim validate` shows them; fitting does not need units
        warnings.simplefilter("ignore")
        model = compile_model(sbml.spec, source=str(names["model"]))
    symbols = formulas.model_symbols(model)
    pindex = {n: i for i, n in enumerate(model.parameters)}
    sindex = {n: i for i, n in enumerate(model.species)}

    # ---- parameters
    pdf = problem.parameter_df
    ids = list(map(str, pdf.index))
    scales = [str(s) for s in pdf["parameterScale"]]
    priors = []
    for _, r in pdf.iterrows():
        kind = r.get("objectivePriorType")
        if isinstance(kind, str) and kind:
            mu, sd = (float(v) for v in str(r["objectivePriorParameters"]).split(";"))
            priors.append((kind, mu, sd))
        else:
            priors.append(None)
    parameters = Parameters(ids=ids, scales=scales, lower=pdf["lowerBound"].to_numpy(float),
                            upper=pdf["upperBound"].to_numpy(float), nominal=pdf["nominalValue"].to_numpy(float),
                            estimate=pdf["estimate"].to_numpy(int).astype(bool), priors=priors)
    if not parameters.estimate.any():
        raise FitError(f"{_name(names['parameters'])}: no parameter is estimated (column 'estimate')")
    phi_index = {pid: i for i, pid in enumerate(ids)}

    def sbml_name(sid: str) -> str:
        return sbml.renamed.get(sid, sid)

    # ---- conditions
    cfile = _name(names["conditions"])
    cdf = problem.condition_df
    column_names = [c for c in cdf.columns if c != "conditionName"]
    conditions: dict[str, ConditionMap] = {}
    for row, (cid, r) in enumerate(cdf.iterrows(), start=2):
        base = model.p0.copy()
        targets, sources, species = [], [], []
        for pid in ids:  # the parameter table sets model parameters in every condition
            if sbml_name(pid) in pindex and pid not in column_names:
                targets.append(pindex[sbml_name(pid)])
                sources.append(phi_index[pid])
        for column in column_names:
            value = r[column]
            name = sbml_name(column)
            number = _is_number(value)
            if number and math.isnan(float(value)):
                continue  # PEtab: NaN keeps the model's value (for species: no reinitialisation)
            if not number and value not in phi_index:
                raise FitError(f"{where(cfile, row, column)}: '{value}' is neither a number nor a parameter of "
                               f"{_name(names['parameters'])}")
            if name in pindex:
                if number:
                    base[pindex[name]] = float(value)
                else:
                    targets.append(pindex[name])
                    sources.append(phi_index[value])
            elif name in sindex:
                species.append((sindex[name], float(value) if number else None, None if number else phi_index[value]))
            else:
                raise FitError(f"{where(cfile, 1, column)}: '{column}' is not a parameter or species of the model "
                               f"(compartments and other targets are not supported)")
        conditions[str(cid)] = ConditionMap(str(cid), base, np.array(targets, int), np.array(sources, int), species)

    # ---- observables
    ofile = _name(names["observables"])
    odf = problem.observable_df
    observables: list[Observable] = []
    oindex: dict[str, int] = {}
    model_names = set(symbols) | set(sbml.quantities)
    for row, (oid, r) in enumerate(odf.iterrows(), start=2):
        oplace = petab.get_formula_placeholders(str(r["observableFormula"]), str(oid), "observable")
        nplace = petab.get_formula_placeholders(str(r["noiseFormula"]), str(oid), "noise")
        h = _formula(r["observableFormula"], ofile, row, "observableFormula")
        s = _formula(r["noiseFormula"], ofile, row, "noiseFormula")
        s = s.xreplace({_sym(oid): h})  # a noise formula may use its observable (proportional noise)
        extra = []
        for column, expr in (("observableFormula", h), ("noiseFormula", s)):
            for symbol in expr.free_symbols:
                n = symbol.name
                if n in oplace or n in nplace or n in extra or n == formulas.TIME_SLOT:
                    continue
                if n in model_names:
                    continue
                if n in phi_index:
                    extra.append(n)
                    continue
                raise FitError(f"{where(ofile, row, column)}: unknown name '{n}' (not in the model or the parameter table)")
        replace = {}
        for sid, quantity in sbml.quantities.items():
            replace[_sym(sid)] = _to_sympy(quantity.value, symbols)
        for n in symbols:
            if _sym(n) not in replace:
                replace[_sym(n)] = symbols[n] if n != "t" else _sym(formulas.TIME_SLOT)
        replace[_sym(formulas.TIME_SLOT)] = _sym(formulas.TIME_SLOT)
        h, s = h.xreplace(replace), s.xreplace(replace)
        row_slots = [*oplace, *nplace, *extra, formulas.TIME_SLOT]
        function, h_slots, s_slots = formulas.build(model, h, s, row_slots)
        transform = r.get("observableTransformation")
        transform = transform if isinstance(transform, str) and transform else "lin"
        oindex[str(oid)] = len(observables)
        observables.append(Observable(str(oid), transform, function, h_slots, s_slots, row_slots))

    # ---- measurements
    mfile = _name(names["measurements"])
    mdf = problem.measurement_df.reset_index(drop=True)
    n = len(mdf)
    obs = np.array([oindex[o] for o in mdf["observableId"]], int)
    slot_value, slot_param = [], []
    for i, r in mdf.iterrows():
        o = observables[obs[i]]
        values = np.full(len(o.row_slots), np.nan)
        params = np.full(len(o.row_slots), -1, int)
        given = {}
        for column, kind in (("observableParameters", "observable"), ("noiseParameters", "noise")):
            raw = r.get(column)
            overrides = petab.split_parameter_replacement_list(raw) if raw is not None else []
            placeholders = [sl for sl in o.row_slots if sl.startswith(f"{kind}Parameter")]
            if len(overrides) != len(placeholders):
                raise FitError(f"{where(mfile, i + 2, column)}: observable '{o.id}' needs {len(placeholders)} "
                               f"{kind} parameter(s), the row gives {len(overrides)}")
            for placeholder, value in zip(placeholders, overrides):
                if _is_number(value):
                    given[placeholder] = float(value)
                elif value in phi_index:
                    given[placeholder] = value
                else:
                    raise FitError(f"{where(mfile, i + 2, column)}: '{value}' is not a parameter of "
                                   f"{_name(names['parameters'])}")
        for j, slot in enumerate(o.row_slots):
            if slot == formulas.TIME_SLOT:
                values[j] = float(r["time"])
            elif slot in given:
                if isinstance(given[slot], float):
                    values[j] = given[slot]
                else:
                    params[j] = phi_index[given[slot]]
            else:
                params[j] = phi_index[slot]
        slot_value.append(values)
        slot_param.append(params)
    measurements = Measurements(observable=obs, time=mdf["time"].to_numpy(float), value=mdf["measurement"].to_numpy(float),
                                row_numbers=np.arange(n) + 2, slot_value=slot_value, slot_param=slot_param)

    # ---- simulations: one per (preequilibration, condition) pair, in the order met
    pre = mdf["preequilibrationConditionId"] if "preequilibrationConditionId" in mdf else [None] * n
    keys: dict[tuple, list[int]] = {}
    for i, (p, c) in enumerate(zip(pre, mdf["simulationConditionId"])):
        p = p if isinstance(p, str) and p else None
        keys.setdefault((p, str(c)), []).append(i)
    simulations = []
    for (p, c), rows in keys.items():
        rows = np.array(rows, int)
        times, tindex = np.unique(measurements.time[rows], return_inverse=True)
        simulations.append(Simulation(conditions[p] if p else None, conditions[c], times, rows, tindex))
    model_parameters = {sbml_name(pid): phi_index[pid] for pid in ids if sbml_name(pid) in pindex}
    name = path.stem
    return FitProblem(name=name, model=model, parameters=parameters, observables=observables, measurements=measurements,
                      simulations=simulations, source=str(path), model_parameters=model_parameters)


def _sym(name: str):
    import sympy as sp  # lazy: heavy (SymPy)

    return sp.Symbol(name)


def _to_sympy(tree, symbols: dict):
    from ilsim.model import expressions as ex

    return ex.to_sympy(tree, symbols)


def _formula(text, file: str, row: int, column: str):
    """A PEtab formula as SymPy, parsed by petab's own grammar (no evaluation of the text)."""
    from petab.v1.math import sympify_petab  # lazy: optional (the fit extra)

    try:
        expr = sympify_petab(text)
    except Exception as exc:
        raise FitError(f"{where(file, row, column)}: cannot read formula {text!r}: {_first_line(exc)}") from None
    return expr.xreplace({s: _sym(s.name) for s in expr.free_symbols})  # one kind of symbol, whatever the assumptions

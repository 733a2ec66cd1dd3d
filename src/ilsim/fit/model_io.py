"""An ilsim model file with a ``fit:`` section (model/sections/fit.py) as a FitProblem.

One condition (the model as written), the measurements from a CSV or TSV table beside the model (columns
``observable``, ``time``, ``measurement``), each measured species or observable with normal or log-normal,
additive or proportional noise whose sigma is fixed or estimated (``sigma_<observable>``, log10 scale).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from ilsim.fit import formulas
from ilsim.fit.problem import ConditionMap, FitError, FitProblem, Measurements, Observable, Parameters, Simulation, where
from ilsim.fit.simulate import check_events
from ilsim.io.models import compile as compile_model
from ilsim.model.load import read_spec


def load_model_fit(path: str | Path) -> FitProblem:
    import pandas as pd  # lazy: heavy (pandas)
    import sympy as sp  # lazy: heavy (SymPy)

    path = Path(path)
    spec = read_spec(path)
    if spec.fit is None:
        raise FitError(f"{path}: no fit: section (which parameters to estimate, the measurements file, the noise)")
    section = spec.fit
    model = compile_model(spec)
    check_events(model, str(path))
    names = [p.name for p in section.parameters]
    pindex = {n: i for i, n in enumerate(model.parameters)}
    for i, name in enumerate(names):
        if name not in pindex:
            raise FitError(f"{path}: fit.parameters[{i}].name: unknown parameter '{name}'")
        if name in names[:i]:  # a second entry would silently become a second, independent copy of the parameter
            raise FitError(f"{path}: fit.parameters[{i}].name: '{name}' is listed twice (first as "
                           f"fit.parameters[{names.index(name)}])")
    data_path = path.parent / section.measurements
    mfile = data_path.name
    if not data_path.is_file():
        raise FitError(f"{path}: fit.measurements: no such file {data_path}")
    try:
        table = pd.read_csv(data_path, sep=None, engine="python")
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError, csv.Error) as exc:  # csv.Error: an empty file
        raise FitError(f"{data_path}: cannot read the measurements table: {str(exc).splitlines()[0]}") from None
    for column in ("observable", "time", "measurement"):
        if column not in table.columns:
            raise FitError(f"{where(mfile, 1, column)}: missing column (needed: observable, time, measurement)")
    for column in ("time", "measurement"):  # text in a number column: named here, not a ValueError of NumPy later
        numbers = pd.to_numeric(table[column], errors="coerce")
        bad = numbers.isna() & table[column].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise FitError(f"{where(mfile, row + 2, column)}: '{table[column].iloc[row]}' is not a number")
        table[column] = numbers
    symbols = formulas.model_symbols(model)
    measurable = [*model.species, *model.observables]
    noise = {n.observable: n for n in section.noise}
    for i, n in enumerate(section.noise):
        if n.observable not in measurable:
            raise FitError(f"{path}: fit.noise[{i}].observable: '{n.observable}' is not a species or observable")

    ids, scales, lower, upper, nominal = [], [], [], [], []
    for p in section.parameters:
        ids.append(p.name)
        scales.append(p.scale)
        lower.append(p.lower)
        upper.append(p.upper)
        nominal.append(float(model.p0[pindex[p.name]]))
    observables: list[Observable] = []
    oindex: dict[str, int] = {}
    measured = list(dict.fromkeys(str(o) for o in table["observable"]))
    for row, obs in enumerate(table["observable"], start=2):
        if str(obs) not in measurable:
            raise FitError(f"{where(mfile, row, 'observable')}: '{obs}' is not a species or observable of the model")
    for obs in measured:
        entry = noise.get(obs)
        distribution = entry.distribution if entry else "normal"
        kind = entry.type if entry else "additive"
        sigma_value = entry.sigma if entry else "estimate"
        h = symbols[obs]
        row_slots = [formulas.TIME_SLOT]
        if sigma_value == "estimate":
            sid = f"sigma_{obs}"
            lo, hi = entry.sigma_bounds if entry else (1e-3, 1e3)
            ids.append(sid)
            scales.append("log10")
            lower.append(lo)
            upper.append(hi)
            nominal.append(math.sqrt(lo * hi))
            row_slots.append(sid)
            s = sp.Symbol(sid)
        else:
            s = sp.Float(sigma_value)
        sigma = s * h if kind == "proportional" else s
        function, h_slots, s_slots = formulas.build(model, h, sigma, row_slots)
        oindex[obs] = len(observables)
        observables.append(Observable(obs, "log" if distribution == "lognormal" else "lin", function, h_slots, s_slots,
                                      row_slots))
    phi_index = {n: i for i, n in enumerate(ids)}
    values = table["measurement"].to_numpy(float)
    times = table["time"].to_numpy(float)
    slot_value, slot_param = [], []
    for i, (obs, t, v) in enumerate(zip(table["observable"], times, values)):
        row = i + 2
        o = observables[oindex[str(obs)]]
        if not math.isfinite(v):
            raise FitError(f"{where(mfile, row, 'measurement')}: the measurement is {v}; every measurement must be a number")
        if o.transform == "log" and v <= 0:
            raise FitError(f"{where(mfile, row, 'measurement')}: '{obs}' has log-normal noise, so its measurements must "
                           f"be positive; got {v:g}")
        if not math.isfinite(t) or t < 0:
            raise FitError(f"{where(mfile, row, 'time')}: time must be a finite number >= 0, got {t:g}")
        slot_value.append(np.array([t] + [np.nan] * (len(o.row_slots) - 1)))
        slot_param.append(np.array([-1] + [phi_index[s] for s in o.row_slots[1:]], int))
    measurements = Measurements(np.array([oindex[str(o)] for o in table["observable"]], int), times, values,
                                np.arange(len(values)) + 2, slot_value, slot_param)
    parameters = Parameters(ids, scales, np.array(lower), np.array(upper), np.array(nominal),
                            np.ones(len(ids), bool), [None] * len(ids))
    condition = ConditionMap("model", model.p0.copy(), np.array([pindex[n] for n in names], int),
                             np.arange(len(names)))
    unique, tindex = np.unique(times, return_inverse=True)
    simulation = Simulation(None, condition, unique, np.arange(len(values)), tindex)
    return FitProblem(name=spec.metadata.name, model=model, parameters=parameters, observables=observables,
                      measurements=measurements, simulations=[simulation], source=str(path),
                      model_parameters={n: i for i, n in enumerate(names)})

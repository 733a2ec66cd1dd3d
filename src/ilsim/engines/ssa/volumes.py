"""Counts from concentrations through each species' compartment volume, for the stochastic engine.

A species in a compartment of volume V has value x V molecules. Its compartment is the parameter named by its
``compartment:`` field or, in a model imported from SBML, the ``C`` of the observable ``<species>_amount = <species>
* C`` the importer writes for a concentration species in a compartment (a species with only substance units is an
amount already, counted as it is). A species with neither is counted as its value.

The engine then runs a counted view of the model (``counted``), with a system size of 1: every expression reads a
species X as X / V_X (counts back to concentrations), a process's propensity is its rate times the volume of its
reference compartment (that of its first consumed species, else of its first produced one), and one firing changes
species i by S_ij V_i / V_ref molecules (whole numbers, or the model is refused naming the process). In one
compartment that is the rate times V and the process's own stoichiometry: the former single system size. Across
compartments the amount moved is conserved: a transport A (in V1) -> B (in V2) written, as its ODE needs,
``consumes: {A: 1}, produces: {B: V1/V2}`` moves one molecule per firing at propensity rate x V1.

Volumes are read from the parameters at the start and held constant (an event that changes one is refused).
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from ilsim.errors import IlsimError
from ilsim.model import expressions as ex
from ilsim.model.compile import PARAM, STATE, CompiledModel


def compartments(model: CompiledModel) -> dict[int, int]:
    """Species index -> index of the parameter holding its compartment's volume (species with one only)."""
    params = {n: k for k, n in enumerate(model.parameters)}
    species = {n: i for i, n in enumerate(model.species)}
    out = {}
    for i, s in enumerate(model.spec.species):
        if s.compartment is None:
            continue
        if s.compartment not in params:
            raise IlsimError(f"species '{s.name}' (species[{i}].compartment): '{s.compartment}' is not a parameter of the "
                             "model; name the parameter holding the volume of its compartment")
        out[i] = params[s.compartment]
    for name, tree in zip(model.observables, model.observable_trees):  # the SBML import's <species>_amount
        base = name[: -len("_amount")] if name.endswith("_amount") else None
        if (base in species and species[base] not in out and isinstance(tree, ex.BinOp) and tree.op == "*"
                and tree.left == ex.Name(base) and isinstance(tree.right, ex.Name) and tree.right.id in params):
            out[species[base]] = params[tree.right.id]
    return out


def volumes(model: CompiledModel, P: np.ndarray, where: dict[int, int]) -> np.ndarray:
    """Per row of P and species, the volume (1 for a species without compartment); IlsimError if one is not positive."""
    V = np.ones((P.shape[0], len(model.species)))
    for i, k in where.items():
        V[:, i] = P[:, k]
        bad = ~((V[:, i] > 0) & np.isfinite(V[:, i]))
        if bad.any():
            raise IlsimError(f"species '{model.species[i]}': the volume of its compartment, parameter "
                             f"'{model.parameters[k]}', must be positive and finite, got {V[bad, i][0]:g}")
    return V


def counted(model: CompiledModel, P: np.ndarray, where: dict[int, int]) -> CompiledModel:
    """The model as the engine runs it with per-compartment volumes: species as counts (see the module's text)."""
    changed = [k for e in model.events for _, kind, k, _ in e.actions if kind == PARAM and k in set(where.values())]
    if changed:
        raise IlsimError(f"an event changes parameter '{model.parameters[changed[0]]}', the volume of a compartment; "
                         "the stochastic engine holds volumes constant")
    volume_name = {i: ex.Name(model.parameters[k]) for i, k in where.items()}
    as_concentration = {model.species[i]: ex.BinOp("/", ex.Name(model.species[i]), v) for i, v in volume_name.items()}

    def read(tree):
        return None if tree is None else _substitute(tree, as_concentration)

    V = volumes(model, P, where)
    S = np.array(model.stoichiometry, dtype=float)
    rates = []
    for j, rate in enumerate(model.rate_trees):
        column = model.stoichiometry[:, j]
        changed_species = [model.species.index(n) for n in _changed(model, j)] or list(np.flatnonzero(column))
        ref = changed_species[0] if changed_species else None
        rate = read(rate)
        if ref is not None and ref in volume_name:
            rate = ex.BinOp("*", volume_name[ref], rate)
        rates.append(rate)
        if ref is None:
            continue
        ratio = V / V[:, [ref]]  # rows x species
        if np.any(np.abs(ratio - ratio[:1]) > 1e-12 * np.abs(ratio[:1])):
            raise IlsimError(f"process '{model.spec.processes[j].name}' (processes[{j}]) changes species in compartments "
                             "whose volumes differ from one parameter set to the next: its molecules per firing would too")
        S[:, j] = column * ratio[0]
        whole = np.abs(S[:, j] - np.round(S[:, j])) <= 1e-9 * np.maximum(1.0, np.abs(S[:, j]))
        if not whole.all():
            i = int(np.flatnonzero(~whole)[0])
            raise IlsimError(f"process '{model.spec.processes[j].name}' (processes[{j}]): it changes "
                             f"{model.species[i]} by {column[i]:g} x its volume / the volume of {model.species[ref]}'s "
                             f"compartment = {S[i, j]:g} molecules per firing, not a whole number; write its "
                             "stoichiometry so that the amount it moves is whole (a transport A -> B: produces "
                             "B: V_A/V_B)")
        S[:, j] = np.round(S[:, j])
    events = []
    for e in model.events:
        actions = tuple((mode, kind, k, ex.BinOp("*", read(value), volume_name[k]) if kind == STATE and k in volume_name
                         else read(value)) for mode, kind, k, value in e.actions)
        events.append(dataclasses.replace(e, condition=read(e.condition), guard=read(e.guard), delay=read(e.delay),
                                          actions=actions))
    # the original's kernels (the generated code imports its helpers from them), built first: a view with none would
    # build them from its own trees into the dict it shares with the original (whose observables would then be wrong)
    model.kernels.get("rhs_into")
    view = copy.copy(model)
    view.rate_trees = tuple(rates)
    view.observable_trees = tuple(read(t) for t in model.observable_trees)
    view.stoichiometry = S
    view.events = tuple(events)
    return view


def _changed(model: CompiledModel, j: int) -> list[str]:
    """The species process j consumes, then those it produces, in the order the model file gives them."""
    process = model.spec.processes[j]
    names = [n for n in (*process.consumes, *process.produces) if n in model.species]
    return list(dict.fromkeys(names))


def _substitute(tree: ex.Expr, by: dict[str, ex.Expr]) -> ex.Expr:
    if isinstance(tree, ex.Name):
        return by.get(tree.id, tree)
    kids = ex.children(tree)
    return ex.with_children(tree, [_substitute(c, by) for c in kids]) if kids else tree

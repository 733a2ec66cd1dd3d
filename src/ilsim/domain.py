"""What the domain layers add to compiling a model and to a run's summary.

A model file's domain sections become a plain reaction network before the compiler sees it:
``include:`` merges other models (``model.compose``), then ``pk:``/``doses:``/``patient:`` become
compartments and guarded dose events (``therapy.dosing``; before motifs, which may read drug species),
then ``motifs:`` become processes and observables (``biology.motifs``). Only the domain can check
that species name known interleukins and cell types (``biology``) and that ``toxicity:`` names
CTCAE terms its readouts can be graded in (``therapy.ctcae``). A run's dose log and CTCAE grades
are computed here too and handed to ``io`` as data.

The model layer imports nothing above it, so this module hands ``expand`` to ``model.compile``
(``set_expansion``) when it is imported; ``ilsim/__init__.py`` imports it first.
"""

from __future__ import annotations

from functools import partial

from ilsim.biology import motifs
from ilsim.biology.catalogue import load_catalogue
from ilsim.biology.cell_types import load_cell_types
from ilsim.errors import ModelError, Problem
from ilsim.model import compile as model_compile
from ilsim.model.compile import Expanded
from ilsim.model.compose import include
from ilsim.model.sections.toxicity import Toxicity
from ilsim.model.spec import ModelSpec
from ilsim.model.units import hours_per
from ilsim.therapy import ctcae, dosing


def expand(spec: ModelSpec, source: str | None = None, allow_high_dose: bool = False) -> Expanded:
    """The spec as a plain reaction network, where each generated field came from, the domain's problems and
    the run's summary entries (``dose_log``, ``toxicity``)."""
    try:
        spec = include(spec, source)
        spec = dosing.expand(spec, allow_high_dose)  # before motifs: they may read drug species
        spec, origins = motifs.expand(spec)
    except ModelError as exc:  # name the file too
        raise ModelError([Problem(p.field, p.message, p.source or source) for p in exc.problems]) from None
    problems = catalogue_problems(spec, source) + toxicity_problems(spec, source)
    reporters = (("dose_log", partial(run_dose_log, amounts=dosing.dose_amounts(spec))),
                 ("toxicity", partial(run_toxicity, entries=tuple(spec.toxicity))))
    return Expanded(spec, origins, tuple(problems), reporters)


def catalogue_problems(spec: ModelSpec, source: str | None) -> list[Problem]:
    """Species name catalogue entries (interleukins, cell types), built-in or declared in the file."""
    problems: list[Problem] = []
    for attribute, declared, load in (("interleukin", spec.interleukins, load_catalogue),
                                      ("cell_type", spec.cell_types, load_cell_types)):
        if not declared and not any(getattr(s, attribute) for s in spec.species):
            continue
        try:
            catalogue = load(declared, source=source)
        except ModelError as exc:
            problems.extend(exc.problems)
            continue
        for i, s in enumerate(spec.species):
            if getattr(s, attribute) is not None:
                try:
                    catalogue.get(getattr(s, attribute), field=f"species[{i}].{attribute}", source=source)
                except ModelError as exc:
                    problems.extend(exc.problems)
    return problems


def toxicity_problems(spec: ModelSpec, source: str | None) -> list[Problem]:
    if not spec.toxicity:
        return []
    problems = []
    if hours_per(spec.metadata.time_units) is None:
        problems.append(Problem("metadata.time_units", "grading toxicity needs time units of minute, hour, day or week, "
                                f"not '{spec.metadata.time_units}'", source))
    units_of = {s.name: s.units for s in spec.species} | {o.name: o.units for o in spec.observables}
    return problems + ctcae.toxicity_problems(spec.toxicity, units_of, source)


def run_dose_log(ds, amounts: dict) -> list[dict]:
    """The dose decisions of a run (its event log read by ``therapy.dosing``), with the amounts scheduled."""
    values = dict(zip(ds["parameter"].values.tolist(), ds["parameter_value"].values.tolist()))
    return dosing.dose_log(zip(ds["firing_time"].values.tolist(), ds["firing_event"].values.tolist()), amounts, values)


def run_toxicity(ds, entries: tuple[Toxicity, ...]) -> dict:
    """CTCAE grades of the readouts a model names in its ``toxicity:`` section."""
    return ctcae.grade_toxicity(ds, entries) if entries else {}


model_compile.set_expansion(expand)

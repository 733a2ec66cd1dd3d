"""Tissue models in cohorts and sweeps: what the cohort and sweep machinery checks and assumes when the tissue engine
runs their rows (``engine=TissueEngine(...)``, ``--engine tissue``).

A row is a replicate of the model's ``tissue:`` section: its seed is mixed from the run's seed and its index
(``engines/tissue/engine.replicate_seed``), and a model parameter changes a tissue run only where
``tissue.parameters`` binds it to a number of the section or a process read per cell has it in its rate. So a cohort
or sweep of a tissue model is refused, before anything runs, when the model has no tissue section or when it would
vary a parameter that does neither (every row would be the same run with another label). Output times default to
the section's ``t_end`` and ``save_every`` (minutes), not to the model's ``simulation:`` section, which belongs to
its well-mixed reading.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from ilsim.errors import IlsimError, did_you_mean
from ilsim.errors import argument as arg
from ilsim.model.compile import CompiledModel

REPORT_REPLICATES = 10  # replicates run again on the report's time grid (a tissue run costs seconds, not microseconds)


def is_tissue(engine) -> bool:
    """Whether ``engine`` runs tissue replicates (the tissue engine)."""
    return engine is not None and getattr(engine, "name", None) == "tissue"


def check(model: CompiledModel, varied: Iterable[tuple[str, str]] = ()) -> None:
    """Refuse a model without a ``tissue:`` section, and each ``(option, name)`` in ``varied`` whose name is a model
    parameter that ``tissue.parameters`` does not bind and no process read per cell uses (covariates and unknown names
    are left to their own checks)."""
    tissue = model.spec.tissue
    where = model.source or model.name
    if tissue is None:
        raise IlsimError(f"{where}: model '{model.name}' has no tissue: section, so the tissue engine has nothing to run; "
                         "add one (docs/tissue.md) or use another engine")
    from ilsim.engines.tissue.percell import parameters_used

    # a parameter changes a tissue run when the section binds it or a process read per cell has it in its rate
    used = set(tissue.parameters) | parameters_used(model.spec, tissue)
    bound = sorted(used)
    for option, name in varied:
        if name in model.parameters and name not in used:
            listed = f"bound: {', '.join(bound)}" if bound else "the section binds no parameter"
            raise IlsimError(f"{option} '{name}': parameter '{name}' is not bound to the tissue section, so it does not "
                             f"change a tissue run; bind it in tissue.parameters ({name}: a path such as "
                             f"agents[TYPE].speed){did_you_mean(name, bound)}; {listed}")


def located(model: CompiledModel) -> CompiledModel:
    """The model with each cells file (``placement: {kind: csv}``) named by its absolute path, found beside the model
    file: rows run from the model's specification alone, in any folder or process, where a relative path would be
    looked up in the working folder. Unchanged when there is none or the model has no file."""
    source = Path(model.source) if model.source else None
    agents = model.spec.tissue.agents
    relative = [i for i, a in enumerate(agents) if a.placement and a.placement.kind == "csv" and a.placement.file
                and not Path(a.placement.file).is_absolute()]
    if not relative or source is None or not source.is_file():
        return model
    spec = model.spec.model_copy(deep=True)
    for i in relative:
        placement = spec.tissue.agents[i].placement
        placement.file = str(source.resolve().parent / placement.file)
    return dataclasses.replace(model, spec=spec)


def output_times(model: CompiledModel, t_end: float | None, points: int | None) -> tuple[float, int]:
    """``(t_end, points)`` with the section's defaults: its ``t_end`` (minutes) and one output per ``save_every``."""
    tissue = model.spec.tissue
    t_end = tissue.t_end if t_end is None else t_end
    if points is None:
        try:
            points = max(2, round(float(t_end) / tissue.save_every) + 1)
        except (TypeError, ValueError, OverflowError):
            raise IlsimError(f"{arg('t_end')} must be a finite number of minutes, got {t_end!r}") from None
    return t_end, points


def run_seed(model: CompiledModel, engine, seed: int | None) -> int:
    """The seed the replicates are mixed from: the engine's, else the run's (``seed``), else the section's."""
    for value in (getattr(engine, "seed", None), seed):
        if value is not None:
            return value
    return model.spec.tissue.seed


def default_metric(model: CompiledModel) -> str:
    """What a sweep of a tissue model draws by default: the first field's mean at the end (else the first cell type's
    count), not the model's first species, which a tissue run may not hold (NaN)."""
    tissue = model.spec.tissue
    names = [f.species for f in tissue.fields] or [a.species for a in tissue.agents] or [model.species[0]]
    return f"{names[0]}.final"


def summary_columns(engine, model: CompiledModel) -> list[str]:
    """The per-row columns ``engine`` adds to the summary beside the species' metrics (none for most engines)."""
    columns = getattr(engine, "summary_columns", None)
    return list(columns(model)) if columns is not None else []


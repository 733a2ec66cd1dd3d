"""Model composition: ``include:`` another model (a file or a built-in name) into this one.

The included model's entries (species, parameters, processes, observables, events, motifs, faults,
pk, doses, toxicity, declared interleukins and cell types, derived quantities) come first, then the
model's own; the model's own metadata, patient (if given), outcomes and simulation settings win.
Both must use the same time units, and a name defined in both is an error: composition never
silently replaces a rate.
"""

from __future__ import annotations

from pathlib import Path

from ilsim import scenarios
from ilsim.errors import ModelError, Problem
from ilsim.model.compile import compile_model
from ilsim.model.load import read_spec

MERGED = ("interleukins", "cell_types", "species", "parameters", "processes", "observables", "events", "motifs",
          "faults", "pk", "doses", "toxicity", "derived")
NAMED = ("species", "parameters", "observables", "derived")


def resolve(reference: str, base: str | None) -> Path | None:
    """A path beside the including file, else a built-in model (never the current folder)."""
    if base and base.startswith("builtin:"):
        base = str(scenarios.builtin_path(base.removeprefix("builtin:")) or "")
    candidate = Path(reference)
    if not candidate.is_absolute():
        candidate = Path(base).parent / reference if base else None
    if candidate is not None and candidate.is_file():
        return candidate
    return scenarios.builtin_path(reference)


def include(spec, source: str | None = None, _seen: tuple[str, ...] = ()):
    """The spec with its ``include:`` entries merged in (recursively)."""
    if not spec.include:
        return spec
    merged = {section: [] for section in MERGED}
    patient = None
    problems: list[Problem] = []
    for k, reference in enumerate(spec.include):
        where = f"include[{k}]"
        path = resolve(reference, source)
        if path is None:
            problems.append(Problem(where, f"no model file or built-in model '{reference}'", source))
            continue
        key = str(path.resolve())
        if key in _seen:
            problems.append(Problem(where, f"'{reference}' includes itself (through {' -> '.join(_seen)})", source))
            continue
        other = include(read_spec(path), str(path), (*_seen, key))
        compile_model(other, source=str(path))  # its own mistakes are reported in its own file and fields
        if other.metadata.time_units != spec.metadata.time_units:
            problems.append(Problem(where, f"'{reference}' counts time in {other.metadata.time_units}, this model in "
                                    f"{spec.metadata.time_units}; included models must share time units", source))
            continue
        for section in MERGED:
            merged[section] += getattr(other, section)
        patient = other.patient or patient
    for section in NAMED:
        seen: set[str] = set()
        for entry in merged[section]:
            if entry.name in seen:
                problems.append(Problem("include", f"'{entry.name}' ({section}) is defined in more than one included "
                                        "model", source))
            seen.add(entry.name)
        theirs = seen
        for i, entry in enumerate(getattr(spec, section)):
            if entry.name in theirs:
                problems.append(Problem(f"{section}[{i}].name", f"'{entry.name}' is also defined in an included model; "
                                        "give it another name", source))
    if problems:
        raise ModelError(problems)
    update = {section: merged[section] + list(getattr(spec, section)) for section in MERGED}
    update["patient"] = spec.patient or patient
    update["include"] = []
    return spec.model_copy(update=update)

"""Model composition: ``include:`` another model (a file or a built-in name) into this one.

The included model's entries (species, parameters, processes, observables, events, motifs, faults,
pk, doses, toxicity, declared interleukins and cell types, derived quantities) come first, then the
model's own; the model's own metadata, patient (if given), outcomes and simulation settings win.
Both must use the same time units, and a name defined in both is an error: composition never
silently replaces a rate.

An include names a model file (.yaml or .yml) in the including model's own folder or below it, or a
built-in model: a model file from elsewhere (shared, downloaded) cannot make ilsim read /etc/passwd or a
user's private files into an error message. Folders listed in the environment variable ILSIM_INCLUDE_PATH
(separated by the system's path separator, ':' on Linux) are trusted as well: the explicit opt-in for a
library of shared models. The same file twice in one include list, more than MAX_INCLUDES files in all or
nesting deeper than MAX_INCLUDE_DEPTH are refused (a file that includes another twice per level would
otherwise read 2^20 files in 20 levels).
"""

from __future__ import annotations

import os
from pathlib import Path

from ilsim import scenarios
from ilsim.errors import ModelError, Problem
from ilsim.limits import MAX_INCLUDE_DEPTH, MAX_INCLUDES
from ilsim.model.compile import compile_model
from ilsim.model.load import read_spec

MERGED = ("interleukins", "cell_types", "species", "parameters", "processes", "observables", "events", "motifs",
          "faults", "pk", "doses", "toxicity", "derived")
NAMED = ("species", "parameters", "observables", "derived")


def resolve(reference: str, base: str | None) -> Path | None:
    """A path beside the including file, else a built-in model (never the current folder)."""
    if base and base.startswith("builtin:"):
        base = str(scenarios.builtin_path(base.removeprefix("builtin:")) or "")
    try:
        candidate = Path(reference)
        if not candidate.is_absolute():
            candidate = Path(base).parent / reference if base else None
        if candidate is not None and candidate.is_file():
            return candidate
        return scenarios.builtin_path(reference)
    except (OSError, ValueError):  # a name the system cannot look up (too long, a NUL character): no such file
        return None


def refusal(path: Path, base: str | None) -> str | None:
    """Why a resolved include may not be read (outside the trusted folders, not a model file), or None."""
    from ilsim import scenarios

    real = path.resolve()
    trusted = [Path(scenarios.__file__).parent]
    if base and not base.startswith("builtin:"):
        trusted.append(Path(base).parent)
    trusted += [Path(folder) for folder in os.environ.get("ILSIM_INCLUDE_PATH", "").split(os.pathsep) if folder]
    if not any(real.is_relative_to(folder.resolve()) for folder in trusted):
        return (f"'{real}' is outside the model's folder; an include must be a model file in the model's own "
                "folder or below it, or a built-in model (trust other folders with ILSIM_INCLUDE_PATH)")
    if real.suffix.lower() not in (".yaml", ".yml"):
        return f"'{real.name}' is not a model file (.yaml or .yml)"
    return None


def include(spec, source: str | None = None, _seen: tuple[str, ...] = (), _count: list[int] | None = None):
    """The spec with its ``include:`` entries merged in (recursively)."""
    if not spec.include:
        return spec
    count = [0] if _count is None else _count  # files read so far, shared by the whole recursion
    merged = {section: [] for section in MERGED}
    patient = None
    problems: list[Problem] = []
    here: set[str] = set()
    for k, reference in enumerate(spec.include):
        where = f"include[{k}]"
        path = resolve(reference, source)
        if path is None:
            problems.append(Problem(where, f"no model file or built-in model '{reference}'", source))
            continue
        why = refusal(path, source)
        if why:
            problems.append(Problem(where, why, source))
            continue
        key = str(path.resolve())
        if key in _seen:
            problems.append(Problem(where, f"'{reference}' includes itself (through {' -> '.join(_seen)})", source))
            continue
        if key in here:
            problems.append(Problem(where, f"'{reference}' is included twice", source))
            continue
        here.add(key)
        count[0] += 1
        if count[0] > MAX_INCLUDES or len(_seen) >= MAX_INCLUDE_DEPTH:
            limit = (f"more than {MAX_INCLUDES} model files in all" if count[0] > MAX_INCLUDES
                     else f"includes nested more than {MAX_INCLUDE_DEPTH} deep")
            raise ModelError([Problem(where, f"'{reference}': {limit} (a limit: docs/limits.md)", source)])
        other = include(read_spec(path), str(path), (*_seen, key), count)
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

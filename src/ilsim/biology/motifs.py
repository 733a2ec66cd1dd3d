"""Motifs: immunology in the words of the field, expanded into ordinary processes.

A model file's ``motifs:`` section lists entries such as ``secretion``, ``consumption`` or
``suppression``; ``expand`` turns each into species, parameters, processes and observables of
the reaction network, so every engine (and ``ilsim show``) sees plain processes. The origin of
each generated entry is kept so that a mistake is reported at the motif field that caused it.
"""

from __future__ import annotations

import math

from pydantic import ValidationError

from ilsim.biology.catalogue import load_catalogue
from ilsim.errors import ModelError, Problem, did_you_mean
from ilsim.model import expressions as ex
from ilsim.model.base import _NAME
from ilsim.model.sections.motifs import (  # the schema lives with the model's; re-exported for existing imports
    MOTIFS,
    Clearance,
    Consumption,
    ExprText,
    Killing,
    MotifEntry,
    Proliferation,
    Readout,
    ReadoutKind,
    Recruitment,
    Secretion,
    Signalling,
    Suppression,
)
from ilsim.model.spec import Observable, Parameter, Process, Species
from ilsim.model.units import hours_per

__all__ = ["MOTIFS", "Clearance", "Consumption", "ExprText", "Killing", "MotifEntry", "Proliferation", "Readout",
           "ReadoutKind", "Recruitment", "Secretion", "Signalling", "Suppression", "expand"]



def _text(value) -> str:
    return ex.to_text(ex.parse(value))


_paren = ex.operand_text


def _hill(x, k, n) -> str:
    return f"hill({_text(x)}, {_text(k)}, {_text(n)})"


def expand(spec):
    """The spec with its motifs replaced by ordinary entries, and a map from generated field paths
    (``processes[7].rate``) to the motif field that produced them (``motifs[2].secretion.rate``)."""
    if not spec.motifs:
        return spec, {}
    species = list(spec.species)
    params = list(spec.parameters)
    processes = list(spec.processes)
    observables = list(spec.observables)
    origins: dict[str, str] = {}
    problems: list[Problem] = []
    species_names = {s.name for s in species}
    hours = hours_per(spec.metadata.time_units)

    def need_species(where: str, name: str) -> bool:
        if name in species_names:
            return True
        problems.append(Problem(where, f"unknown species '{name}'{did_you_mean(name, species_names)}", None))
        return False

    def built(where: str, cls, **fields):
        """An entry generated from a motif; a bad value is a problem at the motif's field."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            problems.extend(Problem(where, err["msg"].removeprefix("Value error, "), None) for err in exc.errors())
            return None

    def add_process(where: str, name: str, rate: str, consumes=None, produces=None, description="") -> None:
        process = built(where, Process, name=name, rate=rate, consumes=consumes or {}, produces=produces or {},
                        description=description)
        if process is not None:
            origins[f"processes[{len(processes)}].rate"] = where
            processes.append(process)

    def add_observable(where: str, name: str, expression: str, units="dimensionless", description="") -> None:
        observable = built(f"{where.rsplit('.', 1)[0]}.name", Observable, name=name, expression=expression, units=units,
                           description=description, group="readouts")
        if observable is not None:
            origins[f"observables[{len(observables)}].expression"] = where
            observables.append(observable)

    suppressions: list[tuple[int, Suppression]] = []
    for k, entry in enumerate(spec.motifs):
        kind, m = entry.kind, entry.motif
        at = f"motifs[{k}].{kind}"
        if isinstance(m, Secretion):
            if not (need_species(f"{at}.cytokine", m.cytokine) & need_species(f"{at}.producer", m.producer)):
                continue
            state = f"{m.cytokine}_synthesis_in_{m.producer}"
            label = m.name or f"{m.cytokine} secretion by {m.producer}"
            species.append(Species(name=state, kind="other", units="fraction of maximal synthesis", initial=0,
                                   group="synthesis", description=f"{m.cytokine} synthesis programme of {m.producer} "
                                   "(no pre-formed store: 0 until stimulated)"))
            species_names.add(state)
            add_process(f"{at}.stimulus", f"{label}: synthesis switched on",
                        f"{_hill(m.stimulus, m.half_saturation, m.hill)}/{_paren(m.lag)}", produces={state: 1})
            add_process(f"{at}.lag", f"{label}: synthesis switched off", f"{state}/{_paren(m.lag)}", consumes={state: 1})
            add_process(f"{at}.rate", label, f"{_paren(m.rate)}*{m.producer}*{state}", produces={m.cytokine: 1},
                        description=m.description or "secretion on stimulation, after a synthesis lag")
        elif isinstance(m, Signalling):
            need_species(f"{at}.cytokine", m.cytokine)
            add_observable(f"{at}.ec50", m.name or f"{m.cytokine}_signal_in_{m.target}", _hill(m.cytokine, m.ec50, m.hill),
                           description=m.description or f"receptor activation of {m.target} by {m.cytokine} (0..1)")
        elif isinstance(m, Consumption):
            if need_species(f"{at}.cytokine", m.cytokine) & need_species(f"{at}.consumer", m.consumer):
                add_process(f"{at}.rate", m.name or f"{m.cytokine} uptake by {m.consumer}",
                            f"{_paren(m.rate)}*{m.consumer}*{m.cytokine}/({_text(m.half_saturation)} + {m.cytokine})",
                            consumes={m.cytokine: 1}, description=m.description or "receptor-mediated consumption")
        elif isinstance(m, Proliferation):
            if need_species(f"{at}.cells", m.cells):
                limit = f"*max(0, 1 - {m.cells}/{_paren(m.capacity)})" if m.capacity is not None else ""
                add_process(f"{at}.driver", m.name or f"{m.cells} proliferation",
                            f"{_paren(m.rate)}*{_paren(m.driver)}*{m.cells}{limit}", produces={m.cells: 1},
                            description=m.description)
        elif isinstance(m, Recruitment):
            if need_species(f"{at}.cells", m.cells):
                add_process(f"{at}.driver", m.name or f"{m.cells} recruitment", f"{_paren(m.rate)}*{_paren(m.driver)}",
                            produces={m.cells: 1}, description=m.description)
        elif isinstance(m, Killing):
            ok = need_species(f"{at}.killer", m.killer) & need_species(f"{at}.target", m.target)
            for name in m.collateral:
                ok &= need_species(f"{at}.collateral", name)
            if ok:
                contact = (f"{m.target}/({_text(m.half_saturation)} + {m.target})" if m.half_saturation is not None
                           else m.target)
                add_process(f"{at}.rate", m.name or f"{m.target} killed by {m.killer}",
                            f"{_paren(m.rate)}*{m.killer}*{contact}", consumes={m.target: 1}, produces=dict(m.collateral),
                            description=m.description)
        elif isinstance(m, Clearance):
            if need_species(f"{at}.species", m.species):
                description = m.description
                if m.rate is not None:
                    rate = _paren(m.rate)
                elif m.half_life is not None:
                    rate = f"{math.log(2)!r}/{_paren(m.half_life)}"
                else:
                    half_life = _catalogue_half_life(spec, m.species, at, hours, problems)
                    if half_life is None:
                        continue
                    rate, description = f"{math.log(2) / half_life[0]!r}", description or half_life[1]
                add_process(f"{at}.{'rate' if m.rate is not None else 'half_life'}", m.name or f"{m.species} clearance",
                            f"{rate}*{m.species}", consumes={m.species: 1}, description=description)
        elif isinstance(m, Suppression):
            suppressions.append((k, m))
        elif isinstance(m, Readout):
            _readout(at, m, hours, species, species_names, params, add_process, add_observable, problems, Species, Parameter,
                     spec.metadata.time_units)

    # suppression last: it rewrites the rates of processes defined anywhere in the model
    names = {p.name: j for j, p in enumerate(processes)}
    for k, m in suppressions:
        factor = f"1/(1 + ({_text(m.signal)}/{_paren(m.ic50)})**{_paren(m.hill)})"
        for i, target in enumerate(m.targets):
            where = f"motifs[{k}].suppression.targets[{i}]"
            if target not in names:
                problems.append(Problem(where, f"unknown process '{target}'{did_you_mean(target, names)}", None))
                continue
            j = names[target]
            process = processes[j]
            origins.setdefault(f"processes[{j}].rate", f"motifs[{k}].suppression.signal")
            processes[j] = process.model_copy(update={"rate": f"({_text(process.rate)})*{factor}"})
    if problems:
        raise ModelError(problems)
    expanded = spec.model_copy(update={"species": species, "parameters": params, "processes": processes,
                                       "observables": observables, "motifs": []})
    return expanded, origins


def _catalogue_half_life(spec, species: str, at: str, hours, problems) -> tuple[float, str] | None:
    """(half-life in model time units, description with its source) from the interleukin catalogue."""
    linked = next((s.interleukin for s in spec.species if s.name == species), None)
    why = None
    if linked is None:
        why = f"species '{species}' names no interleukin (add 'interleukin: ...' to it), so give 'rate' or 'half_life'"
    elif hours is None:
        why = "a half-life from the catalogue needs time units of minute, hour, day or week"
    else:
        try:
            entry = load_catalogue(spec.interleukins).get(linked)
        except ModelError:
            return None  # the unknown interleukin is reported at the species
        if entry.half_life is None:
            why = f"the catalogue has no half-life for {entry.name}; give 'rate' or 'half_life'"
    if why:
        problems.append(Problem(at, why, None))
        return None
    hl = entry.half_life
    return hl.hours / hours, f"catalogue half-life of {entry.name}: {hl} ({hl.context}; {hl.source})"


CRP_SOURCE = "Pepys MB, Hirschfield GM. C-reactive protein: a critical update. J Clin Invest 2003;111:1805-1812"


def _readout(at, m: Readout, hours, species, species_names, params, add_process, add_observable, problems,
             Species, Parameter, time_units: str) -> None:
    bad_keys = [name for name in m.inputs if not _NAME.match(name)]
    if bad_keys:
        problems.append(Problem(f"{at}.inputs", f"inputs are species or observable names, not {bad_keys[0]!r}", None))
        return
    drive = " + ".join(name if w == 1 else f"{_paren(w)}*{name}" for name, w in m.inputs.items())
    if not m.inputs:
        problems.append(Problem(f"{at}.inputs", "a readout needs at least one input", None))
        return
    activation = f"hill({drive}, {_text(m.half_saturation)}, {_text(m.hill)})"
    if m.kind == "fever":
        add_observable(f"{at}.inputs", m.name or "temperature", f"37 + {_paren(m.max_rise)}*{activation}", "degC",
                       m.description or "core body temperature: 37 C at rest, fever from pyrogenic cytokines")
    elif m.kind in ("pain", "inflammation", "allergy"):
        default = {"pain": "pain_index", "inflammation": "inflammation_index", "allergy": "allergic_reaction_index"}
        add_observable(f"{at}.inputs", m.name or default[m.kind], activation, "index (0-1)",
                       m.description or f"{m.kind} index: 0 at rest, 1 at full stimulation")
    elif m.kind == "regeneration":
        add_observable(f"{at}.inputs", m.name or "regeneration_rate", f"{_paren(m.max_rate)}*{activation}", f"1/{time_units}",
                       m.description or "tissue repair rate driven by regenerative signals")
    elif m.kind == "crp":
        if hours is None:
            problems.append(Problem("metadata.time_units", "a CRP readout needs time units of minute, hour, day or week",
                                    None))
            return
        name = m.name or "CRP"
        k_loss = math.log(2) / (19.0 / hours)  # per model time unit
        params += [
            Parameter(name=f"{name}_baseline", value=0.8, units="mg/L", description="median CRP of healthy adults",
                      source=CRP_SOURCE),
            Parameter(name=f"{name}_clearance", value=k_loss, units=f"1/{_unit(hours)}",
                      description="CRP clearance, plasma half-life 19 h", source=CRP_SOURCE),
        ]
        species.append(Species(name=name, kind="other", units="mg/L", initial=f"{name}_baseline", group="readouts",
                               description=m.description or "C-reactive protein, acute-phase protein made by the liver "
                               "in response to IL-6"))
        species_names.add(name)
        add_process(f"{at}.inputs", f"{name} synthesis",
                    f"{name}_clearance*({name}_baseline + ({_text(m.max_level)} - {name}_baseline)*{activation})",
                    produces={name: 1}, description="hepatic acute-phase synthesis (baseline plus IL-6-driven)")
        add_process(f"{at}.inputs", f"{name} clearance", f"{name}_clearance*{name}", consumes={name: 1})


def _unit(hours: float) -> str:
    return {1 / 60: "minute", 1.0: "hour", 24.0: "day", 168.0: "week"}[hours]

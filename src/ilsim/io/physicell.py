"""A PhysiCell project (``PhysiCell_settings.xml`` and its initial cells CSV) as an ilsim model with a ``tissue:`` section.

What has an equivalent is mapped (docs/tissue.md, "Importing PhysiCell"); PhysiCell's internal units are µm and
minutes, the tissue engine's too, so numbers are copied unchanged. Everything with no equivalent is collected as one
Problem per XML element (the element's path, why) and refused together, or, with ``partial``, left out and listed
in the model's description. Behaviour programmed in the project's C++ (custom_modules/) cannot be read from the XML:
what only that code reads (``user_parameters``, ``custom_data``) is named as custom C++ code.

The XML is parsed with the standard library's expat parser, which resolves no external entities and (expat >= 2.4)
refuses entity expansion attacks.
"""

from __future__ import annotations

import copy
import csv
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from ilsim.errors import IlsimError, ModelError, Problem
from ilsim.io.atomic import atomic_file
from ilsim.model.load import dump_spec, spec_from_dict
from ilsim.model.spec import ModelSpec

MAX_CELLS = 10_000_000
_SIDES = {"xmin": "x_min", "xmax": "x_max", "ymin": "y_min", "ymax": "y_max", "zmin": "z_min", "zmax": "z_max"}
# PhysiCell's cycle models whose phases form one loop ending in division (codes from PhysiCell's constants)
_CYCLES = {0: "advanced Ki67", 1: "basic Ki67", 2: "flow cytometry", 5: "live", 6: "flow cytometry (separated)",
           7: "cycling quiescent"}


@dataclass
class Imported:
    data: dict  # the model document (validated when written, once the cells file has its name)
    cells: list[tuple[float, ...]] | None  # rows x, y(, z), type name, already shifted into the ilsim domain
    names: dict[str, str]  # PhysiCell name -> ilsim species name
    dropped: list[Problem] = field(default_factory=list)  # what has no equivalent (left out with partial)
    cells_source: Path | None = None  # the cells CSV read (given, or found beside the settings): an input, never overwritten


def species_name(name: str) -> str:
    """A PhysiCell substrate or cell type name as an identifier: other characters become '_'."""
    text = re.sub(r"\W+", "_", name.strip()).strip("_") or "unnamed"
    return f"_{text}" if text[0].isdigit() else text


def _num(el: ET.Element | None, default: float = 0.0) -> float:
    if el is None or el.text is None or not el.text.strip():
        return default
    return float(el.text)


def _on(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


def _key(el: ET.Element) -> tuple:
    return (el.tag,) + tuple(el.get(a) for a in ("name", "ID", "index", "start_index", "substrate", "code"))


def _overlay(base: ET.Element, over: ET.Element) -> None:
    """PhysiCell's inheritance: a child type starts as its parent and replaces what it lists, value by value."""
    base.attrib.update(over.attrib)
    for child in over:
        match = next((b for b in base if _key(b) == _key(child)), None)
        if match is None:
            base.append(copy.deepcopy(child))
        elif len(child) == 0:
            match.text, match.attrib = child.text, dict(child.attrib)
        else:
            _overlay(match, child)


def _definitions(root: ET.Element, problem) -> list[tuple[str, ET.Element]]:
    raw = {d.get("name", ""): d for d in root.findall("cell_definitions/cell_definition")}

    def resolved(name: str, chain: tuple) -> ET.Element:
        el = raw[name]
        parent = el.get("parent_type")
        if not parent:
            return el
        if parent not in raw or parent in chain:
            problem(f"cell_definition[@name='{name}']", f"parent_type '{parent}' is not a cell definition (or a cycle)")
            return el
        merged = copy.deepcopy(resolved(parent, chain + (name,)))
        _overlay(merged, el)
        return merged

    return [(name, resolved(name, ())) for name in raw]


class _Reader:
    """Reads one settings file, collecting problems (bad input) and dropped elements (no equivalent) as it goes."""

    def __init__(self, source: str):
        self.source = source
        self.errors: list[Problem] = []
        self.dropped: list[Problem] = []

    def error(self, where: str, message: str) -> None:
        self.errors.append(Problem(where, message, self.source))

    def drop(self, where: str, message: str) -> None:
        self.dropped.append(Problem(where, f"no ilsim equivalent: {message}", self.source))

    def number(self, el: ET.Element, path: str, where: str, default: float = 0.0) -> float:
        try:
            value = _num(el.find(path), default)
        except ValueError:
            self.error(f"{where}/{path}", f"expected a number, got '{(el.find(path).text or '').strip()}'")
            return default
        if not math.isfinite(value):
            self.error(f"{where}/{path}", f"expected a finite number, got {value}")
            return default
        return value


def _domain(r: _Reader, root: ET.Element) -> tuple[dict, list[float], int]:
    dom = root.find("domain")
    if dom is None:
        r.error("domain", "the settings have no <domain> element")
        return {}, [0.0, 0.0, 0.0], 2
    two_d = _on(dom.findtext("use_2D"))
    dims = 2 if two_d else 3
    lower = [r.number(dom, f"{a}_min", "domain") for a in "xyz"]
    upper = [r.number(dom, f"{a}_max", "domain") for a in "xyz"]
    steps = [r.number(dom, f"d{a}", "domain") for a in "xyz"]
    if len(set(steps[:dims])) != 1:
        r.drop("domain/dx", f"voxels of different edges ({', '.join(f'{s:g}' for s in steps[:dims])} µm): ilsim's voxels "
                            "are cubes")
    for a, lo, hi in zip("xyz", lower[:dims], upper[:dims]):
        if not hi > lo:
            r.error(f"domain/{a}_max", f"{a}_max ({hi:g}) must exceed {a}_min ({lo:g})")
    overall = root.find("overall")
    units = {"time_units": "min", "space_units": "micron"}
    for tag, expected in units.items():
        got = (overall.findtext(tag) if overall is not None else None) or expected
        if got.strip() not in (expected, "minute", "um", "µm"):
            r.drop(f"overall/{tag}", f"'{got.strip()}' (PhysiCell projects are in min and micron)")
    return {"dimensions": dims, "size": [hi - lo for lo, hi in zip(lower[:dims], upper[:dims])], "voxel": steps[0]}, \
        lower, dims


def _substrates(r: _Reader, root: ET.Element, dims: int) -> tuple[list[dict], dict]:
    fields, boundary = [], {}
    sides_seen: dict[str, tuple] = {}
    variables = root.findall("microenvironment_setup/variable")
    for v in variables:
        name = v.get("name", "")
        where = f"microenvironment_setup/variable[@name='{name}']"
        entry = {"species": species_name(name),
                 "diffusion": r.number(v, "physical_parameter_set/diffusion_coefficient", where),
                 "decay": r.number(v, "physical_parameter_set/decay_rate", where),
                 "initial": r.number(v, "initial_condition", where)}
        fields.append(entry)
        # Dirichlet conditions: the global switch and value, or per side where Dirichlet_options lists sides
        dirichlet = v.find("Dirichlet_boundary_condition")
        on = dirichlet is not None and _on(dirichlet.get("enabled"))
        value = r.number(v, "Dirichlet_boundary_condition", where) if on else 0.0
        options = v.findall("Dirichlet_options/boundary_value")
        per_side = {}
        for side in list(_SIDES)[: 2 * dims]:
            opt = next((o for o in options if o.get("ID") == side), None)
            if opt is not None:
                per_side[side] = (_on(opt.get("enabled")) and on, _num(opt) if _on(opt.get("enabled")) else None)
            else:
                per_side[side] = (on, value)
        for side, (fixed, val) in per_side.items():
            sides_seen.setdefault(side, [])
            sides_seen[side].append((name, fixed, val))
    mixed = []
    for side, seen in sides_seen.items():
        kinds = {(fixed, val if fixed else None) for _, fixed, val in seen}
        if len(kinds) > 1:
            mixed.append(side)
        elif seen and seen[0][1]:
            boundary[_SIDES[side]] = seen[0][2]
    if mixed:
        which = ", ".join(f"{n} {'fixed ' + format(val, 'g') if fixed else 'no-flux'}" for n, fixed, val in sides_seen[mixed[0]])
        r.drop("microenvironment_setup/variable/Dirichlet_options", f"substrates differ on the sides {', '.join(mixed)} "
               f"({which}); an ilsim tissue boundary is per side, the same for every field")
    for what in ("initial_condition", "dirichlet_nodes"):
        el = root.find(f"microenvironment_setup/options/{what}")
        if el is not None and _on(el.get("enabled")):
            r.drop(f"microenvironment_setup/options/{what}", "substrate values read from a MATLAB file")
    return fields, boundary


def _cycle_rate(r: _Reader, ph: ET.Element, where: str) -> float:
    """The division rate of the same mean cycle time: 1 / (sum of the phases' mean durations); 0 where a phase never
    ends. PhysiCell's fixed-duration phases become exponential waits of the same mean (docs/tissue.md)."""
    cycle = ph.find("cycle")
    if cycle is None:
        return 0.0
    code = int(cycle.get("code", "5"))
    if code not in _CYCLES:
        r.drop(f"{where}/cycle", f"cycle model code {code}")
        return 0.0
    means = []
    for rate in cycle.findall("phase_transition_rates/rate"):
        k = _num(rate)
        means.append(math.inf if k <= 0 else 1.0 / k)
    for d in cycle.findall("phase_durations/duration"):
        means.append(_num(d, math.inf))
    if not means or any(not math.isfinite(m) for m in means):
        return 0.0
    return 1.0 / sum(means)


def _cell_type(r: _Reader, name: str, d: ET.Element, fields: dict[str, str], types: dict[str, str]) -> dict:
    where = f"cell_definitions/cell_definition[@name='{name}']"
    ph = d.find("phenotype")
    ph = ph if ph is not None else ET.Element("phenotype")
    p = f"{where}/phenotype"
    agent: dict = {"species": types[name]}
    volume = r.number(ph, "volume/total", p, 2494.0)  # PhysiCell's default cell volume
    if volume > 0:
        agent["radius"] = (3.0 * volume / (4.0 * math.pi)) ** (1.0 / 3.0)
    else:
        r.error(f"{p}/volume/total", f"a cell volume must be positive, got {volume:g} µm³")
    division = _cycle_rate(r, ph, p)
    if division > 0:
        agent["division"] = division
    death = 0.0
    for model in ph.findall("death/model"):
        death += r.number(model, "death_rate", f"{p}/death/model[@name='{model.get('name')}']")
    if death > 0:
        agent["death"] = death  # the cell leaves at once: ilsim has no dead bodies (docs/tissue.md)
    mech = ph.find("mechanics")
    if mech is not None:
        repulsion = r.number(mech, "cell_cell_repulsion_strength", f"{p}/mechanics")
        if repulsion > 0:
            agent["repulsion"] = repulsion
        if r.number(mech, "cell_cell_adhesion_strength", f"{p}/mechanics") > 0:
            r.drop(f"{p}/mechanics/cell_cell_adhesion_strength", "cell-cell adhesion (ilsim's cells only repel)")
        if r.number(mech, "attachment_rate", f"{p}/mechanics") > 0:
            r.drop(f"{p}/mechanics/attachment_rate", "spring attachments between cells")
    mot = ph.find("motility")
    if mot is not None and _on(mot.findtext("options/enabled")):
        speed = r.number(mot, "speed", f"{p}/motility")
        if speed > 0:
            agent["speed"] = speed
            agent["persistence"] = r.number(mot, "persistence_time", f"{p}/motility", 1.0) or 1.0
        if _on(mot.findtext("options/chemotaxis/enabled")):
            sub = (mot.findtext("options/chemotaxis/substrate") or "").strip()
            sign = r.number(mot, "options/chemotaxis/direction", f"{p}/motility", 1.0)
            bias = r.number(mot, "migration_bias", f"{p}/motility")
            if sub not in fields:
                r.error(f"{p}/motility/options/chemotaxis/substrate", f"'{sub}' is not a substrate of microenvironment_setup")
            elif sign not in (1.0, -1.0) or not 0.0 <= bias <= 1.0:
                r.error(f"{p}/motility", f"chemotaxis needs direction 1 or -1 and migration_bias in 0..1, got {sign:g} "
                                         f"and {bias:g}")
            elif bias > 0:
                agent["chemotaxis"] = {"field": fields[sub], "bias": sign * bias}
        if _on(mot.findtext("options/advanced_chemotaxis/enabled")):
            r.drop(f"{p}/motility/options/advanced_chemotaxis", "chemotaxis towards several substrates")
    uptake, export, target = [], [], []
    for s in ph.findall("secretion/substrate"):
        sub = s.get("name", "")
        q = f"{p}/secretion/substrate[@name='{sub}']"
        if sub not in fields:
            r.error(q, f"'{sub}' is not a substrate of microenvironment_setup")
            continue
        rate, level = r.number(s, "secretion_rate", q), r.number(s, "secretion_target", q, 1.0)
        up, net = r.number(s, "uptake_rate", q), r.number(s, "net_export_rate", q)
        if rate > 0:
            target.append({"field": fields[sub], "rate": rate, "target": level})
        if up > 0:
            uptake.append({"field": fields[sub], "rate": up})
        if net > 0:
            export.append({"field": fields[sub], "rate": net})
        elif net < 0:
            r.drop(f"{q}/net_export_rate", f"a negative net export ({net:g}): a fixed import of substrate")
    for key, value in (("uptake", uptake), ("secretion", export), ("secretion_target", target)):
        if value:
            agent[key] = value
    inter = ph.find("cell_interactions")
    if inter is not None:
        kills = [{"target": types[el.get("name")], "rate": _num(el)}
                 for el in inter.findall("live_phagocytosis_rates/phagocytosis_rate")
                 if el.get("name") in types and _num(el) > 0]
        if kills:
            agent["kills"] = kills  # a live cell eaten on contact at this rate: ilsim's contact killing
        for tag in ("apoptotic_phagocytosis_rate", "necrotic_phagocytosis_rate", "other_dead_phagocytosis_rate"):
            if r.number(inter, tag, f"{p}/cell_interactions") > 0:
                r.drop(f"{p}/cell_interactions/{tag}", "eating dead cells (ilsim removes a cell when it dies)")
        for group, what in (("attack_rates", "attack with damage"), ("fusion_rates", "cell fusion")):
            if any(_num(el) > 0 for el in inter.findall(f"{group}/*")):
                r.drop(f"{p}/cell_interactions/{group}", what)
    into = [(el.get("name"), _num(el)) for el in ph.findall("cell_transformations/transformation_rates/transformation_rate")
            if _num(el) > 0 and el.get("name") != name]
    if len(into) == 1 and into[0][0] in types:
        agent["differentiation"] = {"into": types[into[0][0]], "rate": into[0][1]}
    elif into:
        r.drop(f"{p}/cell_transformations", "transformation into several cell types (ilsim: one differentiation)")
    if any(r.number(ph, f"cell_integrity/{t}", p) > 0 for t in ("damage_rate", "damage_repair_rate")):
        r.drop(f"{p}/cell_integrity", "damage accumulation")
    for tag in ("intracellular", "molecular"):
        el = ph.find(tag)
        if el is not None and (len(el) or (el.text or "").strip()):
            r.drop(f"{p}/{tag}", "an intracellular model (SBML/MaBoSS/ODE or molecular substrates inside cells)")
    custom = d.find("custom_data")
    if custom is not None and len(custom):
        r.drop(f"{where}/custom_data", "read only by the project's custom C++ code (custom_modules/): "
                                       + _names(c.tag for c in custom))
    if d.find("initial_parameter_distributions") is not None and _on(d.find("initial_parameter_distributions").get("enabled")):
        r.drop(f"{where}/initial_parameter_distributions", "per-cell parameter distributions")
    return agent


def _names(names) -> str:
    names = list(names)
    return ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")


def _read_cells(r: _Reader, path: Path, by_id: dict[str, str], types: dict[str, str], lower, dims, size):
    """PhysiCell's cells CSV: version 1 (no header: x, y, z, type ID) or 2 (a header x, y, z, type, then per-cell
    settings, which have no equivalent unless 'skip'); positions shifted so the domain starts at 0."""
    where = str(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [row for row in csv.reader(fh) if row and not row[0].lstrip().startswith("//")]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        reason = "no such file" if isinstance(exc, FileNotFoundError) else exc.__class__.__name__
        raise IlsimError(f"cannot read the cells file '{path}' (the settings' initial_conditions, or --cells): "
                         f"{reason}") from None
    header = [c.strip() for c in rows[0]] if rows and rows[0] and rows[0][0].strip() == "x" else None
    if header:
        rows = rows[1:]
    if len(rows) > MAX_CELLS:
        raise IlsimError(f"{path}: more than {MAX_CELLS:,} cells")
    cells = []
    for line, row in enumerate(rows, start=2 if header else 1):
        try:
            x, y, z = (float(v) for v in row[:3])
            kind = row[3].strip()
        except (ValueError, IndexError):
            r.error(f"{where} line {line}", "needs x, y, z (numbers) and a cell type")
            continue
        name = kind if header else by_id.get(kind.split(".")[0], kind)
        if name not in types:
            r.error(f"{where} line {line}", f"'{kind}' is not a cell definition of the settings")
            continue
        p = [x - lower[0], y - lower[1], z - lower[2]][:dims]
        if not all(0 <= v <= s for v, s in zip(p, size)):
            r.error(f"{where} line {line}", f"({x:g}, {y:g}, {z:g}) lies outside the domain")
            continue
        if header and any(v.strip() not in ("", "skip") for v in row[4:]):
            extra = [h for h, v in zip(header[4:], row[4:]) if v.strip() not in ("", "skip")]
            r.drop(f"{where} line {line}", f"per-cell settings ({_names(extra)})")
        cells.append((*p, types[name]))
    return cells


def import_physicell(settings: str | Path, cells: str | Path | None = None, *, partial: bool = False,
                     name: str | None = None) -> Imported:
    """Read a PhysiCell settings file (and its initial cells CSV: ``cells``, or the one the settings enable, looked for
    beside the settings file); refuse (ModelError, one Problem per element) what has no equivalent unless ``partial``."""
    settings = Path(settings)
    source = str(settings)
    try:
        root = ET.parse(settings).getroot()
    except OSError as exc:
        raise IlsimError(f"cannot read '{settings}': {exc.strerror or exc.__class__.__name__}") from None
    except ET.ParseError as exc:
        raise ModelError([Problem("", f"not well-formed XML: {exc}", source)]) from None
    if root.tag != "PhysiCell_settings":
        raise ModelError([Problem(root.tag, "not a PhysiCell settings file (the root element is not <PhysiCell_settings>)",
                                  source)])
    r = _Reader(source)
    domain, lower, dims = _domain(r, root)
    fields, boundary = _substrates(r, root, dims)
    field_names = {v.get("name", ""): species_name(v.get("name", "")) for v in root.findall("microenvironment_setup/variable")}
    definitions = _definitions(root, r.error)
    types = {n: species_name(n) for n, _ in definitions}
    by_id = {d.get("ID", ""): n for n, d in ((d.get("name", ""), d) for d in root.findall("cell_definitions/cell_definition"))}
    agents = [_cell_type(r, n, d, field_names, types) for n, d in definitions]
    for what, names in (("substrate", list(field_names.values())), ("cell type", list(types.values()))):
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            r.error("microenvironment_setup" if what == "substrate" else "cell_definitions",
                    f"two {what}s become the same name '{twice[0]}'")
    clash = set(field_names.values()) & set(types.values())
    if clash:
        r.error("cell_definitions", f"'{sorted(clash)[0]}' names both a substrate and a cell type")
    positions = root.find("initial_conditions/cell_positions")
    cell_rows = None
    if cells is None and positions is not None and _on(positions.get("enabled")):
        file = positions.findtext("filename") or "cells.csv"
        folder = positions.findtext("folder") or "."
        candidates = [settings.parent / file, settings.parent / folder / file, settings.parent.parent / folder / file]
        cells = next((c for c in candidates if c.is_file()), None)
        if cells is None:
            r.error("initial_conditions/cell_positions", f"the cells file '{folder}/{file}' is not beside the settings; "
                                                         "give it with --cells")
    if cells is not None and domain:
        cell_rows = _read_cells(r, Path(cells), by_id, types, lower, dims, domain["size"])
    rules = root.find("cell_rules/rulesets/ruleset")
    if rules is not None and _on(rules.get("enabled")):
        r.drop("cell_rules/rulesets/ruleset", f"CBHG rules ({rules.findtext('filename') or 'rules.csv'})")
    params = root.find("user_parameters")
    if params is not None and len(params):
        r.drop("user_parameters", "read only by the project's custom C++ code (custom_modules/, e.g. setup_tissue and "
                                  "the phenotype functions): " + _names(p.tag for p in params))
    if r.errors:
        raise ModelError(r.errors)
    if r.dropped and not partial:
        raise ModelError(r.dropped + [Problem("", "nothing written; --skip-unmapped (partial=True) imports the rest",
                                              source)])
    overall = root.find("overall")
    t_end = r.number(overall, "max_time", "overall", 60.0) if overall is not None else 60.0
    dt = r.number(overall, "dt_mechanics", "overall", 0.1) if overall is not None else 0.1
    save = _num(root.find("save/full_data/interval"), t_end) if root.find("save/full_data/interval") is not None else t_end
    seed_text = (root.findtext("options/random_seed") or "0").strip()
    seed = int(seed_text) if seed_text.isdigit() else 0  # 'system_clock': the run's seed is given instead
    if boundary:
        domain["boundary"] = {side: {"kind": "fixed", "value": value} for side, value in boundary.items()}
    if cell_rows:
        agents[0]["placement"] = {"kind": "csv", "file": None}  # set by write(): the CSV beside the model file
    model_name = species_name(name or settings.parent.name or "physicell")
    notes = [f"Imported from the PhysiCell settings {settings.name} by `ilsim import-physicell`."]
    if r.dropped:
        notes.append("Left out (no ilsim equivalent): " + "; ".join(f"{p.field}: {p.message}" for p in r.dropped))
    data = {
        "metadata": {"name": model_name, "title": f"{settings.parent.name or settings.stem} (PhysiCell import)",
                     "description": " ".join(notes), "time_units": "minute"},
        "species": [{"name": f["species"], "kind": "other", "units": "dimensionless", "initial": 0} for f in fields]
        + [{"name": types[n], "kind": "cell", "units": "cells", "initial": 0} for n, _ in definitions],
        "tissue": {"domain": domain, "fields": fields, "agents": agents, "dt": dt, "t_end": t_end,
                   "save_every": save, "seed": seed},
    }
    return Imported(data, cell_rows, {**field_names, **types}, list(r.dropped), None if cells is None else Path(cells))


def cells_path(out: Path) -> Path:
    return out.with_name(out.stem + ".cells.csv")


def build_spec(imported: Imported, out: Path) -> ModelSpec:
    data = copy.deepcopy(imported.data)
    if imported.cells:
        data["tissue"]["agents"][0]["placement"]["file"] = cells_path(out).name
    return spec_from_dict(data, str(out))


def write(imported: Imported, out: str | Path) -> ModelSpec:
    """Write the model file (and its cells CSV beside it, ``NAME.cells.csv``), each atomically."""
    out = Path(out)
    spec = build_spec(imported, out)
    if imported.cells:
        dims = spec.tissue.domain.dimensions
        with atomic_file(cells_path(out)) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow([*"xyz"[:dims], "type"])
            writer.writerows(imported.cells)
    with atomic_file(out) as tmp:
        tmp.write_text(dump_spec(spec), encoding="utf-8")
    return spec

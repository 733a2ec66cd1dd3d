"""ilsim unit labels as SBML UnitDefinitions, and ilsim's outcomes as an SBML annotation (for export-sbml).

A label ('pg/mL', '1e6 cells/cc', '1/day') is read by ilsim's unit parser (pint, model/units.py) and written
in SBML base units: metre, kilogram, second, mole, kelvin, ampere, candela, and 'item' for the domain's
counted units (cells, IU, CFU, arbitrary units: each a dimension of its own in ilsim, all counts in SBML),
the scale as the multiplier of the first unit. The definition's name is the label itself, which the SBML
importer reads back as the unit (io/sbml_import/importer.py), so a round trip keeps every label.

Outcomes (label, condition, held_for, description) have no SBML form; they travel as an annotation in the
namespace OUTCOMES_NS on the model, which the importer reads back (conditions are text that ilsim's expression
parser checks again on import, never evaluated as code).
"""

from __future__ import annotations

import math
import re

from ilsim.model import units

OUTCOMES_NS = "https://ilsim.dev/sbml/outcomes/1"
UNITS_NS = "https://ilsim.dev/sbml/units/1"
_SBML_BASE = {"meter": "metre", "kilogram": "kilogram", "second": "second", "mole": "mole", "kelvin": "kelvin",
              "ampere": "ampere", "candela": "candela"}


def unit_terms(label: str) -> tuple[float, list[tuple[str, float]]]:
    """(scale, [(SBML unit kind, exponent)]) of a label: its value in SBML base units is scale x the product."""
    text = (label or "").strip()
    if re.search(r"\bdeg[CF]\b|celsius|fahrenheit", text, re.IGNORECASE):
        return 1.0, [("kelvin", 1.0)]  # SBML Level 3 has no offset units: a temperature difference
    base = units.parse(text).to_base_units()
    terms: dict[str, float] = {}
    for name, power in base.unit_items():
        kind = _SBML_BASE.get(name, "item")  # the domain's own dimensions are counts
        terms[kind] = terms.get(kind, 0.0) + float(power)
    # 15 significant digits: pint's 1e6/1e-6 is 999999999999.9999, and libsbml compares multipliers
    return float(f"{float(base.magnitude):.15g}"), [(k, p) for k, p in terms.items() if p != 0]


class UnitDefinitions:
    """One SBML UnitDefinition per distinct label of a model, created on first use."""

    def __init__(self, model, new_id):
        self._model, self._new_id = model, new_id
        self._ids: dict[str, str] = {}
        self._by_value: dict[tuple, str] = {}  # (scale, terms) -> the first definition of those units

    def id_for(self, scale: float, terms) -> str:
        """The id of a definition of ``scale`` x ``terms`` (the units a literal number needs): an existing one of
        those units, else a new one named by its base units."""
        if not terms and math.isclose(scale, 1.0, rel_tol=1e-12):
            return "dimensionless"
        key = _key(scale, terms)
        if key in self._by_value:
            return self._by_value[key]
        text = " ".join(f"{kind}^{power:g}" for kind, power in terms) or "dimensionless"
        label = text if math.isclose(scale, 1.0, rel_tol=1e-12) else f"{scale:.12g} {text}"
        return self._define(label, scale, list(terms))

    def id_of(self, label: str) -> str:
        """The id of the definition of ``label`` ('dimensionless' for dimensionless labels of scale 1)."""
        label = (label or "dimensionless").strip()
        if label in self._ids:
            return self._ids[label]
        scale, terms = unit_terms(label)
        if not terms and math.isclose(scale, 1.0, rel_tol=1e-12) and label in ("dimensionless", ""):
            return "dimensionless"
        self._ids[label] = self._define(label, scale, terms)
        return self._ids[label]

    def _define(self, label: str, scale: float, terms) -> str:
        import libsbml as sb  # lazy: heavy (libsbml)

        key = _key(scale, terms)

        ud = self._model.createUnitDefinition()
        ud.setId(self._new_id(f"unit_{label}"))
        ud.setName(label)
        # the scale goes into the metre where there is one, else into a unit of exponent 1: libsbml compares the
        # operands of a sum unit by unit, so '1e6 cells/cc' and '1e6 cells/(cc damage units)' x damage units must
        # both carry their scale on the metre
        terms = sorted(terms or [("dimensionless", 1.0)], key=lambda term: (term[0] != "metre", term[1] != 1.0))
        for k, (kind, power) in enumerate(terms):
            u = ud.createUnit()
            u.setKind(sb.UnitKind_forName(kind))
            u.setExponent(power)
            u.setScale(0)
            # (multiplier x kind)^exponent: the scale goes into the first unit
            u.setMultiplier(scale ** (1.0 / power) if k == 0 else 1.0)
        self._by_value.setdefault(key, ud.getId())
        return ud.getId()


def _key(scale: float, terms) -> tuple:
    return round(math.log10(scale), 9) if scale > 0 else scale, tuple(sorted((k, round(p, 9)) for k, p in terms))


def species_annotation(label: str) -> str:
    """A concentration species' ilsim label as an annotation (its SBML units are split into substance units and a
    compartment's, whose names cannot give the label back)."""
    return f'<ilsim:species xmlns:ilsim="{UNITS_NS}" units={_attr(label)}/>'


def read_species_label(species) -> str | None:
    """The label an ilsim export gave a species in its annotation, or None."""
    annotation = species.getAnnotation() if species.isSetAnnotation() else None
    for i in range(annotation.getNumChildren() if annotation is not None else 0):
        block = annotation.getChild(i)
        if block.getURI() == UNITS_NS and block.getName() == "species":
            return block.getAttrValue("units") or None
    return None


# XML 1.0 has no form for most control characters (libsbml refuses the annotation): they are written as \\xNN
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _attr(text: str) -> str:
    from xml.sax.saxutils import quoteattr  # lazy: heavy (urllib.request), needed to export, not to import

    return quoteattr(_NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text))


def outcomes_annotation(outcomes) -> str:
    """The model's outcomes as an annotation element (empty text when there are none)."""
    if not outcomes:
        return ""
    rows = []
    for o in outcomes:
        held = f" held_for={_attr(repr(float(o.held_for)))}" if o.held_for is not None else ""
        rows.append(f"<ilsim:outcome label={_attr(o.label)} when={_attr(str(o.when))}{held} "
                    f"description={_attr(o.description or '')}/>")
    return f'<ilsim:outcomes xmlns:ilsim="{OUTCOMES_NS}">{"".join(rows)}</ilsim:outcomes>'


def read_outcomes(model) -> list[dict]:
    """The outcomes of a libsbml Model's annotation in OUTCOMES_NS, as dicts of Outcome fields."""
    annotation = model.getAnnotation() if model.isSetAnnotation() else None
    out: list[dict] = []
    if annotation is None:
        return out
    for i in range(annotation.getNumChildren()):
        block = annotation.getChild(i)
        if block.getURI() != OUTCOMES_NS or block.getName() != "outcomes":
            continue
        for k in range(block.getNumChildren()):
            row = block.getChild(k)
            if row.getName() != "outcome":
                continue
            fields = {key: row.getAttrValue(key) for key in ("label", "when", "description")}
            held = row.getAttrValue("held_for")
            if held:
                fields["held_for"] = held
            out.append(fields)
    return out

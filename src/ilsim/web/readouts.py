"""What a clinician reads off a run, and a short teaching text per model, from ilsim's summary and model file."""

from __future__ import annotations

from dash import html

FEVER_C = 38.0  # the fever threshold the scenarios draw
CRP_UPPER_NORMAL = 10.0  # mg/L


def _number(value, unit: str = "", spec: str = ".4g") -> str:
    return "–" if value is None else f"{format(value, spec)} {unit}".strip()


def card(label: str, text: str, ident: str, value=None, tone: str = "") -> html.Div:
    """One readout; ``data-value`` holds the full-precision number (the browser tests read it back)."""
    return html.Div([html.Div(label, className="readout-label"),
                     html.Div(text, id=ident, className="readout-value", **{"data-value": repr(value)})],
                    className=f"readout {tone}")


def readouts(summary: dict) -> list:
    """Outcome, peak temperature, peak CRP, the worst CTCAE grades and whether they mean hospitalisation."""
    variables = summary["variables"]
    out = [card("outcome", summary.get("outcome") or "no outcome rules in this model", "readout-outcome",
                summary.get("outcome"), "outcome")]
    temperature = variables.get("temperature", {}).get("peak")
    if temperature is not None:
        out.append(card("peak temperature", _number(temperature, "°C", ".3g"), "readout-temperature", temperature,
                        "alert" if temperature >= FEVER_C else ""))
    crp = variables.get("CRP", {}).get("peak")
    if crp is not None:
        out.append(card("peak CRP", _number(crp, "mg/L", ".3g"), "readout-crp", crp, "alert" if crp > CRP_UPPER_NORMAL else ""))
    toxicity = summary.get("toxicity") or {}
    if toxicity:
        worst = max(g["max_grade"] for g in toxicity.values())
        grades = ", ".join(f"{term} {g['max_grade']}" for term, g in toxicity.items() if g["max_grade"] > 0) or "none"
        out.append(card("CTCAE grades (max)", grades, "readout-ctcae", worst, "alert" if worst >= 3 else ""))
        care = ("intensive care" if any(g["intensive_care"] for g in toxicity.values()) else
                "hospitalisation" if any(g["hospitalisation"] for g in toxicity.values()) else "outpatient")
        out.append(card("care needed", care, "readout-care", care, "alert" if care != "outpatient" else ""))
    return out


def values_table(summary: dict) -> html.Table:
    """Initial, peak (with its time) and final value of each species and observable, full precision in data-value."""
    tu = summary.get("time_units") or ""
    head = html.Tr([html.Th(h) for h in ("variable", "units", "initial", "peak", f"at ({tu})", "final")])
    rows = []
    for name, v in summary["variables"].items():
        cells = [html.Td(name), html.Td(v["units"])]
        for key in ("initial", "peak", "peak_time", "final"):
            cells.append(html.Td(_number(v[key]), className="num",
                                 **{"data-name": name, "data-key": key, "data-value": repr(v[key])}))
        rows.append(html.Tr(cells))
    return html.Table([html.Thead(head), html.Tbody(rows)], className="values")


def narrative(spec) -> list:
    """For teaching: what the model shows, what each curve is, what each fault breaks (from the model file)."""
    out = [html.P(p) for p in spec.metadata.description.strip().split("\n\n") if p.strip()]
    curves = [(s.name, s.description, s.units) for s in spec.species if s.description]
    curves += [(o.name, o.description, o.units) for o in spec.observables if o.description]
    if curves:
        out.append(html.H4("The curves"))
        out.append(html.Ul([html.Li([html.B(name), f" ({units}): {text}"]) for name, text, units in curves]))
    if spec.events:
        out.append(html.H4("Events (dotted orange lines on the plots when a run has a few)"))
        out.append(html.Ul([html.Li([html.B(e.name), f": {e.description}" if e.description else ""]) for e in spec.events]))
    if spec.faults:
        out.append(html.H4("The faults"))
        out.append(html.Ul([html.Li([html.B(f.mode), f": {f.description}"]) for f in spec.faults]))
        out.append(html.P("Switch a fault on at the left: the dashed curves of 'overlay the faulted variants' show "
                          "where the faulted run leaves the intact one."))
    if spec.outcomes:
        out.append(html.H4("How the outcome is read"))
        out.append(html.Ul([html.Li([html.B(o.label), f": when {o.when}" + (f" ({o.description})" if o.description else "")])
                            for o in spec.outcomes]))
    return out

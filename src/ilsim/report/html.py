"""A self-contained HTML report: the model, its sources, the equations, figures and summary.

One file, no external assets (figures are embedded as base64 PNG), every user-supplied string
escaped, so it can be mailed or archived beside the results.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

from ilsim.model.compile import CompiledModel
from ilsim.report import text
from ilsim.report.safe_text import html_text

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1d2533;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:1px solid #d5dbe5;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em} th,td{border:1px solid #d5dbe5;padding:.25em .55em;
text-align:left;vertical-align:top} th{background:#f1f4f9} td.num{text-align:right;font-variant-numeric:tabular-nums}
pre,code{background:#f6f8fb;font-size:.9em} pre{padding:.7em;white-space:pre-wrap;overflow-wrap:anywhere}
td{overflow-wrap:anywhere} details summary{cursor:pointer;color:#3a4a66}
.outcome{display:inline-block;padding:.2em .7em;border-radius:1em;background:#e8eefc;font-weight:600}
img{max-width:100%;border:1px solid #e3e7ee} .muted{color:#5b6677;font-size:.9em}
"""


# Events the dosing layer generates for each dose ("dose aldesleukin #3 given", "... #3 infusion ends"): bookkeeping
# a reader opens on purpose, not a line of the model's own
_GENERATED = re.compile(r"^dose \S+ #\d+ ")
FOLD_ROWS = 20  # a table longer than this is folded (shown on a click)


def _fold(summary: str, body: str) -> str:
    return f"<details><summary>{html_text(summary)}</summary>{body}</details>"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return html_text(str(value))


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{html_text(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td class='num'>{_fmt(c)}</td>" if i in numeric else f"<td>{_fmt(c)}</td>"
                         for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<p><img alt='{html_text(path.stem)}' src='data:image/png;base64,{data}'></p>"


def render(model: CompiledModel, summary: dict, figures: list[Path]) -> str:
    spec = model.spec
    meta = spec.metadata
    used = summary.get("parameters", {})
    refs = []
    for r in meta.references:
        link = f"https://doi.org/{r.doi}" if r.doi else r.url
        anchor = f" <a href='{html_text(link)}'>{html_text(r.doi or r.url)}</a>" if link else ""
        refs.append(f"<li>{html_text(r.citation)}{anchor}</li>")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html_text(meta.title or meta.name)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html_text(meta.title or meta.name)}</h1>",
        f"<p class='muted'>model <code>{html_text(meta.name)}</code> · hash "
        f"<code>{html_text(str(summary.get('model_hash', ''))[:16])}</code> · "
        f"ilsim {html_text(str(summary.get('ilsim_version')))}</p>",
        f"<p>{html_text(meta.description)}</p>",
    ]
    if summary.get("outcome"):
        rule = f" <span class='muted'>{html_text(summary['outcome_rule'])}</span>" if summary.get("outcome_rule") else ""
        parts.append(f"<p>Outcome: <span class='outcome'>{html_text(summary['outcome'])}</span>{rule}</p>")
    if summary.get("derived"):
        parts.append(_table(["derived quantity", "value"], [[k, v] for k, v in summary["derived"].items()], numeric={1}))
    parts.append("<h2>Results</h2>")
    parts += [_image(f) for f in figures]
    var_rows = [
        [name, v["units"], v["initial"], v["final"], v["peak"], v["peak_time"], v["nadir"], v["nadir_time"]]
        for name, v in summary["variables"].items()
    ]
    tu = summary.get("time_units", "")
    parts.append(_table(["variable", "units", "initial", "final", "peak", f"peak time [{tu}]", "nadir",
                         f"nadir time [{tu}]"], var_rows, numeric={2, 3, 4, 5, 6, 7}))
    if summary.get("toxicity"):
        parts.append("<h3>Side effects (CTCAE v5.0 grades)</h3>")
        rows = [[term, g["variable"], g["max_grade"], g["time_of_max"] if g["time_of_max"] is not None else "-",
                 "yes" if g["hospitalisation"] else "", "yes" if g["intensive_care"] else "",
                 g["recovered_by"] if g["recovered_by"] is not None else "-"] for term, g in summary["toxicity"].items()]
        parts.append(_table(["term", "graded from", "max grade", f"at [{tu}]", "hospitalisation", "intensive care",
                             f"grade 0 from [{tu}]"], rows, numeric={2, 3, 6}))
    if summary.get("dose_log"):
        parts.append("<h3>Dose log</h3>")
        log = summary["dose_log"]
        table = _table([f"time [{tu}]", "drug", "dose", "status", "rule"],
                       [[e["time"], e["drug"], e["dose"], e["status"], e["reason"]] for e in log], numeric={0, 2})
        parts.append(table if len(log) <= FOLD_ROWS else _fold(f"{len(log)} doses (show)", table))
    if summary.get("events_fired"):
        parts.append("<h3>Events fired</h3>")
        fired = summary["events_fired"]
        table = _table([f"time [{tu}]", "event"], fired, numeric={0})
        parts.append(table if len(fired) <= FOLD_ROWS else _fold(f"{len(fired)} events fired (show)", table))
    parts.append("<h2>Model</h2><h3>Equations (what is integrated)</h3>")
    parts.append("<pre>" + html_text("\n".join(text.equations(model))) + "</pre>")
    if model.observables:
        parts.append("<h3>Observables</h3><pre>" + html_text("\n".join(text.observable_lines(model))) + "</pre>")
    if model.events:
        lines = text.event_lines(model)
        own = [line for line, ev in zip(lines, model.events) if not _GENERATED.match(ev.name)]
        generated = [line for line, ev in zip(lines, model.events) if _GENERATED.match(ev.name)]
        parts.append("<h3>Events</h3>")
        if own:
            parts.append("<pre>" + html_text("\n".join(own)) + "</pre>")
        if generated:
            parts.append(_fold(f"{len(generated)} events generated from the doses: (dosing bookkeeping; show)",
                               "<pre>" + html_text("\n".join(generated)) + "</pre>"))
    if model.derived:
        parts.append("<h3>Derived quantities (from parameters)</h3><pre>"
                     + html_text("\n".join(text.derived_lines(model))) + "</pre>")
    if model.outcomes:
        parts.append("<h3>Outcome labels (the first whose rule holds)</h3><pre>"
                     + html_text("\n".join(text.outcome_lines(model))) + "</pre>")
    parts.append("<h3>Species</h3>")
    parts.append(_table(["name", "kind", "units", "initial", "description"],
                        [[s.name, s.kind, s.units, s.initial, s.description] for s in spec.species]))
    parts.append("<h3>Parameters</h3>")
    parts.append(_table(
        ["name", "value used", "units", "description", "source"],
        [[p.name, used.get(p.name, p.value), p.units, p.description, p.source] for p in spec.parameters],
        numeric={1},
    ))
    parts.append("<h3>Processes</h3>")
    parts.append(_table(
        ["name", "rate", "consumes", "produces"],
        [[p.name, p.rate, _stoich(p.consumes), _stoich(p.produces)] for p in spec.processes],
    ))
    parts.append("<h2>Sources</h2><ul>" + "".join(refs) + "</ul>")
    prov = [[k, summary.get(k)] for k in ("engine", "method", "rtol", "atol", "t_end", "wall_time_s", "model_hash",
                                          "ilsim_version")]
    parts.append("<h2>Provenance</h2>" + _table(["field", "value"], prov))
    parts.append("</body></html>")
    return "\n".join(parts)


def _stoich(side: dict[str, float]) -> str:
    return " + ".join(f"{'' if c == 1 else f'{c:g} '}{s}" for s, c in side.items())


def write_report(model: CompiledModel, summary: dict, figures: list[Path], path: Path) -> Path:
    path.write_text(render(model, summary, figures), encoding="utf-8")
    return path

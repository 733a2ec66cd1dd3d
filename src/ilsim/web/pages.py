"""The pages' layouts: the gallery, a model's page, the upload page, the catalogue, cohort and sweep results."""

from __future__ import annotations

from pathlib import Path

from dash import dash_table, dcc, html

import ilsim
from ilsim.web import readouts
from ilsim.web.launch import launch_controls
from ilsim.web.results import result_folders, result_view  # noqa: F401 - result_view: the Results page's callback

SLIDER_STEPS = 100  # positions of a parameter's slider over its range
POLL_MS = 200  # how often a page asks about a run that did not finish at once


def _reference(r) -> html.Li:
    web = r.url if r.url and r.url.startswith(("https://", "http://")) else None  # a model file's text is not a link
    return html.Li([r.citation, " ", html.A(f"doi:{r.doi}", href=f"https://doi.org/{r.doi}") if r.doi else
                    html.A(web, href=web) if web else r.url])


def gallery_page() -> html.Div:
    cards = []
    for name in ilsim.builtin_models():
        spec = ilsim.load(name)
        first = spec.metadata.description.strip().split("\n\n")[0]
        refs = [_reference(r) for r in spec.metadata.references[:3]]
        more = len(spec.metadata.references) - len(refs)
        cards.append(html.Div([
            html.H3(html.A(spec.metadata.title or name, href=f"/scenario/{name}", id=f"open-{name}")),
            dcc.Graph(id={"type": "thumb", "name": name}, config={"staticPlot": True}, className="thumb"),
            html.P(first, className="question"),
            html.Details([html.Summary(f"references ({len(spec.metadata.references)})"),
                          html.Ul(refs + ([html.Li(f"… and {more} more on the scenario's page")] if more > 0 else []))]),
        ], className="card"))
    return html.Div([html.H1("Built-in scenarios"),
                     html.P("Pick a scenario to move its parameters, switch its faults on and watch the curves change."),
                     html.Div(cards, className="gallery")])


def _controls(compiled, written) -> list:
    spec = compiled.spec
    fault_parameters = {name for f in spec.faults for name in f.parameters}
    faults = []
    if spec.faults:
        faults = [html.H3("Faults"),
                  dcc.Checklist(id="fault-on", options=[{"label": f" {f.mode}", "value": f.mode} for f in spec.faults],
                                value=[], className="faults")]
        for f in spec.faults:
            faults.append(html.Div([html.Label(f"{f.mode} severity"),
                                    dcc.Slider(id={"type": "severity", "mode": f.mode}, min=0, max=1, step=0.05, value=1.0,
                                               marks={0: "0", 0.5: "0.5", 1: "1"}, updatemode="mouseup")],
                                   className="severity", title=f.description))
    else:
        faults = [dcc.Checklist(id="fault-on", options=[], value=[], style={"display": "none"})]
    sliders = []
    for p in spec.parameters:
        if p.name in fault_parameters:
            continue
        low, high = p.span()
        sliders.append(html.Div([
            html.Label([html.B(p.name), f" ({p.units})"], htmlFor=p.name, title=f"{p.description}\nsource: {p.source}"),
            dcc.Slider(id={"type": "param", "name": p.name}, min=low, max=high, step=(high - low) / SLIDER_STEPS,
                       value=p.value, marks=None, updatemode="mouseup",
                       tooltip={"placement": "bottom", "always_visible": False}),
        ], className="param", id=f"param-{p.name}"))
    return [
        *faults,
        *_dose_editor(written),
        dcc.Checklist(id="overlay", options=[{"label": " overlay the faulted variants", "value": "faults"}], value=[],
                      style={} if spec.faults else {"display": "none"}),
        html.Div([html.Button("Save this run for comparison", id="save"), html.Button("Cancel the run", id="cancel")],
                 className="buttons"),
        html.Div(id="saved-note", className="note"),
        html.H3("Download what is shown"),
        html.Div([html.Button(label, id={"type": "download", "what": what}) for what, label in
                  (("netcdf", "NetCDF"), ("csv", "CSV"), ("png", "PNG"), ("svg", "SVG"), ("report", "report.html"))],
                 className="buttons"),
        dcc.Download(id="download"),
        html.H3("Parameters"),
        html.P("Ranges are the model file's `range:`, else 0 to twice the value.", className="note"),
        html.Div(sliders, className="params"),
    ]


def _dose_editor(spec) -> list:
    """Doses added to the model's own, for a model with pharmacokinetics (pk:): drug, route, amount, schedule."""
    if not spec.pk:
        return []
    from typing import get_args

    from ilsim.model.sections.dosing import Route

    drugs = [pk.drug for pk in spec.pk]
    field = {"className": "dose-field", "debounce": True}
    return [
        html.H3("Add doses"),
        html.Div([
            dcc.RadioItems(id="dose-drug", options=drugs, value=drugs[0]),
            dcc.RadioItems(id="dose-route", options=list(get_args(Route)), value="iv_infusion"),
            dcc.Input(id="dose-amount", type="number", placeholder="amount", min=0, **field),
            dcc.Input(id="dose-units", type="text", value="IU/kg" if spec.pk[0].amount_units == "IU" else "mg/kg", **field),
            dcc.Input(id="dose-start", type="number", placeholder=f"start ({spec.metadata.time_units})", **field),
            dcc.Input(id="dose-every", type="number", placeholder=f"every ({spec.metadata.time_units})", min=0, **field),
            dcc.Input(id="dose-count", type="number", placeholder="count", min=1, step=1, **field),
            dcc.Input(id="dose-duration", type="number", placeholder=f"infusion ({spec.metadata.time_units})", min=0, **field),
        ], className="dose-editor"),
        html.Div([html.Button("Add the dose", id="dose-add"), html.Button("Remove added doses", id="dose-clear")],
                 className="buttons"),
    ]


def dose_entry(drug, route, amount, units, start, every, count, duration) -> dict:
    """A doses: entry from the editor's fields (empty fields left to the schema's defaults; ilsim checks the rest)."""
    entry = {"drug": drug, "route": route, "amount": amount, "units": (units or "").strip()}
    for name, value in (("start", start), ("every", every), ("count", count), ("duration", duration)):
        if value is not None:
            entry[name] = int(value) if name == "count" else float(value)
    return entry


def model_page(key: str, compiled, written) -> html.Div:
    """A model's page; ``written`` is its spec as written (for the dose editor: a compiled spec's pk: is expanded)."""
    spec = compiled.spec
    return html.Div([
        dcc.Store(id="model-key", data=key), dcc.Store(id="job"), dcc.Store(id="saved"), dcc.Store(id="doses", data=[]),
        dcc.Interval(id="poll", interval=POLL_MS, max_intervals=0),
        html.H1(spec.metadata.title or spec.metadata.name),
        html.Div([
            html.Aside(_controls(compiled, written), className="controls"),
            html.Section([
                html.Div(id="status", className="status-line"),
                html.Div(id="changes", className="changes"),
                html.Div(id="readouts", className="readouts"),
                dcc.Tabs(id="plot-tab", value="0", children=[], className="plot-tabs"),  # only the chosen tab is drawn
                html.Div(id="plots", className="plots"),
                html.Details([html.Summary("Values of every variable"), html.Div(id="values")], open=False),
                *teaching(key),
                html.Details([html.Summary("About this model (for teaching)"), *readouts.narrative(spec),
                              *([html.H4("References"), html.Ul([_reference(r) for r in spec.metadata.references])]
                                if spec.metadata.references else [])],
                             open=True, className="narrative"),
            ], className="results"),
        ], className="model-page"),
    ])


def teaching(key: str) -> list:
    """A built-in scenario's teaching notes (web/narratives/NAME.yaml): the interleukins, the curves, where to look."""
    from ilsim.web.narratives import narrative

    note = narrative(key.removeprefix("builtin:")) if key.startswith("builtin:") else None
    if note is None:
        return []
    return [html.Details([
        html.Summary("Teaching notes"),
        html.P(note.interleukin, className="interleukin"),
        html.H4("The curves"),
        html.Ul([html.Li([html.B(name), f": {text}"], **{"data-curve": name}) for name, text in note.curves.items()]),
        html.H4("Where to look"),
        html.Ul([html.Li([html.B(item.curve), f": {item.what}"], **{"data-curve": item.curve}) for item in note.look_for]),
        *([html.H4("The faults, in the curves"),
           html.Ul([html.Li([html.B(mode), f": {text}"], **{"data-fault": mode}) for mode, text in note.faults.items()])]
          if note.faults else []),
    ], open=True, className="narrative", id="teaching")]


def choice(compiled, values, ids, faults_on, severities, severity_ids, doses=None) -> dict:
    """The run a page asks for: the parameters moved away from the model's values, the faults switched on, the doses
    added."""
    declared = {p.name: p.value for p in compiled.spec.parameters}
    parameters = {i["name"]: float(v) for v, i in zip(values, ids)
                  if v is not None and i["name"] in declared and float(v) != declared[i["name"]]}
    severity = {i["mode"]: float(v) for v, i in zip(severities, severity_ids) if v is not None}
    faults = {mode: severity.get(mode, 1.0) for mode in faults_on or []}
    return {"parameters": parameters, "faults": faults, "doses": list(doses or [])}


def changes_words(choice: dict) -> str:
    """What a run changes from the model as written, in words (parameter values in full: the tests read them)."""
    parts = [f"{n} = {v!r}" for n, v in sorted(choice["parameters"].items())]
    parts += [f"fault {m} at {s:g}" for m, s in sorted(choice["faults"].items())]
    parts += ["dose " + " ".join(f"{k}={v}" for k, v in dose.items()) for dose in choice.get("doses", [])]
    return "changed: " + ", ".join(parts) if parts else "the model as written"


def changes_text(choice: dict) -> html.Span:
    return html.Span(changes_words(choice), id="changes-text")


def upload_page() -> html.Div:
    from ilsim.web.models import MAX_UPLOAD_BYTES

    return html.Div([
        html.H1("Upload a model"),
        html.P(f"A YAML model file (.yaml, .yml) or SBML (.xml, .sbml), at most {MAX_UPLOAD_BYTES // 1000} kB. It is read "
               "as data, never run as code, and checked as `ilsim validate` checks it."),
        dcc.Upload(id="upload", children=html.Div(["Drop a model file here or ", html.A("choose one")]),
                   className="upload", multiple=False),
        html.Div(id="upload-result"),
    ])


def problems_view(filename: str, problems, text: str, line_of) -> html.Div:
    """Each problem at its field: the field, the message, and the line of the file it points at."""
    lines = text.splitlines()
    items = []
    for p in problems:
        line = line_of(p.field) if p.field else None
        source = html.Pre(f"{line:>4} | {lines[line - 1]}", className="source-line") if line and line <= len(lines) else None
        items.append(html.Li([html.Code(p.field or "(file)", className="field"), html.Span(f" {p.message}", className="message"),
                              html.Span(f" (line {line})" if line else ""), source], className="problem",
                             **{"data-field": p.field}))
    return html.Div([html.H3(f"{filename}: {len(problems)} problem(s)"), html.Ul(items, id="problems")], className="problems")


def upload_ok(key: str, uploaded) -> html.Div:
    compiled = uploaded.compiled
    warnings = [html.Li(w) for w in uploaded.unit_warnings]
    return html.Div([
        html.P([f"{uploaded.filename} is valid: {len(compiled.species)} species, {len(compiled.parameters)} parameters. ",
                html.A("Open it to run", href=f"/model/{key.partition(':')[2]}", id="open-upload")], id="upload-ok"),
        html.Div([html.H4(f"{len(warnings)} unit warning(s) (the model still runs)"), html.Ul(warnings)]) if warnings else None,
    ])


def catalogue_page() -> html.Div:
    from ilsim.biology.catalogue import load_catalogue

    rows = [{"name": il.name, "aliases": ", ".join(il.aliases), "producers": ", ".join(il.producers),
             "targets": ", ".join(il.targets), "effects": "; ".join(f"{e.kind}: {e.description}" for e in il.effects),
             "therapeutics": "; ".join(f"{t.name} ({t.action})" for t in il.therapeutics),
             "sources": "; ".join(r.citation for r in il.references)} for il in load_catalogue()]
    columns = [{"name": c, "id": c} for c in ("name", "aliases", "producers", "targets", "effects", "therapeutics", "sources")]
    return html.Div([html.H1("Interleukin catalogue"),
                     html.P("Type in a column's filter row to search it (e.g. 'fever' under effects); click a header to sort."),
                     dash_table.DataTable(rows, columns, id="catalogue", filter_action="native", sort_action="native",
                                          filter_options={"case": "insensitive"},
                                          page_size=15, style_cell={"whiteSpace": "normal", "textAlign": "left",
                                                                    "fontFamily": "inherit", "fontSize": 15, "maxWidth": 420},
                                          style_header={"fontWeight": "bold"})])


def results_page(root: Path | None) -> html.Div:
    folders = result_folders(root)
    return html.Div([
        html.H1("Cohorts, sweeps and tissue runs"),
        html.P(f"Finished result folders of `ilsim cohort`, `ilsim sweep` and `ilsim tissue` under {root} (the folder "
               "`ilsim serve --results` names; nothing outside it is read)." if root else "Start `ilsim serve --results DIR` "
               "to list the finished cohort, sweep and tissue folders under DIR."),
        dcc.Dropdown(id="result-choice", options=[{"label": f"{name} ({kind})", "value": name} for name, kind in folders],
                     placeholder="choose a result folder"),
        html.Div(id="result-view"),
        launch_controls(),
    ])


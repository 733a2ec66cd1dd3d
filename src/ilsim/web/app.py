"""The Dash application: pages, and the callbacks that run models through the Runner.

Everything a session chooses (parameter values, faults, the saved run, the upload it works on) lives in
its own browser page; the server holds only compiled models and finished runs, named by their content,
so no session can see another's choices.
"""

from __future__ import annotations

import io
import re
import tempfile
import time
from pathlib import Path

import dash
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update

from ilsim.errors import IlsimError, ModelError
from ilsim.io.results import write_csv, write_netcdf
from ilsim.web import pages, readouts
from ilsim.web.figures import panel_figure, panel_tabs, run_panels
from ilsim.web.jobs import Runner
from ilsim.web.launch import Launcher
from ilsim.web.launch import register as register_launches
from ilsim.web.models import Models, UploadRefused, field_line

ANSWER_WAIT_S = 0.4  # a run that finishes within this answers in the same request; a longer one is polled


def create_app(results_root: Path | None = None, runner: Runner | None = None, models: Models | None = None,
               launcher: Launcher | None = None) -> dash.Dash:
    """The app; ``results_root`` is the one folder whose cohort and sweep results the Results page lists."""
    runner = runner or Runner()
    launcher = launcher or Launcher()
    models = models or Models()
    app = dash.Dash(__name__, title="ilsim explorer", suppress_callback_exceptions=True,
                    assets_folder=str(Path(__file__).parent / "assets"))
    app.layout = html.Div([
        dcc.Location(id="url"),
        html.Header([html.A("ilsim explorer", href="/", className="brand"),
                     html.Nav([html.A("Scenarios", href="/"), html.A("Upload a model", href="/upload"),
                               html.A("Interleukins", href="/interleukins"), html.A("Cohorts & sweeps", href="/results")])]),
        html.Main(id="page"),
    ])
    app.runner, app.models, app.launcher = runner, models, launcher  # the tests and `ilsim serve` reach them here
    register_launches(app, launcher)

    @app.callback(Output("page", "children"), Input("url", "pathname"))
    def route(path):
        path = path or "/"
        try:
            if path.startswith(("/scenario/", "/model/")):
                key = f"builtin:{path.removeprefix('/scenario/')}" if path.startswith("/scenario/") else \
                    f"upload:{path.removeprefix('/model/')}"
                return pages.model_page(key, models.get(key), models.written(key))
            if path == "/upload":
                return pages.upload_page()
            if path == "/interleukins":
                return pages.catalogue_page()
            if path == "/results":
                return pages.results_page(results_root)
        except IlsimError as exc:
            return html.Div([html.H2("Not found"), html.P(str(exc))], className="error")
        return pages.gallery_page()

    @app.callback(Output({"type": "thumb", "name": dash.MATCH}, "figure"), Input({"type": "thumb", "name": dash.MATCH}, "id"))
    def thumbnail(ident):
        from ilsim.web.figures import thumbnail as draw

        key = f"builtin:{ident['name']}"
        compiled = models.get(key)
        job = runner.wait(runner.submit(key, compiled, {}, {}), timeout=120)
        if job.state() != "done":
            return no_update
        return draw(job.future.result()[0], compiled)

    @app.callback(
        Output("job", "data"), Output("poll", "max_intervals"), Output("status", "children"), Output("readouts", "children"),
        Output("plots", "children"), Output("values", "children"), Output("changes", "children"),
        Output("plot-tab", "children"),
        Input({"type": "param", "name": ALL}, "value"), Input("fault-on", "value"),
        Input({"type": "severity", "mode": ALL}, "value"), Input("poll", "n_intervals"), Input("cancel", "n_clicks"),
        Input("overlay", "value"), Input("saved", "data"), Input("doses", "data"), Input("plot-tab", "value"),
        State({"type": "param", "name": ALL}, "id"), State({"type": "severity", "mode": ALL}, "id"),
        State("model-key", "data"), State("job", "data"),
    )
    def run(values, faults_on, severities, tick, _cancel, overlay, saved, doses, tab, ids, severity_ids, key, job_id):
        # The poll is self-clocked: each answer arms one more tick (max_intervals), so a slow answer is never
        # superseded by the next tick's request (Dash drops the older of two pending calls of one callback).
        stop, next_tick = tick or 0, (tick or 0) + 1
        compiled = models.get(key)
        if ctx.triggered_id == "cancel":
            runner.cancel(job_id)
            return None, stop, html.Span("cancelled", className="status cancelled"), *([no_update] * 5)
        choice = pages.choice(compiled, values, ids, faults_on, severities, severity_ids, doses)
        if ctx.triggered_id == "poll":
            job = runner.wait(job_id, timeout=0.05)
        else:
            runner.cancel(job_id)  # a newer choice replaces the run this page was waiting for
            job_id = runner.submit(key, compiled, choice["parameters"], choice["faults"], choice["doses"],
                                   models.source(key))
            job = runner.wait(job_id, timeout=ANSWER_WAIT_S)
        if job is None:
            return None, stop, html.Span("no run", className="status"), *([no_update] * 5)
        state = job.state()
        if state in ("queued", "integrating", "summarising", "running"):
            elapsed = time.monotonic() - job.started
            status = html.Span([html.Progress(className="busy"), f" {state} … {elapsed:.1f} s"], className="status busy")
            return job_id, next_tick, status, *([no_update] * 5)
        if state == "failed":
            status = html.Div(["the run failed: ", html.Span(str(job.future.exception()), id="run-error")],
                              className="status failed")
            return job_id, stop, status, [], [], [], pages.changes_text(choice), []
        if state == "cancelled":
            return None, stop, html.Span("cancelled", className="status cancelled"), *([no_update] * 5)
        ds, summary = job.future.result()
        runs = {"this run": ds}
        source = models.source(key)
        if saved and saved.get("key") == key:
            runs["saved run"] = _result(runner, key, compiled, {**saved, "source": source})
        if overlay:
            for fault in compiled.spec.faults:
                if choice["faults"].get(fault.mode) != 1.0:
                    runs[fault.mode] = _result(runner, key, compiled, {**choice, "faults": {fault.mode: 1.0},
                                                                       "source": source})
        runs = {label: r for label, r in runs.items() if r is not None}
        tu = summary.get("time_units") or ""
        drawn = run_panels(runs, compiled)
        tabs = panel_tabs(drawn, len(compiled.spec.plots))
        chosen = min(int(tab or 0), len(tabs) - 1) if tabs else 0  # a run with fewer tabs than the last one shows its first
        graphs = [dcc.Graph(figure=panel_figure(drawn[i], runs, tu, summary["events_fired"]), id={"type": "plot", "index": i},
                            config={"displaylogo": False, "toImageButtonOptions": {"format": "svg"}}, className="plot")
                  for i in (tabs[chosen][1] if tabs else [])]
        tab_bar = [dcc.Tab(label=f"{label} ({len(indices)})", value=str(k), id=f"plot-tab-{k}")
                   for k, (label, indices) in enumerate(tabs)]
        status = html.Span(f"done: {summary['method']}, {summary['wall_time_s']:.3g} s of integration", className="status done",
                           id="run-done", **{"data-job": job_id})
        return (job_id, stop, status, readouts.readouts(summary), graphs, readouts.values_table(summary),
                pages.changes_text(choice), tab_bar)

    @app.callback(Output("saved", "data"), Output("saved-note", "children"), Input("save", "n_clicks"),
                  State({"type": "param", "name": ALL}, "value"), State("fault-on", "value"),
                  State({"type": "severity", "mode": ALL}, "value"), State({"type": "param", "name": ALL}, "id"),
                  State({"type": "severity", "mode": ALL}, "id"), State("model-key", "data"), State("doses", "data"),
                  prevent_initial_call=True)
    def save(_n, values, faults_on, severities, ids, severity_ids, key, doses):
        choice = pages.choice(models.get(key), values, ids, faults_on, severities, severity_ids, doses)
        return {"key": key, **choice}, f"saved for comparison ({pages.changes_words(choice)}): drawn dashed"

    @app.callback(Output("doses", "data"), Input("dose-add", "n_clicks"), Input("dose-clear", "n_clicks"),
                  State("doses", "data"), State("dose-drug", "value"), State("dose-route", "value"),
                  State("dose-amount", "value"), State("dose-units", "value"), State("dose-start", "value"),
                  State("dose-every", "value"), State("dose-count", "value"), State("dose-duration", "value"),
                  prevent_initial_call=True)
    def edit_doses(_add, _clear, doses, *fields):
        if ctx.triggered_id == "dose-clear":
            return []
        return [*(doses or []), pages.dose_entry(*fields)]

    @app.callback(Output("download", "data"), Input({"type": "download", "what": ALL}, "n_clicks"),
                  State("job", "data"), State("model-key", "data"), prevent_initial_call=True)
    def download(clicks, job_id, key):
        if not any(clicks):
            return no_update
        job = runner.job(job_id)
        if job is None or job.state() != "done":
            return no_update
        ds, summary = job.future.result()
        what = ctx.triggered_id["what"]
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", summary.get("model") or "run").strip("._") or "run"  # a model's name
        return _file(what, ds, summary, models.get(key), stem)

    @app.callback(Output("upload-result", "children"), Input("upload", "contents"), State("upload", "filename"),
                  prevent_initial_call=True)
    def upload(contents, filename):
        try:
            key, uploaded = models.upload(filename, contents)
        except UploadRefused as exc:
            return html.Div(str(exc), className="problem refused", id="upload-refused")
        except ModelError as exc:
            text = _text(contents)
            return pages.problems_view(filename, exc.problems, text, lambda field: field_line(text, field))
        return pages.upload_ok(key, uploaded)

    @app.callback(Output("result-view", "children"), Input("result-choice", "value"), prevent_initial_call=True)
    def result_view(name):
        return pages.result_view(results_root, name)

    return app


def _result(runner: Runner, key, compiled, run: dict):
    job = runner.wait(runner.submit(key, compiled, run["parameters"], run["faults"], run.get("doses", []), run["source"]),
                      timeout=60)
    return job.future.result()[0] if job is not None and job.state() == "done" else None


def _text(contents: str) -> str:
    from ilsim.web.models import decode

    return decode(contents).decode("utf-8")


def _file(what: str, ds, summary: dict, compiled, stem: str) -> dict:
    """A download of what is on screen: results (NetCDF, CSV), the figure (PNG, SVG) or report.html."""
    with tempfile.TemporaryDirectory(prefix="ilsim-download-") as tmp:
        folder = Path(tmp)
        if what == "netcdf":
            path = folder / f"{stem}.nc"
            write_netcdf(ds, path)
        elif what == "csv":
            path = folder / f"{stem}.csv"
            write_csv(ds, path)
        elif what in ("png", "svg"):
            from ilsim.report.figures import plot_run

            path = plot_run(ds, folder / f"{stem}.{what}", model=compiled)
        else:
            from ilsim.report.figures import plot_run
            from ilsim.report.html import write_report

            figure = plot_run(ds, folder / "overview.png", model=compiled)
            path = write_report(compiled, summary, [figure], folder / f"{stem}-report.html")
        data = path.read_bytes()
    return dcc.send_bytes(io.BytesIO(data).getvalue(), path.name)


"""Small cohorts and sweeps launched from the page, run off the request threads through ilsim's public
``cohort`` and ``sweep`` functions, with their progress and a cancel.

The page sends what to run (a built-in model's name, the parameters varied, a size, a seed); the launcher checks
the size against its limits, runs one launch at a time in a thread of its own, and keeps the last few results
in memory, named by an id only the page that launched it knows. Nothing is written to disk.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from dash import dcc, html

import ilsim
from ilsim.errors import IlsimError

MAX_PATIENTS = 500  # a launched cohort: seconds on a laptop; larger ones belong to `ilsim cohort`
MAX_SWEEP_POINTS = 400  # a launched sweep's grid (e.g. 20 x 20)
KEPT = 20  # finished launches kept in memory


class Cancelled(Exception):
    """Raised from a cohort's progress callback to stop it after the chunk that just finished."""


@dataclass
class Launch:
    kind: str  # "cohort" or "sweep"
    request: dict
    future: Future | None = None
    done: int = 0
    total: int = 0
    cancelled: bool = False
    started: float = field(default_factory=time.monotonic)

    def state(self) -> str:
        if self.cancelled:
            return "cancelled"
        if self.future is None or not self.future.done():
            return "running"
        return "failed" if self.future.exception() is not None else "done"


def _whole(value) -> bool:
    try:
        return value is not None and float(value) == int(float(value))
    except (TypeError, ValueError, OverflowError):
        return False


def cohort_request(model: str, parameters: list[str], patients: int, seed: int) -> dict:
    """The arguments of ``ilsim.cohort`` for a launch: each chosen parameter drawn uniformly over its slider's span
    (the model file's ``range:``, else 0 to twice its value), the rest as written."""
    spec = ilsim.load(model)
    spans = {p.name: p.span() for p in spec.parameters}
    parameters = list(parameters or [])
    unknown = [p for p in parameters if p not in spans]
    if not parameters or unknown:
        raise IlsimError(f"choose one or more parameters of {model} to vary" + (f" (not in it: {', '.join(unknown)})"
                                                                                  if unknown else ""))
    if not _whole(patients) or not 1 <= int(patients) <= MAX_PATIENTS:  # 2.5 is refused, not cut to 2
        raise IlsimError(f"patients must be a whole number from 1 to {MAX_PATIENTS} here (larger cohorts: ilsim cohort), "
                         f"got {patients}")
    vary = [f"{p}=uniform({spans[p][0]!r}, {spans[p][1]!r})" for p in parameters]
    return {"model": model, "patients": int(patients), "seed": int(seed or 0), "vary": vary}


def sweep_request(model: str, parameters: list[str], points: int) -> dict:
    """The arguments of ``ilsim.sweep`` for a launch: one or two parameters, ``points`` values each over the span."""
    spec = ilsim.load(model)
    spans = {p.name: p.span() for p in spec.parameters}
    parameters = list(parameters or [])
    if not 1 <= len(parameters) <= 2 or any(p not in spans for p in parameters):
        raise IlsimError(f"choose one or two parameters of {model} to sweep")
    if points is None or not 2 <= int(points) or int(points) ** len(parameters) > MAX_SWEEP_POINTS:
        raise IlsimError(f"a sweep here has at most {MAX_SWEEP_POINTS} points in all (2 or more per parameter), "
                         f"got {points} per parameter")
    return {"model": model, "grid": {p: (spans[p][0], spans[p][1], int(points)) for p in parameters}}


class Launcher:
    def __init__(self):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ilsim-launch")  # one at a time: CPU-bound
        self._lock = threading.Lock()
        self._launches: OrderedDict[str, Launch] = OrderedDict()

    def submit(self, kind: str, request: dict) -> str:
        launch = Launch(kind, request, total=request.get("patients") or _points(request))
        launch.future = self._pool.submit(self._cohort if kind == "cohort" else self._sweep, launch)
        launch_id = uuid.uuid4().hex
        with self._lock:
            self._launches[launch_id] = launch
            while len(self._launches) > KEPT:
                self._launches.popitem(last=False)
        return launch_id

    def get(self, launch_id: str | None) -> Launch | None:
        with self._lock:
            return self._launches.get(launch_id or "")

    def cancel(self, launch_id: str | None) -> None:
        """A queued launch never starts; a running cohort stops after its current chunk; a running sweep (one batch)
        finishes in the background and is dropped."""
        launch = self.get(launch_id)
        if launch is not None:
            launch.cancelled = True
            launch.future.cancel()

    @staticmethod
    def _cohort(launch: Launch):
        def progress(done: int, total: int) -> None:
            launch.done, launch.total = done, total
            if launch.cancelled:
                raise Cancelled()

        r = launch.request
        chunk = max(1, r["patients"] // 10)  # ten chunks: the bar moves, and a cancel lands within a tenth of the run
        table = ilsim.cohort(r["model"], patients=r["patients"], seed=r["seed"], vary=r["vary"], chunk_size=chunk,
                             report=False, progress=progress)
        return table, {"model_name": r["model"], "vary": r["vary"], "seed": r["seed"]}

    @staticmethod
    def _sweep(launch: Launch):
        r = launch.request
        result = ilsim.sweep(r["model"], r["grid"], report=False)
        launch.done = launch.total
        return result.table, result.info

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _points(request: dict) -> int:
    total = 1
    for _, _, n in request["grid"].values():
        total *= n
    return total


def launch_controls() -> html.Div:
    """The Results page's form: a built-in model, cohort or sweep, the parameters varied, the size, the seed."""
    models = ilsim.builtin_models()
    return html.Div([
        html.H2("Launch a small cohort or sweep"),
        html.P(f"Each chosen parameter is drawn uniformly (cohort) or stepped evenly (sweep) over its slider's span. At most "
               f"{MAX_PATIENTS} patients or {MAX_SWEEP_POINTS} grid points: larger runs belong to `ilsim cohort` and "
               "`ilsim sweep`. The same model, parameters, size and seed give the same cohort as `ilsim cohort`.",
               className="note"),
        html.Div([
            dcc.Dropdown(id="launch-model", options=models, value=models[0], clearable=False, className="launch-field"),
            dcc.RadioItems(id="launch-kind", options=["cohort", "sweep"], value="cohort", inline=True),
            dcc.Dropdown(id="launch-params", multi=True, placeholder="parameters to vary", className="launch-field"),
            html.Label(["size (patients, or points per parameter) ", dcc.Input(id="launch-size", type="number", value=50,
                                                                                min=1, step=1)]),
            html.Label(["seed ", dcc.Input(id="launch-seed", type="number", value=1, min=0, step=1)]),
        ], className="launch-form"),
        html.Div([html.Button("Launch", id="launch-go"), html.Button("Cancel", id="launch-cancel")], className="buttons"),
        dcc.Store(id="launch-id"), dcc.Interval(id="launch-poll", interval=300, disabled=True),
        html.Div(id="launch-status", className="status-line"),
        html.Div(id="launch-view"),
    ], className="launch")


def register(app, launcher: Launcher) -> None:
    """The form's callbacks: the parameters of the chosen model; launch, poll (the progress bar), cancel, show."""
    from dash import Input, Output, State, ctx, no_update

    from ilsim.web.results import outcome_view

    @app.callback(Output("launch-params", "options"), Output("launch-params", "value"), Input("launch-model", "value"))
    def parameters(model):
        return ([{"label": f"{p.name} ({p.units})", "value": p.name} for p in ilsim.load(model).parameters], []) \
            if model in ilsim.builtin_models() else ([], [])

    @app.callback(Output("launch-id", "data"), Output("launch-poll", "disabled"), Output("launch-status", "children"),
                  Output("launch-view", "children"),
                  Input("launch-go", "n_clicks"), Input("launch-cancel", "n_clicks"), Input("launch-poll", "n_intervals"),
                  State("launch-kind", "value"), State("launch-model", "value"), State("launch-params", "value"),
                  State("launch-size", "value"), State("launch-seed", "value"), State("launch-id", "data"),
                  prevent_initial_call=True)
    def launch(_go, _cancel, _tick, kind, model, params, size, seed, launch_id):
        if ctx.triggered_id == "launch-cancel":
            launcher.cancel(launch_id)
            return None, True, html.Span("cancelled", className="status cancelled", id="launch-cancelled"), no_update
        if ctx.triggered_id == "launch-go":
            if model not in ilsim.builtin_models():
                return None, True, html.Span("choose a built-in model", className="status failed"), None
            try:
                request = cohort_request(model, params, size, seed) if kind == "cohort" else sweep_request(model, params, size)
            except IlsimError as exc:
                return None, True, html.Span(str(exc), className="status failed", id="launch-error"), None
            launcher.cancel(launch_id)  # a new launch replaces the one this page was following
            launch_id = launcher.submit(kind, request)
        job = launcher.get(launch_id)
        if job is None:
            return None, True, html.Span("no launch", className="status"), no_update
        state = job.state()
        if state == "running":
            bar = html.Progress(value=str(job.done), max=str(max(job.total, 1)), id="launch-progress")
            words = f" {job.kind}: {job.done} of {job.total} done, {time.monotonic() - job.started:.1f} s"
            return launch_id, False, html.Span([bar, words], className="status busy"), no_update
        if state == "cancelled":
            return None, True, html.Span("cancelled", className="status cancelled", id="launch-cancelled"), no_update
        if state == "failed":
            return None, True, html.Span(f"failed: {job.future.exception()}", className="status failed",
                                         id="launch-error"), None
        table, record = job.future.result()
        name = f"{job.request['model']} (launched)"
        return launch_id, True, html.Span(f"done: {job.kind} of {len(table)}", className="status done",
                                          id="launch-done"), outcome_view(name, job.kind, record, table, prefix="launch-")

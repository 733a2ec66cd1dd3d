"""The `ilsim` command: a thin shell over the library (ilsim.api)."""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ilsim import scenarios
from ilsim._version import __version__
from ilsim.biology.catalogue import load_catalogue
from ilsim.biology.cell_types import load_cell_types
from ilsim.errors import IlsimError, ModelError, Problem, SbmlImportWarning, speaking
from ilsim.limits import MAX_RHS_EVALUATIONS
from ilsim.model.units import UnitWarning
from ilsim.report import text
from ilsim.report.safe_text import console, plain

# The commands import what runs models in their bodies (lazy: heavy: SciPy, xarray, pandas, matplotlib, dask,
# libsbml), so `ilsim --help` and every command start without them.

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Simulate interleukin signalling in the immune system.")

# The library's messages name its Python arguments (errors.argument); here they name the options that carry them.
OPTION_WORDS = {
    "parameters": "--set", "faults": "--fault", "doses": "--dose", "t_end": "--t-end", "points": "--points",
    "method": "--method", "rtol": "--rtol", "atol": "--atol", "out": "--out", "patients": "--patients",
    "chunk_size": "--chunk-size", "backend": "--backend", "seed": "--seed", "vary": "--vary", "time_to": "--time-to",
    "force": "--force", "grid": "--param", "ranges": "--param", "log": "--log", "metric": "--metric",
    "output": "--output", "samples": "--samples", "drop_failed": "--drop-failed", "scheduler": "--scheduler",
    "overwrite": "--overwrite", "max_wall_s": "--max-wall", "toxicity": "--toxicity",
    "allow_high_dose": "--allow-high-dose", "save_trajectories": "--save-trajectories",
    "trajectories": "--trajectories", "system_size": "--system-size", "format": "--format",
    "workers": "--workers", "optimizer": "--optimizer", "starts": "--starts", "dask": "--dask",
}


@app.callback()
def _speak_options(ctx: typer.Context) -> None:
    ctx.with_resource(speaking(OPTION_WORDS))  # for the command's lifetime only (CliRunner reuses the process)
# Text from model files reaches these consoles: they show every control character as an escape (\x1b), and
# user text placed in markup or a table cell goes through plain() (docs/architecture.md, "Outputs").
out = console()
err = console(stderr=True, soft_wrap=True)  # one line, whatever the width

_python_showwarning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Unit and SBML import warnings quote model text: shown through the safe console as one line, not by Python's printer."""
    if issubclass(category, (UnitWarning, SbmlImportWarning)):
        err.print("[yellow]warning:[/] ", end="", highlight=False)
        err.print(str(message), markup=False, highlight=False)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


warnings.showwarning = _show_warning

ModelArg = Annotated[str, typer.Argument(help="a model file (YAML) or the name of a built-in model (see `ilsim scenarios`)")]
TEndOpt = Annotated[float | None, typer.Option(help="end time (model's time units)")]
PointsOpt = Annotated[int | None, typer.Option(help="number of output times")]
RtolOpt = Annotated[float | None, typer.Option(help="relative tolerance")]
AtolOpt = Annotated[float | None, typer.Option(help="absolute tolerance")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="replace the output file if it exists (never the input)")]
ReplaceOpt = Annotated[bool, typer.Option("--overwrite", help="replace an earlier result in --out that holds files ilsim did "
                                                             "not write, keeping those files")]
SchedulerOpt = Annotated[str | None, typer.Option("--scheduler", "--dask", help="run the chunks on a Dask cluster: "
                                                   "tcp://HOST:PORT, or local for worker processes here")]


def _fail(exc: IlsimError) -> None:
    if isinstance(exc, ModelError):
        err.print(f"[bold red]error:[/] {len(exc.problems)} problem(s) in the model" if len(exc.problems) > 1 else
                  "[bold red]error:[/]", highlight=False)
        for p in exc.problems:
            err.print(f"  {p}", markup=False, highlight=False)
    else:
        err.print("[bold red]error:[/] ", end="", highlight=False)
        err.print(str(exc), markup=False, highlight=False)
    raise typer.Exit(2)


def _num(value, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def _parse_faults(values: list[str]) -> dict[str, float]:
    """'stop-ignored:0.8' -> {'stop-ignored': 0.8}; a mode alone means severity 1 (complete)."""
    parsed: dict[str, float] = {}
    for item in values:
        mode, sep, severity = item.partition(":")
        try:
            parsed[mode.strip()] = float(severity) if sep else 1.0
        except ValueError:
            raise ModelError([Problem("--fault", f"severity of '{mode}' must be a number, got '{severity}'")]) from None
    return parsed


def _parse_doses(values: list[str]) -> list[dict]:
    """'aldesleukin:iv_infusion:600000 IU/kg:duration=0.25,every=8,count=14' -> a doses: entry."""
    doses = []
    for item in values:
        parts = item.split(":")
        if len(parts) < 3:
            raise ModelError([Problem("--dose", f"expected DRUG:ROUTE:AMOUNT UNITS[:key=value,...], got '{item}'")])
        drug, route, quantity = (p.strip() for p in parts[:3])
        amount, _, units = quantity.partition(" ")
        try:
            entry: dict = {"drug": drug, "route": route, "amount": float(amount), "units": units.strip()}
        except ValueError:
            raise ModelError([Problem("--dose", f"dose amount must be a number, got '{amount}'")]) from None
        for option in filter(None, (parts[3] if len(parts) > 3 else "").split(",")):
            key, sep, value = option.partition("=")
            if not sep:
                raise ModelError([Problem("--dose", f"expected key=value, got '{option}'")])
            try:
                entry[key.strip()] = int(value) if key.strip() in ("count", "cycles") else float(value)
            except ValueError:
                raise ModelError([Problem("--dose", f"{key.strip()} must be a number, got '{value}'")]) from None
        doses.append(entry)
    return doses


def _parse_sets(values: list[str]) -> dict[str, float]:
    parsed: dict[str, float] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ModelError([Problem("--set", f"expected NAME=VALUE, got '{item}'")])
        try:
            parsed[name.strip()] = float(value)
        except ValueError:
            raise ModelError([Problem("--set", f"value of '{name.strip()}' must be a number, got '{value}'")]) from None
    return parsed


@app.command()
def run(
    model: ModelArg,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="result folder (written atomically)")],
    set_: Annotated[list[str], typer.Option("--set", help="override a parameter: NAME=VALUE (repeatable)")] = [],  # noqa: B006
    t_end: TEndOpt = None,
    points: PointsOpt = None,
    method: Annotated[str | None, typer.Option(help="LSODA (default), BDF, Radau, RK45 or DOP853")] = None,
    rtol: RtolOpt = None,
    atol: AtolOpt = None,
    report: Annotated[bool, typer.Option(help="write figures and report.html")] = True,
    fault: Annotated[list[str], typer.Option(help="apply a fault the model declares: MODE[:SEVERITY 0..1]")] = [],  # noqa: B006
    dose: Annotated[list[str], typer.Option(help="add a dose: DRUG:ROUTE:AMOUNT UNITS[:every=8,count=14,...]")] = [],  # noqa: B006
    allow_high_dose: Annotated[bool, typer.Option(help="accept doses above 100x the labelled dose")] = False,
    max_rhs_evaluations: Annotated[int, typer.Option(help="stop a run after this many right-hand-side evaluations "
                                                          "(docs/limits.md)")] = MAX_RHS_EVALUATIONS,
    max_wall: Annotated[float | None, typer.Option(help="stop a run after this many seconds of integration")] = None,
    overwrite: ReplaceOpt = False,
    engine: EngineOpt = "ode",
    trajectories: TrajectoriesOpt = None,
    seed: SeedOpt = None,
    time_to: TimeToOpt = [],  # noqa: B006
    system_size: SystemSizeOpt = None,
    format: FormatOpt = None,  # noqa: A002
    backend: SsaBackendOpt = "cpu",
    dask: DaskOpt = None,
    chunk_size: EnsembleChunkOpt = None,
) -> None:
    """Simulate a model and write results.nc, results.csv, summary.json, figures and report.html."""
    from ilsim import api  # lazy: heavy (SciPy, xarray)

    if (engine != "ode" or trajectories is not None or seed is not None or time_to or system_size is not None or format
            or backend != "cpu" or dask is not None or chunk_size is not None):
        _run_stochastic(model, out_dir, engine, method, trajectories, seed, time_to, system_size, format, t_end=t_end,
                        points=points, parameters=set_, faults=fault, doses=dose, allow_high_dose=allow_high_dose,
                        report=report, overwrite=overwrite, rtol=rtol, atol=atol, backend=backend, dask=dask,
                        chunk_size=chunk_size)
        return
    try:
        ds, summary = api.run(model, out_dir, report=report, t_end=t_end, points=points, method=method,
                              rtol=rtol, atol=atol, parameters=_parse_sets(set_), faults=_parse_faults(fault),
                              doses=_parse_doses(dose), allow_high_dose=allow_high_dose,
                              max_rhs_evaluations=max_rhs_evaluations, max_wall_s=max_wall, overwrite=overwrite)
    except IlsimError as exc:
        _fail(exc)
        return
    tu = summary["time_units"]
    out.print(f"[bold]{plain(ds.attrs['title'])}[/]  ({summary['method']}, t = 0..{summary['t_end']:g} {plain(tu)}, "
              f"{summary['wall_time_s']:.3g} s)", highlight=False)
    for mode, severity in summary.get("faults", {}).items():
        out.print(f"fault: {plain(mode)} at severity {severity:g}", highlight=False)
    if summary.get("dose_log"):
        counts: dict[str, int] = {}
        for entry in summary["dose_log"]:
            counts[entry["status"]] = counts.get(entry["status"], 0) + 1
        out.print("doses: " + ", ".join(f"{n} {plain(status)}" for status, n in counts.items()), highlight=False)
    if summary.get("toxicity"):
        grades = [f"{plain(term)} {g['max_grade']}" + (" (intensive care)" if g["intensive_care"] else " (hospitalisation)"
                                                 if g["hospitalisation"] else "") for term, g in summary["toxicity"].items()]
        out.print("max CTCAE grades: " + ", ".join(grades), highlight=False)
    if summary.get("outcome"):
        rule = f"  ({plain(summary['outcome_rule'])})" if summary.get("outcome_rule") else ""
        out.print(f"outcome: [bold]{plain(summary['outcome'])}[/]{rule}", highlight=False)
    for name, value in summary.get("derived", {}).items():
        out.print(f"{plain(name)} = {value:.6g}", highlight=False)
    # short headers (times in the caption) so that names and numbers fit whole in 80 columns; a long unit folds
    table = Table(show_edge=False, caption=f"times ('at') in {plain(tu)}", caption_justify="left")
    table.add_column("variable", overflow="fold", max_width=20)
    table.add_column("units", overflow="fold", min_width=8, max_width=12)
    for col in ("final", "peak", "at", "nadir", "at"):
        table.add_column(col, justify="right", no_wrap=True, min_width=5)
    for name, v in summary["variables"].items():
        table.add_row(plain(name), plain(v["units"]), _num(v["final"]), _num(v["peak"]), _num(v["peak_time"]),
                      _num(v["nadir"]), _num(v["nadir_time"]))
    out.print(table)
    out.print(f"results written to {plain(out_dir)}/ (results.nc, results.csv, summary.json"
              f"{', figures/, report.html' if report else ''})", highlight=False)


@app.command()
def compare(
    model: ModelArg,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="folder for compare.png and compare.csv (atomic)")],
    fault: Annotated[list[str], typer.Option(help="a faulted variant to overlay: MODE[:SEVERITY] (repeatable)")] = [],  # noqa: B006
    set_: Annotated[list[str], typer.Option("--set", help="override a parameter in every run: NAME=VALUE")] = [],  # noqa: B006
    t_end: TEndOpt = None,
    points: PointsOpt = None,
    overwrite: ReplaceOpt = False,
) -> None:
    """Overlay the intact model and faulted variants in one figure, with a table of biomarkers."""
    from ilsim import api  # lazy: heavy (SciPy, xarray)

    try:
        variants = {"intact": {}}
        for item in fault:
            variants[item] = _parse_faults([item])
        table = api.compare(model, variants, out_dir, t_end=t_end, points=points, parameters=_parse_sets(set_),
                            overwrite=overwrite)
    except IlsimError as exc:
        _fail(exc)
        return
    import json  # the outcomes of the variants, as compare.json records them

    outcomes = json.loads((out_dir / "compare.json").read_text()).get("outcomes", {})
    if any(outcomes.values()):
        verdicts = Table(title="outcome per variant", show_edge=False)
        for col in ("variant", "outcome"):
            verdicts.add_column(col)
        for label in variants:
            verdicts.add_row(plain(label), plain(outcomes.get(label) or "-"))
        out.print(verdicts)
    view = Table(title="final values (and peaks) per variant", show_edge=False)
    view.add_column("variable")
    for label in variants:
        view.add_column(plain(label), justify="right")
    for name, row in table.items():
        view.add_row(plain(name), *[f"{_num(row[label]['final'])} ({_num(row[label]['peak'], '.3g')})" for label in variants])
    out.print(view)
    out.print(f"written to {plain(out_dir)}/ (compare.png, compare.csv, compare.json)", highlight=False)


@app.command("scenarios")
def list_scenarios() -> None:
    """List the built-in models."""
    for name, title in scenarios.describe():
        out.print(f"[bold]{plain(name)}[/]  {plain(title)}", highlight=False)


@app.command()
def show(model: ModelArg) -> None:
    """Print species, parameters (with sources) and the ODE right-hand sides."""
    from ilsim import api  # lazy: heavy (SciPy, xarray)

    try:
        compiled = api.compile(model)
    except IlsimError as exc:
        _fail(exc)
        return
    spec = compiled.spec
    out.print(f"[bold]{plain(spec.metadata.title or spec.metadata.name)}[/]", highlight=False)
    for r in spec.metadata.references:
        out.print(f"  source: {r.citation}" + (f" doi:{r.doi}" if r.doi else f" {r.url}" if r.url else ""),
                  highlight=False, markup=False)
    species = Table(title="species", show_edge=False)
    for col in ("name", "kind", "units", "initial", "description"):
        species.add_column(col)
    for s in spec.species:
        species.add_row(*map(plain, (s.name, s.kind, s.units, s.initial, s.description)))
    out.print(species)
    params = Table(title="parameters", show_edge=False)
    for col in ("name", "value", "units", "description", "source"):
        params.add_column(col)
    for p in spec.parameters:
        params.add_row(*map(plain, (p.name, f"{p.value:g}", p.units, p.description, p.source)))
    out.print(params)
    out.print(f"[bold]equations[/] (time in {plain(spec.metadata.time_units)})", highlight=False)
    for line in text.equations(compiled):
        out.print("  " + line, markup=False, highlight=False)
    for title, lines in (("observables", text.observable_lines(compiled)), ("derived", text.derived_lines(compiled)),
                         ("events", text.event_lines(compiled)),
                         ("outcomes", text.outcome_lines(compiled))):
        if lines:
            out.print(f"[bold]{title}[/]")
            for line in lines:
                out.print("  " + line, markup=False, highlight=False)


@app.command()
def validate(models: Annotated[list[str], typer.Argument(help="model files or built-in names")]) -> None:
    """Check model files; exit 2 with every reason when one is not valid."""
    from ilsim import api  # lazy: heavy (SciPy, xarray)

    failed = False
    for model in models:
        try:
            with warnings.catch_warnings():  # printed below, with the model they belong to
                warnings.simplefilter("ignore", UnitWarning)
                compiled = api.compile(model)
        except IlsimError as exc:
            failed = True
            problems = exc.problems if isinstance(exc, ModelError) else [Problem("", str(exc), model)]
            err.print(f"[red]invalid[/] {plain(model)}: {len(problems)} problem(s)", highlight=False)
            for p in problems:
                err.print(f"  {p}", markup=False, highlight=False)
            continue
        out.print(f"[green]valid[/] {plain(model)}: {len(compiled.species)} species, {len(compiled.parameters)} parameters, "
                  f"{len(compiled.spec.processes)} processes", highlight=False)
        if compiled.unit_warnings:
            err.print(f"[yellow]{len(compiled.unit_warnings)} unit warning(s)[/] (dimensions that do not match; the model "
                      "still runs):", highlight=False)
            for p in compiled.unit_warnings:
                err.print(f"  {p}", markup=False, highlight=False)
    if failed:
        raise typer.Exit(2)


@app.command()
def version() -> None:
    """Print the ilsim version."""
    out.print(__version__)


@app.command("interleukins")
def interleukins(
    name: Annotated[str | None, typer.Argument(help="an interleukin, by name or alias (IL-6, il6, BSF-2)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the entry (or the whole catalogue) as JSON")] = False,
) -> None:
    """List the interleukin catalogue, or show one interleukin: effects, receptor, therapeutics, sources."""
    try:
        catalogue = load_catalogue()
        entry = None if name is None else catalogue.get(name)
    except IlsimError as exc:
        _fail(exc)
        return
    if as_json:
        typer.echo((catalogue if entry is None else entry).to_json())
        return

    def line(label: str, value: str) -> None:
        out.print(f"[bold]{label}:[/] ", end="", highlight=False)
        out.print(value, markup=False, highlight=False)

    if entry is None:
        table = Table(show_edge=False, caption="TNF, IFN-g and TGF-b are partner cytokines; `ilsim interleukins NAME` "
                                               "shows one with its receptor, therapeutics and sources")
        for col in ("name", "producers", "targets", "effects", "half-life"):
            table.add_column(col, overflow="fold")
        for il in catalogue:
            table.add_row(*map(plain, (il.name, ", ".join(il.producers), ", ".join(il.targets), ", ".join(il.effect_kinds),
                                       il.half_life or "-")))
        out.print(table)
        return

    out.print(f"[bold]{plain(entry.name)}[/] ({plain(entry.category)})", highlight=False)
    if entry.aliases:
        line("aliases", ", ".join(entry.aliases))
    out.print(entry.description, markup=False, highlight=False)
    line("receptor", entry.receptor)
    line("producers", ", ".join(entry.producers))
    line("targets", ", ".join(entry.targets))
    out.print("[bold]effects[/]")
    for effect in entry.effects:
        out.print(f"  {effect.kind}: {effect.description}", markup=False, highlight=False)
    hl = entry.half_life
    line("half-life", f"{hl} ({hl.context}; {hl.source})" if hl else "no published figure adopted")
    if entry.therapeutics:
        out.print("[bold]therapeutics[/]")
        for t in entry.therapeutics:
            thl = t.half_life
            where = f"{thl.context}; {thl.source}" if thl and thl.source != t.source else thl.context if thl else ""
            out.print(f"  {t.name} ({t.kind}): {t.action}; for {', '.join(t.indications)}; "
                      f"half-life {f'{thl} ({where})' if thl else '-'}; source: {t.source}", markup=False, highlight=False)
    out.print("[bold]references[/]")
    for r in entry.references:
        out.print(f"  {r.citation}" + (f" doi:{r.doi}" if r.doi else f" {r.url}" if r.url else ""), markup=False, highlight=False)
    if entry.notes:
        line("notes", entry.notes)


@app.command("cell-types")
def cell_types() -> None:
    """List the cell types a species can name with `cell_type:` (Cell Ontology identifiers)."""
    table = Table(show_edge=False, caption="declare others in a model file's `cell_types:` section")
    for col in ("name", "Cell Ontology", "aliases", "description"):
        table.add_column(col, overflow="fold")
    for c in load_cell_types():
        table.add_row(*map(plain, (c.name, c.ontology_id or "-", ", ".join(c.aliases), c.description)))
    out.print(table)


def _parse_vary(values: list[str]) -> dict:
    """'doses[0].amount=50,100,200' -> a list of values; 'doses[0].every=3.5:14:4' -> a range (lo, hi, n)."""
    vary: dict = {}
    for item in values:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise ModelError([Problem("--vary", f"expected FIELD=V1,V2,... or FIELD=LO:HI:N, got '{item}'")])
        try:
            if ":" in text:
                lo, hi, n = text.split(":")
                vary[key.strip()] = (float(lo), float(hi), int(n))
            else:
                vary[key.strip()] = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise ModelError([Problem("--vary", f"values of '{key.strip()}' must be numbers (V1,V2,... or LO:HI:N with "
                                                f"a whole N), got '{text}'")]) from None
    return vary


@app.command()
def optimize(
    model: ModelArg,
    vary: Annotated[list[str], typer.Option(help="a dose field or parameter to search: doses[0].amount=50,100,150 or "
                                                 "doses[0].every=3.5:14:4 (LO:HI:N) or param:NAME=... (repeatable)")],
    objective: Annotated[str, typer.Option(help="max:EXPR or min:EXPR over run quantities, e.g. max:reduction(T)")],
    constraint: Annotated[list[str], typer.Option(help="a limit, e.g. 'grade(Hypotension) <= 2' (repeatable)")] = [],  # noqa: B006
    toxicity: Annotated[str | None, typer.Option(help="toxicity axis of the Pareto front (default: the first "
                                                      "constraint's quantity); max:EXPR when higher is safer")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="folder for optimize.csv, optimize.json and "
                                                                     "pareto.png (written atomically)")] = None,
    method: Annotated[str, typer.Option(help="grid (default), nelder-mead or differential-evolution")] = "grid",
    max_evaluations: Annotated[int, typer.Option(help="budget of runs for nelder-mead and differential-evolution")] = 200,
    force: Annotated[bool, typer.Option(help="allow a grid of more than 2000 schedules")] = False,
    set_: Annotated[list[str], typer.Option("--set", help="override a parameter in every run: NAME=VALUE")] = [],  # noqa: B006
    t_end: TEndOpt = None,
    points: PointsOpt = None,
    allow_high_dose: Annotated[bool, typer.Option(help="accept doses above 100x the labelled dose")] = False,
    overwrite: ReplaceOpt = False,
) -> None:
    """Search doses, intervals and numbers of doses for the best efficacy under toxicity limits; report the
    efficacy-toxicity Pareto front with the model's own (standard) schedule placed on it."""
    from ilsim.therapy.optimize import optimize as search  # lazy: heavy (SciPy, xarray)
    from ilsim.therapy.optimize import table_rows  # lazy: heavy

    try:
        result = search(model, _parse_vary(vary), objective, constraint, out_dir, method, toxicity=toxicity, force=force,
                        max_evaluations=max_evaluations, allow_high_dose=allow_high_dose, t_end=t_end, points=points,
                        parameters=_parse_sets(set_), overwrite=overwrite)
    except IlsimError as exc:
        _fail(exc)
        return

    def fmt(value) -> str:
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "yes" if value else ""
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    header, rows = table_rows(result)
    shown = rows if len(rows) <= 60 else [r for r, c in zip(rows, result["candidates"]) if c["pareto"] or c["best"]
                                           or c["standard"]]
    table = Table(title=f"{result['evaluated']} schedules" + ("" if shown is rows else " (shown: standard, Pareto front, "
                                                                                       "best; all in optimize.csv)"),
                  show_edge=False)
    for col in header[:-1]:
        table.add_column(plain(col), justify="left" if col in ("id", "status") else "right", overflow="fold")
    for row in shown:
        table.add_row(*(plain(fmt(v)) for v in row[:-1]), style="bold" if row[-3] else None)
    out.print(table)
    for c in result["candidates"]:
        if c["status"] == "failed":
            out.print(f"schedule {c['id']} failed: {c['reason']}", markup=False, highlight=False)
    std, best = result["standard"], result["best"]
    out.print(f"standard schedule: objective {fmt(std['objective'])}, toxicity {fmt(std['toxicity'])}, "
              f"{'feasible' if std['feasible'] else 'infeasible'}{', on the Pareto front' if std['pareto'] else ''}",
              markup=False, highlight=False)
    if best is None:
        out.print("[bold red]no schedule satisfies the constraints[/]")
    else:
        values = ", ".join(f"{k} = {fmt(v)}" for k, v in best["values"].items())
        out.print(f"[bold]best feasible schedule ({plain(best['id'])}):[/] ", end="", highlight=False)
        out.print(f"{values}; objective {fmt(best['objective'])}, toxicity {fmt(best['toxicity'])}", markup=False,
                  highlight=False)
    if out_dir is not None:
        out.print(f"written to {plain(out_dir)}/ (optimize.csv, optimize.json, pareto.png)", highlight=False)


@app.command("export-sbml")
def export_sbml(
    model: ModelArg,
    out_file: Annotated[Path, typer.Option("--out", "-o", help="the SBML file to write (Level 3 Version 2, written atomically)")],
    set_: Annotated[list[str], typer.Option("--set", help="override a parameter: NAME=VALUE (repeatable)")] = [],  # noqa: B006
    dose: Annotated[list[str], typer.Option(help="add a dose: DRUG:ROUTE:AMOUNT UNITS[:every=8,count=14,...]")] = [],  # noqa: B006
    allow_high_dose: Annotated[bool, typer.Option(help="accept doses above 100x the labelled dose")] = False,
    show_warnings: Annotated[bool, typer.Option("--warnings", help="print every libsbml warning, not one line per kind")] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Export a model as SBML (L3V2) for libroadrunner, Tellurium or COPASI; libsbml's consistency check must pass."""
    from ilsim import api  # lazy: heavy (SciPy, xarray)
    from ilsim.io import sbml  # lazy: heavy (libsbml)
    from ilsim.io.atomic import check_new_file

    try:
        check_new_file(out_file, overwrite=overwrite, inputs=[model] if Path(model).exists() else [])
        compiled = api.compile(model, doses=_parse_doses(dose), allow_high_dose=allow_high_dose)
        warnings = sbml.write(compiled, out_file, parameters=_parse_sets(set_))
    except IlsimError as exc:
        _fail(exc)
        return
    for line in warnings if show_warnings else sbml.summarise_warnings(warnings):
        err.print(f"libsbml warning: {line}", markup=False, highlight=False)
    # the model's species and processes (a state in litres is an SBML parameter with a rate rule, docs/sbml.md)
    out.print(f"wrote {out_file} (SBML L3V2: {len(compiled.species)} species, {len(compiled.rate_trees)} processes, "
              f"{sum(max(len(e.times), 1) for e in compiled.events)} events; 0 errors, {len(warnings)} warnings)",
              markup=False, highlight=False)


@app.command("import-sbml")
def import_sbml(
    sbml_file: Annotated[Path, typer.Argument(help="an SBML file (Level 2 or 3 core)")],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="the ilsim model file to write (YAML, written atomically)")],
    overwrite: OverwriteOpt = False,
) -> None:
    """Import an SBML model as an ilsim model file; what cannot be represented is refused, never dropped."""
    from ilsim import api  # lazy: heavy (SciPy, xarray)
    from ilsim.io import sbml_import  # lazy: heavy (libsbml)
    from ilsim.io.atomic import check_new_file

    try:
        check_new_file(out_file, overwrite=overwrite, inputs=[sbml_file])
        imported = sbml_import.import_sbml(sbml_file)
        api.compile(imported.spec)  # the written file must compile
        sbml_import.write_yaml(imported.spec, out_file)
    except IlsimError as exc:
        _fail(exc)
        return
    except OSError as exc:
        _fail(IlsimError(f"cannot write {out_file}: {exc.strerror}"))
        return
    spec = imported.spec
    for sbml_id, name in imported.renamed.items():
        out.print(f"renamed SBML id '{sbml_id}' to '{name}'", markup=False, highlight=False)
    out.print(f"wrote {out_file} ({len(spec.species)} species, {len(spec.parameters)} parameters, {len(spec.processes)} "
              f"processes, {len(spec.observables)} observables, {len(spec.events)} events)", markup=False, highlight=False)


@app.command()
def cohort(
    model: ModelArg,
    patients: Annotated[int, typer.Option(help="number of virtual patients")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="result folder (written atomically; resumes from "
                                                              "OUT.partial/ after an interruption)")],
    seed: Annotated[int | None, typer.Option(help="random seed (drawn and recorded when not given)")] = None,
    vary: Annotated[list[str], typer.Option(help="a parameter's or covariate's distribution: "
                                                 "'c=uniform(0.02, 0.05)' (repeatable)")] = [],  # noqa: B006
    time_to: Annotated[list[str], typer.Option(help="report each patient's first time a condition holds: 'T < 1' "
                                                    "(repeatable)")] = [],  # noqa: B006
    save_trajectories: Annotated[bool, typer.Option("--save-trajectories", help="write trajectories.zarr")] = False,
    chunk_size: Annotated[int | None, typer.Option(help="patients per chunk (default: ~20 chunks, each under "
                                                        "100 MB of trajectories)")] = None,
    scheduler: SchedulerOpt = None,
    backend: Annotated[str, typer.Option(help="cpu (numba) or gpu (CUDA)")] = "cpu",
    t_end: TEndOpt = None,
    points: PointsOpt = None,
    rtol: RtolOpt = None,
    atol: AtolOpt = None,
    force: Annotated[bool, typer.Option("--force", help="allow more than 10,000,000 patients")] = False,
    report: Annotated[bool, typer.Option(help="write figures and report.html")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or messages on stderr")] = False,
    overwrite: ReplaceOpt = False,
    engine: CohortEngineOpt = "batch",
    method: Annotated[str | None, typer.Option(help="--engine ssa: direct, next-reaction, tau or auto")] = None,
    system_size: SystemSizeOpt = None,
) -> None:
    """Run a cohort of virtual patients; write summary.parquet, cohort.json, figures and report.html."""
    from ilsim import api  # lazy: heavy (SciPy, xarray)
    from ilsim.patients.run import ProgressBar, run_cohort  # lazy: heavy (pandas, dask)

    show = not quiet and err.is_terminal

    def notify(text: str) -> None:
        if not quiet:
            err.print(text, markup=False, highlight=False)

    try:
        chosen = _cohort_engine(engine, method, system_size, rtol, atol, backend)
        compiled = api.compile(model)
        bar = ProgressBar(err) if show else None
        with bar or nullcontext():
            result = run_cohort(compiled, patients=patients, seed=seed, vary=vary, time_to=time_to,
                                save_trajectories=save_trajectories, chunk_size=chunk_size, scheduler=scheduler,
                                backend=backend if chosen is None else "cpu",  # (the stochastic engine holds its own)
                                t_end=t_end, points=points, rtol=rtol, atol=atol, force=force,
                                out=out_dir, report=report, progress=bar, notify=notify, overwrite=overwrite,
                                engine=chosen)
    except IlsimError as exc:
        _fail(exc)
        return
    info = result.info
    rows = "tissue replicates" if engine == "tissue" else "virtual patients"
    out.print(f"[bold]{plain(info['model_title'])}[/]: {info['patients']:,} {rows}, seed {info['seed']} "
              f"({info['scheduler']}, {info['wall_time_s']:.3g} s)", highlight=False)
    for label, v in info["outcomes"].items():
        out.print(f"  {v['fraction']:7.2%}  {label} ({v['count']:,})", markup=False, highlight=False)
    reasons = sorted(info["failed"]["by_reason"].items(), key=lambda kv: -kv[1])
    for reason, count in reasons[:LISTED_REASONS]:  # a stochastic failure's text holds its time and state
        out.print(f"  failed: {count:,} patients: {reason}", markup=False, highlight=False)
    if len(reasons) > LISTED_REASONS:
        out.print(f"  failed: {sum(c for _, c in reasons[LISTED_REASONS:]):,} patients for {len(reasons) - LISTED_REASONS:,} "
                  "other reasons (cohort.json, summary.parquet)", markup=False, highlight=False)
    files = ["summary.parquet", "cohort.json", "model.yaml"] + (["trajectories.zarr"] if save_trajectories else [])
    files += ["figures/", "report.html"] if report else []
    out.print(f"written to {plain(out_dir)}/ ({', '.join(files)})", highlight=False)


@app.command()
def sweep(
    model: ModelArg,
    param: Annotated[list[str], typer.Option(help="a parameter and its grid: NAME=LOW:HIGH:N, e.g. kpg=0.1:2.0:40 "
                                                  "(once or twice)")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="result folder (written atomically)")],
    log: Annotated[list[str], typer.Option(help="space this parameter's grid evenly in log10 (repeatable)")] = [],  # noqa: B006
    metric: Annotated[str | None, typer.Option(help="the per-point value to draw, e.g. D.final, N.peak or "
                                                    "first_time[P < 0.01] (default: the first species' final value)")] = None,
    time_to: Annotated[list[str], typer.Option(help="add each point's first time a condition holds: 'P < 0.01' "
                                                    "(repeatable)")] = [],  # noqa: B006
    set_: Annotated[list[str], typer.Option("--set", help="override a parameter at every point: NAME=VALUE")] = [],  # noqa: B006
    t_end: TEndOpt = None,
    points: PointsOpt = None,
    rtol: RtolOpt = None,
    atol: AtolOpt = None,
    force: Annotated[bool, typer.Option("--force", help="allow a grid of more than 1,000,000 points")] = False,
    report: Annotated[bool, typer.Option(help="write outcome_map.png and report.html")] = True,
    scheduler: SchedulerOpt = None,
    overwrite: ReplaceOpt = False,
    engine: SweepEngineOpt = "batch",
    seed: Annotated[int | None, typer.Option(help="--engine tissue: the run's seed, each point's mixed from it and the "
                                                  "point's index (default: the tissue section's)")] = None,
) -> None:
    """Run a model over a grid of one or two parameters; write the outcome map, sweep.parquet/.csv and sweep.json."""
    from ilsim.patients.sweep import parse_range  # lazy: heavy (pandas, dask)
    from ilsim.patients.sweep import sweep as run_sweep  # lazy: heavy

    try:
        grid: dict = {}
        for item in param:
            name, low, high, n = parse_range(item, count=True)
            if name in grid:
                raise IlsimError(f"--param '{name}': given twice; give each swept parameter once")
            grid[name] = (low, high, n)
        result = run_sweep(model, grid, out_dir, log=log, metric=metric, time_to=time_to, parameters=_parse_sets(set_),
                           t_end=t_end, points=points, rtol=rtol, atol=atol, force=force, report=report,
                           scheduler=scheduler, overwrite=overwrite, engine=_sweep_engine(engine, seed, rtol, atol))
    except IlsimError as exc:
        _fail(exc)
        return
    info = result.info
    shape = " x ".join(f"{n} {plain(name)}" for name, n in zip(info["grid"], info["shape"]))
    out.print(f"[bold]{plain(info['title'])}[/]: {info['points']:,} points ({shape}), {info['engine']} engine, "
              f"{info['scheduler']}, {info['wall_time_s']:.3g} s", highlight=False)
    for label, count in info["outcomes"].items():
        out.print(f"  {count / info['points']:7.2%}  {label} ({count:,})", markup=False, highlight=False)
    for f in info["failed"][:10]:
        values = ", ".join(f"{k} = {v:.4g}" for k, v in f["values"].items())
        out.print(f"  point {f['point']} ({values}) failed: {f['reason']}", markup=False, highlight=False)
    if len(info["failed"]) > 10:
        out.print(f"  ... {len(info['failed']) - 10} more failed points in sweep.json", highlight=False)
    files = "sweep.parquet, sweep.csv, sweep.json" + (", outcome_map.png, report.html" if report else "")
    out.print(f"written to {plain(out_dir)}/ ({files})", highlight=False)


@app.command()
def sensitivity(
    model: ModelArg,
    param: Annotated[list[str], typer.Option(help="a parameter and its uniform range: NAME=LOW:HIGH, e.g. c=0.02:0.05 "
                                                  "(repeatable)")],
    output: Annotated[str, typer.Option(help="the per-patient value analysed: T.final, E.peak, first_time[T < 1000], "
                                             "or outcome=LABEL (1 when the run ends with that label)")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="result folder (written atomically)")],
    method: Annotated[str, typer.Option(help="sobol (variance-based indices) or morris (elementary effects)")] = "sobol",
    samples: Annotated[int | None, typer.Option(help="Sobol': base points N, a power of 2 (runs N(2D+2); default 256); "
                                                     "Morris: trajectories (runs N(D+1); default 20)")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed (drawn and recorded when not given)")] = None,
    drop_failed: Annotated[bool, typer.Option("--drop-failed", help="drop sample groups with a failed run instead of "
                                                                    "refusing (the indices are then biased)")] = False,
    set_: Annotated[list[str], typer.Option("--set", help="override a parameter in every run: NAME=VALUE")] = [],  # noqa: B006
    t_end: TEndOpt = None,
    points: PointsOpt = None,
    rtol: RtolOpt = None,
    atol: AtolOpt = None,
    report: Annotated[bool, typer.Option(help="write indices.png and report.html")] = True,
    scheduler: SchedulerOpt = None,
    overwrite: ReplaceOpt = False,
) -> None:
    """Global sensitivity of one output to parameter ranges (SALib Sobol' or Morris); write indices.csv/.json and a chart."""
    from ilsim.patients.sensitivity import parse_ranges  # lazy: heavy (pandas, dask, SALib)
    from ilsim.patients.sensitivity import sensitivity as run_sensitivity  # lazy: heavy

    try:
        result = run_sensitivity(model, parse_ranges(param), output, out_dir, method=method, samples=samples, seed=seed,
                                 drop_failed=drop_failed, parameters=_parse_sets(set_), t_end=t_end, points=points,
                                 rtol=rtol, atol=atol, report=report, scheduler=scheduler, overwrite=overwrite)
    except IlsimError as exc:
        _fail(exc)
        return
    info, frame = result.info, result.indices
    out.print(f"[bold]{plain(info['title'])}[/]: {info['method']} analysis of {plain(info['output'])}, "
              f"{info['evaluated']:,} runs, seed {info['seed']} ({info['scheduler']}, {info['wall_time_s']:.3g} s)",
              highlight=False)
    if info["failed"]:
        out.print(f"[bold red]{info['failed']} runs failed or gave no value[/]: {info['dropped_groups']} sample groups "
                  "dropped; the indices are biased", highlight=False)
    columns = ["S1", "S1_conf", "ST", "ST_conf"] if info["method"] == "sobol" else ["mu", "mu_star", "mu_star_conf", "sigma"]
    table = Table(show_edge=False)
    table.add_column("parameter")
    for col in columns:
        table.add_column(col, justify="right")
    for name, row in frame.iterrows():
        table.add_row(plain(name), *(_num(row[c], ".3f") for c in columns))
    out.print(table)
    files = "indices.csv, indices.json, samples.parquet" + (", indices.png, report.html" if report else "")
    out.print(f"written to {plain(out_dir)}/ ({files})", highlight=False)


# ---- stochastic ensembles (issue 15): `ilsim run MODEL --engine ssa --trajectories N --seed S` ------------------
EngineOpt = Annotated[str, typer.Option(help="ode (default: deterministic) or ssa (stochastic: every reaction as an "
                                             "event; --method direct, next-reaction, tau or auto)")]
SsaBackendOpt = Annotated[str, typer.Option(help="--engine ssa: cpu (numba threads) or gpu (CUDA: the direct method, one "
                                                 "trajectory per GPU thread; models without events)")]
TrajectoriesOpt = Annotated[int | None, typer.Option(help="stochastic trajectories (--engine ssa; default 1000)")]
SeedOpt = Annotated[int | None, typer.Option(help="random seed of the stochastic engine (default 0): the same seed gives "
                                                  "the same trajectories at any thread count")]
TimeToOpt = Annotated[list[str], typer.Option(help="first-passage time of a condition, e.g. 'P < 1' (--engine ssa; "
                                                   "repeatable)")]
FormatOpt = Annotated[str | None, typer.Option(help="--engine ssa: the trajectories as results.nc (netcdf), results.zarr "
                                                   "(zarr: chunked, read lazily) or auto (zarr above 1 GiB)")]
DaskOpt = Annotated[str | None, typer.Option(help="--engine ssa: run the trajectories in chunks written one at a time "
                                                 "to results.zarr, on a Dask cluster (tcp://HOST:PORT) or 'local'")]
EnsembleChunkOpt = Annotated[int | None, typer.Option("--chunk-size", help="--engine ssa: trajectories per chunk "
                                                                          "(with --dask; default 1000)")]
SystemSizeOpt = Annotated[float | None, typer.Option(help="molecules or cells per unit of the model's values (--engine "
                                                           "ssa; default 1: the values are counts)")]


def _run_stochastic(model, out_dir, engine, method, trajectories, seed, time_to, system_size, format, *, t_end, points,  # noqa: A002
                    parameters, faults, doses, allow_high_dose, report, overwrite, rtol, atol, backend="cpu", dask=None,
                    chunk_size=None) -> None:
    from ilsim import ensemble  # lazy: heavy (xarray, numba)
    from ilsim.engines.ssa.cuda import ssa_engine

    try:
        if engine != "ssa":
            given = [o for o, v in (("--trajectories", trajectories), ("--seed", seed), ("--system-size", system_size),
                                    ("--time-to", time_to or None), ("--format", format),
                                    ("--backend", None if backend == "cpu" else backend), ("--dask", dask),
                                    ("--chunk-size", chunk_size)) if v is not None]
            raise IlsimError(f"--engine must be ode or ssa, got {engine!r}" if engine != "ode" else
                             f"{', '.join(given)} need(s) --engine ssa")
        if rtol is not None or atol is not None:
            raise IlsimError("--rtol and --atol are tolerances of the ODE engines; the stochastic engine has none")
        ssa = ssa_engine(backend, trajectories=1000 if trajectories is None else trajectories,
                         seed=0 if seed is None else seed, method=method or "auto", system_size=system_size)
        settings = dict(t_end=t_end, points=points, parameters=_parse_sets(parameters), faults=_parse_faults(faults),
                        doses=_parse_doses(doses), allow_high_dose=allow_high_dose)
        if dask is None and chunk_size is not None:
            raise IlsimError("--chunk-size needs --dask local or --dask ADDRESS (the ensemble in chunks)")
        if dask is not None:
            if format not in (None, "zarr", "auto"):
                raise IlsimError(f"--format {format}: an ensemble run with --dask is written as results.zarr, chunk by chunk")
            from ilsim import ensemble_chunks  # lazy: heavy (dask, zarr)

            size = ensemble_chunks.CHUNK_SIZE if chunk_size is None else chunk_size
            ds, summary = ensemble_chunks.run(model, out_dir, engine=ssa, dask=dask, time_to=time_to, report=report,
                                              overwrite=overwrite, chunk_size=size, **settings)
        else:
            ds, summary = ensemble.run(model, out_dir, engine=ssa, time_to=time_to, report=report, overwrite=overwrite,
                                       format=format or "auto", **settings)
    except IlsimError as exc:
        _fail(exc)
        return
    out.print(f"[bold]{plain(summary['title'] or summary['model'])}[/]: {summary['trajectories']:,} trajectories, seed "
              f"{summary['seed']} ({summary['method_used']}, t = 0..{summary['t_end']:g} {plain(summary['time_units'])}, "
              f"{summary['wall_time_s']:.3g} s)", highlight=False)
    if "chunks" in summary:
        out.print(f"{summary['chunks']:,} chunks of {summary['chunk_size']:,} trajectories ({plain(summary['scheduler'])})"
                  + (f", [bold red]{summary['chunks_failed']:,} failed[/]" if summary["chunks_failed"] else ""),
                  highlight=False)
    if summary["failed_count"]:
        out.print(f"[bold red]{summary['failed_count']:,} trajectories flagged[/] (first: "
                  f"{plain(summary['failed'][0]['message'])})", highlight=False)
    table = Table(show_edge=False, caption="at the end; extinct: none left (95% Wilson interval)", caption_justify="left")
    for col in ("variable", "mean", "sd", "extinct", "interval"):
        table.add_column(col, justify="left" if col == "variable" else "right")
    for name, v in summary["final"].items():
        e = summary["extinction"].get(name)
        table.add_row(plain(name), _num(v["mean"]), _num(v["sd"]), _num(e["probability"]) if e else "",
                      f"{e['ci95'][0]:.3g}-{e['ci95'][1]:.3g}" if e else "")
    out.print(table)
    for text_, v in summary["first_passage"].items():
        out.print(f"time to {plain(text_)}: reached by {v['reached']:,} of {v['trajectories']:,} "
                  f"({_num(v['probability'])}, 95% {v['ci95'][0]:.3g}-{v['ci95'][1]:.3g}), mean {_num(v['mean_time'])}, "
                  f"median {_num(v['median_time'])} {plain(summary['time_units'])}", highlight=False)
    out.print(f"results written to {plain(out_dir)}/ ({summary['results']}, statistics.csv, summary.json"
              f"{', figures/fan.png, report.html' if report else ''})", highlight=False)


LISTED_REASONS = 5  # failure reasons printed by `ilsim cohort`; cohort.json has them all
CohortEngineOpt = Annotated[str, typer.Option(help="batch (default: the ODE batch engine), ssa (one stochastic "
                                                   "trajectory per patient, seeded from --seed and the patient's index) "
                                                   "or tissue (one replicate of the tissue: section per patient, seeded "
                                                   "likewise; times in minutes)")]


def _cohort_engine(engine: str, method, system_size, rtol, atol, backend: str = "cpu"):
    """`ilsim cohort --engine`: None for the batch engine (with --backend, --rtol, --atol), else the stochastic one on
    --backend's device, its seed left to the cohort's (patients/run.py)."""
    from ilsim.engines.ssa.cuda import ssa_engine

    if engine == "tissue":
        return _tissue_engine(None, rtol, atol, method=method, system_size=system_size)
    if engine not in ("batch", "ssa"):
        raise IlsimError(f"--engine must be batch, ssa or tissue, got {engine!r}")
    if engine == "batch":
        given = [o for o, v in (("--method", method), ("--system-size", system_size)) if v is not None]
        if given:
            raise IlsimError(f"{', '.join(given)} need(s) --engine ssa")
        return None
    if rtol is not None or atol is not None:
        raise IlsimError("--rtol and --atol are tolerances of the ODE engines; the stochastic engine has none")
    return ssa_engine(backend, seed=None, method=method or "auto", system_size=system_size)


@app.command("fit")
def fit_command(
    problem: Annotated[str, typer.Argument(help="a PEtab v1 problem (YAML) or an ilsim model file with a fit: section")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="result folder (written atomically; resumes from "
                                                              "OUT.partial/ after an interruption)")],
    starts: Annotated[int, typer.Option(min=1, help="number of multistart local optimisations")] = 100,
    seed: Annotated[int, typer.Option(help="seed of the Latin-hypercube starts")] = 1,
    optimizer: Annotated[str, typer.Option(help="fides (trust region, Gauss-Newton) or trf (SciPy least_squares)")] = "fides",
    workers: Annotated[int | None, typer.Option(help="processes running starts (default: one per CPU)")] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", "--dask", help="run the starts on a Dask cluster: "
                                                  "tcp://HOST:PORT, or local for --workers processes here")] = None,
    max_evaluations: Annotated[int, typer.Option(min=1, help="iterations per start")] = 400,
    profiles: Annotated[bool, typer.Option("--profiles", help="profile likelihoods and 95% intervals")] = False,
    report: Annotated[bool, typer.Option(help="write figures and report.html")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no messages on stderr")] = False,
    overwrite: ReplaceOpt = False,
) -> None:
    """Fit a model to measurements: multistart from seeded starts, optionally profiles; see docs/fitting.md."""
    from ilsim.fit.run import fit as run_fit  # lazy: heavy (SciPy, SymPy, petab)

    def progress(done: int, total: int) -> None:
        if not quiet:
            err.print(f"starts finished: {done}/{total}", markup=False, highlight=False)

    try:
        result = run_fit(problem, starts=starts, seed=seed, out=out_dir, workers=workers, optimizer=optimizer,
                         max_evaluations=max_evaluations, profiles=profiles, overwrite=overwrite, report=report,
                         progress=progress, scheduler=scheduler)
    except IlsimError as exc:
        _fail(exc)
        return
    out.print(f"[bold]{plain(result.problem.name)}[/]: best log-likelihood {result.llh:.6g}; "
              f"{result.converged_fraction(0.1):.0%} of {len(result.starts)} starts within 0.1 of it, "
              f"{len(result.failed())} failed ({result.wall_time_s:.3g} s)", highlight=False)
    table = Table(show_edge=False)
    for column in ("parameter", "estimate", "95% lower", "95% upper"):
        table.add_column(column, justify="left" if column == "parameter" else "right")
    for _, row in result.table().iterrows():
        table.add_row(plain(row["parameter"]), _num(row["estimate"]), _num(row["ci95_lower"]), _num(row["ci95_upper"]))
    out.print(table)
    out.print(f"written to {plain(out_dir)}/ (fit.json, starts.csv, parameters.csv, results.nc, model.yaml"
              f"{', figures/, report.html' if report else ''})", highlight=False)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to bind; anything but 127.0.0.1 lets other machines in")] = "127.0.0.1",
    port: Annotated[str, typer.Option(help="port number, or auto for a free one")] = "auto",
    browser: Annotated[bool, typer.Option("--browser/--no-browser", help="open the explorer in the default browser")] = True,
    results: Annotated[Path | None, typer.Option(help="a folder whose finished cohort and sweep results the explorer "
                                                      "lists (nothing outside it is read)")] = None,
) -> None:
    """Start the web explorer: scenarios with sliders, faults, readouts, uploads, downloads (docs/web.md)."""
    try:
        number = 0 if port == "auto" else int(port)
        if not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        _fail(IlsimError(f"--port must be a port number (0-65535) or auto, got '{port}'"))
        return
    if results is not None and not results.is_dir():
        _fail(IlsimError(f"--results: no such folder '{results}'"))
        return
    try:
        from ilsim import web  # lazy: heavy (Dash, Plotly), and an optional extra
    except ImportError as exc:
        _fail(IlsimError(f"the web explorer needs the 'web' extra: pip install 'ilsim[web]' ({exc})"))
        return
    if host != web.LOOPBACK:
        err.print(f"[yellow]warning:[/] serving on {plain(host)}: other machines that reach this address can use the "
                  "explorer and run models on this computer", highlight=False)
    try:
        web.serve(host, number, open_browser=browser, results_root=results,
                  announce=lambda line: out.print(line, markup=False, highlight=False))
    except OSError as exc:
        _fail(IlsimError(f"cannot serve on {host}:{port}: {exc.strerror or exc}"))


@app.command()
def tissue(
    model: ModelArg,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="result folder (written atomically; a rerun after an "
                                                              "interruption continues from its checkpoint)")],
    t_end: Annotated[float | None, typer.Option(help="end time in minutes (default: the tissue section's)")] = None,
    save_every: Annotated[float | None, typer.Option(help="minutes between saved times")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed (default: the tissue section's)")] = None,
    report: Annotated[bool, typer.Option(help="write figures, the animation and report.html")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
    overwrite: ReplaceOpt = False,
    fault: Annotated[list[str], typer.Option(help="apply a fault the model declares: MODE[:SEVERITY 0..1]")] = [],  # noqa: B006
    backend: Annotated[str, typer.Option(help="cpu (numba's threads) or gpu (a CUDA device: pip install "
                                              "'ilsim[gpu]')")] = "cpu",
) -> None:
    """Run a model's tissue: section (docs/tissue.md); write agents.parquet, fields.nc, timeseries.csv, summary.json."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from ilsim import api  # lazy: heavy (numba, xarray)

    bar = None if quiet or not err.is_terminal else Progress(
        TextColumn("tissue"), BarColumn(), TextColumn("{task.fields[t]:.1f} min, {task.fields[cells]:,} cells"),
        TimeRemainingColumn(), console=err)
    task = []

    def progress(t: float, cells: int) -> None:
        if bar is None:
            return
        if not task:
            total = t_end or api.load(model).tissue.t_end
            task.append(bar.add_task("tissue", total=total, t=0.0, cells=cells))
        bar.update(task[0], completed=t, t=t, cells=cells)

    try:
        with speaking({"t_end": "--t-end", "save_every": "--save-every", "seed": "--seed"}), bar or nullcontext():
            _, info = api.tissue(model, out_dir, t_end=t_end, save_every=save_every, seed=seed, report=report,
                                 overwrite=overwrite, progress=progress, faults=_parse_faults(fault), backend=backend)
    except IlsimError as exc:
        _fail(exc)
        return
    cells = ", ".join(f"{plain(k)} {v:,}" for k, v in info["final_cells"].items())
    out.print(f"[bold]{plain(info['model'])}[/]: tissue run to {info['t_end']:g} min, seed {info['seed']} "
              f"({info['wall_time_s']:.3g} s{', resumed' if info.get('resumed_at_min') is not None else ''}); "
              f"final cells: {cells or 'none'}", highlight=False)
    for name, f in info["final_fields"].items():
        out.print(f"  {plain(name)}: mean {f['mean']:.4g}, max {f['max']:.4g}", highlight=False)
    for name, v in info.get("final_systemic", {}).items():
        out.print(f"  {plain(name)} (well-mixed): {v:.4g}", highlight=False)
    if info.get("outcome"):
        out.print(f"outcome: [bold]{plain(info['outcome'])}[/]", highlight=False)
    files = "agents.parquet, fields.nc, timeseries.csv, summary.json, model.yaml"
    out.print(f"written to {plain(out_dir)}/ ({files}{', figures/, report.html' if report else ''})", highlight=False)


@app.command("import-physicell")
def import_physicell(
    settings: Annotated[Path, typer.Argument(help="a PhysiCell settings file (PhysiCell_settings.xml)")],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="the ilsim model file to write (YAML, written atomically; "
                                                               "initial cells go beside it as NAME.cells.csv)")],
    cells: Annotated[Path | None, typer.Option(help="the initial cells CSV (default: the one the settings enable, "
                                                    "looked for beside the settings file)")] = None,
    skip_unmapped: Annotated[bool, typer.Option(
        "--skip-unmapped", help="write the model without what has no ilsim equivalent (listed, kept in its notes)")] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Import a PhysiCell project as a model with a tissue: section (docs/tissue.md); what has no equivalent is refused."""
    from ilsim import api  # lazy: heavy (SciPy, xarray)
    from ilsim.io import physicell
    from ilsim.io.atomic import check_new_file

    try:
        check_new_file(out_file, overwrite=overwrite, inputs=[settings] + ([cells] if cells else []))
        imported = physicell.import_physicell(settings, cells, partial=skip_unmapped, name=out_file.stem)
        # the cells CSV the settings enable is an input too, found only by the import
        inputs = [settings] + ([imported.cells_source] if imported.cells_source else [])
        check_new_file(out_file, overwrite=overwrite, inputs=inputs)
        if imported.cells:  # the cells file beside the model must not replace a file of the user's either
            check_new_file(physicell.cells_path(out_file), overwrite=overwrite, inputs=inputs)
        api.compile(physicell.build_spec(imported, out_file))  # the written file must compile
        spec = physicell.write(imported, out_file)
    except IlsimError as exc:
        _fail(exc)
        return
    except OSError as exc:
        _fail(IlsimError(f"cannot write {out_file}: {exc.strerror}"))
        return
    for problem in imported.dropped:
        err.print(f"left out: {problem.field}: {problem.message}", markup=False, highlight=False)
    tissue = spec.tissue
    left = f", {len(imported.dropped)} element(s) left out" if imported.dropped else ""
    out.print(f"wrote {out_file} ({len(tissue.fields)} fields, {len(tissue.agents)} cell types, "
              f"{len(imported.cells or [])} initial cells{left})", markup=False, highlight=False)


# ---- tissue replicates and sweeps (issue 12): `ilsim cohort|sweep MODEL --engine tissue` ------------------------
SweepEngineOpt = Annotated[str, typer.Option(help="batch (default: the ODE batch engine) or tissue (each point a "
                                                  "replicate of the model's tissue: section; times in minutes)")]


def _tissue_engine(seed: int | None, rtol, atol, **ssa_only):
    """The tissue engine of `--engine tissue`: no tolerances (a fixed-step scheme) nor stochastic-engine options; its
    seed left to the cohort's or given by `sweep --seed` (patients/tissue.py says which it is)."""
    from ilsim.engines.tissue.engine import TissueEngine  # lazy: heavy (numba)

    given = [o for o, v in (("--rtol", rtol), ("--atol", atol), *((f"--{k.replace('_', '-')}", v)
                                                                  for k, v in ssa_only.items())) if v is not None]
    if given:
        raise IlsimError(f"--engine tissue: {', '.join(given)} do(es) not apply (the tissue engine steps at the section's "
                         "dt, with no tolerances)")
    return TissueEngine(seed=seed)


def _sweep_engine(engine: str, seed: int | None, rtol, atol):
    """`ilsim sweep --engine`: None for the batch engine (with --rtol, --atol), else the tissue engine."""
    if engine == "tissue":
        return _tissue_engine(seed, rtol, atol)
    if engine != "batch":
        raise IlsimError(f"--engine must be batch or tissue, got {engine!r}")
    if seed is not None:
        raise IlsimError("--seed needs --engine tissue (the batch engine draws nothing)")
    return None

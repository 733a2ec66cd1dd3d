"""C/CUDA source of a model's batch kernel, printed from its expression trees, and a plain-C build of it.

``kernel_source(model, method)`` returns ONE C99 translation unit that is also valid CUDA C: the model's
right-hand side, analytic Jacobian (for the stiff method), condition root functions, event guards and
actions and initial state (printed node by node from the checked trees, never from user text), followed
by the integrator: one patient per thread, with the methods, coefficients, step control and status codes
of ``engines.batch``:

  * ``dopri5``: adaptive Dormand-Prince 5(4), PI step control, Hairer's 4th-order dense output;
  * ``rodas``: Hairer's L-stable Rosenbrock 4(3) RODAS with the Jacobian printed from
    ``model.compile.jacobian_entries`` (derived once per model), LU with partial pivoting, df/dt by a
    forward difference for models whose rates read t, Gustafsson's predictive step control and its
    3rd-order dense output;
  * ``auto`` (default): DOPRI5 until Hairer's stiffness test has fired on 15 accepted steps, then RODAS
    for the rest of that patient's run.

The method is a compile-time constant (``ILSIM_METHOD``), so a DOPRI5 kernel carries no matrix. RODAS
keeps one species x species matrix per thread (the Jacobian is evaluated into it at every trial step
rather than kept beside it), and is refused above ``MAX_STIFF_SPECIES`` species. Output times never shorten
a step (states there come from the dense output); integration restarts exactly at timed events and at the
times where a rate switches; condition events are located on the dense output by the Illinois method,
with the event semantics of ``engines.ode`` (re-arm tolerance, equal thresholds firing together, the crossings
of the comparisons inside compound conditions located too so that a window narrower than a step is seen).

Device-specific syntax sits behind macros (``ILSIM_GLOBAL``, ``ILSIM_DEVICE``,
``ILSIM_PATIENT_LOOP``...): under NVRTC/nvcc the entry point is a ``__global__`` kernel with a
grid-stride loop over patients; under a plain C compiler it is an ordinary function whose loop
visits every patient (OpenMP-parallel when compiled with ``-fopenmp``). ``HostKernel`` builds that
plain-C form with the system compiler and calls it through ctypes, so the generated integrator is
tested on machines without a GPU.

Output: ``Y[patient, time, species]`` (float64) and ``status[patient]`` with the codes of
``engines.batch.STATUS``; a failed patient's rows from the failure onwards are NaN. A cascade of more
than ``MAX_CASCADE`` firings at one instant (or deeper than the kernel's stack of 4 x conditions + 4)
ends the patient with ``ENDLESS_EVENTS``; events that fire endlessly over time end it at ``max_steps``.
Delayed events wait in a queue of ``MAX_PENDING`` rows per patient (``PENDING_FULL`` past it), as in the
numba engine.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ilsim.engines import tableaux
from ilsim.engines.base import STATUS, Engine, EngineResult
from ilsim.engines.batch import BAD_INITIAL, ENDLESS_EVENTS, MAX_STEPS, METHODS, NON_FINITE, OK, STEP_UNDERFLOW
from ilsim.engines.batch.engine import check_inputs, check_settings
from ilsim.errors import IlsimError
from ilsim.model import analysis
from ilsim.model import expressions as ex
from ilsim.model.compile import STATE, CompiledModel, jacobian_entries, trusted_cache_dir

MAX_CASCADE = tableaux.MAX_CASCADE  # firings at one instant before a cascade counts as endless (every engine)
# RODAS keeps one species x species matrix per patient (thread): 8 KiB at 32 species. A GPU reserves a thread's
# local memory for every thread it can hold at once (about 270,000 on an H100), so larger models are refused
MAX_STIFF_SPECIES = 32


def check_method(method: str, m: CompiledModel | None = None) -> int:
    """The number of a batch method (``engines.batch.METHODS``); IlsimError for an unknown one, or for a stiff
    method on a model with more than MAX_STIFF_SPECIES species."""
    if method not in METHODS:
        raise IlsimError(f"unknown batch method '{method}'; choose one of {', '.join(METHODS)}")
    if m is not None and method != "dopri5" and len(m.species) > MAX_STIFF_SPECIES:
        raise IlsimError(f"method '{method}' of the C/CUDA kernel (RODAS, a species x species matrix per patient) "
                         f"takes models of up to {MAX_STIFF_SPECIES} species, and model '{m.name}' has "
                         f"{len(m.species)}: use method 'dopri5', or the CPU batch engine (backend 'cpu')")
    return METHODS[method]

# ------------------------------------------------------------------------------ expression printer

# one-argument functions of the expression language that C's math library names the same way
SAME_NAME_IN_C = frozenset({"exp", "log", "log10", "sqrt", "sin", "cos", "tan", "sinh", "cosh", "tanh",
                            "asin", "acos", "atan", "floor", "ceil"})


def c_expr(node: ex.Expr, names: dict[str, str]) -> str:
    """C source for a tree, each name replaced by ``names[name]``; values are double, truth values int."""

    def c(n: ex.Expr) -> str:
        return c_expr(n, names)

    if isinstance(node, ex.Num):
        return c_number(node.value)
    if isinstance(node, ex.Name):
        return names[node.id]
    if isinstance(node, ex.Neg):
        return f"(-{c(node.arg)})"
    if isinstance(node, ex.BinOp):
        if node.op == "**":
            power = node.right.value if isinstance(node.right, ex.Num) else None
            if power in (2.0, 3.0, 4.0):  # small integer powers: multiplications, cheaper than pow()
                return f"ilsim_pow{int(power)}({c(node.left)})"
            return f"pow({c(node.left)}, {c(node.right)})"
        return f"({c(node.left)} {node.op} {c(node.right)})"
    if isinstance(node, ex.Compare):
        return f"({c(node.left)} {node.op} {c(node.right)})"
    if isinstance(node, ex.Logic):
        return "(" + (" && " if node.op == "and" else " || ").join(c(a) for a in node.args) + ")"
    if isinstance(node, ex.Not):
        return f"(!{c(node.arg)})"
    if isinstance(node, ex.Call):
        args = [c(a) for a in node.args]
        f = node.func
        if f == "piecewise":  # value1 if cond1 else value2 if cond2 ... else otherwise
            out = args[-1]
            for value, cond in reversed(list(zip(args[:-1:2], args[1:-1:2]))):
                out = f"({cond} ? {value} : {out})"
            return out
        if f in ("min", "max"):  # Python's left fold: keep the running value unless a later one is strictly beyond it
            out = args[0]
            for a in args[1:]:
                out = f"ilsim_{f}({out}, {a})"
            return out
        if f == "hill":
            return f"ilsim_hill({', '.join(args)})"
        if f == "log" and len(args) == 2:
            return f"(log({args[0]}) / log({args[1]}))"
        if f == "abs":
            return f"fabs({args[0]})"
        if f == "factorial":
            return f"tgamma({args[0]} + 1.0)"
        if f in SAME_NAME_IN_C:
            return f"{f}({args[0]})"
        raise TypeError(f"no C form for the function '{f}'")
    raise TypeError(node)


def c_number(value: float) -> str:
    """A double literal that reads back to exactly ``value`` (repr is the shortest round-trip form)."""
    if math.isnan(value):
        return "ILSIM_NAN"
    if math.isinf(value):
        return "ILSIM_INF" if value > 0 else "(-ILSIM_INF)"
    text = repr(float(value))
    return f"({text})" if value < 0 else text


# ------------------------------------------------------------------------------ model functions


def _prologue(m: CompiledModel, trees: list[ex.Expr], clip: bool) -> list[str]:
    """Local species and observables that the trees read (observables through their own names)."""
    used: set[str] = set().union(*(tr.names() for tr in trees)) if trees else set()
    for name, tree in reversed(list(zip(m.observables, m.observable_trees))):  # each uses only earlier ones
        if name in used:
            used |= tree.names()
    lines = []
    for i, name in enumerate(m.species):
        if name in used:
            value = f"ilsim_max(y[{i}], 0.0)" if clip and m.nonnegative[i] else f"y[{i}]"
            lines.append(f"    const double s_{i} = {value};")
    names = _names(m)
    for i, (name, tree) in enumerate(zip(m.observables, m.observable_trees)):
        if name in used:
            lines.append(f"    const double o_{i} = {c_expr(tree, names)};")
    return lines


def _names(m: CompiledModel) -> dict[str, str]:
    names = {n: f"s_{i}" for i, n in enumerate(m.species)}
    names.update({n: f"p[{i}]" for i, n in enumerate(m.parameters)})
    names.update({n: f"o_{i}" for i, n in enumerate(m.observables)})
    names[ex.TIME] = "t"
    return names


def _switch(cases: list[list[str]], default: str) -> list[str]:
    """``switch (k)`` with one braced block per case (each case returns)."""
    lines = ["    switch (k) {"]
    for k, body in enumerate(cases):
        lines += [f"    case {k}: {{", *("    " + line for line in body), "    }"]
    return lines + ["    default: break;", "    }", f"    return {default};"]


def model_functions(m: CompiledModel, stiff: bool = False) -> str:
    """The model-specific part of the kernel source; with its Jacobian when ``stiff`` (RODAS needs it)."""
    names = _names(m)
    ns, npar = len(m.species), len(m.parameters)
    cond = analysis.condition_events(m)
    timed = analysis.timed_schedule(m)
    watches = analysis.window_watches(m)
    out = [
        f"/* model: {_comment(m.name)}; {ns} species, {npar} parameters, {len(m.events)} events */",
        f"#define ILSIM_NS {ns}",
        f"#define ILSIM_NP {npar}",
        f"#define ILSIM_NC {len(cond)}",
        f"#define ILSIM_NW {len(watches)}",
        f"#define ILSIM_NTIMED {len(timed)}",
        f"#define ILSIM_USES_T {int(analysis.uses_time(m))}",
        "",
        "/* dy/dt: rates at max(y, 0) for non-negative species, which cannot fall below zero */",
        "ILSIM_DEVICE void ilsim_rhs(const double *y, double t, const double *p, double *dy) {",
        *_prologue(m, list(m.rate_trees), clip=True),
        *[f"    const double r_{j} = {c_expr(r, names)};" for j, r in enumerate(m.rate_trees)],
    ]
    for i in range(ns):
        terms = [f"{c_number(float(m.stoichiometry[i, j]))} * r_{j}" for j in range(len(m.rate_trees))
                 if m.stoichiometry[i, j]]
        out.append(f"    dy[{i}] = {' + '.join(terms) if terms else '0.0'};")
        if terms and m.nonnegative[i]:
            out.append(f"    if (y[{i}] <= 0.0 && dy[{i}] < 0.0) dy[{i}] = 0.0;")
    out += ["    (void)t; (void)p;", "}", ""]

    if stiff:
        out += _jacobian(m)

    out += ["ILSIM_DEVICE void ilsim_initial(const double *p, double *y) {"]
    out += [f"    y[{i}] = {c_expr(tr, names)};" for i, tr in enumerate(m.initial_trees)]
    out += ["    (void)p;", "}", ""]

    out += ["/* 1 when the initial state is finite and non-negative where it must be (else BAD_INITIAL) */",
            "ILSIM_DEVICE int ilsim_initial_ok(const double *y) {"]
    for i in range(ns):
        test = f"!ILSIM_ISFINITE(y[{i}])" + (f" || y[{i}] < 0.0" if m.nonnegative[i] else "")
        out.append(f"    if ({test}) return 0;")
    out += ["    return 1;", "}", ""]

    out += ["/* clip non-negative species at zero (after steps, events and on output) */",
            "ILSIM_DEVICE int ilsim_clip(double *y) {", "    int clipped = 0;"]
    out += [f"    if (y[{i}] < 0.0) {{ y[{i}] = 0.0; clipped = 1; }}" for i in range(ns) if m.nonnegative[i]]
    out += ["    return clipped;", "}", ""]

    roots = [[*_prologue(m, [tree], clip=False), f"    return {c_expr(tree, names)};"]
             for tree in [*(ex.root_function(m.events[k].condition) for k in cond), *watches]]
    truths = [[*_prologue(m, [m.events[k].condition], clip=False),
               f"    return ({c_expr(m.events[k].condition, names)}) ? 1 : 0;"] for k in cond]
    out += ["/* condition event k: a continuous function, positive while its condition holds; from ILSIM_NC on, the",
            "   window watches (analysis.window_watches): the comparisons inside compound conditions */",
            "ILSIM_DEVICE double ilsim_root(int k, double t, const double *y, const double *p) {",
            *_switch(roots, "0.0"), "}", "",
            "ILSIM_DEVICE int ilsim_condition(int k, double t, const double *y, const double *p) {",
            *_switch(truths, "0"), "}", "",
            "ILSIM_DEVICE int ilsim_event_of(int k) {",
            *_switch([[f"    return {e};"] for e in cond], "0"), "}", ""]
    scales = [[*_prologue(m, [m.events[k].condition], clip=False),
               f"    return {c_expr(analysis.condition_scale(m.events[k].condition), names)};"] for k in cond]
    out += ["/* condition k's size, |a| + |b| for 'a < b': its re-arm tolerance is rtol * size + atol */",
            "ILSIM_DEVICE double ilsim_scale(int k, double t, const double *y, const double *p) {",
            *_switch(scales, "1.0"), "}", ""]
    out += ["/* the first time in (t, t_stop) where a rate or observable switches (t compared with parameters) */",
            "ILSIM_DEVICE double ilsim_next_switch(double t, double t_stop, const double *p) {"]
    for tree in analysis.time_switches(m):
        out += ["    {", f"        const double v = {c_expr(tree, names)};", "        if (t < v && v < t_stop) t_stop = v;",
                "    }"]
    out += ["    (void)t; (void)p;", "    return t_stop;", "}", ""]

    # actions: the guard, then every value from the state before the event, then the jumps
    def jumps(ev, value) -> list[str]:
        lines = []
        for a, (mode, kind, i, _) in enumerate(ev.actions):
            target = f"y[{i}]" if kind == STATE else f"p[{i}]"
            lines.append(f"    {target} = {value(a)};" if mode == "set" else f"    {target} += {value(a)};")
        return [*lines, "    ilsim_clip(y);"]

    actions = []
    for ev in m.events:
        trees = ([] if ev.delay is not None else [node for *_, node in ev.actions]) + ([ev.guard] if ev.guard is not None else [])
        body = _prologue(m, trees, clip=False)
        if ev.guard is not None:
            body.append(f"    if (!({c_expr(ev.guard, names)})) return 0;")
        if ev.delay is not None:  # its actions wait in the patient's queue of pending firings
            actions.append([*body, "    return 2;"])
            continue
        body += [f"    const double v_{a} = {c_expr(node, names)};" for a, (*_, node) in enumerate(ev.actions)]
        actions.append([*body, *jumps(ev, lambda a: f"v_{a}"), "    return 1;"])
    out += ["/* event k fires: returns 0 when its guard withholds it, 2 when it has a delay (the caller queues it) */",
            "ILSIM_DEVICE int ilsim_apply(int k, double t, double *y, double *p) {",
            *_switch(actions, "0"), "}", ""]
    out += _delayed_events(m, jumps)

    touches = []
    for row in analysis.touches(m):
        hit = [str(c) for c in np.flatnonzero(row)]
        touches.append([f"    return {' || '.join(f'c == {h}' for h in hit)};"] if hit else ["    return 0;"])
    out += ["/* 1 when event k's jumps can change condition c (it is then re-tested at once) */",
            "ILSIM_DEVICE int ilsim_touches(int k, int c) {", "    (void)c;", *_switch(touches, "0"), "}", ""]

    times = ", ".join(c_number(time) for time, _ in timed) or "0.0"
    which = ", ".join(str(k) for _, k in timed) or "0"
    out += ["/* timed events, in the order engines.ode fires them: by time, then by declaration */",
            f"ILSIM_TABLE double ilsim_timed_t[] = {{{times}}};",
            f"ILSIM_TABLE int ilsim_timed_e[] = {{{which}}};", ""]
    # each species' own absolute tolerance; none: the largest double (a CUDA table cannot hold an infinity)
    caps = analysis.absolute_tolerances(m, sys.float_info.max)
    out += ["/* each species' own absolute tolerance (analysis.absolute_tolerances): atol_i = min(atol, this) */",
            f"ILSIM_TABLE double ilsim_atol_cap[] = {{{', '.join(c_number(v) for v in caps)}}};",
            f"#define ILSIM_ATOL_CAP_MIN {c_number(float(caps.min()))}", ""]
    return "\n".join(out)


def _delayed_events(m: CompiledModel, jumps) -> list[str]:
    """The delayed events' parts (SBML event delays): the delay, the guard (a timed event's trigger, tested again
    when it comes due unless persistent), the action values and the jumps from given values, and a table per event
    (delayed, persistent, values taken at the trigger, condition slot or -1); ILSIM_QW: a queue row's width."""
    names = _names(m)
    delayed = [k for k, e in enumerate(m.events) if e.delay is not None]
    slots = {k: s for s, k in enumerate(analysis.condition_events(m))}
    delays, guards, values, applies = [], [], [], []
    for k in range(len(m.events)):
        ev = m.events[k]
        if ev.delay is None:
            delays.append(["    return 0.0;"])
            guards.append(["    return 1;"])
            values.append(["    return 0;"])
            applies.append(["    return 0;"])
            continue
        delays.append([*_prologue(m, [ev.delay], clip=False), f"    return {c_expr(ev.delay, names)};"])
        guards.append([*_prologue(m, [ev.guard], clip=False), f"    return ({c_expr(ev.guard, names)}) ? 1 : 0;"]
                      if ev.guard is not None else ["    return 1;"])
        trees = [node for *_, node in ev.actions]
        values.append([*_prologue(m, trees, clip=False),
                       *[f"    v[{a}] = {c_expr(node, names)};" for a, node in enumerate(trees)], "    return 1;"])
        applies.append([*jumps(ev, lambda a: f"v[{a}]"), "    return 1;"])
    width = 3 + max((len(m.events[k].actions) for k in delayed), default=0)
    info = ", ".join(f"{{{int(e.delay is not None)}, {int(e.persistent)}, {int(e.values_at_trigger)}, {slots.get(k, -1)}}}"
                     for k, e in enumerate(m.events)) or "{0, 0, 0, -1}"
    return [f"#define ILSIM_NDELAYED {len(delayed)}", f"#define ILSIM_QW {width}",
            "/* per event: (delayed, persistent, values taken at the trigger, condition slot or -1) */",
            f"ILSIM_TABLE int ilsim_delayed[][4] = {{{info}}};",
            "ILSIM_DEVICE double ilsim_delay(int k, double t, const double *y, const double *p) {",
            *_switch(delays, "0.0"), "}", "",
            "ILSIM_DEVICE int ilsim_guard(int k, double t, const double *y, const double *p) {",
            *_switch(guards, "1"), "}", "",
            "/* a delayed event's action values from the state (t, y, p) */",
            "ILSIM_DEVICE int ilsim_values(int k, double t, const double *y, const double *p, double *v) {",
            *_switch(values, "0"), "}", "",
            "/* a delayed event's jumps with the values v */",
            "ILSIM_DEVICE int ilsim_jump(int k, double *y, double *p, const double *v) {",
            *_switch(applies, "0"), "}", ""]


def _jacobian(m: CompiledModel) -> list[str]:
    """df/dy into J (by rows) from the analytic entries (``model.compile.jacobian_entries``), at the raw state
    as the numba engine's Jacobian."""
    ns, entries = len(m.species), jacobian_entries(m)
    names = _names(m)
    return ["/* df/dy (analytic), by rows: the stiff method's Jacobian */",
            "ILSIM_DEVICE void ilsim_jac(const double *y, double t, const double *p, double *J) {",
            *_prologue(m, [tree for *_, tree in entries], clip=False),
            f"    for (int i = 0; i < {ns * ns}; ++i) J[i] = 0.0;",
            *[f"    J[{i * ns + k}] = {c_expr(tree, names)};" for i, k, tree in entries],
            "    (void)y; (void)t; (void)p;", "}", ""]


def _comment(text: str) -> str:
    """A model name for a comment: letters, digits, space and '.-_' only, so it cannot end the comment."""
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch in " .-_") else "_" for ch in text)[:80]


# ------------------------------------------------------------------------------ fixed parts

PRELUDE = r"""/* Generated by ilsim: one patient per thread; C99 and CUDA C from the same text. */
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define ILSIM_GLOBAL extern "C" __global__
#define ILSIM_DEVICE static __device__ __forceinline__
#define ILSIM_TABLE __device__ const
#define ILSIM_INF __longlong_as_double(0x7ff0000000000000LL)
#define ILSIM_NAN __longlong_as_double(0x7ff8000000000000LL)
#define ILSIM_ISFINITE(x) isfinite(x)
#define ILSIM_PATIENT_LOOP(j, n) \
    for (long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x; j < (n); j += (long long)blockDim.x * gridDim.x)
#else
#include <math.h>
#define ILSIM_GLOBAL
#define ILSIM_DEVICE static inline
#define ILSIM_TABLE static const
#define ILSIM_INF INFINITY
#define ILSIM_NAN NAN
#define ILSIM_ISFINITE(x) isfinite(x)
#if defined(_OPENMP)
#define ILSIM_PATIENT_LOOP(j, n) _Pragma("omp parallel for schedule(dynamic, 4)") for (long long j = 0; j < (n); ++j)
#else
#define ILSIM_PATIENT_LOOP(j, n) for (long long j = 0; j < (n); ++j)
#endif
#endif

/* Python's min/max on two values: the first unless the second is strictly beyond it (NaN stays) */
ILSIM_DEVICE double ilsim_min(double a, double b) { return b < a ? b : a; }
ILSIM_DEVICE double ilsim_max(double a, double b) { return b > a ? b : a; }
ILSIM_DEVICE double ilsim_pow2(double x) { return x * x; }
ILSIM_DEVICE double ilsim_pow3(double x) { return x * x * x; }
ILSIM_DEVICE double ilsim_pow4(double x) { const double x2 = x * x; return x2 * x2; }
/* saturating activation x^n / (K^n + x^n) */
ILSIM_DEVICE double ilsim_hill(double x, double k, double n) { const double xn = pow(x, n); return xn / (pow(k, n) + xn); }
"""

# The integrator: engines.batch's DOPRI5 and RODAS (same coefficients, controllers, stiffness test and status
# codes) with their dense outputs and the event loop of engines.ode; ILSIM_METHOD picks the method(s) compiled in.
INTEGRATOR = r"""
#define ILSIM_OK __OK__
#define ILSIM_NON_FINITE __NON_FINITE__
#define ILSIM_STEP_UNDERFLOW __STEP_UNDERFLOW__
#define ILSIM_MAX_STEPS __MAX_STEPS__
#define ILSIM_BAD_INITIAL __BAD_INITIAL__
#define ILSIM_ENDLESS_EVENTS __ENDLESS_EVENTS__
#define ILSIM_PENDING_FULL __PENDING_FULL__
#define ILSIM_BAD_DELAY __BAD_DELAY__
#define ILSIM_MAX_CASCADE __MAX_CASCADE__
#define ILSIM_NC1 (ILSIM_NC > 0 ? ILSIM_NC : 1)
#define ILSIM_NG1 (ILSIM_NC + ILSIM_NW > 0 ? ILSIM_NC + ILSIM_NW : 1) /* root functions: conditions, then watches */
#define ILSIM_CASCADE (4 * ILSIM_NC + 4)
#define ILSIM_UROUND UROUND

/* coefficients and control constants: printed from ilsim.engines.tableaux (the numba engine reads the same) */
__TABLEAUX__

/* methods: ILSIM_METHOD (set before this text) picks what the kernel holds; auto starts on DOPRI5 and
   moves a patient to RODAS for the rest of its run once Hairer's stiffness test (h |lambda| > STIFF_BOUND,
   from DOPRI5's last two stages) has fired on ILSIM_STIFF_STEPS accepted steps, as engines.batch */
#define ILSIM_DOPRI5 __DOPRI5__
#define ILSIM_RODAS __RODAS__
#define ILSIM_AUTO __AUTO__
#define ILSIM_HAS_RODAS (ILSIM_METHOD != ILSIM_DOPRI5)
#define ILSIM_STIFF_STEPS STIFF_STEPS

/* the method a patient is on (auto moves it to RODAS once) and auto's stiffness counters (dopri5.f) */
typedef struct { int rodas, iasti, nonsti; } ilsim_method;

ILSIM_DEVICE int ilsim_all_finite(const double *v) {
    for (int i = 0; i < ILSIM_NS; ++i)
        if (!ILSIM_ISFINITE(v[i])) return 0;
    return 1;
}

ILSIM_DEVICE void ilsim_store(const double *y, double *row) {
    for (int i = 0; i < ILSIM_NS; ++i) row[i] = y[i];
    ilsim_clip(row);
}

/* sqrt(mean((e_i / sc_i)^2)), sc_i = atol_i + rtol * max(|y_i|, |ynew_i|), atol_i = min(atol, species i's own) */
ILSIM_DEVICE double ilsim_error_norm(const double *e, const double *y, const double *ynew, double rtol, double atol) {
    double s = 0.0;
    for (int i = 0; i < ILSIM_NS; ++i) {
        const double sc = fmin(atol, ilsim_atol_cap[i]) + rtol * ilsim_max(fabs(y[i]), fabs(ynew[i]));
        s += (e[i] / sc) * (e[i] / sc);
    }
    return sqrt(s / ILSIM_NS);
}

#if ILSIM_HAS_RODAS
#define ILSIM_AT(A, i, j) A[(i) * ILSIM_NS + (j)]

/* In-place LU with partial pivoting of an ns x ns matrix (by rows); 0 when a pivot is zero or not finite */
ILSIM_DEVICE int ilsim_lu_factor(double *A, int *piv) {
    for (int k = 0; k < ILSIM_NS; ++k) {
        int m = k;
        double big = fabs(ILSIM_AT(A, k, k));
        for (int i = k + 1; i < ILSIM_NS; ++i)
            if (fabs(ILSIM_AT(A, i, k)) > big) { big = fabs(ILSIM_AT(A, i, k)); m = i; }
        piv[k] = m;
        if (!(big > 0.0) || !ILSIM_ISFINITE(big)) return 0;
        if (m != k)
            for (int j = 0; j < ILSIM_NS; ++j) {
                const double a = ILSIM_AT(A, k, j);
                ILSIM_AT(A, k, j) = ILSIM_AT(A, m, j);
                ILSIM_AT(A, m, j) = a;
            }
        const double inv = 1.0 / ILSIM_AT(A, k, k);
        for (int i = k + 1; i < ILSIM_NS; ++i) {
            ILSIM_AT(A, i, k) *= inv;
            const double a = ILSIM_AT(A, i, k);
            if (a != 0.0)
                for (int j = k + 1; j < ILSIM_NS; ++j) ILSIM_AT(A, i, j) -= a * ILSIM_AT(A, k, j);
        }
    }
    return 1;
}

/* Solve A x = b in place, A and piv from ilsim_lu_factor */
ILSIM_DEVICE void ilsim_lu_solve(const double *A, const int *piv, double *b) {
    for (int k = 0; k < ILSIM_NS; ++k)
        if (piv[k] != k) { const double v = b[k]; b[k] = b[piv[k]]; b[piv[k]] = v; }
    for (int i = 1; i < ILSIM_NS; ++i) {
        double s = b[i];
        for (int j = 0; j < i; ++j) s -= ILSIM_AT(A, i, j) * b[j];
        b[i] = s;
    }
    for (int i = ILSIM_NS - 1; i >= 0; --i) {
        double s = b[i];
        for (int j = i + 1; j < ILSIM_NS; ++j) s -= ILSIM_AT(A, i, j) * b[j];
        b[i] = s / ILSIM_AT(A, i, i);
    }
}

/* One trial RODAS step from (t, y) with f0 = f(t, y) and dT = df/dt: each stage solves
   (I / (h gamma) - J) k_i = f(t + c_i h, y + sum a_ij k_j) + sum (C_ij / h) k_j + h d_i dT.
   J is evaluated into W (one ns x ns matrix per patient: no copy of J is kept, a rejected step evaluates
   it again). Returns the error norm (k6 is the difference of the embedded solutions), infinite when W is
   singular; u and fb are scratch. */
ILSIM_DEVICE double ilsim_rodas_try(double t, double h, const double *y, const double *f0, const double *dT,
                                    const double *p, double *W, int *piv, double *k1, double *k2, double *k3,
                                    double *k4, double *k5, double *k6, double *u, double *fb, double *ynew,
                                    double rtol, double atol) {
    ilsim_jac(y, t, p, W);
    for (int i = 0; i < ILSIM_NS * ILSIM_NS; ++i) W[i] = -W[i];
    const double hg = 1.0 / (h * GAMMA);
    for (int i = 0; i < ILSIM_NS; ++i) ILSIM_AT(W, i, i) += hg;
    if (!ilsim_lu_factor(W, piv)) return ILSIM_INF;
    const double ih = 1.0 / h;
    for (int i = 0; i < ILSIM_NS; ++i) k1[i] = f0[i] + h * R_D1 * dT[i];
    ilsim_lu_solve(W, piv, k1);
    for (int i = 0; i < ILSIM_NS; ++i) u[i] = y[i] + R_A21 * k1[i];
    ilsim_rhs(u, t + R_C2 * h, p, fb);
    for (int i = 0; i < ILSIM_NS; ++i) k2[i] = fb[i] + h * R_D2 * dT[i] + ih * R_C21 * k1[i];
    ilsim_lu_solve(W, piv, k2);
    for (int i = 0; i < ILSIM_NS; ++i) u[i] = y[i] + R_A31 * k1[i] + R_A32 * k2[i];
    ilsim_rhs(u, t + R_C3 * h, p, fb);
    for (int i = 0; i < ILSIM_NS; ++i) k3[i] = fb[i] + h * R_D3 * dT[i] + ih * (R_C31 * k1[i] + R_C32 * k2[i]);
    ilsim_lu_solve(W, piv, k3);
    for (int i = 0; i < ILSIM_NS; ++i) u[i] = y[i] + R_A41 * k1[i] + R_A42 * k2[i] + R_A43 * k3[i];
    ilsim_rhs(u, t + R_C4 * h, p, fb);
    for (int i = 0; i < ILSIM_NS; ++i)
        k4[i] = fb[i] + h * R_D4 * dT[i] + ih * (R_C41 * k1[i] + R_C42 * k2[i] + R_C43 * k3[i]);
    ilsim_lu_solve(W, piv, k4);
    for (int i = 0; i < ILSIM_NS; ++i) u[i] = y[i] + R_A51 * k1[i] + R_A52 * k2[i] + R_A53 * k3[i] + R_A54 * k4[i];
    ilsim_rhs(u, t + h, p, fb);
    for (int i = 0; i < ILSIM_NS; ++i) k5[i] = fb[i] + ih * (R_C51 * k1[i] + R_C52 * k2[i] + R_C53 * k3[i] + R_C54 * k4[i]);
    ilsim_lu_solve(W, piv, k5);
    for (int i = 0; i < ILSIM_NS; ++i) u[i] += k5[i];
    ilsim_rhs(u, t + h, p, fb);
    for (int i = 0; i < ILSIM_NS; ++i)
        k6[i] = fb[i] + ih * (R_C61 * k1[i] + R_C62 * k2[i] + R_C63 * k3[i] + R_C64 * k4[i] + R_C65 * k5[i]);
    ilsim_lu_solve(W, piv, k6);
    for (int i = 0; i < ILSIM_NS; ++i) ynew[i] = u[i] + k6[i];
    return ilsim_error_norm(k6, y, ynew, rtol, atol);
}

/* df/dt by a forward difference (only for models whose rates read t), as engines.batch */
ILSIM_DEVICE void ilsim_time_derivative(const double *y, double t, const double *p, const double *f0, double *dT,
                                        double *scratch) {
    const double delta = sqrt(ILSIM_UROUND * ilsim_max(1e-5, fabs(t)));
    ilsim_rhs(y, t + delta, p, scratch);
    for (int i = 0; i < ILSIM_NS; ++i) dT[i] = (scratch[i] - f0[i]) / delta;
}
#endif

/* Hairer's starting step, as engines.batch */
ILSIM_DEVICE double ilsim_initial_step(const double *y, const double *f0, double t, const double *p,
                                       double rtol, double atol, double span, double *tmp, double *f1) {
    double d0 = 0.0, d1 = 0.0;
    for (int i = 0; i < ILSIM_NS; ++i) {
        const double sc = fmin(atol, ilsim_atol_cap[i]) + rtol * fabs(y[i]);
        d0 += (y[i] / sc) * (y[i] / sc);
        d1 += (f0[i] / sc) * (f0[i] / sc);
    }
    d0 = sqrt(d0 / ILSIM_NS);
    d1 = sqrt(d1 / ILSIM_NS);
    double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    h0 = ilsim_min(h0, span);
    for (int i = 0; i < ILSIM_NS; ++i) tmp[i] = y[i] + h0 * f0[i];
    ilsim_rhs(tmp, t + h0, p, f1);
    double d2 = 0.0;
    for (int i = 0; i < ILSIM_NS; ++i) {
        const double sc = fmin(atol, ilsim_atol_cap[i]) + rtol * fabs(y[i]);
        d2 += ((f1[i] - f0[i]) / sc) * ((f1[i] - f0[i]) / sc);
    }
    d2 = sqrt(d2 / ILSIM_NS) / h0;
    const double dm = ilsim_max(d1, d2);
    const double h1 = !(dm > 1e-15) ? ilsim_max(1e-6, h0 * 1e-3) : pow(0.01 / dm, 0.2);
    double h = ilsim_min(ilsim_min(100.0 * h0, h1), span);
    if (!(h > 0.0) || !ILSIM_ISFINITE(h)) h = ilsim_min(1e-6, span);
    return h;
}

/* the dense-output polynomial at theta in [0, 1] of the step from y0; RODAS's 3rd-order one,
   (1 - theta) y0 + theta (y1 + (1 - theta) (h2 + theta h3)), is this form with r3 = h2, r4 = h3, r5 = 0 */
ILSIM_DEVICE void ilsim_dense(double theta, const double *y0, const double *ydiff, const double *r3,
                              const double *r4, const double *r5, double *out) {
    const double theta1 = 1.0 - theta;
    for (int i = 0; i < ILSIM_NS; ++i)
        out[i] = y0[i] + theta * (ydiff[i] + theta1 * (r3[i] + theta * (r4[i] + theta1 * r5[i])));
}

/* How far below zero condition c's root function must go before it counts as false again: the solver
   tolerance on the compared quantities, rtol * (|a| + |b|) + atol, as engines.ode. */
ILSIM_DEVICE double ilsim_dead_band(int c, double t, const double *y, const double *p, double rtol, double atol) {
    const double floor_atol = fmin(atol, ILSIM_ATOL_CAP_MIN); /* the smallest species' absolute tolerance */
    const double band = rtol * ilsim_scale(c, t, y, p) + floor_atol;
    return ILSIM_ISFINITE(band) ? band : floor_atol;
}

/* Delayed events (SBML event delays), as engines.ode runs them: a triggered event with a delay goes into the
   patient's queue of pending firings, a row (time due, order, event, the action values if it takes them at the
   trigger) kept sorted by time due, then order of triggering (firings so far plus those pending, as engines.ode);
   MAX_PENDING rows (tableaux.py), PENDING_FULL past them. A model without delays keeps a queue of one row. */
#define ILSIM_QROWS (ILSIM_NDELAYED > 0 ? MAX_PENDING : 1)
typedef struct {
    int n;          /* rows in use */
    double fired;   /* firings so far (the order of a new row) */
    double row[ILSIM_QROWS * ILSIM_QW];
} ilsim_queue;

ILSIM_DEVICE int ilsim_enqueue(int e, double t, const double *y, const double *p, ilsim_queue *q) {
    const double delay = ilsim_delay(e, t, y, p);
    if (!(delay >= 0.0 && ILSIM_ISFINITE(delay))) return ILSIM_BAD_DELAY;
    if (q->n >= ILSIM_QROWS) return ILSIM_PENDING_FULL;
    const double due = t + delay, order = q->fired + q->n;
    int at = q->n;
    while (at > 0 && (q->row[(at - 1) * ILSIM_QW] > due ||
                      (q->row[(at - 1) * ILSIM_QW] == due && q->row[(at - 1) * ILSIM_QW + 1] > order))) at -= 1;
    for (int r = q->n; r > at; --r)
        for (int c = 0; c < ILSIM_QW; ++c) q->row[r * ILSIM_QW + c] = q->row[(r - 1) * ILSIM_QW + c];
    double *row = q->row + at * ILSIM_QW;
    row[0] = due;
    row[1] = order;
    row[2] = e;
    if (ilsim_delayed[e][2]) ilsim_values(e, t, y, p, row + 3);
    q->n += 1;
    return ILSIM_OK;
}

/* condition event e is false again: its pending firings are dropped unless it is persistent */
ILSIM_DEVICE void ilsim_drop(int e, ilsim_queue *q) {
    if (ilsim_delayed[e][1]) return;
    int kept = 0;
    for (int r = 0; r < q->n; ++r) {
        if ((int)q->row[r * ILSIM_QW + 2] == e) continue;
        if (kept != r)
            for (int c = 0; c < ILSIM_QW; ++c) q->row[kept * ILSIM_QW + c] = q->row[r * ILSIM_QW + c];
        kept += 1;
    }
    q->n = kept;
}

/* Event e triggers: 1 when its actions were applied now, 0 when its guard withholds it or it was queued (a
   delayed event), or a negative status when the queue refuses it. */
ILSIM_DEVICE int ilsim_trigger(int e, double t, double *y, double *p, ilsim_queue *q) {
    const int a = ilsim_apply(e, t, y, p);
    if (a == 2) {
        const int code = ilsim_enqueue(e, t, y, p, q);
        return code == ILSIM_OK ? 0 : -code;
    }
    q->fired += a;
    return a;
}

/* An event fires (guard permitting; queued if it has a delay); the conditions its jumps can change are re-tested
   at once and fired if they became true, depth first, as engines.ode does (one made false re-arms only beyond
   its dead band); returns a status. ``due``: NULL, or the row of a pending firing come due (its values, if it
   took them at its trigger). */
ILSIM_DEVICE int ilsim_fire(int e, double t, double *y, double *p, int *armed, double *band, double rtol,
                            double atol, ilsim_queue *q, const double *due) {
    if (due) {
        double v[ILSIM_QW];
        if (ilsim_delayed[e][2]) {
            for (int c = 3; c < ILSIM_QW; ++c) v[c - 3] = due[c];
        } else {
            ilsim_values(e, t, y, p, v);
        }
        ilsim_jump(e, y, p, v);
        q->fired += 1;
    } else {
        const int a = ilsim_trigger(e, t, y, p, q);
        if (a <= 0) return -a;
    }
#if ILSIM_NC > 0
    int count = 1;
    int stack_e[ILSIM_CASCADE], stack_c[ILSIM_CASCADE];
    int sp = 1;
    stack_e[0] = e;
    stack_c[0] = 0;
    while (sp > 0) {
        const int top = sp - 1;
        const int c = stack_c[top];
        if (c >= ILSIM_NC) { sp -= 1; continue; }
        stack_c[top] = c + 1;
        if (!ilsim_touches(stack_e[top], c)) continue;
        const int truth = ilsim_condition(c, t, y, p);
        if (armed[c] && truth) {
            if (count >= ILSIM_MAX_CASCADE || sp >= ILSIM_CASCADE) return ILSIM_ENDLESS_EVENTS;
            armed[c] = 0;
            band[c] = ilsim_dead_band(c, t, y, p, rtol, atol);
            const int ce = ilsim_event_of(c);
            const int a = ilsim_trigger(ce, t, y, p, q);
            if (a < 0) return -a;
            if (a > 0) {
                count += 1;
                stack_e[sp] = ce;
                stack_c[sp] = 0;
                sp += 1;
            }
        } else if (!truth && !armed[c] && ilsim_root(c, t, y, p) < -band[c]) {
            armed[c] = 1;
            ilsim_drop(ilsim_event_of(c), q);
        }
    }
#else
    (void)armed; (void)band; (void)rtol; (void)atol;
#endif
    return ILSIM_OK;
}

/* The pending firings due by t, in the order they were triggered (with the cascades their jumps set off); one
   whose trigger is false now is dropped unless its event is persistent. Returns a status. */
ILSIM_DEVICE int ilsim_run_due(double t, double *y, double *p, int *armed, double *band, double rtol, double atol,
                               ilsim_queue *q) {
    while (q->n > 0 && q->row[0] <= t) {
        double row[ILSIM_QW];
        for (int c = 0; c < ILSIM_QW; ++c) row[c] = q->row[c];
        for (int r = 0; r + 1 < q->n; ++r)
            for (int c = 0; c < ILSIM_QW; ++c) q->row[r * ILSIM_QW + c] = q->row[(r + 1) * ILSIM_QW + c];
        q->n -= 1;
        const int e = (int)row[2];
        const int slot = ilsim_delayed[e][3];
        /* a condition holds while disarmed (seen false beyond its dead band, it re-armed and dropped the firing) */
        const int holds = ilsim_delayed[e][1] ? 1 : (slot >= 0 ? !armed[slot] : ilsim_guard(e, t, y, p));
        if (holds) {
            const int code = ilsim_fire(e, t, y, p, armed, band, rtol, atol, q, row);
            if (code != ILSIM_OK) return code;
        }
    }
    return ILSIM_OK;
}

/* At a segment's end, every condition is tested where it is, as engines.ode does: one that holds now fires
   ('time == 3' at the switch at 3), one false beyond its dead band re-arms; returns a status. */
ILSIM_DEVICE int ilsim_retest(double t, double *y, double *p, int *armed, double *band, double rtol, double atol,
                              ilsim_queue *q) {
    for (int c = 0; c < ILSIM_NC; ++c) {
        const int truth = ilsim_condition(c, t, y, p);
        if (armed[c] && truth) {
            armed[c] = 0;
            band[c] = ilsim_dead_band(c, t, y, p, rtol, atol);
            const int code = ilsim_fire(ilsim_event_of(c), t, y, p, armed, band, rtol, atol, q, 0);
            if (code != ILSIM_OK) return code;
        } else if (!truth && !armed[c] && ilsim_root(c, t, y, p) < -band[c]) {
            armed[c] = 1;
            ilsim_drop(ilsim_event_of(c), q);
        }
    }
    return ILSIM_OK;
}

/* Where condition c (its root function g plus offset; ga, gb include it) crosses zero in [ta, tb] on the
   step's dense output: Illinois false position; returns a time at or just after the crossing. */
ILSIM_DEVICE double ilsim_locate(int c, double sign, double offset, double ta, double ga, double tb, double gb,
                                 double t0, double hs, const double *y0, const double *ydiff, const double *r3,
                                 const double *r4, const double *r5, const double *p, double *scratch) {
    double fa = sign * ga, fb = sign * gb;
    int side = 0;
    for (int it = 0; it < 200 && tb - ta > 4.0 * ILSIM_UROUND * ilsim_max(fabs(tb), 1.0); ++it) {
        double tm = (fb - fa > 0.0) ? tb - fb * (tb - ta) / (fb - fa) : 0.5 * (ta + tb);
        if (!(tm > ta && tm < tb)) tm = 0.5 * (ta + tb);
        ilsim_dense((tm - t0) / hs, y0, ydiff, r3, r4, r5, scratch);
        const double fm = sign * (ilsim_root(c, tm, scratch, p) + offset);
        if (fm >= 0.0) {
            tb = tm; fb = fm;
            if (side == 1) fa *= 0.5;
            side = 1;
            if (fm == 0.0) break;
        } else {
            ta = tm; fa = fm;
            if (side == -1) fb *= 0.5;
            side = -1;
        }
    }
    return tb;
}

/* Integrate from *t_io to t_stop, writing outputs t_eval[*k_out] < t_stop from the dense output.
   Stops early at the first condition-event crossing (*hit = its index, *t_io = its time) or window watch crossing
   (*hit = ILSIM_NC + the watch's index).
   Returns a status. */
ILSIM_DEVICE int ilsim_segment(const double *t_eval, long long nt, long long *k_out, double *out,
                               double *t_io, double t_stop, double *y, const double *p, const int *armed,
                               const double *band, int *hit, double rtol, double atol, long long max_steps, long long *steps,
                               ilsim_method *method) {
    /* DOPRI5's stages k1..k7; RODAS keeps f(t, y) in k1 and its stages in k2..k7 (tmp and r5 as scratch) */
    double k1[ILSIM_NS], k2[ILSIM_NS], k3[ILSIM_NS], k4[ILSIM_NS], k5[ILSIM_NS], k6[ILSIM_NS], k7[ILSIM_NS];
    double ynew[ILSIM_NS], tmp[ILSIM_NS], r3[ILSIM_NS], r4[ILSIM_NS], r5[ILSIM_NS];
    double g_old[ILSIM_NG1], g_new[ILSIM_NG1];
#if ILSIM_HAS_RODAS
    double W[ILSIM_NS * ILSIM_NS], dT[ILSIM_NS];
    int piv[ILSIM_NS];
    int need_dT = 1;
    double h_acc = 0.0, err_acc = 1e-2; /* the last accepted RODAS step and its error; none yet in this segment */
    for (int i = 0; i < ILSIM_NS; ++i) dT[i] = 0.0;
#define ILSIM_ON_RODAS (method->rodas)
#else
#define ILSIM_ON_RODAS 0
    (void)method;
#endif
    double t = *t_io;
    *hit = -1;
    ilsim_rhs(y, t, p, k1);
    if (!ilsim_all_finite(k1)) return ILSIM_NON_FINITE;
    double h = ilsim_initial_step(y, k1, t, p, rtol, atol, t_stop - t, tmp, k2);
    double err_old = 1e-4;
    int rejected = 0, last_nonfinite = 0;
    for (int c = 0; c < ILSIM_NC + ILSIM_NW; ++c) g_old[c] = ilsim_root(c, t, y, p);
    int watching = 0; /* watches matter only while a condition can fire (as engines.ode) */
    for (int c = 0; c < ILSIM_NC; ++c) watching = watching || armed[c];
    while (t < t_stop) {
        if (*steps >= max_steps) return ILSIM_MAX_STEPS;
        const double remaining = t_stop - t;
        const int clipped = h >= remaining;
        const double hs = clipped ? remaining : h;
        if (hs <= 16.0 * ILSIM_UROUND * ilsim_max(fabs(t), 1e-300))
            return last_nonfinite ? ILSIM_NON_FINITE : ILSIM_STEP_UNDERFLOW;
        *steps += 1;
        const double t_new = clipped ? t_stop : t + hs;
        const int rodas = ILSIM_ON_RODAS;
        double err;
#if ILSIM_HAS_RODAS
        if (rodas) {
            if (ILSIM_USES_T && need_dT) ilsim_time_derivative(y, t, p, k1, dT, tmp);
            need_dT = 0;
            err = ilsim_rodas_try(t, hs, y, k1, dT, p, W, piv, k2, k3, k4, k5, k6, k7, tmp, r5, ynew, rtol, atol);
        } else
#endif
        {
            for (int i = 0; i < ILSIM_NS; ++i) tmp[i] = y[i] + hs * A21 * k1[i];
            ilsim_rhs(tmp, t + C2 * hs, p, k2);
            for (int i = 0; i < ILSIM_NS; ++i) tmp[i] = y[i] + hs * (A31 * k1[i] + A32 * k2[i]);
            ilsim_rhs(tmp, t + C3 * hs, p, k3);
            for (int i = 0; i < ILSIM_NS; ++i) tmp[i] = y[i] + hs * (A41 * k1[i] + A42 * k2[i] + A43 * k3[i]);
            ilsim_rhs(tmp, t + C4 * hs, p, k4);
            for (int i = 0; i < ILSIM_NS; ++i)
                tmp[i] = y[i] + hs * (A51 * k1[i] + A52 * k2[i] + A53 * k3[i] + A54 * k4[i]);
            ilsim_rhs(tmp, t + C5 * hs, p, k5);
            for (int i = 0; i < ILSIM_NS; ++i) /* tmp keeps this stage's state: the stiffness test reads it */
                tmp[i] = y[i] + hs * (A61 * k1[i] + A62 * k2[i] + A63 * k3[i] + A64 * k4[i] + A65 * k5[i]);
            ilsim_rhs(tmp, t + hs, p, k6);
            for (int i = 0; i < ILSIM_NS; ++i)
                ynew[i] = y[i] + hs * (A71 * k1[i] + A73 * k3[i] + A74 * k4[i] + A75 * k5[i] + A76 * k6[i]);
            ilsim_rhs(ynew, t + hs, p, k7);
            for (int i = 0; i < ILSIM_NS; ++i)
                r3[i] = hs * (E1 * k1[i] + E3 * k3[i] + E4 * k4[i] + E5 * k5[i] + E6 * k6[i] + E7 * k7[i]);
            err = ilsim_error_norm(r3, y, ynew, rtol, atol);
        }
        if (!ILSIM_ISFINITE(err) || !ilsim_all_finite(ynew) || !ilsim_all_finite(k7)) {
            last_nonfinite = 1;
            rejected = 1;
            h = hs * FAC_MIN;
            continue;
        }
        last_nonfinite = 0;
        if (!(err <= 1.0)) {
            h = hs * ilsim_max(FAC_MIN, SAFETY * pow(err, rodas ? -0.25 : -0.2));
            rejected = 1;
            continue;
        }
        /* accepted. Hairer's stiffness test on DOPRI5's last two stages (auto only) */
        int looks_stiff = 0;
#if ILSIM_METHOD == ILSIM_AUTO
        if (!rodas) {
            double stnum = 0.0, stden = 0.0;
            for (int i = 0; i < ILSIM_NS; ++i) {
                stnum += (k7[i] - k6[i]) * (k7[i] - k6[i]);
                stden += (ynew[i] - tmp[i]) * (ynew[i] - tmp[i]);
            }
            looks_stiff = stden > 0.0 && hs * sqrt(stnum / stden) > STIFF_BOUND;
        }
#endif
        /* dense output of the step (before clipping: the polynomial of the step itself) */
        if (rodas) {
            for (int i = 0; i < ILSIM_NS; ++i) {
                r3[i] = R_H21 * k2[i] + R_H22 * k3[i] + R_H23 * k4[i] + R_H24 * k5[i] + R_H25 * k6[i];
                r4[i] = R_H31 * k2[i] + R_H32 * k3[i] + R_H33 * k4[i] + R_H34 * k5[i] + R_H35 * k6[i];
                r5[i] = 0.0;
                tmp[i] = ynew[i] - y[i];
            }
        } else {
            for (int i = 0; i < ILSIM_NS; ++i) {
                const double ydiff = ynew[i] - y[i];
                const double bspl = hs * k1[i] - ydiff;
                tmp[i] = ydiff;
                r3[i] = bspl;
                r4[i] = ydiff - hs * k7[i] - bspl;
                r5[i] = hs * (D1 * k1[i] + D3 * k3[i] + D4 * k4[i] + D5 * k5[i] + D6 * k6[i] + D7 * k7[i]);
            }
        }
        const int clipped_state = ilsim_clip(ynew);
        /* condition events: a crossing in the direction that matters (up while armed, down while not) */
        double t_hit = t_new;
        for (int c = 0; c < ILSIM_NC; ++c) {
            /* at the segment's end, just before it: a condition that switches there is tested there (retest) */
            g_new[c] = ilsim_root(c, t_new == t_stop ? nextafter(t_stop, t) : t_new, ynew, p);
            const double off = armed[c] ? 0.0 : band[c]; /* a disarmed condition must fall below -band to re-arm */
            const double a = g_old[c] + off, b = g_new[c] + off;
            const int up = (a < 0.0 && b >= 0.0) || (a <= 0.0 && b > 0.0);
            const int down = (a > 0.0 && b <= 0.0) || (a >= 0.0 && b < 0.0);
            if (armed[c] ? up : down) {
                const double tc = ilsim_locate(c, armed[c] ? 1.0 : -1.0, off, t, a, t_new, b, t, hs, y, tmp, r3, r4,
                                               r5, p, k2);
                if (*hit < 0 || tc < t_hit) { *hit = c; t_hit = tc; }
            }
        }
        /* a watched comparison that changes truth inside the step (one sitting on zero where the step starts has
           just been stopped at): where an armed condition then holds, the step ends there and the conditions are
           tested (ilsim_retest); a crossing that opens no window costs no restart */
        for (int w = ILSIM_NC; w < ILSIM_NC + ILSIM_NW; ++w) {
            g_new[w] = ilsim_root(w, t_new == t_stop ? nextafter(t_stop, t) : t_new, ynew, p);
            const double a = g_old[w], b = g_new[w];
            if (watching && a != 0.0 && (a >= 0.0) != (b >= 0.0)) {
                const double tc = ilsim_locate(w, a < 0.0 ? 1.0 : -1.0, 0.0, t, a, t_new, b, t, hs, y, tmp, r3, r4, r5,
                                               p, k2);
                if (*hit >= 0 && tc >= t_hit) continue;
                ilsim_dense((tc - t) / hs, y, tmp, r3, r4, r5, k2); /* the state the hit below moves to */
                ilsim_clip(k2);
                for (int c = 0; c < ILSIM_NC; ++c) {
                    if (armed[c] && ilsim_condition(c, tc, k2, p)) { *hit = w; t_hit = tc; break; }
                }
            }
        }
        /* outputs inside the step; one at t_stop or at a crossing is written after its events */
        while (*k_out < nt && t_eval[*k_out] < t_stop && (*hit >= 0 ? t_eval[*k_out] < t_hit : t_eval[*k_out] <= t_new)) {
            const double te = t_eval[*k_out];
            if (te == t_new) {
                ilsim_store(ynew, out + *k_out * ILSIM_NS);
            } else {
                ilsim_dense((te - t) / hs, y, tmp, r3, r4, r5, k2);
                ilsim_store(k2, out + *k_out * ILSIM_NS);
            }
            *k_out += 1;
        }
        if (*hit >= 0) {
            ilsim_dense((t_hit - t) / hs, y, tmp, r3, r4, r5, k2);
            for (int i = 0; i < ILSIM_NS; ++i) y[i] = k2[i];
            ilsim_clip(y);
            *t_io = t_hit;
            return ILSIM_OK;
        }
#if ILSIM_METHOD == ILSIM_AUTO
        if (!rodas && looks_stiff) {
            method->nonsti = 0;
            method->iasti += 1;
            if (method->iasti == ILSIM_STIFF_STEPS) method->rodas = 1; /* the rest of the run on RODAS */
        } else if (!rodas && ++method->nonsti == NONSTIFF_RESET) {
            method->iasti = 0;
        }
#else
        (void)looks_stiff;
#endif
        t = t_new;
        for (int i = 0; i < ILSIM_NS; ++i) y[i] = ynew[i];
        for (int c = 0; c < ILSIM_NC + ILSIM_NW; ++c) g_old[c] = g_new[c];
        if (clipped_state || ILSIM_ON_RODAS) {
            ilsim_rhs(y, t, p, k1);
            if (!ilsim_all_finite(k1)) { *t_io = t; return ILSIM_NON_FINITE; }
#if ILSIM_HAS_RODAS
            need_dT = 1;
#endif
        } else {
            for (int i = 0; i < ILSIM_NS; ++i) k1[i] = k7[i]; /* first same as last */
        }
        /* the next step size: PI control on DOPRI5 (Hairer's dopri5.f), Gustafsson's predictive control on RODAS */
        err = ilsim_max(err, 1e-10);
        double fac;
#if ILSIM_HAS_RODAS
        if (ILSIM_ON_RODAS) {
            fac = ilsim_min(R_FAC_MAX, ilsim_max(FAC_MIN, SAFETY * pow(err, -0.25)));
            if (h_acc > 0.0)
                fac = ilsim_min(fac, ilsim_min(R_FAC_MAX, ilsim_max(FAC_MIN, SAFETY * (hs / h_acc)
                                                                    * pow(err_acc / (err * err), 0.25))));
            h_acc = hs;
            err_acc = ilsim_max(1e-2, err);
        } else
#endif
        {
            fac = ilsim_min(FAC_MAX, ilsim_max(FAC_MIN, SAFETY * pow(err, -EXPO) * pow(err_old, BETA)));
            err_old = err;
        }
        if (rejected) fac = ilsim_min(fac, 1.0);
        rejected = 0;
        const double h_next = hs * fac;
        /* a step cut short to land on an event time says nothing against the longer one */
        h = (clipped && fac >= 1.0) ? ilsim_max(h_next, h) : h_next;
    }
#undef ILSIM_ON_RODAS
    *t_io = t;
    return ILSIM_OK;
}

/* One patient: initial state, then segments between events (engines.ode's loop); returns a status. */
ILSIM_DEVICE int ilsim_integrate(const double *t_eval, long long nt, const double *p_in, double rtol, double atol,
                                 long long max_steps, double *out, long long *k_out) {
    double p[ILSIM_NP > 0 ? ILSIM_NP : 1], y[ILSIM_NS];
    int armed[ILSIM_NC1];
    double band[ILSIM_NC1];
    for (int i = 0; i < ILSIM_NP; ++i) p[i] = p_in[i];
    ilsim_initial(p, y);
    if (!ilsim_initial_ok(y)) return ILSIM_BAD_INITIAL;
    double t = t_eval[0];
    const double t_end = t_eval[nt - 1];
    for (int c = 0; c < ILSIM_NC; ++c) {
        armed[c] = !ilsim_condition(c, t, y, p);
        band[c] = armed[c] ? 0.0 : ilsim_dead_band(c, t, y, p, rtol, atol);
    }
    int k_timed = 0;
    while (k_timed < ILSIM_NTIMED && ilsim_timed_t[k_timed] < t) k_timed += 1;
    long long steps = 0;
    ilsim_method method = {ILSIM_METHOD == ILSIM_RODAS, 0, 0};
    ilsim_queue queue;
    queue.n = 0;
    queue.fired = 0.0;
    for (;;) {
        while (k_timed < ILSIM_NTIMED && ilsim_timed_t[k_timed] <= t) { /* events at t apply before its output */
            const int code = ilsim_fire(ilsim_timed_e[k_timed], t, y, p, armed, band, rtol, atol, &queue, 0);
            if (code != ILSIM_OK) return code;
            k_timed += 1;
        }
        if (queue.n > 0) {
            const int due_code = ilsim_run_due(t, y, p, armed, band, rtol, atol, &queue);
            if (due_code != ILSIM_OK) return due_code;
        }
        const int retest_code = ilsim_retest(t, y, p, armed, band, rtol, atol, &queue);
        if (retest_code != ILSIM_OK) return retest_code;
        if (queue.n > 0) { /* a delay of 0 triggered just now */
            const int due_code = ilsim_run_due(t, y, p, armed, band, rtol, atol, &queue);
            if (due_code != ILSIM_OK) return due_code;
        }
        while (*k_out < nt && t_eval[*k_out] <= t) {
            ilsim_store(y, out + *k_out * ILSIM_NS);
            *k_out += 1;
        }
        if (t >= t_end) return ILSIM_OK;
        double t_next = (k_timed < ILSIM_NTIMED && ilsim_timed_t[k_timed] <= t_end) ? ilsim_timed_t[k_timed] : t_end;
        if (queue.n > 0) t_next = ilsim_min(t_next, ilsim_max(queue.row[0], t));
        const double t_stop = ilsim_next_switch(t, t_next, p);
        if (t_stop - t <= 16.0 * ILSIM_UROUND * ilsim_max(fabs(t), fabs(t_stop))) {
            /* a sliver between two events, below the rounding level of t: one Euler step crosses it */
            double dy[ILSIM_NS];
            ilsim_rhs(y, t, p, dy);
            if (!ilsim_all_finite(dy)) return ILSIM_NON_FINITE;
            for (int i = 0; i < ILSIM_NS; ++i) y[i] += (t_stop - t) * dy[i];
            ilsim_clip(y);
            t = t_stop;
            continue;
        }
        int hit;
        const int code = ilsim_segment(t_eval, nt, k_out, out, &t, t_stop, y, p, armed, band, &hit, rtol, atol,
                                       max_steps, &steps, &method);
        if (code != ILSIM_OK) return code;
        if (hit >= ILSIM_NC) continue; /* a watch crossed: the conditions are tested at the top of the loop */
        if (hit >= 0 && !armed[hit]) {
            armed[hit] = 1;
            ilsim_drop(ilsim_event_of(hit), &queue);
        } else if (hit >= 0) {
            /* conditions crossing at this same instant (equal thresholds) fire too, in model order */
            for (int c = 0; c < ILSIM_NC; ++c) {
                if (armed[c] && (c == hit || ilsim_condition(c, t, y, p))) {
                    armed[c] = 0;
                    band[c] = ilsim_dead_band(c, t, y, p, rtol, atol);
                    const int fire_code = ilsim_fire(ilsim_event_of(c), t, y, p, armed, band, rtol, atol, &queue, 0);
                    if (fire_code != ILSIM_OK) return fire_code;
                }
            }
        }
    }
}

/* Entry point: Y[patient, time, species], status[patient]; a failed patient's rows from the failure on are NaN. */
ILSIM_GLOBAL void ilsim_solve(const double *t_eval, long long nt, const double *P, long long n, double rtol,
                              double atol, long long max_steps, double *Y, int *status) {
    ILSIM_PATIENT_LOOP(j, n) {
        double *out = Y + j * nt * ILSIM_NS;
        long long k_out = 0;
        const int code = ilsim_integrate(t_eval, nt, P + j * ILSIM_NP, rtol, atol, max_steps, out, &k_out);
        for (long long k = k_out; k < nt; ++k)
            for (int i = 0; i < ILSIM_NS; ++i) out[k * ILSIM_NS + i] = ILSIM_NAN;
        status[j] = code;
    }
}
"""


def kernel_source(m: CompiledModel, method: str = "auto") -> str:
    """The complete kernel source of a model for one method (``engines.batch.METHODS``): C99, and CUDA C under
    NVRTC/nvcc. The method is fixed when the kernel is compiled, so a DOPRI5 kernel carries no matrix."""
    number = check_method(method, m)
    codes = {"__OK__": OK, "__NON_FINITE__": NON_FINITE, "__STEP_UNDERFLOW__": STEP_UNDERFLOW,
             "__MAX_STEPS__": MAX_STEPS, "__BAD_INITIAL__": BAD_INITIAL, "__ENDLESS_EVENTS__": ENDLESS_EVENTS,
             "__PENDING_FULL__": tableaux.PENDING_FULL, "__BAD_DELAY__": tableaux.BAD_DELAY,
             "__MAX_CASCADE__": MAX_CASCADE, **{f"__{name.upper()}__": code for name, code in METHODS.items()}}
    integrator = INTEGRATOR.replace("__TABLEAUX__", tableaux.c_defines())
    for key, value in codes.items():
        integrator = integrator.replace(key, str(value))
    return "\n".join([PRELUDE, model_functions(m, stiff=method != "dopri5"), f"#define ILSIM_METHOD {number}",
                      integrator])


# ------------------------------------------------------------------------------ plain-C build (CPU shim)


def c_compiler() -> str | None:
    """The system C compiler ($CC, else cc or gcc on the PATH), or None."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class HostKernel:
    """A model's kernel source built as plain C (a loop over patients instead of GPU threads), called via ctypes.

    Runs the very integrator that the GPU runs, on the CPU: for tests and checks without a GPU.
    One shared library per method, built on first use and cached beside the Python kernels, named by the
    hash of its source.
    """

    def __init__(self, m: CompiledModel, openmp: bool = True):
        self.model = m
        self._compiler = c_compiler()
        if self._compiler is None:
            raise IlsimError("no C compiler found (set $CC or install gcc) to build the kernel for the CPU")
        self._flags = ["-O2", "-std=c99", "-shared", "-fPIC"]
        if openmp and _accepts(self._compiler, "-fopenmp"):
            self._flags.append("-fopenmp")
        self._solvers: dict[str, object] = {}

    def solver(self, method: str = "auto"):
        """The entry point ``ilsim_solve`` of the method's library (built on first use)."""
        if method not in self._solvers:
            source = kernel_source(self.model, method)
            digest = hashlib.sha256((source + " ".join(self._flags)).encode()).hexdigest()[:24]
            solve = ctypes.CDLL(str(_build(self._compiler, self._flags, source, f"ilsim_c_{digest}"))).ilsim_solve
            ptr, i64, f64 = ctypes.c_void_p, ctypes.c_longlong, ctypes.c_double
            solve.argtypes = [ptr, i64, ptr, i64, f64, f64, i64, ptr, ptr]
            solve.restype = None
            self._solvers[method] = solve
        return self._solvers[method]

    def run(self, t_eval, P, rtol: float = 1e-6, atol: float = 1e-9, max_steps: int = 1_000_000,
            method: str = "auto") -> tuple[np.ndarray, np.ndarray]:
        """``(Y, status)``: Y is patients x len(t_eval) x species, status an int per patient (see batch.STATUS).
        ``method``: "dopri5", "rodas" or "auto" (default), as ``engines.batch.BatchEngine``."""
        rtol, atol, max_steps = check_settings(rtol, atol, max_steps)
        check_method(method, self.model)
        t_eval, P = check_inputs(self.model, t_eval, P)
        solve = self.solver(method)
        n, nt, ns = P.shape[0], len(t_eval), len(self.model.species)
        Y = np.empty((n, nt, ns))
        status = np.empty(n, dtype=np.int32)
        solve(t_eval.ctypes.data, nt, P.ctypes.data, n, rtol, atol, max_steps, Y.ctypes.data, status.ctypes.data)
        return Y, status.astype(np.int64)


class HostCEngine(Engine):
    """The C/CUDA kernel compiled as C on the CPU (``HostKernel``) behind the engine contract: the GPU's
    integrator, checked where there is no GPU (the conformance suite runs it beside the others)."""

    name = "c-host"
    supports = {"events": True, "stochastic": False, "spatial": False, "batch": True, "stiff": True,
                "parameter_trajectories": False, "event_log": False}

    def __init__(self, rtol: float = 1e-6, atol: float = 1e-9, max_steps: int = 1_000_000, method: str = "auto"):
        self.rtol, self.atol, self.max_steps = check_settings(rtol, atol, max_steps)
        check_method(method)
        self.method = method
        self._kernels: dict[int, HostKernel] = {}

    def settings(self) -> dict:
        return {"method": self.method, "rtol": self.rtol, "atol": self.atol, "max_steps": self.max_steps}

    def solve(self, model: CompiledModel, t_eval, P, *, record_parameters: bool = False,
              log_events: int = 0) -> EngineResult:
        refuse_unkept(model, record_parameters, log_events, "C kernel")
        kernel = self._kernels.setdefault(id(model), HostKernel(model))
        Y, status = kernel.run(t_eval, P, self.rtol, self.atol, self.max_steps, self.method)
        return kernel_result(model, Y, status, P, record_parameters)


def _changes_parameters(model: CompiledModel) -> bool:
    return any(kind != STATE for e in model.events for _, kind, _, _ in e.actions)


def refuse_unkept(model: CompiledModel, record_parameters: bool, log_events: int, engine: str) -> None:
    """The kernel keeps no parameters over time and no firing log: refuse a model that needs them."""
    if _changes_parameters(model) and (record_parameters or log_events):
        raise IlsimError(f"the {engine} engine does not record parameters that events change or log events, and "
                         f"model '{model.name}' has events that change parameters; use BatchEngine")


def kernel_result(model: CompiledModel, Y: np.ndarray, status: np.ndarray, P, record_parameters: bool) -> EngineResult:
    """A kernel's ``(Y, status)`` as an ``EngineResult``: the kernel counts no events (``fired`` is -1: unknown)
    and keeps no parameter that events change (then NaN at the end)."""
    P = np.asarray(P, dtype=float)
    P_end = np.full_like(P, np.nan) if _changes_parameters(model) else P.copy()
    P_t = np.broadcast_to(P[:, None, :], (P.shape[0], Y.shape[1], P.shape[1])) if record_parameters else None
    return EngineResult(Y, status, np.full((len(P), len(model.events)), -1, dtype=np.int64), P_end, P_t=P_t,
                        messages=[STATUS[int(c)] if c else "" for c in status])


def _accepts(compiler: str, flag: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text("int main(void) { return 0; }\n")
        done = subprocess.run([compiler, flag, str(src), "-o", str(Path(tmp) / "probe")], capture_output=True)
        return done.returncode == 0


def _build(compiler: str, flags: list[str], source: str, name: str) -> Path:
    """The shared library of a kernel source, built once into the kernel cache. A library found there is used
    only with the SHA-256 recorded when it was built (beside it, in the private cache folder): a file that
    merely carries the name is built again."""
    folder = trusted_cache_dir()
    library, record = folder / f"{name}.so", folder / f"{name}.so.sha256"
    if library.exists() and record.exists() and record.read_text().strip() == _digest(library):
        return library
    src = folder / f"{name}.{os.getpid()}.c"
    tmp = folder / f"{name}.{os.getpid()}.so"
    src.write_text(source)
    done = subprocess.run([compiler, *flags, str(src), "-o", str(tmp), "-lm"], capture_output=True, text=True)
    if done.returncode != 0:
        raise IlsimError(f"the C compiler could not build the kernel ({src}):\n{done.stderr[-2000:]}")
    record_tmp = folder / f"{name}.{os.getpid()}.sha256"
    record_tmp.write_text(_digest(tmp))
    os.replace(tmp, library)
    os.replace(record_tmp, record)
    src.unlink(missing_ok=True)
    return library


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()

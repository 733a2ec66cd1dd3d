"""Deterministic well-mixed engine: SciPy's ODE solvers with exact events.

Integration restarts at every event: timed events split the run into segments; condition events
are located by the solver's root finding on a function that is positive while the condition
holds. LSODA without condition events goes through ``odeint`` (ODEPACK called with the compiled
right-hand side: the fast path); everything else through ``solve_ivp``. Both receive the analytic
Jacobian. Non-negative quantities are integrated with rates evaluated at max(y, 0) and a
derivative that cannot push them below zero; tiny solver overshoots are clipped on output.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.integrate import odeint, solve_ivp

from ilsim.engines.base import SOLVER_FAILED, Engine, EngineResult, check_parameters, check_times, check_tolerances
from ilsim.engines.tableaux import BAD_INITIAL, MAX_CASCADE, UROUND
from ilsim.errors import IlsimError, SimulationError, did_you_mean
from ilsim.errors import argument as arg
from ilsim.limits import MAX_RHS_EVALUATIONS
from ilsim.model import analysis
from ilsim.model import expressions as ex
from ilsim.model.compile import STATE, CompiledModel
from ilsim.model.switches import state_switches

METHODS = ("LSODA", "BDF", "Radau", "RK45", "DOP853")
IMPLICIT = {"LSODA", "BDF", "Radau"}
MAX_EVENTS = 100_000  # firings or restarts in one run before an event counts as firing endlessly
# From this many species the implicit methods factorise a sparse Jacobian (SuperLU), and LSODA, whose ODEPACK
# has dense linear algebra only, gives way to BDF: a BioModels network of 315 species (MODEL2001290001, 2 to 3
# nonzeros per row) spent 163 of its 170 s in ODEPACK's dense factorisations, 7 s in all this way.
SPARSE_FROM = 100


@dataclass
class Trajectory:
    """Raw output of an engine run: states and parameter values at each output time."""

    t: np.ndarray
    y: np.ndarray  # times x species
    p: np.ndarray  # times x parameters (events may change parameters)
    event_log: list[tuple[float, str]] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    fired: list[int] = field(default_factory=list)  # the index of each firing's event, in event_log's order
    # (names need not be unique: a dose's 'held' events share one)


class BadInitialState(SimulationError):
    """The initial state is not finite, or negative for a non-negative species."""


class OdeEngine(Engine):
    """SciPy ODE integration of a CompiledModel: the deliberately independent reference engine (SciPy's own
    integrators and a Python event loop; it shares with the other engines only the model analyses of
    ``ilsim.model.analysis``). ``run`` integrates one parameter set; ``solve`` many, one after another."""

    name = "ode"
    supports = {"events": True, "stochastic": False, "spatial": False, "batch": False, "stiff": True,
                "parameter_trajectories": True, "event_log": True}

    def __init__(self, method: str = "LSODA", rtol: float = 1e-6, atol: float = 1e-9,
                 max_rhs_evaluations: int = MAX_RHS_EVALUATIONS, max_wall_s: float | None = None):
        if method not in METHODS:
            raise IlsimError(f"unknown method '{method}'{did_you_mean(method, METHODS)}; choose one of {', '.join(METHODS)}")
        self.method = method
        self.rtol, self.atol = check_tolerances(rtol, atol)
        self.max_rhs_evaluations, self.max_wall_s = check_budget(max_rhs_evaluations, max_wall_s)

    def settings(self) -> dict:
        return {"method": self.method, "rtol": self.rtol, "atol": self.atol,
                "max_rhs_evaluations": self.max_rhs_evaluations, "max_wall_s": self.max_wall_s}

    def solve(self, model: CompiledModel, t_eval, P, *, record_parameters: bool = False,
              log_events: int = 0) -> EngineResult:
        """``run`` for every row of ``P``; a row that fails is recorded (status SOLVER_FAILED or BAD_INITIAL,
        with the message) and the others go on."""
        t_eval, P = check_times(t_eval), check_parameters(model, P)
        n, nt, ns, npar, ne = P.shape[0], len(t_eval), len(model.species), len(model.parameters), len(model.events)
        Y = np.full((n, nt, ns), np.nan)
        P_t = np.full((n, nt, npar), np.nan)
        P_end = P.copy()
        status = np.zeros(n, dtype=np.int64)
        fired = np.zeros((n, ne), dtype=np.int64)
        logs, messages = [], []
        for j in range(n):
            try:
                traj = self.run(model, t_eval, P[j])
            except SimulationError as exc:
                status[j] = BAD_INITIAL if isinstance(exc, BadInitialState) else SOLVER_FAILED
                messages.append(str(exc))
                logs.append([])
                continue
            Y[j], P_t[j], P_end[j] = traj.y, traj.p, traj.p[-1]
            log = [(float(t), k) for (t, _), k in zip(traj.event_log, traj.fired)]
            for _, k in log:
                fired[j, k] += 1
            logs.append(log[:log_events] if log_events else [])
            messages.append("")
        return EngineResult(Y, status, fired, P_end, P_t=P_t if record_parameters else None,
                            event_log=logs if log_events else None, messages=messages)

    def run(self, model: CompiledModel, t_eval: np.ndarray, p: np.ndarray) -> Trajectory:
        """Integrate over the output times ``t_eval``; SimulationError when the solver fails or the run
        exceeds its budget (``max_rhs_evaluations`` right-hand sides, ``max_wall_s`` seconds)."""
        budget = _Budget(self.max_rhs_evaluations, self.max_wall_s, model.run_kernels())
        try:
            return self._run(model, t_eval, p, budget)
        except _OverBudget as over:
            raise self._over_budget(model, over, float(np.asarray(t_eval, dtype=float)[-1]), p) from None
        finally:
            model.count_calls(budget.used)

    def _run(self, model: CompiledModel, t_eval: np.ndarray, p: np.ndarray, budget: _Budget) -> Trajectory:
        t_eval = np.asarray(t_eval, dtype=float)
        p = np.array(p, dtype=float)
        ns, npar, n = len(model.species), len(model.parameters), len(t_eval)
        out_y = np.full((n, ns), np.nan)
        out_p = np.full((n, npar), np.nan)
        log: list[tuple[float, str]] = []
        fired: list[int] = []  # the event index of each entry of log
        t0, t_end = float(t_eval[0]), float(t_eval[-1])
        y = model.initial_state(p)
        bad = [s for s, v in zip(model.species, y) if not np.isfinite(v)]
        if bad:
            raise BadInitialState(f"initial value of {', '.join(bad)} is not a finite number")
        negative = [f"{s} = {v:g}" for s, v, nn in zip(model.species, y, model.nonnegative) if nn and v < 0]
        if negative:
            raise BadInitialState(f"initial value {', '.join(negative)} is negative, but the species cannot be negative")
        timed = analysis.timed_schedule(model, t0, t_end)
        cond_events = analysis.condition_events(model)
        roots = model.kernels["roots"]
        armed = [not model.evaluate(model.events[k].condition, t0, y, p) for k in cond_events]
        # A disarmed condition re-arms only once it is false by more than the solver's accuracy: a trigger
        # that sits on its threshold (a steady state reached exactly where it fired) is not seen to cross
        # back and forth at rounding level.
        band = [0.0 if armed[s] else self._dead_band(model, model.events[k].condition, t0, y, p)
                for s, k in enumerate(cond_events)]
        stats = {"segments": 0, "events_fired": 0, "method": self._method(model)}
        switches = analysis.time_switches(model)
        touches = analysis.touches(model)
        watches = analysis.window_watches(model)  # the comparisons of compound conditions: stops inside a window

        pending: list[tuple[float, int, int, list | None]] = []  # delayed events: (time due, order, event, values)

        def apply(k: int, t: float, due: list | None = None) -> bool:
            """Event k's jump, if its guard holds (else, e.g., a dose that a holding rule withholds); an event
            with a delay is put in ``pending`` instead, its values computed now if it takes them at the trigger
            (``due`` is set when a pending event's time has come: its values, or [] to compute them now)."""
            nonlocal y
            ev = model.events[k]
            if due is None and ev.guard is not None and not model.evaluate(ev.guard, t, y, p):
                return False  # a delayed event's guard is tested when it triggers (SBML's initialValue copy at t = 0)
            if ev.delay is not None and due is None:
                delay = float(model.evaluate(ev.delay, t, y, p))
                if not (delay >= 0 and np.isfinite(delay)):
                    raise SimulationError(f"event '{ev.name}' at t = {t:g} has a delay of {delay:g}, not a finite "
                                          "non-negative time")
                values = [model.evaluate(node, t, y, p) for _, _, _, node in ev.actions] if ev.values_at_trigger else []
                pending.append((t + delay, len(log) + len(pending), k, values))
                pending.sort(key=lambda entry: entry[:2])
                return False
            values = due or [model.evaluate(node, t, y, p) for _, _, _, node in ev.actions]  # all from the old state
            for (mode, kind, i, _), v in zip(ev.actions, values):
                target = y if kind == STATE else p
                target[i] = v if mode == "set" else target[i] + v
                if not np.isfinite(target[i]):  # the solver cannot go on from inf or NaN
                    name = (model.species if kind == STATE else model.parameters)[i]
                    raise SimulationError(f"event '{ev.name}' at t = {t:g} makes '{name}' {float(target[i])}, "
                                          "not a finite number")
            y = self._clip(model, y)  # a dose cannot take a quantity that cannot be negative below zero
            log.append((t, ev.name))
            fired.append(k)
            stats["events_fired"] += 1
            return True

        def fire(k: int, t: float, due: list | None = None) -> None:
            """Event k, then (depth first, in model order) every condition event a jump makes true: a cascade.

            A jump can change only the conditions that depend on what jumped: those are re-tested (fired
            now if they became true, re-armed if they became false). Others keep their state, so a
            condition sitting exactly at its root is not judged by rounding. An explicit stack, not
            recursion, so that an endless cascade ends with its error, not Python's recursion limit.
            """
            if not apply(k, t, due):
                return
            count, stack = 1, [[k, 0]]  # (event, next condition slot to test)
            while stack:
                top = stack[-1]
                event, slot = top
                if slot == len(cond_events):
                    stack.pop()
                    continue
                top[1] += 1
                kc = cond_events[slot]
                if not touches[event, slot]:
                    continue
                truth = bool(model.evaluate(model.events[kc].condition, t, y, p))
                if armed[slot] and truth:
                    if count >= MAX_CASCADE:
                        names = ", ".join(dict.fromkeys(name for _, name in log[-count:]))
                        raise SimulationError(f"events fire endlessly at t = {t:g}: more than {MAX_CASCADE} firings at "
                                              f"this one instant, each jump making a condition true again ({names})")
                    if stats["events_fired"] >= MAX_EVENTS:
                        raise SimulationError(f"more than {MAX_EVENTS} events by t = {t:g}: an event fires endlessly")
                    armed[slot] = False
                    band[slot] = self._dead_band(model, model.events[kc].condition, t, y, p)
                    if apply(kc, t):
                        count += 1
                        stack.append([kc, 0])
                elif not truth and roots[slot](t, y, p) < -band[slot]:  # at its root ('t > k' at t = k): unchanged
                    rearm(slot)

        def record(idx: np.ndarray, ys: np.ndarray) -> None:
            out_y[idx] = ys
            out_p[idx] = p

        def rearm(slot: int) -> None:
            """Condition ``slot`` is false again: armed, and its pending firings dropped unless persistent."""
            armed[slot] = True
            kc = cond_events[slot]
            if not model.events[kc].persistent:
                pending[:] = [entry for entry in pending if entry[2] != kc]

        def run_due(t: float) -> None:
            """Delayed events due by t, in the order they were triggered (with those their jumps trigger). A condition
            still holds while it is disarmed: once seen false beyond its dead band, ``rearm`` dropped its firings
            that are not persistent (testing it again here could judge a trigger on its threshold false by
            rounding: 'time - reset >= 0.01' at the very time it was found to cross, a delay of 0)."""
            while pending and pending[0][0] <= t:
                _, _, k, values = pending.pop(0)
                ev = model.events[k]
                if ev.condition is not None:
                    holds = not armed[cond_events.index(k)]
                else:  # a timed copy: its guard is its trigger
                    holds = ev.guard is None or model.evaluate(ev.guard, t, y, p)
                if ev.persistent or holds:
                    fire(k, t, values)

        def retest(t: float) -> None:
            """At a segment's end (an event, a time switch), conditions are tested where they are, not only
            where a root is crossed: 'time == 3' holds at the switch at 3 and nowhere else."""
            for slot, kc in enumerate(cond_events):
                truth = bool(model.evaluate(model.events[kc].condition, t, y, p))
                if armed[slot] and truth:
                    armed[slot] = False
                    band[slot] = self._dead_band(model, model.events[kc].condition, t, y, p)
                    fire(kc, t)
                elif not truth and not armed[slot] and roots[slot](t, y, p) < -band[slot]:
                    rearm(slot)

        t, k_grid, k_timed = t0, 0, 0
        while True:
            while k_timed < len(timed) and timed[k_timed][0] <= t:
                fire(timed[k_timed][1], t)
                k_timed += 1
            run_due(t)
            if t > t0:
                retest(t)
                run_due(t)  # a delay of 0 triggered just now
            while k_grid < n and t_eval[k_grid] <= t:  # output at an event time: the state after it
                record(np.array([k_grid]), y[None, :])
                k_grid += 1
            if t >= t_end:
                break
            t_stop = timed[k_timed][0] if k_timed < len(timed) else t_end
            if pending:
                t_stop = min(t_stop, max(pending[0][0], t))
            if switches:  # a rate that switches at a known time: the segment ends there, as at an event
                values = {ex.TIME: t, **dict(zip(model.parameters, map(float, p)))}
                later = [v for v in (float(ex.evaluate(tree, values)) for tree in switches) if t < v < t_stop]
                t_stop = min(later, default=t_stop)
            upto = int(np.searchsorted(t_eval, t_stop, side="left"))  # grid points strictly before t_stop
            grid = t_eval[k_grid:upto]
            stats["segments"] += 1
            if stats["segments"] > MAX_EVENTS:
                raise SimulationError(f"more than {MAX_EVENTS} restarts by t = {t:g} (events, and switches of time "
                                      "functions such as floor(t)): an event fires endlessly or a drive switches too often")
            if t_stop - t <= 16.0 * UROUND * max(abs(t), abs(t_stop)):
                # a sliver below the rounding level of t (a switch computed with rounding: 28.000000000000004
                # after 28), which LSODA refuses: one Euler step crosses it, as in the batch and C engines
                record(np.arange(k_grid, upto), y[None, :])
                k_grid, y = upto, self._clip(model, y + (t_stop - t) * np.asarray(budget.kernels["rhs"](y, t, p)))
                t = t_stop
                continue
            if not cond_events and self._method(model) == "LSODA":
                ys = self._odeint(model, t, t_stop, grid, y, p, budget)
                record(np.arange(k_grid, upto), ys[1:-1])
                k_grid, t, y = upto, t_stop, self._clip(model, ys[-1])
                continue
            fns = [_RootFunction(roots[slot], p, 0.0 if armed[slot] else band[slot], 1.0 if armed[slot] else -1.0,
                                 _interior(t, t_stop)[1]) for slot in range(len(cond_events))]
            if any(armed):
                fns += [_Watch(model, tree, p) for tree in watches if _Watch(model, tree, p)(t, y) != 0.0]
            sol = self._solve_ivp(model, t, t_stop, np.append(grid, t_stop), y, p, fns, budget)
            hit = [(te[0], slot) for slot, te in enumerate(sol.t_events or []) if len(te)]
            if hit:
                t_hit, slot = min(hit)
                y_hit = sol.y_events[slot][0]
                got = int(np.searchsorted(grid, t_hit, side="left"))
                record(np.arange(k_grid, k_grid + got), np.asarray(sol.y, dtype=float).reshape(len(y), -1).T[:got])
                k_grid += got
                if slot >= len(cond_events):  # a comparison crossed: the conditions are tested here (retest)
                    # located where the segment starts (the comparison sat on zero within rounding, on its old
                    # side): tested there again, the stop would repeat for ever; a sliver takes the state across
                    t, y = (float(t_hit), self._clip(model, y_hit)) if t_hit > t else self._across(model, fns[slot], t, y, p)
                    continue
                t, y = float(t_hit), self._clip(model, y_hit)
                if not armed[slot]:
                    rearm(slot)
                    continue
                if roots[slot](t, y, p) < -self._dead_band(model, model.events[cond_events[slot]].condition, t, y, p):
                    # a condition that jumps ('time % 86400 <= 43200' as its remainder wraps) is located on its old
                    # side, still false by far: fired there, the next segment saw it false, re-armed it and fired
                    # it again across the jump (MODEL2211040001 dosed twice a day). It fires just across.
                    t, y = self._across(model, lambda tt, yy, k=slot: roots[k](tt, yy, p), t, y, p)
                # Conditions that crossed at this same instant (equal thresholds) are true now: they fire too,
                # in file order (left armed, one already past its root would never be seen to cross). SciPy reports
                # only the first of equal roots, located where a strict one ('time > 3.5' twice) may still be false
                # by rounding: a root function that took the very same values as the located one on this step
                # crossed with it.
                for other in range(len(cond_events)):
                    ko = cond_events[other]
                    if armed[other] and (other == slot or model.evaluate(model.events[ko].condition, t, y, p)
                                         or fns[other].same_as(fns[slot])):
                        armed[other] = False
                        band[other] = self._dead_band(model, model.events[ko].condition, t, y, p)
                        fire(ko, t)
                continue
            if sol.y.shape[1] != len(grid) + 1:
                raise _failure(model, float(sol.t[-1]) if len(sol.t) else t, sol.y[:, -1] if sol.y.shape[1] else y, p,
                               "the solver stopped before the end of the segment")
            record(np.arange(k_grid, upto), sol.y.T[:-1])
            k_grid, t, y = upto, t_stop, self._clip(model, sol.y[:, -1])
        out_y[:, model.nonnegative] = np.maximum(out_y[:, model.nonnegative], 0.0)
        return Trajectory(t_eval, out_y, out_p, log, stats, fired)

    # ------------------------------------------------------------------------ solver calls
    def _jac(self, budget: _Budget):
        return budget.kernels["jac"] if self.method in IMPLICIT else None

    def _odeint(self, model, t0, t1, grid, y0, p, budget: _Budget) -> np.ndarray:
        times = np.concatenate(([t0], grid, [t1]))
        with _quiet_fortran(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the failure is reported below, with time and variables
            ys, info = odeint(
                budget.counted(t0, t1), y0, times, args=(p,), Dfun=self._jac(budget),
                rtol=self.rtol, atol=analysis.absolute_tolerances(model, self.atol), mxstep=1_000_000, full_output=True,
                tcrit=[t1],  # no step past the segment's end, where a rate may switch
            )
        if info["message"] != "Integration successful." or not np.isfinite(ys).all():
            # odeint's failure report is coarse (its times are only valid up to the last output):
            # redo the segment step by step, which either names the failing time and variables
            # precisely or, if only odeint's driver was at fault, completes the segment.
            sol = self._solve_ivp(model, t0, t1, np.append(grid, t1), y0, p, [], budget, method="LSODA")
            return np.vstack([y0, sol.y.T])
        return ys

    def _method(self, model: CompiledModel) -> str:
        """The method that integrates: the engine's, but BDF for LSODA on a large model (``SPARSE_FROM``)."""
        return "BDF" if self.method == "LSODA" and len(model.species) >= SPARSE_FROM else self.method

    def _solve_ivp(self, model, t0, t1, grid, y0, p, events, budget: _Budget, method: str | None = None):
        method = method or self._method(model)
        kwargs = {}
        if method in IMPLICIT and len(y0) >= SPARSE_FROM and method != "LSODA":
            kwargs["jac"] = lambda t, y: sparse.csc_matrix(budget.kernels["jac"](y, _inside(t, t0, t1), p))
        elif method in IMPLICIT:
            kwargs["jac"] = lambda t, y: budget.kernels["jac"](y, _inside(t, t0, t1), p)

        atol = analysis.absolute_tolerances(model, self.atol)  # per species

        def solve(t_eval, budget: _Budget):
            rhs = budget.counted(t0, t1)

            def f(t, y):
                dy = rhs(y, t, p)
                if not np.isfinite(dy).all():  # stop here: some solvers loop forever on inf/NaN
                    raise _NonFinite(t, np.array(y))
                return dy

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # overflow near a blow-up: reported below
                return solve_ivp(f, (t0, t1), y0, method=method, t_eval=t_eval, events=events or None,
                                 rtol=self.rtol, atol=atol, **kwargs)

        try:
            sol = solve(grid, budget)
        except _NonFinite as stop:
            raise _failure(model, stop.t, stop.y, p, "a rate became infinite or NaN") from None
        ys = np.asarray(sol.y, dtype=float).reshape(len(y0), -1)
        if sol.status == -1 or not np.isfinite(ys).all():
            try:
                failed = solve(None, budget.again())  # again without output times, to learn where it stopped
            except _NonFinite as stop:
                raise _failure(model, stop.t, stop.y, p, sol.message) from None
            fy = np.asarray(failed.y, dtype=float).reshape(len(y0), -1)
            finite = np.flatnonzero(np.isfinite(fy).all(axis=0))
            last = finite[-1] if finite.size else None
            t_fail = float(failed.t[last]) if last is not None else t0
            y_last = fy[:, last] if last is not None else y0
            raise _failure(model, t_fail, y_last, p, failed.message if failed.status == -1 else sol.message)
        sol.y = ys
        return sol

    def _over_budget(self, model: CompiledModel, over: _OverBudget, t_end: float, p: np.ndarray) -> SimulationError:
        """The budget is spent: say where, and what probably made the steps so small."""
        message = f"the run used up its budget of {over.what} before reaching t = {t_end:g}"
        fast = _fastest_decay(model, over.t, over.y, p)
        steps = fast * max(t_end - over.t, 0.0) / 3.3  # an explicit method's steps stay below about 3.3 / rate
        if self.method not in IMPLICIT and steps > self.max_rhs_evaluations / 12:
            message += (f"; the system is stiff (a mode decays at rate {fast:.3g}, so {self.method} needs more than "
                        f"{steps:.2g} steps to finish): use a stiff method ({arg('method')} BDF, Radau or LSODA)")
        thresholds = state_switches(model)
        if thresholds:
            message += (f"; a rate switches with the state at {', '.join(repr(c) for c in thresholds[:3])}: where the "
                        "switch pushes the state back across its threshold, every method chatters with tiny steps "
                        "(write the switch as a condition event, or smooth it)")
        message += "; a larger budget: --max-rhs-evaluations N, --max-wall SECONDS (max_rhs_evaluations=, max_wall_s=)"
        return _failure(model, over.t, over.y, p, message)

    def _dead_band(self, model: CompiledModel, condition: ex.Expr, t: float, y: np.ndarray, p: np.ndarray) -> float:
        """How far below zero a root function must go before its condition counts as false again: the
        solver's tolerance on the compared quantities (rtol x their size + atol)."""
        atol = float(analysis.absolute_tolerances(model, self.atol).min())  # the smallest species' tolerance
        with np.errstate(all="ignore"):
            band = self.rtol * float(ex.evaluate(analysis.condition_scale(condition), model.namespace(t, y, p))) + atol
        return band if np.isfinite(band) else atol

    def _across(self, model: CompiledModel, watch: _Watch, t: float, y: np.ndarray, p: np.ndarray) -> tuple[float, np.ndarray]:
        """(t, y) just past where a watched comparison changes sign, from where it sits on zero within rounding:
        Euler slivers of 4, 8, ... units of rounding of t (as the slivers between two events), the first that
        takes it across; a comparison still on its side after 1024 units has at least moved on."""
        before = watch(t, y) >= 0.0
        dy = np.asarray(model.rhs(np.asarray(y, float), t, p), dtype=float)
        dt = 4.0 * np.spacing(max(abs(t), 1e-300))
        for _ in range(9):
            t_next = t + dt
            y_next = self._clip(model, y + (t_next - t) * dy)
            if (watch(t_next, y_next) >= 0.0) != before:
                break
            dt *= 2.0
        return float(t_next), y_next

    @staticmethod
    def _clip(model: CompiledModel, y: np.ndarray) -> np.ndarray:
        y = np.array(y, dtype=float)
        y[model.nonnegative] = np.maximum(y[model.nonnegative], 0.0)
        return y


def check_budget(max_rhs_evaluations, max_wall_s) -> tuple[int, float | None]:
    """A run's budget as numbers; IlsimError naming what is wrong."""
    try:
        evaluations = int(max_rhs_evaluations)
        wall = None if max_wall_s is None else float(max_wall_s)
    except (TypeError, ValueError):
        raise IlsimError(f"max_rhs_evaluations must be a whole number and max_wall_s a number of seconds, got "
                         f"{max_rhs_evaluations!r} and {max_wall_s!r}") from None
    if evaluations < 1:
        raise IlsimError(f"max_rhs_evaluations must be at least 1, got {evaluations}")
    if wall is not None and not (wall > 0 and math.isfinite(wall)):
        raise IlsimError(f"max_wall_s must be a positive number of seconds, got {wall:g}")
    return evaluations, wall


class _OverBudget(Exception):
    def __init__(self, t: float, y: np.ndarray, what: str):
        self.t, self.y, self.what = float(t), np.array(y, dtype=float), what


class _Budget:
    """Right-hand-side evaluations and wall-clock time left to one run, charged on every evaluation.

    No SciPy solver has a limit for a whole run (odeint's mxstep is per output interval, solve_ivp has
    none), so a chattering or stiff system could step for hours: the count stops it wherever it is.
    """

    def __init__(self, max_rhs_evaluations: int, max_wall_s: float | None, kernels: dict):
        self.max_rhs_evaluations, self.max_wall_s = max_rhs_evaluations, max_wall_s
        self.used = 0
        self.deadline = None if max_wall_s is None else time.monotonic() + max_wall_s
        self.kernels = kernels  # the run's own right-hand side and Jacobian (CompiledModel.run_kernels)

    def again(self) -> _Budget:
        """A fresh budget of the same size (to repeat a failed segment only to learn where it failed)."""
        return _Budget(self.max_rhs_evaluations, self.max_wall_s, self.kernels)

    def compiled(self):
        """The compiled kernels from now on (the tiered switch: the same numbers, faster)."""
        compiled = self.kernels["compiled"]()
        self.kernels = {**self.kernels, "rhs": compiled["rhs"], "jac": compiled["jac"], "compile_after": None}
        return self.kernels["rhs"]

    def counted(self, t0: float, t1: float):
        """The run's right-hand side ``rhs(y, t, p)`` charged to this budget, with t kept strictly inside (t0, t1)
        (one rounding step in from each end): a rate that jumps at a segment's end (floor(t), 't >= t_on') is read
        on the segment's side, as everywhere inside it."""
        lo, hi = _interior(t0, t1)
        most, timed = self.max_rhs_evaluations, self.deadline is not None
        rhs, switch = self.kernels["rhs"], self.kernels["compile_after"]

        def f(y, t, p):  # (called a thousand times a run or more: comparisons, not min/max calls)
            nonlocal rhs
            used = self.used = self.used + 1
            if used == switch:
                rhs = self.compiled()
            if used > most:
                raise _OverBudget(t, y, f"{most:,} right-hand-side evaluations (max_rhs_evaluations)")
            if timed and used % 64 == 0 and time.monotonic() > self.deadline:
                raise _OverBudget(t, y, f"{self.max_wall_s:g} s of wall-clock time (max_wall_s)")
            return rhs(y, lo if t < lo else hi if t > hi else t, p)

        return f


def _interior(t0: float, t1: float) -> tuple[float, float]:
    lo, hi = math.nextafter(t0, t1), math.nextafter(t1, t0)
    return (lo, hi) if lo <= hi else (t0, t1)


def _inside(t: float, t0: float, t1: float) -> float:
    lo, hi = _interior(t0, t1)
    return min(max(t, lo), hi)


class _NonFinite(Exception):
    def __init__(self, t: float, y: np.ndarray):
        self.t, self.y = float(t), y


class _RootFunction:
    """A condition's root function (plus an offset) as a terminal solve_ivp event.

    SciPy detects a crossing from the values at the two ends of a step, then searches the root on the
    step's dense output, whose values at the ends can differ from the step's by rounding: with the
    function within rounding of zero there (a condition sitting on its threshold), the search found
    no sign change and failed. The function remembers its last values by time, so the search starts
    from the very values that detected the crossing.
    """

    terminal = True

    def __init__(self, kernel, p: np.ndarray, offset: float, direction: float, t_last: float = math.inf):
        self.kernel, self.p, self.offset, self.direction = kernel, p, offset, direction
        self.t_last = t_last  # one rounding step before the segment's end: a condition that switches there
        self.seen: dict[float, float] = {}  # ('time == 10', floor(time/5) == 2) is tested at the end itself

    def same_as(self, other: _RootFunction) -> bool:
        """Whether this function took the same values as ``other`` wherever both were last evaluated."""
        common = self.seen.keys() & other.seen.keys()
        return bool(common) and all(self.seen[t] == other.seen[t] for t in common)

    def __call__(self, t: float, y: np.ndarray) -> float:
        if t in self.seen:
            return self.seen[t]
        value = float(self.kernel(min(t, self.t_last), y, self.p)) + self.offset
        if len(self.seen) >= 4:
            del self.seen[next(iter(self.seen))]
        self.seen[t] = value
        return value


class _Watch:
    """A comparison of a compound condition as a terminal solve_ivp event (``analysis.window_watches``): the
    integration stops where it crosses and the conditions are tested there. Evaluated from its tree: only
    models with such conditions have watches. (A watch sitting exactly on zero where a segment starts is left
    out of that segment, which would otherwise stop where it starts.)"""

    terminal = True

    def __init__(self, model: CompiledModel, tree: ex.Expr, p: np.ndarray):
        self.model, self.tree, self.p = model, tree, p

    def __call__(self, t: float, y: np.ndarray) -> float:
        with np.errstate(all="ignore"):
            return float(self.model.evaluate(self.tree, t, y, self.p))


def _fastest_decay(model: CompiledModel, t: float, y: np.ndarray, p: np.ndarray) -> float:
    """The largest decay rate (-Re of the Jacobian's eigenvalues) at a state: what limits explicit steps."""
    try:
        with np.errstate(all="ignore"):
            eigenvalues = np.linalg.eigvals(np.asarray(model.jacobian(np.asarray(y, float), t, p), dtype=float))
    except (np.linalg.LinAlgError, ValueError):  # a non-finite Jacobian: no estimate
        return 0.0
    decay = -eigenvalues.real[np.isfinite(eigenvalues)]
    return float(decay.max()) if decay.size and decay.max() > 0 else 0.0


def _failure(model: CompiledModel, t: float, y: np.ndarray, p: np.ndarray, message: str) -> SimulationError:
    """Name the time and the variables that went wrong (non-finite, or changing fastest)."""
    with np.errstate(all="ignore"):
        dy = np.asarray(model.rhs(np.asarray(y, float), t, p), dtype=float)
        scale = np.abs(dy) / (np.abs(y) + 1e-12)
    culprits = [i for i in range(len(y)) if not (np.isfinite(y[i]) and np.isfinite(dy[i]))]
    if not culprits:
        culprits = list(np.argsort(-np.nan_to_num(scale, nan=np.inf))[:3])
    where = ", ".join(f"{model.species[i]} = {y[i]:.4g} (d/dt = {dy[i]:.4g})" for i in culprits)
    units = model.spec.metadata.time_units
    return SimulationError(
        f"integration failed at t = {t:.6g} {units}: {message.strip().rstrip('.')}; variables involved: {where}"
    )


_QUIET = threading.Lock()
_quiet_runs = 0  # runs inside _quiet_fortran now (threads: the web explorer, a threaded Dask worker)
_saved_stdout = -1


@contextlib.contextmanager
def _quiet_fortran():
    """ODEPACK prints its warnings straight to file descriptor 1; we report failures ourselves.

    Runs in several threads share one descriptor: the first to enter silences it and the last to leave restores it
    (each saving and restoring on its own would leave it silenced, or closed, when they interleave)."""
    global _quiet_runs, _saved_stdout
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):
        yield
        return
    with _QUIET:
        if _quiet_runs == 0:
            sys.stdout.flush()
            _saved_stdout = os.dup(fd)
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), fd)
        _quiet_runs += 1
    try:
        yield
    finally:
        with _QUIET:
            _quiet_runs -= 1
            if _quiet_runs == 0:
                os.dup2(_saved_stdout, fd)
                os.close(_saved_stdout)

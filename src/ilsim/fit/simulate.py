"""States and forward sensitivities of one simulation of a fitting problem, with LSODA (SciPy's odeint).

The sensitivities S = dx/dphi (phi: the problem's parameters that move this simulation) follow
dS/dt = J S + (df/dp) P, where J and df/dp come from the compiled model's expression trees (model/compile.py)
and P maps problem parameters onto model parameters. The augmented system is integrated as one; its Newton
matrix is the block-diagonal I (x) J (the coupling through dJ/dx only slows Newton, never the accuracy).
LSODA's step loop runs in Fortran: an evaluation of Boehm with its gradient is about 6 times faster than
with solve_ivp's BDF, whose loop is Python.

Timed events (doses, timed ``set``/``add``) split the run into segments. An event at a fixed time tau that
maps the state to x+ = g(x-, p) (``add``: g = x + v, ``set``: g = v) carries the sensitivities across as
S+ = (dg/dx) S- + (dg/dp) P: no term from the event time, which moves with no parameter. So a dose of a fixed
amount leaves S continuous, and a dose or set value that reads parameters or states makes S jump by
dv/dx S- + dv/dp P. An event that changes a model parameter changes that row of P = dp/dphi the same way.
Events fired by conditions on the state, and delayed events, are refused (``check_events``).
"""

from __future__ import annotations

import warnings

import numpy as np

from ilsim.fit.problem import ConditionMap, FitError, FitProblem, Simulation
from ilsim.model.analysis import timed_schedule
from ilsim.model.compile import STATE, CompiledModel, parameter_derivative_kernel

DENSE_LIMIT = 300  # without numba: augmented systems larger than this integrate with a sparse Newton matrix
MAX_STEPS = 20000  # per output interval: a run that needs more is a failed start, not a stalled fit
STEADY_TOL = 1e-8  # preequilibration: |dx/dt| <= STEADY_TOL * (1 + |x|) for every state


class SimulationFailed(Exception):
    """An integration that did not reach its end (the objective is then infinite: never fatal to a fit)."""


def check_events(model: CompiledModel, source: str) -> None:
    """Only events at fixed times can be fitted: a condition event's time moves with the parameters (its
    sensitivity jump needs the root's derivative), and a delayed event's time depends on its delay."""
    for ev in model.events:
        if ev.condition is not None:
            raise FitError(f"{source}: event '{ev.name}' fires on a condition ('when:'): only events at fixed "
                           "times (doses, 'at:') can be fitted")
        if ev.delay is not None:
            raise FitError(f"{source}: event '{ev.name}' has a delay: only events at fixed times (doses, 'at:') "
                           "can be fitted")


class _Solution:
    """What the runs read of an integration: states (and sensitivities) by output time, as solve_ivp gives them."""

    def __init__(self, y):
        self.y = y


class Simulator:
    def __init__(self, problem: FitProblem):
        self.problem = problem
        self.m = problem.model
        self._dfdp = None
        self._dx0 = None
        self._augmented = None
        self._jumps: dict[int, object] = {}
        # of the last run with events: the model parameters (times x parameters) and, with sensitivities, their
        # derivatives by the sensitivity columns (times x parameters x cols) at each output time, as events
        # changed them (observables that read a parameter need the value it had then); None without events
        self.parameter_trace: tuple[np.ndarray, np.ndarray | None] | None = None

    # ------------------------------------------------------------------ model pieces
    def dfdp(self, x, t, p) -> np.ndarray:
        if self._dfdp is None:
            self._dfdp = parameter_derivative_kernel(self.m)
        out = np.empty((len(self.m.species), len(self.m.parameters)))
        self._dfdp(x, t, p, out)
        return out

    def initial_derivative(self, p) -> np.ndarray:
        """d(initial state)/d(model parameters), from the initial-value trees."""
        if self._dx0 is None:
            import sympy as sp  # lazy: heavy (SymPy)

            from ilsim.model import expressions as ex

            syms = [sp.Symbol(f"v{i}", real=True) for i in range(len(self.m.parameters))]
            names = dict(zip(self.m.parameters, syms))
            rows = [[sp.diff(ex.to_sympy(tree, names), v) for v in syms] for tree in self.m.initial_trees]
            self._dx0 = sp.lambdify(syms, rows, modules="numpy")
        out = self._dx0(*p)
        return np.array([[float(v) for v in row] for row in out], float).reshape(len(self.m.species), len(p))

    # ------------------------------------------------------------------ runs
    def run(self, sim: Simulation, phi: np.ndarray, cols: np.ndarray | None):
        """States (times x species) and, when ``cols`` (problem parameter indices) is given, sensitivities
        (times x species x cols)."""
        ns = len(self.m.species)
        nc = 0 if cols is None else len(cols)
        pos = {} if cols is None else {int(j): k for k, j in enumerate(cols)}
        self.parameter_trace = None
        first = sim.preeq or sim.condition
        p = first.parameters(phi)
        x = np.array(self.m.initial_state(p), float)
        S = self.initial_derivative(p) @ self._selection(first, pos) if cols is not None else None
        self._reset(first, x, S, phi, pos)
        if sim.preeq is not None:
            x, S = self._steady(x, S, p, self._selection(sim.preeq, pos) if cols is not None else None)
            self._reset(sim.condition, x, S, phi, pos)
        p = sim.condition.parameters(phi)
        P = self._selection(sim.condition, pos) if cols is not None else None
        times = sim.times
        X = np.empty((len(times), ns))
        SS = np.empty((len(times), ns, nc)) if cols is not None else None
        if self.m.events:
            return self._run_segments(x, S, p, P, times, X, SS)
        if times[-1] <= 0:
            X[:] = x
            if SS is not None:
                SS[:] = S
            return X, SS
        sol = self._integrate(x, S, p, P, times[-1], times)
        X[:] = sol.y[:ns].T
        if SS is not None:
            SS[:] = sol.y[ns:].T.reshape(len(times), ns, nc)
        return X, SS

    def _run_segments(self, x, S, p, P, times, X, SS):
        """Integrate between event times; an output at an event's time is the state after it (as the ODE
        engine records it)."""
        ns = len(self.m.species)
        p = p.copy()
        pt = np.empty((len(times), len(p)))
        PP = None if S is None else np.empty((len(times), *P.shape))
        self.parameter_trace = (pt, PP)
        schedule = timed_schedule(self.m, 0.0, float(times[-1]))
        stops = sorted({tau for tau, _ in schedule if tau > 0.0} | {float(times[-1])})
        t, k_event, k_out = 0.0, 0, 0
        for stop in [0.0, *stops]:
            if stop > t:
                inside = times[(times > t) & (times < stop)]
                grid = np.concatenate([inside, [stop]])
                sol = self._integrate(x, S, p, P, stop, grid, t0=t)
                for j in range(len(inside)):
                    X[k_out], pt[k_out] = sol.y[:ns, j], p
                    if SS is not None:
                        SS[k_out], PP[k_out] = sol.y[ns:, j].reshape(ns, -1), P
                    k_out += 1
                x = sol.y[:ns, -1].copy()
                if S is not None:
                    S = sol.y[ns:, -1].reshape(ns, -1).copy()
                t = stop
            while k_event < len(schedule) and schedule[k_event][0] <= t:
                x, S, p, P = self._jump(schedule[k_event][1], t, x, S, p, P)
                k_event += 1
            while k_out < len(times) and times[k_out] <= t:
                X[k_out], pt[k_out] = x, p
                if SS is not None:
                    SS[k_out], PP[k_out] = S, P
                k_out += 1
        return X, SS

    def _jump(self, k: int, t: float, x, S, p, P):
        """Event k at time t (if its guard holds): every value from the state before it, then
        S+ = (dg/dx) S- + (dg/dp) P and, for parameters it changes, P+ likewise (see the module's docstring)."""
        ev = self.m.events[k]
        if ev.guard is not None and not self.m.evaluate(ev.guard, t, x, p):
            return x, S, p, P
        values, dvdx, dvdp = self._event_derivatives(k)(t, x, p)
        x_new, p_new = x.copy(), p.copy()
        S_new = None if S is None else S.copy()
        P_new = None if P is None else P.copy()
        for (mode, kind, i, _), v, gx, gp in zip(ev.actions, values, dvdx, dvdp):
            target = x_new if kind == STATE else p_new
            target[i] = v if mode == "set" else target[i] + v
            if not np.isfinite(target[i]):
                raise SimulationFailed(f"event '{ev.name}' at t = {t:g} makes a value {float(target[i])}")
            if S is not None:
                dv = gx @ S + gp @ P  # d(value)/d(phi), from the state and parameters before the event
                rows = S_new if kind == STATE else P_new
                rows[i] = dv if mode == "set" else rows[i] + dv
        return x_new, S_new, p_new, P_new

    def _event_derivatives(self, k: int):
        """f(t, x, p) -> (values, dvalue/dx, dvalue/dp) of event k's actions, differentiated by SymPy from their
        expression trees (observables and derived quantities they read are substituted first)."""
        if k not in self._jumps:
            import sympy as sp  # lazy: heavy (SymPy)

            from ilsim.model import expressions as ex

            m = self.m
            xs = [sp.Symbol(f"x{i}", real=True) for i in range(len(m.species))]
            ps = [sp.Symbol(f"p{i}", real=True) for i in range(len(m.parameters))]
            ts = sp.Symbol("t", real=True)
            names = {"t": ts, **dict(zip(m.parameters, ps)), **dict(zip(m.species, xs))}
            for name, tree in m.derived:
                names[name] = ex.to_sympy(tree, names)
            for name, tree in zip(m.observables, m.observable_trees):
                names[name] = ex.to_sympy(tree, names)
            exprs = [ex.to_sympy(node, names) for *_, node in m.events[k].actions]
            rows = [[e, [sp.diff(e, v) for v in xs], [sp.diff(e, v) for v in ps]] for e in exprs]
            f = sp.lambdify([ts, xs, ps], rows, modules="numpy")
            nx, npar = len(xs), len(ps)

            def jump(t, x, p):
                out = f(t, x, p)
                values = [float(v) for v, _, _ in out]
                dvdx = [np.broadcast_to(np.asarray(gx, float), (nx,)) for _, gx, _ in out]
                dvdp = [np.broadcast_to(np.asarray(gp, float), (npar,)) for _, _, gp in out]
                return values, dvdx, dvdp

            self._jumps[k] = jump
        return self._jumps[k]

    def _selection(self, cmap: ConditionMap, pos: dict[int, int]) -> np.ndarray:
        P = np.zeros((len(self.m.parameters), len(pos)))
        for t, s in zip(cmap.targets, cmap.sources):
            if int(s) in pos:
                P[t, pos[int(s)]] = 1.0
        return P

    @staticmethod
    def _reset(cmap: ConditionMap, x, S, phi, pos) -> None:
        for state, number, param in cmap.species:
            x[state] = number if param is None else phi[param]
            if S is not None:
                S[state, :] = 0.0
                if param is not None and param in pos:
                    S[state, pos[param]] = 1.0

    def _integrate(self, x, S, p, P, t_end, t_eval, t0: float = 0.0):
        """LSODA (ODEPACK through odeint: its step loop runs in Fortran) with the analytic Jacobian; for the
        augmented system the Jacobian's blocks are J on the diagonal (the coupling through dJ/dx is left out:
        it only slows Newton's iterations)."""
        from scipy.integrate import odeint  # lazy: heavy (SciPy)

        m, ns = self.m, len(self.m.species)
        rtol, atol = self.problem.rtol, self.problem.atol
        band, args = None, ()
        if S is None:
            def f(t, y):
                return m.rhs(y, t, p)

            def jac(t, y):
                return m.jacobian(y, t, p)

            y0 = x
        elif m.jit:  # S by columns, the Newton matrix banded (fit/augmented.py): no size limit
            f, jac, args = self._compiled_augmented(p, P)
            y0 = np.concatenate([x, S.T.ravel()])
            band = ns - 1
        else:
            nc = S.shape[1]
            eye = np.eye(nc)

            def f(t, y):
                xs = y[:ns]
                Sm = y[ns:].reshape(ns, nc)
                dS = m.jacobian(xs, t, p) @ Sm + self.dfdp(xs, t, p) @ P
                return np.concatenate([m.rhs(xs, t, p), dS.ravel()])

            def jac(t, y):
                J = m.jacobian(y[:ns], t, p)
                out = np.zeros((len(y), len(y)))
                out[:ns, :ns] = J
                out[ns:, ns:] = np.kron(J, eye)
                return out

            y0 = np.concatenate([x, S.ravel()])
        if band is None and len(y0) > DENSE_LIMIT:
            return self._integrate_sparse(f, x, S, p, t_end, t_eval, t0)
        times = np.array([t0, float(t_end)]) if t_eval is None else np.asarray(t_eval, float)
        grid = times if times[0] == t0 else np.concatenate([[t0], times])
        with warnings.catch_warnings():  # a failed run is reported by its message, not by SciPy's warning
            warnings.simplefilter("ignore")
            y, info = odeint(f, y0, grid, args=args, Dfun=jac, tfirst=True, rtol=rtol, atol=atol, mxstep=MAX_STEPS,
                             full_output=True, ml=band, mu=band)
        if info["message"] != "Integration successful." or not np.all(np.isfinite(y)):
            raise SimulationFailed(info["message"])
        if band is not None:  # back to S by rows, as the callers read it
            y[:, ns:] = y[:, ns:].reshape(len(y), -1, ns).transpose(0, 2, 1).reshape(len(y), -1)
        y = y if times[0] == t0 else y[1:]
        return _Solution(y.T)

    def _compiled_augmented(self, p, P):
        """The augmented right-hand side and Newton matrix as one compiled call each (fit/augmented.py)."""
        from ilsim.fit.augmented import compiled_pair  # lazy: numba, compiled on first use

        m, ns = self.m, len(self.m.species)
        if self._dfdp is None:
            self._dfdp = parameter_derivative_kernel(m)
        if self._augmented is None:
            compiled = m.compiled_kernels()
            self._augmented = compiled_pair(compiled["rhs_into"], compiled["jac"].module().jac_into, self._dfdp)
        augmented_rhs, augmented_jacobian = self._augmented
        P = np.ascontiguousarray(P, float)
        J, D = np.empty((ns, ns)), np.empty((ns, len(m.parameters)))
        # LSODA calls the compiled functions itself, with these arguments: no Python frame in between
        return augmented_rhs, augmented_jacobian, (p, P, J, D)

    def _integrate_sparse(self, f, x, S, p, t_end, t_eval, t0: float = 0.0):
        """Large augmented systems: SciPy's BDF with the Newton matrix I (x) J as a sparse matrix (LSODA would
        factorise it dense)."""
        from scipy import sparse  # lazy: heavy (SciPy)
        from scipy.integrate import solve_ivp  # lazy: heavy (SciPy)

        m, ns, nc = self.m, len(self.m.species), S.shape[1]
        eye = sparse.identity(nc, format="csr")

        def jac(t, y):
            J = m.jacobian(y[:ns], t, p)
            return sparse.block_diag([sparse.csr_matrix(J), sparse.kron(J, eye)], format="csc")

        y0 = np.concatenate([x, S.ravel()])
        sol = solve_ivp(f, (t0, float(t_end)), y0, method="BDF", t_eval=t_eval, rtol=self.problem.rtol,
                        atol=self.problem.atol, jac=jac)
        if sol.status != 0 or not np.all(np.isfinite(sol.y)):
            raise SimulationFailed(sol.message)
        return sol

    def _steady(self, x, S, p, P):
        """Preequilibration: integrate until every state (and sensitivity) stops moving."""
        ns = len(self.m.species)
        span = 10.0
        while span <= 1e9:
            sol = self._integrate(x, S, p, P, span, None)
            y = sol.y[:, -1]
            x = y[:ns].copy()
            if S is not None:
                S = y[ns:].reshape(ns, -1).copy()
            if np.all(np.abs(self.m.rhs(x, 0.0, p)) <= STEADY_TOL * (1.0 + np.abs(x))):
                return x, S
            span *= 10.0
        raise SimulationFailed("preequilibration did not reach a steady state")

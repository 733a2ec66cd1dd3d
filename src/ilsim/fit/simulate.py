"""States and forward sensitivities of one simulation of a fitting problem, with LSODA (SciPy's odeint).

The sensitivities S = dx/dphi (phi: the problem's parameters that move this simulation) follow
dS/dt = J S + (df/dp) P, where J and df/dp come from the compiled model's expression trees (model/compile.py)
and P maps problem parameters onto model parameters. The augmented system is integrated as one; its Newton
matrix is the block-diagonal I (x) J (the coupling through dJ/dx only slows Newton, never the accuracy).
LSODA's step loop runs in Fortran: an evaluation of Boehm with its gradient is about 6 times faster than
with solve_ivp's BDF, whose loop is Python.
"""

from __future__ import annotations

import warnings

import numpy as np

from ilsim.fit.problem import ConditionMap, FitProblem, Simulation
from ilsim.model.compile import parameter_derivative_kernel

DENSE_LIMIT = 300  # augmented systems larger than this integrate with a sparse Newton matrix
MAX_STEPS = 20000  # per output interval: a run that needs more is a failed start, not a stalled fit
STEADY_TOL = 1e-8  # preequilibration: |dx/dt| <= STEADY_TOL * (1 + |x|) for every state


class SimulationFailed(Exception):
    """An integration that did not reach its end (the objective is then infinite: never fatal to a fit)."""


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

    def _integrate(self, x, S, p, P, t_end, t_eval):
        """LSODA (ODEPACK through odeint: its step loop runs in Fortran) with the analytic Jacobian; for the
        augmented system the Jacobian's blocks are J on the diagonal (the coupling through dJ/dx is left out:
        it only slows Newton's iterations)."""
        from scipy.integrate import odeint  # lazy: heavy (SciPy)

        m, ns = self.m, len(self.m.species)
        rtol, atol = self.problem.rtol, self.problem.atol
        if S is None:
            def f(t, y):
                return m.rhs(y, t, p)

            def jac(t, y):
                return m.jacobian(y, t, p)

            y0 = x
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
        if len(y0) > DENSE_LIMIT:
            return self._integrate_sparse(f, x, S, p, t_end, t_eval)
        times = np.array([0.0, float(t_end)]) if t_eval is None else np.asarray(t_eval, float)
        grid = times if times[0] == 0.0 else np.concatenate([[0.0], times])
        with warnings.catch_warnings():  # a failed run is reported by its message, not by SciPy's warning
            warnings.simplefilter("ignore")
            y, info = odeint(f, y0, grid, Dfun=jac, tfirst=True, rtol=rtol, atol=atol, mxstep=MAX_STEPS,
                             full_output=True)
        if info["message"] != "Integration successful." or not np.all(np.isfinite(y)):
            raise SimulationFailed(info["message"])
        y = y if times[0] == 0.0 else y[1:]
        return _Solution(y.T)

    def _integrate_sparse(self, f, x, S, p, t_end, t_eval):
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
        sol = solve_ivp(f, (0.0, float(t_end)), y0, method="BDF", t_eval=t_eval, rtol=self.problem.rtol,
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

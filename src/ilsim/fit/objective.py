"""The negative log-likelihood of a fitting problem, its least-squares residuals and their derivatives.

Normal noise on the linear, log or log10 scale (PEtab's convention: a log-scaled measurement's density
carries the change of variables, so the value matches AMICI and petab's ``calculate_llh``):

    nllh = sum 0.5 r^2 + log(sigma) + 0.5 log(2 pi) [+ log(m) or log(m ln 10)],   r = (z(m) - z(y)) / sigma

For least squares the sigma terms become residuals sqrt(2 log sigma + C), C = SIGMA_SHIFT, so that
0.5 |residuals|^2 = nllh + constant wherever sigma > exp(-C/2). Normal priors add (theta - mu) / sd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ilsim.fit.problem import FitProblem
from ilsim.fit.simulate import SimulationFailed, Simulator

SIGMA_SHIFT = 2.0 * math.log(1e10)  # sigma terms are residuals for every sigma above 1e-10
_LOG2PI = math.log(2.0 * math.pi)
_LN10 = math.log(10.0)


@dataclass
class Evaluation:
    nllh: float  # negative log-likelihood (no priors)
    prior: float  # negative log-prior (0 without priors): the fit minimises nllh + prior
    residuals: np.ndarray | None
    gradient: np.ndarray | None  # of nllh + prior, by the estimated parameters on their scales
    jacobian: np.ndarray | None  # of the residuals
    simulated: np.ndarray  # the model's value per measurement row
    fisher: np.ndarray | None = None  # Fisher information (Gauss-Newton Hessian of nllh + prior), with the gradient

    @property
    def objective(self) -> float:
        return self.nllh + self.prior

    @property
    def llh(self) -> float:
        return -self.nllh


def _transform(values, kinds):
    """z(values) and dz/dvalue, row by row for the rows' transformation kinds (lin, log, log10)."""
    values = np.asarray(values, float)
    z, dz = values.copy(), np.ones_like(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        for kind, f, scale in (("log", np.log, 1.0), ("log10", np.log10, _LN10)):
            hit = kinds == kind
            z[hit] = f(values[hit])
            dz[hit] = 1.0 / (values[hit] * scale)
    return z, dz


class Objective:
    """``objective(theta, gradient=False)``: an Evaluation at the estimated parameters (on their scales)."""

    def __init__(self, problem: FitProblem):
        self.problem = problem
        self.simulator = Simulator(problem)
        self.n = len(problem.parameters.estimated)
        meas = problem.measurements
        self._jac_term = np.zeros(len(meas.value))
        self._kinds = np.array([o.transform for o in problem.observables])[meas.observable]
        self._zm = _transform(meas.value, self._kinds)[0]
        for i, (kind, v) in enumerate(zip(self._kinds, meas.value)):  # the density's change of variables
            if kind != "lin":
                self._jac_term[i] = math.log(v) if kind == "log" else math.log(v * _LN10)

    def __call__(self, theta, gradient: bool = False) -> Evaluation:
        pr = self.problem
        theta = np.asarray(theta, float)
        phi, dphi = pr.parameters.full(theta)
        est = pr.parameters.estimated
        est_pos = {int(j): k for k, j in enumerate(est)}
        nrow = len(pr.measurements.value)
        y = np.full(nrow, np.nan)
        sigma = np.full(nrow, np.nan)
        dy = np.zeros((nrow, len(phi))) if gradient else None
        dsigma = np.zeros((nrow, len(phi))) if gradient else None
        try:
            for sim in pr.simulations:
                used = sim.condition.problem_parameters() | (sim.preeq.problem_parameters() if sim.preeq else set())
                cols = np.array(sorted(j for j in used if j in est_pos), int) if gradient else None
                X, S = self.simulator.run(sim, phi, cols)
                self._observe(sim, phi, X, S, cols, y, sigma, dy, dsigma)
        except SimulationFailed:
            return self._failed(nrow, gradient)
        zm = self._zm
        zy, dz = _transform(y, self._kinds)
        with np.errstate(all="ignore"):
            r = (zm - zy) / sigma
            nllh = float(np.sum(0.5 * r * r + np.log(sigma) + 0.5 * _LOG2PI + self._jac_term))
        if not np.isfinite(nllh) or np.any(sigma <= 0):
            return self._failed(nrow, gradient)
        prior, prior_res, prior_jac = self._priors(theta, phi, dphi)
        with np.errstate(all="ignore"):
            u = 2.0 * np.log(sigma) + SIGMA_SHIFT
        sres = np.sqrt(np.maximum(u, 0.0))
        residuals = np.concatenate([r, sres, prior_res])
        if not gradient:
            return Evaluation(nllh, prior, residuals, None, None, y)
        # by every problem parameter (linear), then onto the estimated ones on their scales
        dr = (-(dz[:, None] * dy) / sigma[:, None]) - (r / sigma)[:, None] * dsigma
        dsres = np.where(sres[:, None] > 0, (dsigma / sigma[:, None]) / np.where(sres > 0, sres, 1.0)[:, None], 0.0)
        chain = dphi[None, :]
        J = np.vstack([dr[:, est] * chain, dsres[:, est] * chain, prior_jac])
        grad = J.T @ residuals  # d(0.5 |r|^2) = d(nllh + prior)
        # the Fisher information of normal noise: the residuals' part, and 2 (dsigma/sigma)^2 for the noise terms
        # (their shifted residuals would understate it by the shift; see SIGMA_SHIFT)
        data = dr[:, est] * chain
        relative = dsigma[:, est] * chain / sigma[:, None]
        fisher = data.T @ data + 2.0 * relative.T @ relative + prior_jac.T @ prior_jac
        return Evaluation(nllh, prior, residuals, grad, J, y, fisher)

    def _failed(self, nrow: int, gradient: bool) -> Evaluation:
        return Evaluation(math.inf, 0.0, None, None, None, np.full(nrow, np.nan))

    def _observe(self, sim, phi, X, S, cols, y, sigma, dy, dsigma) -> None:
        pr = self.problem
        m = pr.model
        ns, npar = len(m.species), len(m.parameters)
        p = sim.condition.parameters(phi)
        trace = self.simulator.parameter_trace  # the parameters as timed events left them at each output
        meas = pr.measurements
        for o_index, obs in enumerate(pr.observables):
            sel = meas.observable[sim.rows] == o_index
            if not np.any(sel):
                continue
            rows = sim.rows[sel]
            tix = sim.time_index[sel]
            xs = X[tix]
            vals = np.array([meas.slot_value[r] for r in rows])
            pars = np.array([meas.slot_param[r] for r in rows])
            vals = np.where(pars >= 0, phi[np.maximum(pars, 0)], vals)
            args = [*xs.T, *(p if trace is None else trace[0][tix].T), *vals.T]
            with np.errstate(all="ignore"):
                out = obs.function(*args)
            n = len(rows)
            y[rows] = np.broadcast_to(np.asarray(out[0], float), (n,))
            sigma[rows] = np.broadcast_to(np.asarray(out[1], float), (n,))
            if dy is None:
                continue
            parts = ((obs.h_slots, out[2:2 + len(obs.h_slots)], dy),
                     (obs.s_slots, out[2 + len(obs.h_slots):], dsigma))
            for slots, derivs, target in parts:
                acc = np.zeros((n, len(phi)))
                for slot, d in zip(slots, derivs):
                    d = np.broadcast_to(np.asarray(d, float), (n,))
                    if slot < ns:  # a state: through the sensitivities
                        acc[:, cols] += d[:, None] * S[tix, slot, :]
                    elif slot < ns + npar and trace is not None:  # a model parameter events may have changed
                        acc[:, cols] += d[:, None] * trace[1][tix, slot - ns, :]
                    elif slot < ns + npar:  # a model parameter: through the condition's mapping
                        k = slot - ns
                        for t, s in zip(sim.condition.targets, sim.condition.sources):
                            if t == k:
                                acc[:, s] += d
                    else:  # a row value: a problem parameter on rows where it is one
                        j = slot - ns - npar
                        hit = pars[:, j] >= 0
                        np.add.at(acc, (np.flatnonzero(hit), pars[hit, j]), d[hit])
                target[rows] = acc

    def _priors(self, theta, phi, dphi):
        params = self.problem.parameters
        res, jac, total = [], [], 0.0
        for k, j in enumerate(params.estimated):
            prior = params.priors[j]
            if prior is None:
                continue
            kind, mu, sd = prior
            value, dvalue = (theta[k], 1.0) if kind == "parameterScaleNormal" else (phi[j], dphi[k])
            r = (value - mu) / sd
            total += 0.5 * r * r + math.log(sd) + 0.5 * _LOG2PI
            row = np.zeros(self.n)
            row[k] = dvalue / sd
            res.append(r)
            jac.append(row)
        return total, np.array(res), (np.array(jac) if jac else np.zeros((0, self.n)))

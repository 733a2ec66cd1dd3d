"""Fitting models to measurements: PEtab v1 problems or an ilsim model with a ``fit:`` section, the negative
log-likelihood with forward-sensitivity gradients, multistart (fides or SciPy TRF), profile likelihoods.

``ilsim.fit(problem, starts=..., seed=..., out=...)`` runs a fit (docs/fitting.md): this package is callable,
so the name works both as the package and as the function.
"""

from __future__ import annotations

import sys
import types


def fit(*args, **kwargs):
    """See ``ilsim.fit.run.fit``."""
    from ilsim.fit.run import fit as run_fit

    return run_fit(*args, **kwargs)


def load_problem(problem):
    from ilsim.fit.run import load_problem as load

    return load(problem)


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return fit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
package = sys.modules[__name__]  # what ``ilsim.fit`` names before this package is imported (ilsim's lazy names)

"""The tocilizumab fitting example: a model with a dose event, fitted to synthetic noisy IL-6 and CRP data.

Oracle: the truth the data were drawn from (the values the model file is written with,
examples/fitting/make_data.py) must lie in every 95% profile interval, and the best fit is at least as good as
the truth (an optimum).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import ilsim
from ilsim.fit.objective import Objective
from ilsim.fit.run import load_problem

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fitting" / "tocilizumab-fit.yaml"
TRUTH = {"IC50_TCZ": 0.08, "k_R": 6.5, "CRP_max": 58.4}


def test_tocilizumab_example_recovers_the_truth():
    result = ilsim.fit(EXAMPLE, starts=2, seed=1, profiles=True, workers=1)
    table = result.table().set_index("parameter")
    for name, truth in TRUTH.items():
        row = table.loc[name]
        assert row["ci95_lower"] < truth < row["ci95_upper"], (name, row.to_dict())
        assert bool(row["identifiable"])
    problem = load_problem(EXAMPLE)
    params = problem.parameters
    assert [problem.model.p0[problem.model.parameters.index(n)] for n in params.names] == [TRUTH[n] for n in params.names]
    at_truth = Objective(problem)(params.scale(np.array([TRUTH[n] for n in params.names])))
    assert result.nllh <= at_truth.nllh + 1e-6

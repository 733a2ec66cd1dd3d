"""Cohorts and sweeps launched from the page: limits, the result against ilsim's own functions, cancel."""

from __future__ import annotations

import pytest

pytest.importorskip("dash", reason="the web explorer needs the 'web' extra (dash, plotly)")

import ilsim  # noqa: E402
from ilsim.errors import IlsimError  # noqa: E402
from ilsim.web.launch import MAX_PATIENTS, MAX_SWEEP_POINTS, Launcher, cohort_request, sweep_request  # noqa: E402

MODEL = "reynolds-2006"


@pytest.mark.parametrize("args", [([], 10), (["kpg"], 0), (["kpg"], MAX_PATIENTS + 1), (["no_such"], 10), (["kpg"], 2.5),
                                  (["kpg"], "ten"), (["kpg"], None)])
def test_a_cohort_request_out_of_its_limits_is_refused(args):
    with pytest.raises(IlsimError):
        cohort_request(MODEL, args[0], args[1], 1)


def test_a_sweep_request_out_of_its_limits_is_refused():
    with pytest.raises(IlsimError, match=str(MAX_SWEEP_POINTS)):
        sweep_request(MODEL, ["kpg", "kpm"], 21)  # 441 points
    with pytest.raises(IlsimError):
        sweep_request(MODEL, ["kpg", "kp", "kpm"], 2)  # three parameters


def test_a_launched_sweep_is_ilsim_sweep_over_the_sliders_span():
    launcher = Launcher()
    try:
        request = sweep_request(MODEL, ["kpg"], 5)
        launch = launcher.get(launcher.submit("sweep", request))
        table, info = launch.future.result(timeout=300)
        low, high = next(p for p in ilsim.load(MODEL).parameters if p.name == "kpg").span()
        expected = ilsim.sweep(MODEL, {"kpg": (low, high, 5)}, report=False).table  # the oracle: the library's sweep
        assert table["kpg"].tolist() == pytest.approx(expected["kpg"].tolist())
        assert table["outcome"].tolist() == expected["outcome"].tolist()
        assert launch.state() == "done" and launch.done == launch.total == 5
        from ilsim.web.results import outcome_view

        view = str(outcome_view("launched", "sweep", info, table, prefix="launch-"))  # as the page shows it
        assert "launch-outcome-map" in view and "launch-outcome-table" in view
    finally:
        launcher.shutdown()


def test_a_cancelled_cohort_stops_before_its_end():
    launcher = Launcher()
    try:
        launch_id = launcher.submit("cohort", cohort_request(MODEL, ["kpg"], MAX_PATIENTS, 3))
        launcher.cancel(launch_id)
        launch = launcher.get(launch_id)
        try:
            launch.future.result(timeout=300)
        except BaseException:  # noqa: BLE001 - stopped by the cancel (its exception, or the future cancelled)
            pass
        assert launch.state() == "cancelled" and launch.done < MAX_PATIENTS  # stopped at a chunk, not run to the end
    finally:
        launcher.shutdown()

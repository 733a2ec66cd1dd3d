"""The batch engine: agreement with the SciPy engine, isolated failures, bad input, determinism."""

import numpy as np
import pytest

import ilsim
from ilsim.engines.batch import MAX_STEPS, OK, BatchEngine


def cohort(model, name, low, high, n):
    P = np.tile(model.p0, (n, 1))
    P[:, model.parameters.index(name)] = np.linspace(low, high, n)
    return P


def max_relative_difference(model, Y, P, t_end, points):
    """Max over patients and species of |batch - SciPy| / (range of the species in the reference)."""
    worst = 0.0
    for i in range(len(P)):
        overrides = dict(zip(model.parameters, map(float, P[i])))
        ds = ilsim.simulate(model, t_end, points=points, method="LSODA", rtol=1e-10, atol=1e-12, parameters=overrides)
        ref = np.column_stack([ds[s].values for s in model.species])
        span = ref.max(axis=0) - ref.min(axis=0)
        worst = max(worst, float((np.abs(Y[i] - ref).max(axis=0) / np.where(span > 0, span, 1.0)).max()))
    return worst


@pytest.mark.parametrize(
    ("scenario", "parameter", "low", "high", "t_end"),
    [("kirschner-panetta-1998", "c", 0.02, 0.05, 1000.0), ("reynolds-2006", "kpg", 0.3, 0.7, 200.0)],
)
def test_agrees_with_the_scipy_engine(scenario, parameter, low, high, t_end):
    m = ilsim.compile(scenario)
    P = cohort(m, parameter, low, high, 20)
    t = np.linspace(0.0, t_end, 101)
    Y, status = BatchEngine(rtol=1e-8, atol=1e-9).run(m, t, P)
    assert Y.shape == (20, 101, len(m.species))
    assert (status == OK).all()
    assert np.isfinite(Y).all()
    assert max_relative_difference(m, Y, P, t_end, 101) < 1e-4


def blow_up_model():
    m = ilsim.Model(name="blow-up").add_parameter("a", -1.0).add_species("x", 1.0, nonnegative=False)
    m.add_process("growth", "a*x^2", produces={"x": 1})
    return ilsim.compile(m)


def test_a_patient_that_blows_up_fails_alone():
    m = blow_up_model()
    P = np.array([[-1.0], [-1.0], [1.0], [-1.0]])  # a = 1: x = 1/(1 - t) blows up at t = 1
    t = np.linspace(0.0, 2.0, 21)
    Y, status = BatchEngine(rtol=1e-8, atol=1e-10).run(m, t, P)
    assert status[2] != OK
    assert list(np.flatnonzero(status)) == [2]
    assert np.isnan(Y[2, t > 1.0]).all()  # nothing after the blow-up
    assert np.allclose(Y[2, t < 0.9, 0], 1.0 / (1.0 - t[t < 0.9]), rtol=1e-6)  # values before it are kept
    for i in (0, 1, 3):  # a = -1: x = 1/(1 + t)
        assert np.allclose(Y[i, :, 0], 1.0 / (1.0 + t), rtol=1e-7)


def test_step_limit_gives_a_status_not_an_exception():
    m = blow_up_model()
    Y, status = BatchEngine(max_steps=3).run(m, np.linspace(0.0, 2.0, 21), np.array([[-1.0]]))
    assert status[0] == MAX_STEPS
    assert np.isnan(Y[0, -1]).all()


def test_unknown_method_is_an_error_naming_the_choices():
    with pytest.raises(ilsim.IlsimError, match="unknown batch method 'radau'; choose one of dopri5, rodas, auto"):
        BatchEngine(method="radau")


def test_every_status_code_the_kernel_returns_has_its_own_text():
    from ilsim.engines.batch import STATUS, integrator

    kernel = [integrator.OK, integrator.NON_FINITE, integrator.STEP_UNDERFLOW, integrator.MAX_STEPS,
              integrator.BAD_INITIAL, integrator.ENDLESS_EVENTS]
    assert len(set(kernel)) == len(kernel) and set(kernel) <= set(STATUS)
    assert len(set(STATUS.values())) == len(STATUS)


def test_wrong_parameter_shape_is_an_error():
    m = blow_up_model()
    with pytest.raises(ilsim.IlsimError, match="patients x 1"):
        BatchEngine().run(m, np.linspace(0, 1, 3), np.ones((2, 3)))


def test_same_inputs_give_bitwise_identical_outputs():
    m = ilsim.compile("kirschner-panetta-1998")
    P = cohort(m, "c", 0.02, 0.05, 16)
    t = np.linspace(0.0, 1000.0, 101)
    engine = BatchEngine()
    Y1, s1 = engine.run(m, t, P)
    Y2, s2 = engine.run(m, t, P.copy())
    assert np.array_equal(s1, s2)
    assert Y1.tobytes() == Y2.tobytes()
    Y3, _ = engine.run(m, t, P[5:6])  # a patient's result does not depend on the others
    assert Y3[0].tobytes() == Y1[5].tobytes()
    import numba

    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)  # one thread instead of several: the same bits
        Y4, _ = engine.run(m, t, P)
    finally:
        numba.set_num_threads(threads)
    assert Y4.tobytes() == Y1.tobytes()


def test_lane_groups_agree_with_one_patient_at_a_time():
    """Models without condition events run patients side by side (lane groups); adding a condition that never
    becomes true sends the same model through the one-patient path: the two agree to tolerance, and a group's
    patients that turn stiff (auto) finish as the one-patient path does. (Every built-in scenario, with timed
    doses, runs in lane groups in test_batch_scenarios.py.)"""
    lanes = ilsim.compile("kirschner-panetta-1998")
    alone = ilsim.compile(ilsim.load("kirschner-panetta-1998").add_event("never", when="T > 1e300", set={"I": 0.0}))
    P = cohort(lanes, "c", 0.02, 0.05, 37)  # two full groups and a part-filled one
    P[::3, lanes.parameters.index("mu3")] = 1000.0  # IL-2 cleared 100x faster: stiff, so auto moves these to RODAS
    t = np.linspace(0.0, 1000.0, 201)
    for method in ("dopri5", "auto"):
        engine = BatchEngine(rtol=1e-8, atol=1e-9, method=method)
        grouped = engine.run_full(lanes, t, P)
        single = engine.run_full(alone, t, P)
        assert (grouped.status == OK).all() and (single.status == OK).all()
        span = single.Y.max(axis=1) - single.Y.min(axis=1)
        assert (np.abs(grouped.Y - single.Y).max(axis=1) / span).max() < 1e-4
        if method == "auto":  # the stiff patients left their lanes for RODAS, the others stayed
            assert grouped.stiff[::3].all() and not grouped.stiff[1::3].any()

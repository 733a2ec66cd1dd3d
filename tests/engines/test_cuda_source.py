"""The generated C/CUDA kernel, built as plain C: the printer, agreement with SciPy, events, failures, and the
methods dopri5, rodas and auto (against SciPy's Radau on a stiff model, and against the numba batch engine).

The same source runs on a GPU through CuPy (engines.cuda); here it is compiled by the system C
compiler into a shared library whose patient loop stands in for the GPU's threads.
"""

import ctypes
import math
import shutil
import subprocess

import numpy as np
import pytest
from test_batch_stiff import T as ROBERTSON_TIMES
from test_batch_stiff import robertson

import ilsim
from ilsim.engines.batch import BAD_INITIAL, MAX_STEPS, METHODS, OK, BatchEngine
from ilsim.engines.csource import (
    INTEGRATOR,
    MAX_STIFF_SPECIES,
    PRELUDE,
    HostKernel,
    c_compiler,
    c_expr,
    c_number,
    kernel_source,
)
from ilsim.engines.cuda import CudaBatchEngine, cuda_unavailable_reason
from ilsim.engines.ode import OdeEngine
from ilsim.model import expressions as ex

pytestmark = pytest.mark.skipif(c_compiler() is None, reason="no C compiler (cc/gcc/clang or $CC) to build the kernel")


def run_host(model, t, P, rtol=1e-9, atol=1e-11, **kw):
    return HostKernel(model).run(t, P, rtol=rtol, atol=atol, **kw)


def scipy_reference(model, t, p):
    ds = ilsim.simulate(model, t_eval=t, rtol=1e-10, atol=1e-12, parameters=dict(zip(model.parameters, map(float, p))))
    return np.column_stack([ds[s].values for s in model.species]), ds


def max_relative_difference(Y, ref):
    """Max over species of |kernel - SciPy| / (range of the species in the reference)."""
    span = ref.max(axis=0) - ref.min(axis=0)
    return float((np.abs(Y - ref).max(axis=0) / np.where(span > 1e-9, span, 1.0)).max())


# ------------------------------------------------------------------------------ the printer

VALUES = {"a": 1.7, "b": 0.35, "c": 2.5, "d": -0.8, "e": 3.0}
EXPRESSIONS = [
    "a + b*c - d/e", "a**2", "c**3", "b**4", "a**2.5", "c**-1.5", "-a*d", "exp(b)", "log(c)", "log(c, 2)", "log10(e)",
    "sqrt(c)", "abs(d)", "min(a, b, c)", "max(d, a, c)", "min(d, b)", "hill(a, b, 2)", "hill(c, a, e)",
    "piecewise(1, a < b, 2, a > c, 3)", "piecewise(1, a > b, 2, a > c, 3)", "a if b >= c else d", "sin(a) + cos(b) + tanh(c)",
    "floor(c) + ceil(b) + floor(d)", "tan(b) + sinh(b) + cosh(d) + asin(b) + acos(b) + atan(c)",
    "(a < b and b <= c) or not (d == e)", "a != b", "pi*e", "2*a*(b - c)/(d + e)**2",
    "piecewise(a, d, b)", "max(0, 1 - a/c)", "1e-300*a + 1e300*b",
]


def test_every_operator_and_function_prints_to_c_that_evaluates_like_the_tree(tmp_path):
    names = {n: f"v[{i}]" for i, n in enumerate(VALUES)}
    trees = [ex.parse(text) for text in EXPRESSIONS]
    trees += [ex.root_function(ex.parse(text)) for text in ("a > b", "a <= b and c > d", "not (a < b) or e == 3", "a")]
    body = "\n".join(f"double expr_{k}(const double *v) {{ return {c_expr(tree, names)}; }}" for k, tree in enumerate(trees))
    src, lib = tmp_path / "exprs.c", tmp_path / "exprs.so"
    src.write_text(PRELUDE + "\n" + body + "\n")
    subprocess.run([c_compiler(), "-O2", "-std=c99", "-shared", "-fPIC", str(src), "-o", str(lib), "-lm"], check=True)
    library = ctypes.CDLL(str(lib))
    v = (ctypes.c_double * len(VALUES))(*VALUES.values())
    for k, tree in enumerate(trees):
        fn = getattr(library, f"expr_{k}")
        fn.restype, fn.argtypes = ctypes.c_double, [ctypes.c_void_p]
        expected = float(ex.evaluate(tree, VALUES))
        assert fn(v) == pytest.approx(expected, rel=1e-14, abs=0), ex.to_text(tree)


def test_every_function_of_the_expression_language_has_a_c_form():
    names = {n: n for n in "abc"}
    for func, (low, _) in ex.FUNCTIONS.items():
        count = 3 if func == "piecewise" else low
        assert c_expr(ex.Call(func, tuple(ex.Name(n) for n in "abc"[:count])), names)


def test_numbers_print_as_exact_double_literals():
    for value in (0.1, 1e-300, 2.0, -2.5, 6.02214076e23, 1 / 3):
        text = c_number(value)
        assert float(text.strip("()")) == value
    assert c_number(math.inf) == "ILSIM_INF" and c_number(-math.inf) == "(-ILSIM_INF)" and c_number(math.nan) == "ILSIM_NAN"


def test_user_text_never_reaches_the_source():
    m = ilsim.Model(name="evil */ #include <stdio.h> /*").add_parameter("k", 0.5).add_species("x", 1.0)
    m.add_process("decay", "k*x", consumes={"x": 1})
    source = kernel_source(ilsim.compile(m))
    assert "#include <stdio.h>" not in source and "evil" in source


# ------------------------------------------------------------------------------ agreement with SciPy


@pytest.mark.parametrize(
    ("scenario", "points", "patient"),
    [
        ("kirschner-panetta-1998", 501, {"c": 0.02}),
        ("reynolds-2006", 501, {"kpg": 0.4}),
        ("alexander-wahl-2010", 501, {}),
        ("infection-resolution", 241, {}),
        ("aldesleukin", 601, {"SBP0": 100, "MAP0": 75}),  # low baseline pressure: doses held, then the course stopped
    ],
)
def test_agrees_with_the_scipy_engine_on_built_in_scenarios(scenario, points, patient):
    m = ilsim.compile(scenario)
    t = np.linspace(0.0, m.spec.simulation.t_end, points)
    P = np.vstack([m.p0, m.parameter_vector(patient)])
    refs = [scipy_reference(m, t, p) for p in P]
    for method in METHODS:
        Y, status = run_host(m, t, P, method=method)
        assert list(status) == [OK, OK], method
        for i, (ref, _) in enumerate(refs):
            assert max_relative_difference(Y[i], ref) <= 1e-4, (scenario, method, i)
    if scenario == "aldesleukin":
        held = [name for _, name in __import__("json").loads(refs[1][1].attrs["events_fired"]) if "held" in name]
        assert held  # the hold rule acted in the second patient, and the kernel followed it


def test_patients_are_independent_and_results_reproducible():
    m = ilsim.compile("kirschner-panetta-1998")
    t = np.linspace(0.0, 300.0, 61)
    P = np.tile(m.p0, (6, 1))
    P[:, m.parameters.index("c")] = np.linspace(0.02, 0.05, 6)
    Y, _ = run_host(m, t, P)
    alone, _ = run_host(m, t, P[3:4])
    assert np.array_equal(Y[3], alone[0])
    assert np.array_equal(Y, run_host(m, t, P)[0])


# ------------------------------------------------------------------------------ events


def sawtooth():
    m = ilsim.Model(name="sawtooth").add_parameter("r", 0.7).add_parameter("top", 10.0).add_species("x", 1.0)
    m.add_process("growth", "r*x", produces={"x": 1})
    m.add_event("reset", when="x > top", set={"x": 1})
    return ilsim.compile(m)


@pytest.mark.parametrize("method", ["dopri5", "rodas"])
def test_condition_events_are_located_on_the_dense_output(method):
    m = sawtooth()
    t = np.linspace(0.0, 10.0, 201)
    P = np.array([[0.7, 10.0], [0.7, 5.0]])  # each patient has its own threshold
    Y, status = run_host(m, t, P, rtol=1e-10, atol=1e-12, method=method)
    assert list(status) == [OK, OK]
    for i, (r, top) in enumerate(P):
        period = math.log(top) / r
        expected = np.exp(r * np.mod(t, period))  # 1 at each reset, growing to `top`
        away = np.abs(np.mod(t + 1e-3, period)) > 2e-3  # not within rounding of a reset
        assert np.allclose(Y[i, away, 0], expected[away], rtol=1e-7)
        assert Y[i, :, 0].max() <= top * (1 + 1e-8)
        ref, _ = scipy_reference(m, t, P[i])
        assert np.abs(Y[i, away, 0] - ref[away, 0]).max() <= 1e-4 * top


def test_a_dose_that_crosses_a_threshold_fires_the_condition_at_once_and_parameters_change_per_patient():
    m = ilsim.Model(name="cascade").add_species("x", 0.0).add_species("z", 0.0).add_parameter("alarm", 0.0)
    m.add_parameter("dose", 5.0)
    m.add_process("alarm clock", "alarm", produces={"z": 1})  # z counts time since the alarm
    m.add_event("dose", at=1, add={"x": "dose"})
    m.add_event("alarm", when="x > 3", set={"alarm": 1})
    t = np.linspace(0.0, 3.0, 7)
    Y, status = run_host(ilsim.compile(m), t, np.array([[0.0, 5.0], [0.0, 2.0]]))
    assert list(status) == [OK, OK]
    assert np.allclose(Y[0, :, 1], np.maximum(t - 1.0, 0.0), atol=1e-9)  # fired at the dose, t = 1
    assert np.all(Y[1, :, 1] == 0.0)  # a dose of 2 stays below the threshold: no alarm for this patient


def test_guards_hold_events_and_timed_events_restart_at_their_times():
    m = ilsim.Model(name="guarded").add_species("x", 0.0).add_parameter("allowed", 1.0)
    m.add_event("bolus", at=[0, 2, 4], add={"x": 1}, only_if="allowed > 0")
    m.add_event("forbid", at=3, set={"allowed": 0})
    Y, status = run_host(ilsim.compile(m), np.arange(6.0), np.array([[1.0], [0.0]]))
    assert list(Y[0, :, 0]) == [1, 1, 2, 2, 2, 2]  # at t = 0 before the first output; the t = 4 bolus withheld
    assert list(Y[1, :, 0]) == [0] * 6 and list(status) == [OK, OK]


def test_a_condition_whose_action_leaves_it_true_fires_once():
    m = ilsim.Model(name="flag").add_species("x", 0.0).add_species("marks", 0.0)
    m.add_process("inflow", "1", produces={"x": 1})
    m.add_event("mark", when="x > 2.5", add={"marks": 1})
    Y, status = run_host(ilsim.compile(m), np.linspace(0, 10, 11), np.zeros((1, 0)))
    assert status[0] == OK and list(Y[0, :, 1]) == [0, 0, 0] + [1] * 8


def every_feature():
    """Observables, functions, a guarded timed dose and a condition on two species."""
    m = ilsim.Model(name="every-feature").add_species("x", 1.0).add_species("y", 0.0, nonnegative=False)
    for name, value in (("k", 0.3), ("K", 2.0), ("n", 2.0), ("given", 0.0)):
        m.add_parameter(name, value)
    m.add_observable("signal", "hill(x, K, n)*piecewise(1, y < 0, 0.5)")
    m.add_process("growth", "k*max(x, 0.1)*log(1 + x)/sqrt(K) - min(signal, 1)*x", produces={"x": 1})
    m.add_process("drift", "0.1*x**2 - abs(y)**3", produces={"y": 1})
    m.add_event("dose", at=[1, 2, 3], add={"x": "K/2"}, only_if="given < 1 and not (y > 5)")
    m.add_event("mark", when="x > 1.8 or y < -1", set={"given": 1})
    return ilsim.compile(m)


def test_guards_conditions_and_observables_together_agree_with_scipy():
    m = every_feature()
    t = np.linspace(0.0, 6.0, 61)
    Y, status = run_host(m, t, m.p0[None, :])
    ref, ds = scipy_reference(m, t, m.p0)
    assert status[0] == OK and max_relative_difference(Y[0], ref) <= 1e-4
    assert [name for _, name in __import__("json").loads(ds.attrs["events_fired"])].count("mark") == 1


# ------------------------------------------------------------------------------ failures


def blow_up_model():
    m = ilsim.Model(name="blow-up").add_parameter("a", -1.0).add_species("x", 1.0, nonnegative=False)
    m.add_process("growth", "a*x^2", produces={"x": 1})
    return ilsim.compile(m)


def test_a_patient_that_blows_up_fails_alone_with_nan_rows():
    P = np.array([[-1.0], [-1.0], [1.0], [-1.0]])  # a = 1: x = 1/(1 - t) blows up at t = 1
    t = np.linspace(0.0, 2.0, 21)
    Y, status = run_host(blow_up_model(), t, P, rtol=1e-8, atol=1e-10)
    assert list(np.flatnonzero(status)) == [2]
    assert np.isnan(Y[2, t > 1.0]).all()
    assert np.allclose(Y[2, t < 0.9, 0], 1.0 / (1.0 - t[t < 0.9]), rtol=1e-6)
    for i in (0, 1, 3):
        assert np.allclose(Y[i, :, 0], 1.0 / (1.0 + t), rtol=1e-7)


def test_step_limit_and_bad_initial_state_give_statuses():
    m = blow_up_model()
    Y, status = run_host(m, np.linspace(0.0, 2.0, 21), np.array([[-1.0]]), max_steps=3)
    assert status[0] == MAX_STEPS and np.isnan(Y[0, -1]).all()
    neg = ilsim.Model(name="negative-start").add_parameter("x0", 1.0).add_species("x", "x0")
    neg.add_process("decay", "x", consumes={"x": 1})
    Y, status = run_host(ilsim.compile(neg), np.linspace(0, 1, 3), np.array([[1.0], [-1.0]]))
    assert list(status) == [OK, BAD_INITIAL] and np.isnan(Y[1]).all() and np.isfinite(Y[0]).all()


def test_wrong_inputs_are_clear_errors():
    kernel = HostKernel(blow_up_model())
    with pytest.raises(ilsim.IlsimError, match="patients x 1"):
        kernel.run(np.linspace(0, 1, 3), np.ones((2, 3)))
    with pytest.raises(ilsim.IlsimError, match="strictly increasing"):
        kernel.run(np.array([0.0, 1.0, 1.0]), np.ones((2, 1)))
    with pytest.raises(ilsim.IlsimError, match="tolerances"):
        kernel.run(np.linspace(0, 1, 3), np.ones((2, 1)), rtol=2.0)


# ------------------------------------------------------------------------------ the CUDA side


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed: the CUDA form is checked on GPU machines")
@pytest.mark.parametrize("method", list(METHODS))
def test_the_same_source_compiles_as_cuda(tmp_path, method):
    src = tmp_path / "kernel.cu"
    src.write_text(kernel_source(every_feature(), method))
    done = subprocess.run(["nvcc", "-ptx", "-arch=sm_80", str(src), "-o", str(tmp_path / "kernel.ptx")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert ".entry ilsim_solve" in (tmp_path / "kernel.ptx").read_text()


@pytest.mark.skipif(cuda_unavailable_reason() is None, reason="a CUDA GPU is available here")
def test_without_a_gpu_the_cuda_engine_says_why_and_what_to_do():
    m = blow_up_model()
    with pytest.raises(ilsim.IlsimError, match=r"no CUDA GPU is available \(.+\); run on the CPU \(backend 'cpu'\)"):
        CudaBatchEngine().run(m, np.linspace(0, 1, 3), m.p0[None, :])


def test_dopri5_needs_more_than_max_steps_on_a_stiff_model():
    m = robertson()
    Y, status = run_host(m, ROBERTSON_TIMES, m.p0[None, :], rtol=1e-6, atol=1e-10, max_steps=50_000, method="dopri5")
    assert status[0] == MAX_STEPS and np.isnan(Y[0, -1]).all()


@pytest.mark.parametrize("method", ["rodas", "auto"])
def test_rodas_and_auto_solve_robertson_like_radau(method):
    """The same check as the numba engine's (test_batch_stiff.py); auto gets there within the step limit that stops
    DOPRI5, so it moved to RODAS."""
    m = robertson()
    P = np.array([m.p0, m.p0 * [1.0, 0.5, 2.0]])
    Y, status = run_host(m, ROBERTSON_TIMES, P, rtol=1e-8, atol=1e-12, max_steps=50_000, method=method)
    assert (status == OK).all()
    for i in range(2):
        ref = OdeEngine("Radau", rtol=1e-10, atol=1e-14).run(m, ROBERTSON_TIMES, P[i]).y
        span = ref.max(axis=0) - ref.min(axis=0)
        assert (np.abs(Y[i] - ref).max(axis=0) / span).max() < 1e-4
        assert np.allclose(Y[i].sum(axis=1), 1.0, rtol=1e-8)  # mass is conserved


def test_rodas_follows_a_forcing_in_time():
    """x' = cos(w t): the stages take df/dt (a forward difference), so the forced solution sin(w t) / w is met."""
    m = ilsim.Model(name="forced").add_parameter("w", 2.0).add_species("x", 0.0, nonnegative=False)
    m.add_process("forcing", "cos(w*t)", produces={"x": 1})
    t = np.linspace(0.0, 10.0, 41)
    Y, status = run_host(ilsim.compile(m), t, np.array([[2.0], [0.5]]), rtol=1e-9, atol=1e-12, method="rodas")
    assert (status == OK).all()
    for i, w in enumerate((2.0, 0.5)):
        assert np.allclose(Y[i, :, 0], np.sin(w * t) / w, atol=1e-7)


@pytest.mark.parametrize("model", [lambda: ilsim.compile("kirschner-panetta-1998"), every_feature],
                         ids=["kirschner-panetta", "every-feature"])
def test_rodas_in_c_agrees_with_rodas_in_numba(model):
    """The same method, step control, dense output and event handling (every-feature: a condition event, guarded
    timed doses) on both sides: only rounding differs."""
    m = model()
    t = np.linspace(0.0, 6.0 if m.name == "every-feature" else 300.0, 121)
    P = np.vstack([m.p0, m.p0 * 1.1])
    Y, status = run_host(m, t, P, rtol=1e-8, atol=1e-10, method="rodas")
    ref = BatchEngine(rtol=1e-8, atol=1e-10, method="rodas").run_full(m, t, P)
    assert (status == OK).all() and (ref.status == OK).all() and ref.stiff.all()
    span = np.maximum(ref.Y.max(axis=1) - ref.Y.min(axis=1), 1e-9)
    assert (np.abs(Y - ref.Y).max(axis=1) / span).max() < 1e-9


# aldesleukin: 57 timed events and holds over 500 h; a rounding difference (libm's pow in C, numba's fused
# operations) flips one accept/reject decision late in the second patient's run (t = 180 h), after which the two
# differ at the tolerance's level, not at rounding's
@pytest.mark.parametrize("scenario, bound", [("kirschner-panetta-1998", 1e-10), ("reynolds-2006", 1e-10),
                                             ("infection-resolution", 1e-10), ("aldesleukin", 1e-6)])
def test_dopri5_in_c_takes_the_steps_of_dopri5_in_numba(scenario, bound):
    """The integrator exists twice (numba for the CPU, C for the GPU: docs/architecture.md, "Engines"). On the
    built-in scenarios, with doses, holding rules and a condition event, a numba patient integrated alone and a
    C patient give the same numbers to rounding, so neither can drift from the other in its steps, step control,
    dense output or events; numba's lane groups (approximate log2/exp2 in the step-size factor) stay within
    the tolerance of both."""
    m = ilsim.compile(scenario)
    t = np.linspace(0.0, m.spec.simulation.t_end, 201)
    P = np.vstack([m.p0, m.p0 * 1.05])
    Y, status = run_host(m, t, P, rtol=1e-7, atol=1e-9, method="dopri5")
    alone = BatchEngine(rtol=1e-7, atol=1e-9, method="dopri5", lane_groups=False).solve(m, t, P)
    lanes = BatchEngine(rtol=1e-7, atol=1e-9, method="dopri5").solve(m, t, P)
    assert (status == OK).all() and (alone.status == OK).all() and (lanes.status == OK).all()
    span = np.maximum(alone.Y.max(axis=1) - alone.Y.min(axis=1), 1e-9)
    assert (np.abs(Y - alone.Y).max(axis=1) / span).max() < bound
    assert (np.abs(lanes.Y - alone.Y).max(axis=1) / span).max() < 1e-6


def test_delayed_events_in_c_take_the_steps_of_delayed_events_in_numba():
    """Delayed events (both transcriptions of the queue of pending firings): x decays; 'x < 2' queues a rescue
    dose of 5 due tau later (values at the trigger), doses at 1, 1.5 and 3 each wait 2.5 (two pending at
    once), and a non-persistent top-up 'x > 6' is dropped when x falls below 6 before its delay of 4 ends.
    The C kernel and a numba patient integrated alone agree to rounding; the SciPy engine, at its tolerance."""
    m = ilsim.Model(name="delayed rescue").add_parameter("k", 0.5).add_parameter("tau", 0.7).add_species("x", 8.0)
    m.add_process("clearance", "k*x", consumes={"x": 1})
    m.add_event("rescue", when="x < 2", add={"x": 5}, delay="tau")
    m.add_event("dose", at=[1.0, 1.5, 3.0], add={"x": 1}, delay="2.5")
    m.add_event("top-up", when="x > 6", add={"x": 100}, delay="4", persistent=False)
    m = ilsim.compile(m)
    t = np.linspace(0.0, 20.0, 201)
    P = np.vstack([m.p0, m.p0 * [1.3, 2.0]])
    Y, status = run_host(m, t, P, rtol=1e-8, atol=1e-10, method="dopri5")
    alone = BatchEngine(rtol=1e-8, atol=1e-10, method="dopri5", lane_groups=False).solve(m, t, P)
    ref = OdeEngine("DOP853", 1e-10, 1e-12).solve(m, t, P)
    assert (status == OK).all() and (alone.status == OK).all() and (ref.status == OK).all()
    assert alone.fired.tolist() == ref.fired.tolist() and alone.fired[:, 1].tolist() == [3, 3]
    assert (alone.fired[:, 0] >= 2).all() and (alone.fired[:, 2] == 0).all()  # rescued repeatedly; top-up dropped
    assert np.abs(Y - alone.Y).max() < 1e-10 * 8.0
    assert np.abs(alone.Y - ref.Y).max() < 1e-5


def test_the_kernel_prints_every_coefficient_from_the_one_table():
    """The C integrator holds no coefficient of its own: every method constant is printed from
    engines.tableaux (which the numba engine imports), and each printed value reads back as exactly that float."""
    from ilsim.engines import tableaux

    assert "__TABLEAUX__" in INTEGRATOR
    for line in INTEGRATOR.splitlines():  # no literal tableau left in the template
        parts = line.split(None, 2)
        assert not (len(parts) == 3 and parts[0] == "#define" and parts[1] in tableaux.numbers()), line
    source = kernel_source(blow_up_model(), "auto")
    printed = {}
    for line in source.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0] == "#define" and parts[1] in tableaux.numbers():
            printed[parts[1]] = float(parts[2].strip("()"))
    assert printed == {k: float(v) for k, v in tableaux.numbers().items()}
    assert len(printed) > 60  # DOPRI5's and RODAS's tables, step control, the stiffness test


def test_unknown_methods_and_models_too_large_for_rodas_are_clear_errors():
    m = blow_up_model()
    with pytest.raises(ilsim.IlsimError, match="unknown batch method 'radau'; choose one of dopri5, rodas, auto"):
        HostKernel(m).run(np.linspace(0, 1, 3), m.p0[None, :], method="radau")
    with pytest.raises(ilsim.IlsimError, match="unknown batch method 'bdf'"):
        CudaBatchEngine(method="bdf")
    assert CudaBatchEngine().method == BatchEngine().method == "auto"
    chain = ilsim.Model(name="long-chain").add_parameter("k", 1.0)
    for i in range(MAX_STIFF_SPECIES + 1):
        chain.add_species(f"x{i}", 1.0 if i == 0 else 0.0)
        if i:
            chain.add_process(f"step {i}", f"k*x{i - 1}", consumes={f"x{i - 1}": 1}, produces={f"x{i}": 1})
    chain = ilsim.compile(chain)
    for method in ("rodas", "auto"):
        with pytest.raises(ilsim.IlsimError, match=f"method '{method}' .* up to {MAX_STIFF_SPECIES} species.*'dopri5'"):
            kernel_source(chain, method)
    assert "#define ILSIM_METHOD 0" in kernel_source(chain, "dopri5") and "void ilsim_jac(" not in kernel_source(chain, "dopri5")

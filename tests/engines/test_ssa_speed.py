"""The direct method's written-out loop (codegen.direct_source), the seeds computed all at once (seeds.py) and the
CUDA kernel (cuda.py, in numba's simulator).

Oracles: the driver's general loop (it runs a model when a condition event is to be tested after every reaction; a
condition that never holds changes nothing, so the two must give the same trajectories, failures and reaction counts,
bit for bit); NumPy's SeedSequence (the same words); the Poisson law of immigration-death. The general loop is made
to run by handing the driver a condition slot the model does not have (``holds`` answers 0 for it): the same
compiled module, as numba takes about ten seconds per module.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ilsim
from ilsim.engines.ssa import SsaEngine, codegen
from ilsim.engines.ssa import engine as engine_module
from ilsim.engines.ssa.engine import NEGATIVE_COUNT, NEGATIVE_PROPENSITY, streams
from ilsim.engines.ssa.seeds import states
from ilsim.errors import IlsimError

VALUES = {"k": 10.0, "b": 0.0, "d": 0.5, "c": 0.0, "m": 0.0, "eY": 1.0, "kY": 0.0, "f": 0.0, "g": 0.0, "dose": 0.0}


def network(events: bool = True):
    """Nine processes on X and Y (the search variant of the loop: above codegen.BRANCHLESS_MAX); ``events``: a dose at
    t = 5 (the loop returns there and starts again after it)."""
    m = ilsim.Model(name=f"ssa-speed-{int(events)}")
    for name, value in VALUES.items():
        m.add_parameter(name, value)
    m.add_species("X", 0.0, kind="cell")
    m.add_species("Y", 0.0, kind="cell")
    m.add_process("immigration", "k", produces={"X": 1})
    m.add_process("birth", "b*X", produces={"X": 1})
    m.add_process("death", "d*X", consumes={"X": 1})
    m.add_process("leak", "c", consumes={"X": 1})  # does not vanish at X = 0: a negative count
    m.add_process("convert", "m*X", consumes={"X": 1}, produces={"Y": 1})
    m.add_process("decay", "eY*Y", consumes={"Y": 1})
    m.add_process("inflow", "kY", produces={"Y": 1})
    m.add_process("pairs", "f*Y*(Y-1)/2", consumes={"Y": 2})
    m.add_process("back", "g*Y", consumes={"Y": 1}, produces={"X": 1})
    if events:
        m.add_event("dose", at=5.0, add={"X": "dose"})
    return ilsim.compile(m)


@pytest.fixture(scope="module")
def model():
    return network()


def general_loop(monkeypatch):
    """From here on the engine runs the driver's general loop: a condition to test after every reaction (slot 0,
    which the model's ``holds`` does not have: it never holds)."""
    monkeypatch.setattr(engine_module.analysis, "condition_events", lambda model: [0])


def rows(model, sets):
    return np.array([model.parameter_vector({**VALUES, **s}) for s in sets])


SETS = [{}, {"b": 0.3, "m": 0.4, "kY": 2.0, "f": 0.05, "g": 0.2, "dose": 7.0},  # every process at work
        {"d": -0.5},  # death's propensity negative once X > 0
        {"k": 1.0, "c": 3.0},  # leak empties X and goes on: a negative count
        {"k": 0.0, "d": 0.0}]  # nothing can happen: no reaction at all


def same(a, b):
    assert np.array_equal(a.Y, b.Y, equal_nan=True)
    assert a.status.tolist() == b.status.tolist() and a.steps.tolist() == b.steps.tolist()
    assert a.messages == b.messages  # the time, the process and the state of each failure


def test_the_written_out_loop_gives_the_general_loops_trajectories(model, monkeypatch):
    """Up to t = 10 (the dose at t = 5: the loop stops there and starts again) and up to t = 4 (no event on the way:
    run_block calls the loop alone, without the general loop around it)."""
    times = (np.linspace(0.0, 10.0, 21), np.linspace(0.0, 4.0, 9))
    P = np.repeat(rows(model, SETS), 12, axis=0)
    engines = (SsaEngine(seed=5, method="direct"), SsaEngine(seed=5, method="direct", max_steps=40),
               SsaEngine(seed=5, method="direct", system_size=4.0))
    unrolled = [engine.solve(model, t, P) for t in times for engine in engines]
    for b in unrolled[0], unrolled[3]:
        assert {NEGATIVE_PROPENSITY, NEGATIVE_COUNT} <= set(b.status.tolist()) and (b.status == 0).sum() >= 36
        assert np.all(b.steps[48:] == 0) and (b.steps[:12] > 20).all()
    assert (unrolled[1].status == 3).sum() > 0 and (unrolled[4].status == 3).sum() > 0
    # the branch-free choice of the process (networks of up to BRANCHLESS_MAX processes), forced on this one
    monkeypatch.setattr(codegen, "BRANCHLESS_MAX", 9)
    branchless = [engines[0].solve(model, t, P) for t in times]
    general_loop(monkeypatch)
    for (t, engine), fast in zip([(t, engine) for t in times for engine in engines], unrolled):
        same(engine.solve(model, t, P), fast)
    same(unrolled[0], branchless[0])
    same(unrolled[3], branchless[1])


def test_the_written_out_loop_samples_the_poisson_law_of_immigration_death(model):
    n, t = 4000, np.array([0.0, 1.0, 4.0, 20.0])
    r = SsaEngine(seed=17, method="direct").solve(model, t, rows(model, [{}] * n))
    mean = 20.0 * (1 - np.exp(-0.5 * t[1:]))  # (k/d)(1 - e^{-dt}), variance equal to it
    x = r.Y[:, 1:, 0]
    assert np.all(np.abs(x.mean(axis=0) - mean) < 4 * np.sqrt(mean / n))
    assert np.all(np.abs(x.var(axis=0, ddof=1) - mean) < 4 * np.sqrt((mean + 2 * mean**2) / n))


@pytest.mark.parametrize("seed", [0, 7, 2**32, 12345678901234567890, 2**130 + 5])
def test_the_seeds_are_numpys_seed_sequence_words(seed):
    n = 50
    spawned = np.array([c.generate_state(4, np.uint64) for c in np.random.SeedSequence(seed).spawn(n)])
    assert np.array_equal(streams(seed, n), spawned)
    keyed = [np.random.SeedSequence(seed, spawn_key=(0x55A, 3 + i)).generate_state(4, np.uint64) for i in range(n)]
    assert np.array_equal(streams(seed, n, first=3), np.array(keyed))
    big = [(1, 2**40 + i) for i in range(3)]  # a key word beyond 32 bits: NumPy's own path
    assert np.array_equal(states(seed, big), [np.random.SeedSequence(seed, spawn_key=k).generate_state(4, np.uint64)
                                              for k in big])


GPU_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    import test_ssa_speed as T
    from ilsim.engines.ssa import SsaEngine
    from ilsim.engines.ssa.cuda import CudaSsaEngine
    from ilsim.errors import IlsimError
    m = T.network(events=False)
    n, t = 200, np.array([0.0, 1.0, 2.0, 4.0])  # (before the CPU model's dose at t = 5: no event on the way)
    P = T.rows(m, [{"k": 6.0, "d": 0.5}] * n)
    g = CudaSsaEngine(seed=9, block_size=64).solve(m, t, P)
    assert (g.status == 0).all()
    again = CudaSsaEngine(seed=9, block_size=32).solve(m, t, P)  # another launch: the same trajectories
    assert np.array_equal(g.Y, again.Y) and np.array_equal(g.steps, again.steps)
    assert not np.array_equal(g.Y, CudaSsaEngine(seed=10, block_size=256).solve(m, t, P).Y)
    mean = 12.0 * (1 - np.exp(-0.5 * t[1:]))  # immigration-death from 0: Poisson, mean (k/d)(1 - e^{-dt})
    x = g.Y[:, 1:, 0]
    assert np.all(np.abs(x.mean(axis=0) - mean) < 4 * np.sqrt(mean / n)), x.mean(axis=0)
    assert np.all(np.abs(x.var(axis=0, ddof=1) - mean) < 4 * np.sqrt((mean + 2 * mean**2) / n)), x.var(axis=0)
    # the CPU's direct method on the same network (the module the tests compiled: its dose comes after t = 4): the
    # same generated loop and streams, so in the simulator the same trajectories; and a larger CPU ensemble agrees
    cpu_model = T.network()
    c = SsaEngine(seed=9, method="direct").solve(cpu_model, t, P)
    assert np.array_equal(g.Y, c.Y) and np.array_equal(g.steps, c.steps)
    c = SsaEngine(seed=99, method="direct").solve(cpu_model, t, T.rows(cpu_model, [{"k": 6.0, "d": 0.5}] * 2000))
    xc = c.Y[:, 1:, 0]
    assert np.all(np.abs(x.mean(axis=0) - xc.mean(axis=0)) < 4 * np.sqrt(mean / n + mean / 2000))
    wrong = [{"d": -0.5}, {"k": 1.0, "c": 3.0}]
    bad = CudaSsaEngine(seed=9).solve(m, t, T.rows(m, wrong))
    assert bad.status.tolist() == [7, 8], bad.messages
    assert "process 'death' had a negative propensity" in bad.messages[0] and "'leak' made" in bad.messages[1]
    assert bad.messages == SsaEngine(seed=9, method="direct").solve(cpu_model, t, T.rows(cpu_model, wrong)).messages
    for wrong, text in ((lambda: CudaSsaEngine(method="tau"), "direct method only"),
                        (lambda: CudaSsaEngine().solve(cpu_model, t, P), "without events")):
        try:
            wrong()
        except IlsimError as exc:
            assert text in str(exc), exc
        else:
            raise AssertionError(text)
    print("ok")
""")


def test_the_cuda_direct_method_in_numbas_simulator():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    done = subprocess.run([sys.executable, "-c", GPU_SCRIPT, os.path.dirname(__file__)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_without_a_gpu_the_cuda_engine_says_so():
    from ilsim.engines.ssa.cuda import CudaSsaEngine, cuda_unavailable_reason

    if cuda_unavailable_reason() is None:
        pytest.skip("a CUDA device (or numba's simulator) is available here")
    with pytest.raises(IlsimError, match="no CUDA GPU is available .*backend cpu"):
        free = network(events=False)
        CudaSsaEngine().solve(free, np.linspace(0, 1, 3), rows(free, [{}]))


def test_the_cli_refuses_the_gpu_without_one_and_the_gpu_without_the_ssa_engine(cli, tmp_path):
    from ilsim.engines.ssa.cuda import cuda_unavailable_reason

    model = tmp_path / "immigration.yaml"
    model.write_text("metadata: {name: immigration}\nspecies: [{name: X, initial: 0}]\n"
                     "parameters: [{name: k, value: 2}, {name: d, value: 0.5}]\n"
                     "processes: [{name: in, rate: k, produces: {X: 1}}, {name: out, rate: d*X, consumes: {X: 1}}]\n")
    result = cli("run", model, "--backend", "gpu", "--out", tmp_path / "a")
    assert result.exit_code == 2 and "--backend need(s) --engine ssa" in result.stderr
    if cuda_unavailable_reason() is None:
        pytest.skip("a CUDA device (or numba's simulator) is available here")
    result = cli("run", model, "--engine", "ssa", "--backend", "gpu", "--out", tmp_path / "b")
    assert result.exit_code == 2 and "no CUDA GPU is available" in result.stderr and "--backend cpu" in result.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()

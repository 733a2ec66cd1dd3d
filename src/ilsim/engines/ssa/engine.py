"""SsaEngine: a model's reaction network simulated molecule by molecule (exact SSA or tau-leaping).

Every process of a model is a reaction channel: its stoichiometry (whole numbers) says what one firing
changes, and its rate times the system size is its propensity. Species are counted: a concentration c is
c x ``system_size`` molecules (or cells) when a size is given, else c x the volume of the species' compartment
(``volumes.py``; 1 without one: the model's values are counts). The state is reported back in the model's own
units, so an SSA run and an ODE run of the same file compare directly (the large-size limit).

Methods (``driver.py``): ``direct`` (Gillespie), ``next-reaction`` (Gibson & Bruck, for large sparse networks),
``auto`` (direct up to ``AUTO_DIRECT_MAX`` processes, next-reaction above) and ``tau`` (adaptive tau-leaping,
Cao, Gillespie & Petzold 2006, error control ``eps``: no propensity changes by more than about eps of its
value over a leap; critical processes, fewer than ``n_critical`` firings from exhausting a reactant, fire
one at a time; exact steps where a leap would be shorter than 10 / a0). Timed events and doses apply exactly
at their times; condition events are tested after every reaction (after every leap with ``tau``).

Each row of ``P`` is a trajectory with its own random stream: trajectory i draws from xoshiro256** seeded by
``SeedSequence(seed).spawn(...)[i]``, so the numbers depend on the seed and i only, never on the number of
threads. A trajectory whose propensity becomes negative or NaN, or whose count of a non-negative species
would fall below zero, stops with its time, process and state in its message; the others go on.
"""

from __future__ import annotations

import math
import numbers
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ilsim.engines.base import STATUS, Engine, EngineResult, check_parameters, check_times
from ilsim.engines.ssa import volumes
from ilsim.errors import IlsimError, argument
from ilsim.model import analysis
from ilsim.model.compile import CompiledModel

METHODS = ("auto", "direct", "next-reaction", "tau")
AUTO_DIRECT_MAX = 30  # processes: above this the next-reaction method's dependency graph beats a full re-evaluation
MAX_STEPS = 100_000_000  # reactions or leaps per trajectory before it is stopped (a run that never ends)
MEMORY_FRACTION = 0.5  # of the machine's memory that the ensemble's arrays may take (docs/limits.md)
# status codes of the engine's own failures (0..5 as ilsim.engines.base.STATUS)
NEGATIVE_PROPENSITY, NEGATIVE_COUNT = 7, 8
STATUS_TEXT = {**STATUS, NEGATIVE_PROPENSITY: "a propensity became negative",
               NEGATIVE_COUNT: "a reaction made the count of a non-negative species negative"}
_CODES = {"direct": 0, "next-reaction": 1, "tau": 2}


class SsaEngine(Engine):
    """Stochastic simulation of a model's reaction network: ``trajectories`` runs from ``seed``."""

    name = "ssa"
    supports = {"events": True, "stochastic": True, "spatial": False, "batch": True, "stiff": False,
                "parameter_trajectories": True, "event_log": True, "replicates": True}
    status_text = STATUS_TEXT

    def __init__(self, trajectories: int = 1000, seed: int = 0, method: str = "auto", system_size: float | None = None,
                 eps: float = 0.03, n_critical: int = 10, max_steps: int = MAX_STEPS, first_trajectory: int = 0):
        if method not in METHODS:
            raise IlsimError(f"{argument('method')}: unknown stochastic method '{method}'; choose one of {', '.join(METHODS)}")
        self.trajectories = whole("trajectories", trajectories, 1)
        self.seed = None if seed is None else whole("seed", seed, 0)  # None: a cohort's seed (0 elsewhere)
        self.method = method
        try:  # None: each species through its compartment's volume, 1 where it has none (volumes.py)
            self.system_size = None if system_size is None else float(system_size)
        except (TypeError, ValueError):
            raise IlsimError(f"{argument('system_size')} must be a positive number, got {system_size!r}") from None
        if self.system_size is not None and not (0 < self.system_size < math.inf):
            raise IlsimError(f"{argument('system_size')} must be a positive, finite number, got {system_size!r}")
        try:
            self.eps = float(eps)
        except (TypeError, ValueError):
            raise IlsimError(f"eps must be a number between 0 and 1, got {eps!r}") from None
        if not 0 < self.eps < 1:
            raise IlsimError(f"eps must be between 0 and 1 (the leap's error control), got {eps!r}")
        self.n_critical = whole("n_critical", n_critical, 1)
        self.max_steps = whole("max_steps", max_steps, 1)
        # an ensemble run in chunks (ilsim.ensemble_chunks): row r is trajectory first_trajectory + r, on its stream
        self.first_trajectory = whole("first_trajectory", first_trajectory, 0)

    def settings(self) -> dict:
        return {"method": self.method, "trajectories": self.trajectories, "seed": self.seed,
                "system_size": self.system_size, "eps": self.eps, "n_critical": self.n_critical,
                "max_steps": self.max_steps}

    def chosen_method(self, model: CompiledModel) -> str:
        if self.method != "auto":
            return self.method
        return "direct" if len(model.rate_trees) <= AUTO_DIRECT_MAX else "next-reaction"

    def solve(self, model: CompiledModel, t_eval, P, *, record_parameters: bool = False,
              log_events: int = 0, first: int | None = None) -> EngineResult:
        """Run one trajectory per row of ``P``, trajectory i on random stream i of the seed; with ``first`` (a
        cohort's chunk: row r is virtual patient first + r) on the patient's stream (``streams``)."""
        t_eval, P = check_times(t_eval), check_parameters(model, P)
        # counts through each species' compartment volume (volumes.py), unless one system size is given for all
        where = volumes.compartments(model) if self.system_size is None else {}
        omega = 1.0 if self.system_size is None else self.system_size
        original, model = model, volumes.counted(model, P, where) if where else model
        check_discrete(model)  # (in counts: a transport's produces V1/V2 moves one molecule)
        if model.jit is False:
            raise IlsimError("the stochastic engine needs numba-compiled kernels; the model was compiled with jit=False")
        n, nt, ns, npar = P.shape[0], len(t_eval), len(model.species), len(model.parameters)
        check_memory(n, nt, ns + len(model.observables) + (npar if record_parameters else 0))
        V = volumes.volumes(original, P, where) if where else None
        X0 = initial_counts(original, P, omega if V is None else V)
        from ilsim.engines.ssa.codegen import dependency_graph  # lazy: numba

        S = np.ascontiguousarray(model.stoichiometry, dtype=np.float64)
        dep_ptr, dep_idx = dependency_graph(model)
        hor, need = reactant_orders(model)
        timed = analysis.timed_schedule(model, t_eval[0], t_eval[-1])
        from ilsim.engines.batch.codegen import event_tables

        guard_slot, act_start, actions = event_tables(model)
        n_log = max(0, int(log_events))
        Y = np.full((n, nt, ns), np.nan)
        P_end = np.array(P, dtype=np.float64, order="C", copy=True)
        P_t = np.full((n, nt, npar) if record_parameters else (n, 1, max(npar, 1)), np.nan)
        fired = np.zeros((n, len(model.events)))
        log_t = np.zeros((n, n_log))
        log_k = np.zeros((n, n_log), dtype=np.int64)
        status = np.zeros(n, dtype=np.int64)
        fail_t = np.full(n, np.nan)
        fail_j = np.full(n, -1, dtype=np.int64)
        fail_x = np.full((n, ns), np.nan)
        steps = np.zeros(n, dtype=np.int64)
        rng = streams(0 if self.seed is None else self.seed, n, first, self.first_trajectory)
        args = (_CODES[self.chosen_method(model)], t_eval, X0, P_end, omega,
                np.ascontiguousarray(model.nonnegative, dtype=np.bool_), S, dep_ptr, dep_idx, hor, need,
                self.eps, float(self.n_critical), np.array([t for t, _ in timed], dtype=np.float64),
                np.array([k for _, k in timed], dtype=np.int64),
                np.array(analysis.condition_events(model), dtype=np.int64), guard_slot, act_start, actions, rng,
                self.max_steps, Y, P_t, record_parameters, fired, log_t, log_k, status, fail_t, fail_j, fail_x, steps)
        self.launch(model, n, args)
        if V is not None:
            Y /= V[:, None, :]  # counts back to the model's concentrations
        messages = [failure_message(original, int(status[i]), fail_t[i], int(fail_j[i]), fail_x[i])
                    if status[i] else "" for i in range(n)]
        log = None
        if n_log:
            counts = fired.sum(axis=1).astype(np.int64)
            log = [[(float(log_t[i, q]), int(log_k[i, q])) for q in range(min(counts[i], n_log))] for i in range(n)]
        result = EngineResult(Y, status, fired.astype(np.int64), P_end, P_t=P_t if record_parameters else None,
                              event_log=log, messages=messages)
        result.steps = steps  # reactions (or leaps) per trajectory
        return result

    def launch(self, model: CompiledModel, n: int, args: tuple) -> None:
        """Run the n trajectories (``args``: the driver's ``run_block``'s, after lo and hi): blocks of them on the CPU's
        threads (``cuda.CudaSsaEngine``: one GPU thread each)."""
        from ilsim.engines.ssa.codegen import model_module

        in_blocks(model_module(model).run_block, n, args)

    def simulate(self, model, t_eval, P=None):
        """The ensemble as an xarray Dataset with a ``trajectory`` dimension (the seed and the method in attrs):
        ``P`` (one row, by default the model's values) repeated ``trajectories`` times, or one row per trajectory."""
        P = np.atleast_2d(model.p0 if P is None else np.asarray(P, dtype=float))
        if P.shape[0] == 1:  # refused before the copies are made, not by a MemoryError while making them
            check_memory(self.trajectories, len(np.atleast_1d(t_eval)),
                         len(model.species) + len(model.observables) + len(model.parameters))
            P = np.repeat(P, self.trajectories, axis=0)
        ds = super().simulate(model, t_eval, P).rename(patient="trajectory")
        ds.attrs.update(method=self.chosen_method(model), method_asked=self.method)
        return ds


BLOCKS_PER_THREAD = 8  # blocks of trajectories per thread: long and short trajectories even out across threads


def in_blocks(run_block, n: int, args: tuple) -> None:
    """Blocks of trajectories on NUMBA_NUM_THREADS threads (numba releases the GIL); a trajectory depends only on
    its own stream, so the result does not depend on the number of threads or on the blocks."""
    import numba

    threads = numba.get_num_threads()
    size = max(1, -(-n // (threads * BLOCKS_PER_THREAD)))
    blocks = [(lo, min(lo + size, n)) for lo in range(0, n, size)]
    if threads <= 1 or len(blocks) == 1:
        for lo, hi in blocks:
            run_block(lo, hi, *args)
        return
    with ThreadPoolExecutor(min(threads, len(blocks))) as pool:
        for done in [pool.submit(run_block, lo, hi, *args) for lo, hi in blocks]:
            done.result()


def whole(name: str, value, low: int) -> int:
    """An integer setting at least ``low``; IlsimError naming it otherwise (a float, text or bool is refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise IlsimError(f"{argument(name)} must be an integer, got {value!r}")
    if value < low:
        raise IlsimError(f"{argument(name)} must be at least {low}, got {value}")
    return int(value)


COHORT_STREAMS = 0x55A  # the first word of a cohort patient's spawn key: apart from the population's (block,) keys


def streams(seed: int, n: int, first: int | None = None, start: int = 0) -> np.ndarray:
    """n independent xoshiro256** states (n x 4 words): trajectory start + i's from child start + i of the seed's
    SeedSequence (``SeedSequence(seed, spawn_key=(start + i,))``, what ``spawn`` gives), so a chunk of an ensemble
    draws what the whole ensemble run at once draws for the same trajectories;
    with ``first``, virtual patient first + i's from ``SeedSequence(seed, spawn_key=(COHORT_STREAMS, first + i))``,
    so a cohort's patient depends on the seed and its index only (any chunk size), and its stream is not that of
    the population's draws from the same seed (``SeedSequence(seed, spawn_key=(block,))``)."""
    from ilsim.engines.ssa.seeds import states  # NumPy's words, for all n at once (spawn(n) is child (i,) of the seed)

    index = np.arange(n, dtype=np.int64)
    keys = (int(start) + index)[:, None] if first is None else np.stack([np.full(n, COHORT_STREAMS), int(first) + index], axis=1)
    return states(seed, keys)


def check_discrete(model: CompiledModel) -> None:
    """Refuse, naming the process, what cannot fire as whole reactions at a constant rate between reactions."""
    for j, process in enumerate(model.spec.processes):
        where = f"process '{process.name}' (processes[{j}])"
        if process.name.startswith("rate rule of "):  # the SBML importer's continuous rate rules
            raise IlsimError(f"{where} is a rate rule, a continuous change: the stochastic engine cannot make it discrete")
        column = model.stoichiometry[:, j]
        if np.any(column != np.round(column)):
            raise IlsimError(f"{where}: stoichiometry must be whole numbers for the stochastic engine, "
                             f"got {', '.join(f'{s} {c:g}' for s, c in zip(model.species, column) if c != round(c))}")
        from ilsim.engines.ssa.codegen import reads

        if "t" in reads(model, model.rate_trees[j]):
            raise IlsimError(f"{where}: its rate reads the time t, so it changes between reactions; the exact methods "
                             "need rates that change only when the state or an event does (use timed events instead)")
    delayed = [e.name for e in model.events if e.delay is not None]
    if delayed:  # its event loop keeps no pending firings: it would apply them at the trigger
        raise IlsimError(f"the stochastic engine does not run events with a delay, and model '{model.name}' has "
                         f"{len(delayed)} (event '{delayed[0]}'); run it with an ODE engine")


def initial_counts(model: CompiledModel, P: np.ndarray, size: float | np.ndarray) -> np.ndarray:
    """The initial states as whole counts (value x system size, or x the volumes: rows of P x species); IlsimError
    naming the species otherwise."""
    if (P == P[:1]).all():  # (one parameter set for every trajectory: np.unique's sort took a millisecond)
        unique, first, inverse = P[:1], np.zeros(1, dtype=np.int64), np.zeros(len(P), dtype=np.int64)
    else:
        unique, first, inverse = np.unique(P, axis=0, return_index=True, return_inverse=True)
    X = np.empty((len(unique), len(model.species)))
    for r, p in enumerate(unique):
        scale = np.broadcast_to(size if np.ndim(size) == 0 else size[first[r]], (len(model.species),))
        counts = model.initial_state(p) * scale
        for i, c in enumerate(counts):
            name = model.species[i]
            if not np.isfinite(c) or c < 0:
                raise IlsimError(f"species '{name}' (species[{i}].initial): the initial count {c:g} is not a "
                                 "non-negative number")
            if abs(c - round(c)) > 1e-9 * max(1.0, abs(c)):
                what = "system size" if np.ndim(size) == 0 else "the volume of its compartment"
                raise IlsimError(f"species '{name}' (species[{i}].initial): {c / scale[i]:g} x {what} {scale[i]:g} = "
                                 f"{c:g} is not a whole number of molecules or cells; give whole counts or a "
                                 "system_size (or volume) that makes them whole")
        X[r] = np.round(counts)
    return np.ascontiguousarray(X[np.asarray(inverse).reshape(-1)])


def reactant_orders(model: CompiledModel) -> tuple[np.ndarray, np.ndarray]:
    """Per species: the highest order (molecules consumed) of the processes consuming it, and how many of it such a
    process needs; tau-leaping's g_i (Cao et al. 2006) reads them. Orders come from ``consumes:`` (mass action)."""
    index = {n: i for i, n in enumerate(model.species)}
    hor = np.zeros(len(model.species), dtype=np.int64)
    need = np.zeros(len(model.species), dtype=np.int64)
    for process in model.spec.processes:
        order = int(round(sum(process.consumes.values())))
        for name, count in process.consumes.items():
            i = index[name]
            if order > hor[i] or (order == hor[i] and count > need[i]):
                hor[i], need[i] = order, int(round(count))
    return hor, need


def check_memory(n: int, nt: int, columns: int) -> None:
    """Refuse an ensemble whose arrays would take more than MEMORY_FRACTION of the machine's memory, with the estimate."""
    needed = 2 * 8 * n * nt * columns  # the engine's arrays and the Dataset built from them
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    if needed > MEMORY_FRACTION * total:
        raise IlsimError(f"{argument('trajectories')}: {n:,} trajectories x {nt:,} output times x {columns} variables need about "
                         f"{needed / 2**30:.1f} GiB, more than {MEMORY_FRACTION:.0%} of this machine's "
                         f"{total / 2**30:.1f} GiB; use fewer trajectories or output times, or run the ensemble in chunks "
                         "written one at a time to results.zarr (--dask local or --dask ADDRESS, with --chunk-size; "
                         "Python: ilsim.ensemble_chunks.run)")


def failure_message(model: CompiledModel, code: int, t: float, j: int, x: np.ndarray) -> str:
    if code == 0:
        return ""
    state = ", ".join(f"{n} = {v:g}" for n, v in zip(model.species, x))
    what = f"process '{model.spec.processes[j].name}'" if 0 <= j < len(model.spec.processes) else "a leap"
    if code == NEGATIVE_PROPENSITY:
        return f"{what} had a negative propensity at t = {t:g} (state in counts: {state})"
    if code == 1:
        return f"{what} had a propensity that is NaN or infinite at t = {t:g} (state in counts: {state})"
    if code == NEGATIVE_COUNT:
        return (f"{what} made a non-negative species negative at t = {t:g} (its rate does not vanish when what it "
                f"consumes is gone; state in counts: {state})")
    return f"{STATUS_TEXT.get(code, 'failed')} at t = {t:g} (state in counts: {state})"

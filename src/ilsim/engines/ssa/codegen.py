"""A model as the stochastic engine runs it: one generated module of numba functions per model.

The module is the trajectory loop (``driver.py``, as text) followed by the model's own functions, printed from
its expression trees: ``rates`` (every process rate), ``rate_one`` (one process, for the next-reaction method),
``direct_steps`` (the direct method's reactions between two stops, unrolled: ``direct_source``), ``holds``
(condition events), ``next_check`` (when a condition on t flips), ``guard`` and ``value`` (event guards and
action values, each distinct expression once, as the batch engine's tables number them). It is
written to the kernel cache folder under a name that is the hash of its text, so numba's on-disk cache serves
a second process.
"""

from __future__ import annotations

import hashlib
import weakref
from pathlib import Path

import numpy as np

from ilsim.engines.batch.codegen import distinct_event_expressions
from ilsim.engines.ssa import massaction
from ilsim.model import expressions as ex
from ilsim.model.compile import CompiledModel, _import_generated, kernel_names, unpack_lines
from ilsim.model.switches import time_switches

_LOADED: dict[str, object] = {}
_BY_MODEL: dict[int, tuple[weakref.ref, object]] = {}  # id(model): (the model, its module)


def model_module(model: CompiledModel):
    """The compiled module of ``model`` (the driver's ``run_all`` against its functions), built on first use."""
    known = _BY_MODEL.get(id(model))
    if known is not None and known[0]() is model:  # (writing the source again took a millisecond per run)
        return known[1]
    kernel = model.compiled_kernels()["rhs_into"].py_func.__module__  # for hill() and factorial()
    source = (Path(__file__).with_name("driver.py").read_text() + model_source(model, kernel))
    name = f"ilsim_ssa_{hashlib.sha256(source.encode()).hexdigest()[:24]}"
    if name not in _LOADED:
        _LOADED[name] = _import_generated(source, True, name)
    _BY_MODEL[id(model)] = (weakref.ref(model), _LOADED[name])
    return _LOADED[name]


def reads(model: CompiledModel, tree: ex.Expr) -> set[str]:
    """The names a tree reads, through the observables it uses (and those they use)."""
    by_name = dict(zip(model.observables, model.observable_trees))
    names, todo = set(), set(tree.names())
    while todo:
        n = todo.pop()
        if n not in names:
            names.add(n)
            todo |= by_name[n].names() if n in by_name else set()
    return names


def model_source(model: CompiledModel, kernel: str) -> str:
    names = kernel_names(model)
    index = {n: i for i, n in enumerate(model.species)}
    pindex = {n: i for i, n in enumerate(model.parameters)}

    def code(tree: ex.Expr) -> str:
        return ex.to_code(tree, names, False)

    def locals_for(trees: list[ex.Expr], indent: str) -> list[str]:
        """Only the species, parameters and observables these trees read (a process reads a few of many)."""
        used = set().union(*(reads(model, tr) for tr in trees)) if trees else set()
        out = [f"{indent}s_{index[n]} = y[{index[n]}]" for n in model.species if n in used]
        out += [f"{indent}k_{pindex[n]} = p[{pindex[n]}]" for n in model.parameters if n in used]
        out += [f"{indent}o_{i} = {code(tr)}" for i, (n, tr) in enumerate(zip(model.observables, model.observable_trees))
                if n in used]
        return out

    jit = "@njit(cache=True, error_model='numpy')"
    ma = massaction.table(model)  # a large network's mass-action rates as data, not code (massaction.py)
    gen = [j for j in range(len(model.rate_trees)) if ma is None or ma.row[j] < 0]  # the processes printed as code
    src = ["", "", f"# ---- model '{model.name}': the functions the loop above calls",
           f"from {kernel} import _factorial, _hill  # noqa: E402, F401", *([massaction.source(ma)] if ma else []), "", "",
           jit, "def rates(t, y, p, out):", *unpack_lines(model, [model.rate_trees[j] for j in gen], clip=False),
           *(["    _ma_rates(y, p, out)"] if ma else [])]
    src += [f"    out[{j}] = {code(model.rate_trees[j])}" for j in gen] or ["    pass"]

    def dispatch(lo: int, hi: int, indent: str) -> list[str]:
        """Processes lo..hi-1 by bisection on j: about log2(processes) comparisons per call, not one per process
        (a chain of 1,500 tests made the next-reaction method slower than its dependency graph saves)."""
        if hi - lo == 1:
            return [*locals_for([model.rate_trees[gen[lo]]], indent), f"{indent}return {code(model.rate_trees[gen[lo]])}"]
        mid = (lo + hi) // 2
        return [f"{indent}if j < {gen[mid]}:", *dispatch(lo, mid, indent + "    "), *dispatch(mid, hi, indent)]

    src += ["", "", jit, "def rate_one(j, t, y, p):"]
    src += ["    if MA_ROW[j] >= 0:", "        return _ma_one(MA_ROW[j], y, p)"] if ma else []
    src += dispatch(0, len(gen), "    ") if gen else ["    return 0.0"]
    if len(model.rate_trees) <= UNROLL_MAX:  # (tables are for networks of over 100 processes: never both)
        src += ["", "", "UNROLLED = True", *direct_source(model, jit)]
    else:  # (a larger network's written-out loop would take minutes to compile; the general loop runs it)
        src += ["", "", "UNROLLED = False", "", "", jit, f"def {DIRECT_STEPS_SIGNATURE}:",
                "    return 0, t, k_out, n_steps, -1"]

    def by_slot(function: str, trees: list[ex.Expr], value, default: str) -> list[str]:
        lines = ["", "", jit, f"def {function}(slot, t, y, p):"]
        for k, tree in enumerate(trees):
            lines += [f"    if slot == {k}:", *locals_for([tree], "        "), f"        return {value(tree)}"]
        return [*lines, f"    return {default}"]

    conditions = [e.condition for e in model.events if e.condition is not None]
    guards, values = distinct_event_expressions(model)
    src += by_slot("holds", conditions, lambda c: f"1 if {code(c)} else 0", "0")
    src += by_slot("guard", guards, lambda g: f"1 if {code(g)} else 0", "1")
    src += by_slot("value", values, code, "0.0")

    # the moments a condition on t flips (t >= c, t == c, floor windows): the loop stops there to test it on time
    src += ["", "", jit, "def next_check(t, t_stop, p):"]
    for tree in time_switches(model):  # with the events' conditions (rates reading t are refused)
        src += [*locals_for([tree], "    "), f"    v = {code(tree)}", "    if t < v < t_stop:", "        t_stop = v"]
    src += ["    return t_stop"]
    return "\n".join(src) + "\n"


UNROLL_MAX = 30  # processes: the direct method's loop is written out up to here (auto: the direct method's range)
BRANCHLESS_MAX = 8  # processes: up to here a reaction is chosen and applied without a branch on which (select())
DIRECT_STEPS_SIGNATURE = ("direct_steps(t, t_stop, x, p, omega, inv_omega, s, k_out, t_eval, Y, P_t, i, record_p, n_steps, "
                          "max_steps)")


def direct_source(model: CompiledModel, decorator: str) -> list[str]:
    """``direct_steps``: Gillespie's direct method from time t until a reaction would pass ``t_stop``, the model's
    propensities and the state held in local variables and every process's firing written out (its changes, the
    propensities of its dependants, the checks of the counts it lowers), so that a reaction costs no loop over
    processes or species, no look-up of the stoichiometry or the dependency graph and no dispatch on the process.

    The arithmetic, the random draws and their order are those of the driver's general loop, which calls it while
    no condition event is to be tested: the same trajectories, bit for bit. Returns (code, t, k_out, steps, j): code
    0 when the next reaction would come at or after t_stop (that draw is dropped, as the loop drops it), else the
    status of a failed trajectory and the process j at fault. The text is target-neutral (indexing, arithmetic and
    the driver's random numbers only), so the CUDA kernel (``cuda.py``) runs the same function."""
    names = kernel_names(model)
    nr, ns = len(model.rate_trees), len(model.species)
    index = {n: i for i, n in enumerate(model.species)}
    pindex = {n: i for i, n in enumerate(model.parameters)}
    S = model.stoichiometry
    species_read = [reads(model, r) for r in model.rate_trees]
    used = set().union(*species_read) if nr else set()
    ptr, idx = dependency_graph(model)

    def code(tree: ex.Expr) -> str:
        return ex.to_code(tree, names, False)

    def propensities(processes: list[int], indent: str) -> list[str]:
        """The propensities of ``processes`` from the state's locals: concentrations and observables first."""
        want = set().union(*(species_read[j] for j in processes))
        out = [f"{indent}s_{index[n]} = x_{index[n]} * inv_omega" for n in model.species if n in want]
        out += [f"{indent}o_{i} = {code(tr)}" for i, (n, tr) in enumerate(zip(model.observables, model.observable_trees))
                if n in want]
        return out + [f"{indent}a_{j} = omega * ({code(model.rate_trees[j])})" for j in processes]

    def fire(j: int, indent: str) -> list[str]:
        """Process j's changes, its dependants' propensities, then (as the general loop, in this order) the counts it
        lowered, the step limit and the first of its dependants whose propensity is negative or not finite."""
        lines = [f"{indent}x_{q} += {float(S[q, j])!r}" for q in range(ns) if S[q, j]]
        deps = [int(k) for k in idx[ptr[j]:ptr[j + 1]]]
        lines += propensities(deps, indent)
        lines += [f"{indent}n_steps += 1"]
        lowered = [q for q in range(ns) if S[q, j] < 0 and model.nonnegative[q]]
        if lowered:
            lines += [f"{indent}if {' or '.join(f'x_{q} < 0.0' for q in lowered)}:",
                      f"{indent}    code = NEGATIVE_COUNT", f"{indent}    break"]
        lines += [f"{indent}if n_steps >= max_steps:", f"{indent}    code = MAX_STEPS", f"{indent}    j = -1",
                  f"{indent}    break"]
        for k in deps:
            lines += [f"{indent}if not (a_{k} >= 0.0 and a_{k} < np.inf):",
                      f"{indent}    code = NEGATIVE_PROPENSITY if a_{k} < 0.0 else NON_FINITE", f"{indent}    j = {k}",
                      f"{indent}    break"]
        return lines

    def dispatch(lo: int, hi: int, indent: str) -> list[str]:
        if hi - lo == 1:
            return fire(lo, indent)
        mid = (lo + hi) // 2
        return [f"{indent}if j < {mid}:", *dispatch(lo, mid, indent + "    "), f"{indent}else:",
                *dispatch(mid, hi, indent + "    ")]

    record = [f"            Y[i, k_out, {q}] = x_{q} * inv_omega" for q in range(ns)]
    src = ["", "", decorator, f"def {DIRECT_STEPS_SIGNATURE}:",
           *[f"    x_{q} = x[{q}]" for q in range(ns)],
           *[f"    k_{pindex[n]} = p[{pindex[n]}]" for n in model.parameters if n in used],
           *propensities(list(range(nr)), "    "),
           "    nt = t_eval.shape[0]", "    code = 0", "    j = -1"]
    for k in range(nr):  # (the general loop checked them already; the CUDA kernel calls this function alone)
        src += [f"    if not (a_{k} >= 0.0 and a_{k} < np.inf):",
                f"        return NEGATIVE_PROPENSITY if a_{k} < 0.0 else NON_FINITE, t, k_out, n_steps, {k}"]
    src += ["    while True:",
           f"        a0 = {' + '.join(['0.0', *(f'a_{j}' for j in range(nr))])}",
           "        t_next = t + exponential(s) / a0 if a0 > 0.0 else np.inf",
           "        if t_next >= t_stop:", "            break",
           "        while k_out < nt and t_eval[k_out] < t_next:  # the state before this reaction at the output times",
           *record, "            if record_p:", "                for q in range(P_t.shape[2]):",
           "                    P_t[i, k_out, q] = p[q]", "            k_out += 1",
           "        t = t_next", "        r = uniform(s) * a0"]

    def last_positive(indent: str) -> list[str]:
        lines = [f"{indent}j = -1"]
        for k in range(nr - 1, -1, -1):
            lines += [f"{indent}{'if' if k == nr - 1 else 'elif'} a_{k} > 0.0:", f"{indent}    j = {k}"]
        return lines

    def search(j: int, indent: str) -> list[str]:
        """The linear search with each process's firing in its branch (no second dispatch on the process). The
        general loop adds only positive propensities; adding a zero leaves the sum as it is, and passes no r >= 0."""
        total = f"{indent}acc = a_{j}" if j == 0 else f"{indent}acc += a_{j}"
        if j == nr - 1:  # rounding passed them all: the last positive process fires, as in the general loop
            last = [*last_positive(indent + "    "), *dispatch(0, nr, indent + "    ")]
            return [total, f"{indent}if acc > r:", f"{indent}    j = {j}", *fire(j, indent + "    "), f"{indent}else:", *last]
        return [total, f"{indent}if acc > r:", f"{indent}    j = {j}", *fire(j, indent + "    "), f"{indent}else:",
                *search(j + 1, indent + "    ")]

    def select() -> list[str]:
        """Without a branch on the process: j counts the partial sums not above r (the first one above it is the
        search's), the state changes by row j of a table of the stoichiometry, and every propensity is evaluated
        again (the ones j does not change come out as they were). A search's branches guess wrong about as often as
        two processes of similar propensity alternate, a dozen nanoseconds each time; a few more products cost less."""
        lines = ["        acc = a_0", "        j = 0 if acc > r else 1"]
        for k in range(1, nr):
            lines += [f"        acc += a_{k}", "        j += 0 if acc > r else 1"]
        lines += [f"        if j == {nr}:  # rounding passed them all: the last positive process fires, as in the general loop",
                  *last_positive("            ")[1:]]
        lines += [f"        x_{q} += DIRECT_CHANGE[j, {q}]" for q in range(ns) if S[q].any()]
        lines += propensities(list(range(nr)), "        ")
        lines += ["        n_steps += 1"]
        lowered = [q for q in range(ns) if (S[q] < 0).any() and model.nonnegative[q]]
        if lowered:
            lines += [f"        if {' or '.join(f'x_{q} < 0.0' for q in lowered)}:", "            code = NEGATIVE_COUNT",
                      "            break"]
        lines += ["        if n_steps >= max_steps:", "            code = MAX_STEPS", "            j = -1", "            break"]
        for k in range(nr):  # (the ones j does not change were checked before)
            lines += [f"        if not (a_{k} >= 0.0 and a_{k} < np.inf):",
                      f"            code = NEGATIVE_PROPENSITY if a_{k} < 0.0 else NON_FINITE", f"            j = {k}",
                      "            break"]
        return lines

    if 0 < nr <= BRANCHLESS_MAX:
        src += select()
        src = ["", "", f"DIRECT_CHANGE = np.array({S.T.astype(float).tolist()!r})  # row j: what process j changes", *src]
    elif nr:
        src += search(0, "        ")
    src += [*[f"    x[{q}] = x_{q}" for q in range(ns)], "    return code, t, k_out, n_steps, j"]
    return src


def dependency_graph(model: CompiledModel) -> tuple[np.ndarray, np.ndarray]:
    """For each process, the processes whose rates read a species it changes (CSR: pointers, indices)."""
    species_read = [reads(model, r) & set(model.species) for r in model.rate_trees]
    ptr, idx = [0], []
    for j in range(len(model.rate_trees)):
        changed = {model.species[i] for i in np.flatnonzero(model.stoichiometry[:, j])}
        idx += [k for k, used in enumerate(species_read) if used & changed]
        ptr.append(len(idx))
    return np.array(ptr, dtype=np.int64), np.array(idx, dtype=np.int64)

"""The stochastic engine's methods against each other: a sparse network of 1,000+ reactions (next-reaction
against direct) and immigration-death at 10^5 molecules (tau-leaping against exact, at equal accuracy).

    PYTHONPATH=src python bench/ssa_methods.py [--species 500] [--trajectories 100] [--generated-code]

The compile time is printed apart, as CPU seconds of this process (the wall time on a shared machine depends on
its load): ilsim.compile, then numba's compile of the engine's module. Above ``massaction.GENERATED_UP_TO``
processes the engine computes mass-action rates from a table; ``--generated-code`` prints every rate as code
instead (as before the table), for the comparison.

Sparse network: a ring of ``species`` pools, each converting to the next at 1 per molecule and to the one
after at 0.5, with immigration into the first and degradation at 0.1 from each (2 x species + 1 reactions;
each reaction changes two pools, so after a reaction only a few propensities change). Large counts:
immigration 10^5 per unit time and death 1 per molecule from 10^5 molecules, whose exact law is known
(mean 10^5, variance 10^5 (1 - e^-2t)), so tau-leaping's error is measured, not assumed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import ilsim
from ilsim.engines.ssa import SsaEngine, massaction


def ring(n: int):
    m = ilsim.Model(name=f"ring-{n}").add_parameter("k_in", 100.0)
    for i in range(n):
        m.add_species(f"A{i}", 10.0)
    m.add_process("in", "k_in", produces={"A0": 1})
    for i in range(n):
        m.add_process(f"next{i}", f"A{i}", consumes={f"A{i}": 1}, produces={f"A{(i + 1) % n}": 1})
        m.add_process(f"skip{i}", f"0.5*A{i}", consumes={f"A{i}": 1}, produces={f"A{(i + 2) % n}": 1})
        m.add_process(f"out{i}", f"0.1*A{i}", consumes={f"A{i}": 1})
    return ilsim.compile(m)


def timed(engine, model, t, P) -> tuple[float, object]:
    engine.solve(model, t, P[:1])  # compile or load the cache first
    start = time.perf_counter()
    result = engine.solve(model, t, P)
    return time.perf_counter() - start, result


def alternate(model, t, P, rounds: int) -> None:
    """Per-reaction time of the table and of generated code, in turns (a shared machine's load changes between
    runs): the least of ``rounds`` runs each."""
    least: dict[tuple[str, str], float] = {}
    limit = massaction.GENERATED_UP_TO
    for _ in range(rounds):
        for variant, up_to in (("table", limit if limit < 10**9 else 100), ("generated code", 10**9)):
            massaction.GENERATED_UP_TO = up_to
            for method in ("next-reaction", "direct"):
                wall, r = timed(SsaEngine(method=method, seed=1), model, t, P)
                per = wall / r.steps.sum() * 1e9
                least[variant, method] = min(per, least.get((variant, method), np.inf))
    massaction.GENERATED_UP_TO = limit
    for (variant, method), per in least.items():
        print(f"  alternated, least of {rounds}: {variant:14s} {method:13s} {per:.0f} ns per reaction")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--species", type=int, default=500)
    ap.add_argument("--trajectories", type=int, default=100)
    ap.add_argument("--generated-code", action="store_true", help="every rate as generated code (no mass-action table)")
    ap.add_argument("--alternate", type=int, default=0, metavar="N",
                    help="then time the table and generated code N times each, alternately (both compiled or cached)")
    args = ap.parse_args(argv)
    if args.generated_code:
        massaction.GENERATED_UP_TO = 10**9

    start, cpu = time.perf_counter(), time.process_time()
    model = ring(args.species)
    cpu_model = time.process_time() - cpu
    SsaEngine(method="next-reaction").solve(model, np.linspace(0.0, 5.0, 6), model.p0[None, :])
    cpu_engine = time.process_time() - cpu - cpu_model
    table = massaction.table(model)
    how = "every rate generated code" if table is None else f"{int((table.row >= 0).sum())} mass-action rates as a table"
    print(f"ring of {args.species} pools, {len(model.rate_trees)} reactions ({how}): ilsim.compile {cpu_model:.1f} s CPU, "
          f"the engine's module {cpu_engine:.1f} s CPU (numba; {time.perf_counter() - start:.1f} s wall)")
    t = np.linspace(0.0, 5.0, 6)
    P = np.repeat(model.p0[None, :], args.trajectories, axis=0)
    for method in ("next-reaction", "direct"):
        wall, r = timed(SsaEngine(method=method, seed=1), model, t, P)
        per = wall / r.steps.sum() * 1e9
        print(f"  {method:13s} {args.trajectories} trajectories: {wall:.3f} s, {r.steps.mean():.0f} reactions each, "
              f"{per:.0f} ns per reaction; total molecules at t = 5: {r.Y[:, -1, :].sum(axis=1).mean():.1f}")
    if args.alternate:
        alternate(model, t, P, args.alternate)

    m = ilsim.Model(name="immigration-death").add_parameter("k", 1e5).add_parameter("d", 1.0).add_species("X", 1e5)
    m.add_process("in", "k", produces={"X": 1}).add_process("out", "d*X", consumes={"X": 1})
    model = ilsim.compile(m)
    t = np.array([0.0, 0.5, 2.0])
    sd = np.sqrt(1e5 * (1 - np.exp(-2 * t[1:])))
    print("immigration-death at 10^5 molecules (exact: mean 1e5, sd " + ", ".join(f"{s:.1f}" for s in sd) + ")")
    for method, n in (("tau", 4000), ("direct", 200)):
        P = np.repeat(model.p0[None, :], n, axis=0)
        wall, r = timed(SsaEngine(method=method, seed=2), model, t, P)
        x = r.Y[:, 1:, 0]
        print(f"  {method:6s} {n} trajectories: {wall:.3f} s ({wall / n * 1e3:.3f} ms each, {r.steps.mean():.0f} steps each); "
              f"mean/1e5 - 1: {', '.join(f'{v:+.4f}' for v in x.mean(0) / 1e5 - 1)}; "
              f"sd/exact - 1: {', '.join(f'{v:+.3f}' for v in x.std(0, ddof=1) / sd - 1)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

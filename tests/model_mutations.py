"""Hostile and broken model files made from the built-in scenarios (for tests/test_fuzz_model_files.py and
bench/fuzz_model_files.py): deleted, duplicated and retyped keys; huge, tiny, NaN and infinite numbers; long and
deeply nested expressions; unhashable keys; includes of system files and of the file itself; unicode."""

from __future__ import annotations

import random
import time
import traceback
from pathlib import Path

import yaml

SCENARIOS = sorted((Path(__file__).resolve().parents[1] / "src" / "ilsim" / "scenarios").glob("*.yaml"))

NUMBERS = [1e308, -1e308, 1e-320, 0, -1, float("nan"), float("inf"), float("-inf"), 10**30, 2**63, 0.5]
EXPRESSIONS = [
    "+".join(["X"] * 3000), "not " * 2000 + "X", "hill(" * 300 + "X" + ", 1, 2)" * 300,
    " if X > 1 else ".join(["X"] * 400), "(" * 300 + "X" + ")" * 300, "1/(X - X)", "10**400", "(-8)**0.5",
    "exp(1000)", "factorial(-3)", "X and 2", "__import__('os')", "X.__class__", "pMM", "log(X, 1)", "sqrt(-X)",
    "piecewise(" + "1, X > 1, " * 150 + "0)", "min(" + ", ".join(["X"] * 500) + ")", "é + ü", "∞",
]
RETYPED = [None, [], {}, "", "x", True, [1, 2], {"a": 1}, 3.5]
UNITS = ["pMM", "1/dya", "cells/uL)", "9**9**9", "", "m**100", "°C", "1e309 cells"]


def _paths(data, prefix=()):
    yield prefix
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _paths(v, (*prefix, i))


def _get(data, path):
    for p in path:
        data = data[p]
    return data


def mutate(rng: random.Random, text: str, own_name: str) -> tuple[str, str]:
    """One mutated model file (its text) and what was done to it."""
    data = yaml.safe_load(text)
    paths = [p for p in _paths(data) if p]
    path = rng.choice(paths)
    parent, key = _get(data, path[:-1]), path[-1]
    kind = rng.choice(["delete", "retype", "number", "expression", "units", "duplicate", "include", "unicode", "nest",
                       "text", "points"])
    if kind == "delete":
        del parent[key]
    elif kind == "retype":
        parent[key] = rng.choice(RETYPED)
    elif kind == "number":
        numbers = [p for p in paths if isinstance(_get(data, p), (int, float)) and not isinstance(_get(data, p), bool)]
        if numbers:
            path = rng.choice(numbers)
            _get(data, path[:-1])[path[-1]] = rng.choice(NUMBERS)
    elif kind == "expression":
        fields = [p for p in paths if p[-1] in ("rate", "expression", "initial", "when", "only_if")]
        if fields:
            path = rng.choice(fields)
            _get(data, path[:-1])[path[-1]] = rng.choice(EXPRESSIONS)
    elif kind == "units":
        fields = [p for p in paths if p[-1] in ("units", "time_units")]
        if fields:
            path = rng.choice(fields)
            _get(data, path[:-1])[path[-1]] = rng.choice(UNITS)
    elif kind == "duplicate" and isinstance(parent, list):
        parent.append(parent[key])
    elif kind == "include":
        data["include"] = [rng.choice([own_name, "/etc/passwd", "../../etc/hosts.yaml", "a" * 5000 + ".yaml",
                                       "nul\u0000.yaml", "reynolds-2006", own_name + "/x.yaml"])]
    elif kind == "unicode":
        parent[key] = rng.choice(["é\u202eü", "\U0001F600", "名前", "\ufeffX", "X\u200b"]) + str(parent[key])[:20]
    elif kind == "nest":
        value = parent[key]
        for _ in range(rng.choice([5, 50, 150])):
            value = [value]
        parent[key] = value
    elif kind == "points":
        data.setdefault("simulation", {})["points"] = rng.choice([10**12, 10**40, -5, 2.5, "many"])
    out = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=10**9)
    if kind == "text":  # what safe_dump never writes: a repeated key, an unhashable key, a 5000-digit integer, a tab
        extra = rng.choice(["metadata: {name: twice}\n", "? [a, b]\n: 1\n", "? {a: 1}\n: 1\n",
                            f"extra: {'9' * 5000}\n", "\tspecies: []\n", "x: &a [*a]\n", "- not a mapping\n",
                            "deep: " + "[" * 3000 + "]" * 3000 + "\n", "deep: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n"])
        out = out + extra if rng.random() < 0.5 else extra + out
    return out, f"{kind} at {'/'.join(map(str, path))}"


def run_case(runner, app, folder: Path, text: str, name: str = "model.yaml") -> tuple[str, float, str]:
    """Validate and run one model file through the command line: (outcome, seconds, detail); the outcome is
    'ok' (both exit 0), 'refused' (exit 2 with a message), or 'traceback'/'exit N' (a bug)."""
    path = folder / name
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    start = time.perf_counter()
    codes = []
    for args in (["validate", str(path)],
                 ["run", str(path), "--t-end", "1", "--points", "3", "--no-report", "--out", str(folder / "out"),
                  "--max-rhs-evaluations", "20000", "--max-wall", "10"]):
        result = runner.invoke(app, args)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            detail = "".join(traceback.format_exception(result.exception))[-1500:]
            return "traceback", time.perf_counter() - start, detail
        if result.exit_code not in (0, 2):
            return f"exit {result.exit_code}", time.perf_counter() - start, result.output[-500:]
        codes.append(result.exit_code)
        if result.exit_code == 2 and "traceback" in result.output.lower():
            return "traceback", time.perf_counter() - start, result.output[-1500:]
    return ("ok" if codes == [0, 0] else "refused"), time.perf_counter() - start, ""

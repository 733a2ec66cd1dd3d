"""Every limit and budget of ilsim, with the reason for its value; docs/limits.md lists them for users.

A file of a few kilobytes must not be able to hang a run, exhaust memory or crash the process: each
place that expands input (aliases, includes, function definitions, dose schedules) or iterates without a
natural end (an ODE solver) checks one of these numbers and raises an IlsimError saying which limit was
hit and how to change it where that makes sense.
"""

from __future__ import annotations

import math

# ---- integration (engines/ode.py; checked for the spec's simulation: section, simulate() and the CLI)
RTOL_MIN = 1e-13  # SciPy raises a smaller rtol to 100 x machine epsilon (2.2e-14) and ODEPACK refuses it
ATOL_MIN = 1e-30  # below any quantity a model resolves; tinier values only force endless tiny steps
T_END_MIN = 1e-9  # shorter runs mean nothing in a model's time units, and near 1e-300 step sizes underflow
T_END_MAX = 1e15  # beyond it a run cannot resolve anything in its span with double precision steps
MAX_RHS_EVALUATIONS = 2_000_000  # right-hand-side evaluations per SciPy run: about 10 s to a minute of solver work

# ---- input files
MAX_XML_DEPTH = 100  # element nesting of an SBML file (libsbml recurses on MathML and crashes near 5,000; models stay far below)
MAX_XML_BYTES = 100_000_000  # an SBML file's size: BioModels' largest models are a few megabytes
MAX_EXPANDED_NODES = 100_000  # nodes of one SBML formula after inlining function definitions
MAX_EXPANDED_DEPTH = 150  # levels of one SBML formula after inlining (the compiler walks trees recursively)
MAX_YAML_NODES = 1_000_000  # values of a model file once its aliases (*name) are expanded
MAX_INCLUDES = 200  # model files merged through include:, counted with repeats
MAX_INCLUDE_DEPTH = 20  # a file including a file including ... (a cycle is refused outright)
MAX_YAML_DEPTH = 100  # nesting of a model file's mappings and lists: model files use under 10 (Python recurses on them)
MAX_YAML_INT_DIGITS = 4300  # digits of an integer in a model file: Python refuses to convert longer ones to text
MAX_EXPRESSION_CHARS = 100_000  # characters of one expression (SBML formulas after inlining stay far below)
MAX_EXPRESSION_DEPTH = 150  # levels of one expression: as MAX_EXPANDED_DEPTH; generated code allows 200 parentheses
MAX_OUTPUT_VALUES = 10_000_000  # output points x variables of one run: 80 MB per copy of the results
MAX_DOSES = 10_000  # doses of one model (each becomes a timed event): 27 years of daily doses
MAX_EXCERPT = 200  # characters of user text quoted in an error message
MAX_MESSAGE = 2000  # characters of one problem's message, whatever it quotes


def excerpt(text: str, limit: int = MAX_EXCERPT) -> str:
    """User text shortened for an error message: the start, and how much was left out."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def run_settings_problem(rtol: float | None = None, atol: float | None = None, t_end: float | None = None) -> str | None:
    """What is wrong with tolerances or an end time (the ones given), or None when they are usable."""
    if rtol is not None and not (RTOL_MIN <= rtol < 1):
        why = (" (a smaller relative tolerance is below double precision: SciPy would silently raise it, ODEPACK "
               "refuses it)" if 0 < rtol < RTOL_MIN else "")
        return f"tolerances: rtol must be between {RTOL_MIN:g} and 1, got {rtol:g}{why}"
    if atol is not None and not (ATOL_MIN <= atol < math.inf):
        why = " (tinier values only force endless tiny steps)" if 0 < atol < ATOL_MIN else ""
        return f"tolerances: atol must be at least {ATOL_MIN:g} and finite, got {atol:g}{why}"
    if t_end is not None and not (T_END_MIN <= t_end <= T_END_MAX):
        return f"t_end must be positive and between {T_END_MIN:g} and {T_END_MAX:g}, got {t_end:g}"
    return None


def output_problem(points: int, variables: int) -> str | None:
    """Why a run cannot store ``points`` output times of ``variables`` values each, or None."""
    if points * max(variables, 1) > MAX_OUTPUT_VALUES:
        return (f"{points:,} output points x {variables} variables is more than {MAX_OUTPUT_VALUES:,} values "
                "(a limit: docs/limits.md); ask for fewer points")
    return None

"""The integration methods' coefficients and control constants, written once as data.

Every backend reads them from here: the numba integrator (``engines/batch/integrator.py``) imports the
names, and the C/CUDA printer (``engines/csource.py``) prints them as ``#define NAME value`` through
``c_defines``. A coefficient changed here changes every engine; nothing else holds a copy.

Sources: Hairer, Norsett & Wanner, "Solving Ordinary Differential Equations I" (2nd ed.), II.4-II.6 and
the code dopri5.f; Hairer & Wanner, "Solving Ordinary Differential Equations II", IV.7 and rodas.f (METH = 1).
"""

from __future__ import annotations

UROUND = 2.220446049250313e-16  # unit round-off of float64

# ---- Dormand-Prince 5(4) (dopri5.f): nodes C, stages A, error weights E (5th minus embedded 4th order)
C2, C3, C4, C5 = 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0
A21 = 1.0 / 5.0
A31, A32 = 3.0 / 40.0, 9.0 / 40.0
A41, A42, A43 = 44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0
A51, A52, A53, A54 = 19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0
A61, A62, A63, A64, A65 = 9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0
A71, A73, A74, A75, A76 = 35.0 / 384.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0
E1, E3, E4, E5, E6, E7 = 71.0 / 57600.0, -71.0 / 16695.0, 71.0 / 1920.0, -17253.0 / 339200.0, 22.0 / 525.0, -1.0 / 40.0
# dense output (dopri5.f's contd5, Shampine 1986)
D1, D3, D4 = -12715105075.0 / 11282082432.0, 87487479700.0 / 32700410799.0, -10690763975.0 / 1880347072.0
D5, D6, D7 = 701980252875.0 / 199316789632.0, -1453857185.0 / 822651844.0, 69997945.0 / 29380423.0

# ---- step-size control (Solving ODEs I, II.4): factor = SAFETY * err^-(1/5) (PI: BETA), clamped
SAFETY = 0.9
FAC_MIN = 0.2
FAC_MAX = 10.0
BETA = 0.04  # the PI controller's memory (dopri5.f)
EXPO = 0.2 - 0.75 * BETA

# ---- Hairer's stiffness test (dopri5.f): h * |lambda| > STIFF_BOUND on STIFF_STEPS accepted steps in a row
# moves a patient to RODAS ('auto'); NONSTIFF_RESET non-stiff steps in a row reset the count.
STIFF_BOUND = 3.25
STIFF_STEPS = 15
NONSTIFF_RESET = 6
# In a lane group (numba, models without condition events) a DOPRI5 step costs about a third of a lone one,
# so the switch pays only for longer stiff stretches: the same test, held for more steps (Kirschner-Panetta,
# auto: 0.38 ms per patient with 15, 0.33 with 100, 0.30 dopri5). The C/CUDA kernel has no lane groups.
STIFF_STEPS_IN_LANES = 100

# ---- RODAS (rodas.f, METH = 1), in the W-transformed form: stages (I / (h GAMMA) - J) k_i = ...
GAMMA = 0.25
R_C2, R_C3, R_C4 = 0.386, 0.21, 0.63
R_D1, R_D2, R_D3, R_D4 = 0.25, -0.1043, 0.1035, -0.03620000000000023
R_A21 = 1.544
R_A31, R_A32 = 0.9466785280815826, 0.2557011698983284
R_A41, R_A42, R_A43 = 3.314825187068521, 2.896124015972201, 0.9986419139977817
R_A51, R_A52, R_A53, R_A54 = 1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950
R_C21 = -5.6688
R_C31, R_C32 = -2.430093356833875, -0.2063599157091915
R_C41, R_C42, R_C43 = -0.1073529058151375, -9.594562251023355, -20.47028614809616
R_C51, R_C52, R_C53, R_C54 = 7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160
R_C61, R_C62, R_C63, R_C64, R_C65 = (8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136,
                                     -6.058818238834054)
# dense output of order 3
R_H21, R_H22, R_H23, R_H24, R_H25 = (10.12623508344586, -7.487995877610167, -34.80091861555747, -7.992771707568823,
                                     1.025137723295662)
R_H31, R_H32, R_H33, R_H34, R_H35 = (-0.6762803392801253, 6.087714651680015, 16.43084320892478, 24.76722511418386,
                                     -6.594389125716872)
R_FAC_MAX = 6.0  # Gustafsson's predictive control (rodas.f, PRED = 1): factors in [FAC_MIN, R_FAC_MAX]

# ---- events
MAX_CASCADE = 1000  # firings at one instant before a cascade counts as endless (every engine)
# delayed firings (SBML event delays) one patient may hold pending at once in the batch engine and the C/CUDA
# kernel: a fixed-size queue per patient (status PENDING_FULL past it); the SciPy engine's queue has no bound
MAX_PENDING = 64

# ---- status codes of a patient (every batch backend): ilsim.engines.base.STATUS says what each means
OK, NON_FINITE, STEP_UNDERFLOW, MAX_STEPS, BAD_INITIAL, ENDLESS_EVENTS = 0, 1, 2, 3, 4, 5
PENDING_FULL, BAD_DELAY = 7, 8  # (6 is the SciPy engine's SOLVER_FAILED)
DOPRI5, RODAS, AUTO = 0, 1, 2  # method codes


_CODES = {"OK", "NON_FINITE", "STEP_UNDERFLOW", "MAX_STEPS", "BAD_INITIAL", "ENDLESS_EVENTS", "PENDING_FULL", "BAD_DELAY",
          "DOPRI5", "RODAS", "AUTO"}


def numbers() -> dict[str, float | int]:
    """Every coefficient and control constant above, by name (not the status and method codes)."""
    return {k: v for k, v in globals().items() if k.isupper() and isinstance(v, (int, float)) and k not in _CODES}


def c_defines() -> str:
    """The constants as C ``#define`` lines, full precision (repr round-trips a float64 exactly)."""
    lines = []
    for name, value in numbers().items():
        text = repr(float(value)) if isinstance(value, float) else str(value)
        lines.append(f"#define {name} ({text})")
    return "\n".join(lines)

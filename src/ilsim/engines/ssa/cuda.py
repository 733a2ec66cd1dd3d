"""The direct method on a CUDA GPU (numba.cuda): one trajectory per GPU thread.

The kernel runs the model's ``direct_steps`` (``codegen.direct_source``) from the start to the end: the same
generated module as the CPU's (the driver's text, its random numbers and the model's functions), with numba's
CPU decorators exchanged for CUDA device functions, so the propensities, the stoichiometry and the algorithm are
written once for both. Trajectory i draws from the same xoshiro256** stream as on the CPU (``engine.streams``:
the seed and i), kept in its row of a device array: its numbers depend on neither the launch configuration nor
the number of threads. In numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, how the tests run it) the
trajectories are the CPU's, bit for bit; on a device, the GPU's own ``exp``/``log`` and fused multiply-adds may
move a few of them by rounding.

Limits: the direct method only, models without events (timed, dosed or conditional) and with at most
``codegen.UNROLL_MAX`` processes; anything else is refused by name. This path was checked in the simulator only,
never on a GPU (docs/stochastic.md).
"""

from __future__ import annotations

import hashlib
import inspect
import re
import warnings
from pathlib import Path

from ilsim.engines.ssa.engine import SsaEngine
from ilsim.errors import IlsimError, argument
from ilsim.model.compile import CompiledModel, _import_generated

_LOADED: dict[str, object] = {}
BLOCK_SIZE = 128  # threads per block: any size gives the same trajectories

KERNEL = '''

@cuda.jit
def direct_kernel(t_eval, X0, P, omega, rng, max_steps, Y, P_t, record_p, status, fail_t, fail_j, steps):
    """Trajectory i = the thread's index: the direct method from t_eval[0] to t_eval[-1]."""
    i = cuda.grid(1)
    if i >= X0.shape[0]:
        return
    x = X0[i]
    p = P[i]
    inv_omega = 1.0 / omega
    t_end = t_eval[t_eval.shape[0] - 1]
    code, t, k_out, n_steps, j = direct_steps(t_eval[0], t_end, x, p, omega, inv_omega, rng[i], 0, t_eval, Y, P_t, i,
                                              record_p, 0, max_steps)
    if code == OK:
        _record(k_out, t_end, True, t_eval, x, p, inv_omega, Y, P_t, i, record_p)
    else:
        fail_t[i] = t
        fail_j[i] = j
    status[i] = code
    steps[i] = n_steps
'''


def cuda_unavailable_reason() -> str | None:
    """Why numba.cuda cannot run here (no driver, no device), or None when it can (or its simulator is on)."""
    try:
        from numba import cuda
    except ImportError as exc:  # pragma: no cover (numba ships numba.cuda)
        return f"numba.cuda cannot be imported ({exc})"
    try:
        if cuda.is_available():
            return None
    except Exception as exc:  # a broken driver installation raises instead of answering
        return f"numba.cuda: {exc}"
    return "numba.cuda finds no CUDA driver or device"


def cuda_source(model: CompiledModel) -> str:
    """The CPU module's text (driver and model functions) as CUDA device functions, and the kernel."""
    from ilsim.engines.ssa.codegen import model_source

    kernel = model.compiled_kernels()["rhs_into"].py_func.__module__
    text = Path(__file__).with_name("driver.py").read_text() + model_source(model, kernel)
    text = re.sub(r"^@njit\(.*\)$", "@cuda.jit(device=True)", text, flags=re.MULTILINE)
    return "from numba import cuda  # noqa: E402\n" + text + KERNEL


def cuda_module(model: CompiledModel):
    source = cuda_source(model)
    name = f"ilsim_ssa_cuda_{hashlib.sha256(source.encode()).hexdigest()[:24]}"
    if name not in _LOADED:
        _LOADED[name] = _import_generated(source, True, name)
    return _LOADED[name]


class CudaSsaEngine(SsaEngine):
    """``SsaEngine``'s direct method with one trajectory per CUDA thread (``backend="gpu"``)."""

    name = "ssa"

    def __init__(self, trajectories: int = 1000, seed: int = 0, method: str = "direct", system_size: float | None = None,
                 max_steps: int = 100_000_000, block_size: int = BLOCK_SIZE):
        if method not in ("direct", "auto"):
            raise IlsimError(f"{argument('method')}: the GPU runs the direct method only, got '{method}'; run "
                             "next-reaction and tau on the CPU")
        super().__init__(trajectories=trajectories, seed=seed, method="direct", system_size=system_size,
                         max_steps=max_steps)
        if isinstance(block_size, bool) or not isinstance(block_size, int) or not 1 <= block_size <= 1024:
            raise IlsimError(f"block_size must be an integer from 1 to 1024, got {block_size!r}")
        self.block_size = block_size

    def settings(self) -> dict:
        return {**super().settings(), "backend": "gpu"}

    def solve(self, model: CompiledModel, t_eval, P, **options):
        check_gpu_model(model)
        reason = cuda_unavailable_reason()
        if reason is not None:
            raise IlsimError(f"no CUDA GPU is available ({reason}); run the stochastic engine on the CPU "
                             f"({argument('backend')} cpu)")
        return super().solve(model, t_eval, P, **options)

    def launch(self, model: CompiledModel, n: int, args: tuple) -> None:
        """The arguments of the CPU's ``run_block`` (by name) to the GPU and back; one thread per trajectory."""
        import numba
        from numba import cuda

        from ilsim.engines.ssa.codegen import model_module

        a = dict(zip(list(inspect.signature(model_module(model).run_block.py_func).parameters)[2:], args))
        kernel = cuda_module(model).direct_kernel
        moved = ("t_eval", "X0", "P", "rng", "Y", "P_t", "status", "fail_t", "fail_j", "steps")
        dev = {k: cuda.to_device(a[k]) for k in moved}
        with warnings.catch_warnings():
            if numba.config.ENABLE_CUDASIM:  # the simulator runs xoshiro's wrapping products on NumPy scalars
                warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
            kernel[max(1, -(-n // self.block_size)), self.block_size](
                dev["t_eval"], dev["X0"], dev["P"], float(a["omega"]), dev["rng"], int(a["max_steps"]), dev["Y"],
                dev["P_t"], bool(a["record_p"]), dev["status"], dev["fail_t"], dev["fail_j"], dev["steps"])
        for k in moved[1:]:
            dev[k].copy_to_host(a[k])
        failed = a["status"] != 0
        a["fail_x"][failed] = a["X0"][failed]  # the state at the failure, as the CPU's run_block keeps it


def check_gpu_model(model: CompiledModel) -> None:
    """Refuse, by name, what the GPU's direct method does not run."""
    from ilsim.engines.ssa.codegen import UNROLL_MAX

    if model.events:
        raise IlsimError(f"model '{model.name}' has events ({len(model.events)}, first '{model.events[0].name}'): the "
                         f"GPU's stochastic engine runs models without events; run it on the CPU ({argument('backend')} cpu)")
    if len(model.rate_trees) > UNROLL_MAX:
        raise IlsimError(f"model '{model.name}' has {len(model.rate_trees)} processes: the GPU's stochastic engine runs "
                         f"networks of at most {UNROLL_MAX}; run it on the CPU ({argument('backend')} cpu)")



def ssa_engine(backend: str, **settings) -> SsaEngine:
    """The stochastic engine of a backend (the CLI's --backend): numba threads on the CPU, or CUDA's direct method."""
    if backend == "cpu":
        return SsaEngine(**settings)
    if backend == "gpu":
        return CudaSsaEngine(**settings)
    raise IlsimError(f"{argument('backend')} must be cpu or gpu, got {backend!r}")

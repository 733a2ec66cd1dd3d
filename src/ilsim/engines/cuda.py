"""CUDA batch engine: the generated per-patient kernel (``engines.csource``) run on a GPU through CuPy.

One GPU thread integrates one patient (row of ``P``) with the kernel's method, dense output and events,
in double precision: ``method`` "dopri5" (Dormand-Prince 5(4)), "rodas" (Rosenbrock 4(3) with the model's
analytic Jacobian) or "auto" (default: DOPRI5 until Hairer's stiffness test moves the patient to RODAS),
as ``engines.batch.BatchEngine``. The source is compiled once per model and method with NVRTC
(``cupy.RawKernel``; CuPy also caches the binary on disk, so a new process skips compilation).
Patients are run in chunks sized to the GPU's free memory; the kernel is timed with CUDA events so
that ``last_timing`` reports kernel time apart from transfers.

Needs the optional extra ``ilsim[gpu]`` (CuPy) and a CUDA device; without them ``run`` raises an
``IlsimError`` saying why. ``engines.csource.HostKernel`` runs the same kernel on the CPU.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from ilsim.engines.base import Engine, EngineResult
from ilsim.engines.batch.engine import check_inputs, check_settings
from ilsim.engines.csource import check_method, kernel_result, kernel_source, refuse_unkept
from ilsim.errors import IlsimError
from ilsim.model.compile import CompiledModel

_KERNELS: dict[str, object] = {}  # sha256 of the source -> compiled cupy.RawKernel


def cuda_unavailable_reason() -> str | None:
    """Why no CUDA GPU can be used here (CuPy missing, no driver, no device), or None when one can."""
    try:
        import cupy
    except ImportError as exc:
        return f"CuPy is not installed ({exc}); install the extra: pip install 'ilsim[gpu]'"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError without a driver, or a broken installation
        return f"CUDA runtime: {exc}"
    return None if count > 0 else "no CUDA device found"


def _cupy():
    reason = cuda_unavailable_reason()
    if reason is not None:
        raise IlsimError(f"no CUDA GPU is available ({reason}); run on the CPU (backend 'cpu')")
    import cupy

    return cupy


class CudaBatchEngine(Engine):
    """Many parameter sets of one model on a CUDA GPU: one thread per patient, DOPRI5, RODAS or auto, with events.

    ``run(model, t_eval, P)`` returns ``(Y, status)`` like ``BatchEngine``: Y is patients x
    len(t_eval) x species (float64), status an int per patient (``engines.batch.STATUS``).
    """

    name = "cuda"
    # the kernel keeps no event counts, parameters over time or firing log (docs/architecture.md, "Not yet")
    supports = {"events": True, "stochastic": False, "spatial": False, "batch": True, "stiff": True,
                "parameter_trajectories": False, "event_log": False}

    def __init__(self, rtol: float = 1e-6, atol: float = 1e-9, max_steps: int = 1_000_000, block_size: int = 128,
                 method: str = "auto"):
        self.rtol, self.atol, self.max_steps = check_settings(rtol, atol, max_steps)
        check_method(method)
        self.method = method
        if block_size < 32 or block_size > 1024 or block_size % 32:
            raise IlsimError(f"block_size must be a multiple of 32 between 32 and 1024, got {block_size}")
        self.block_size = int(block_size)
        self.last_timing: dict[str, float] = {}

    def settings(self) -> dict:
        return {"method": self.method, "rtol": self.rtol, "atol": self.atol, "max_steps": self.max_steps,
                "block_size": self.block_size}

    def solve(self, model: CompiledModel, t_eval, P, *, record_parameters: bool = False,
              log_events: int = 0) -> EngineResult:
        """``run`` as an ``EngineResult`` (see ``csource.kernel_result``: what the kernel does not keep)."""
        refuse_unkept(model, record_parameters, log_events, "CUDA")
        Y, status = self.run(model, t_eval, P)
        return kernel_result(model, Y, status, P, record_parameters)

    def kernel(self, model: CompiledModel):
        """The model's compiled kernel for this engine's method (NVRTC, once per model, method and process; CuPy
        caches it on disk)."""
        cupy = _cupy()
        source = kernel_source(model, self.method)
        key = hashlib.sha256(source.encode()).hexdigest()
        if key not in _KERNELS:
            kernel = cupy.RawKernel(source, "ilsim_solve", options=("--std=c++14",))
            try:
                kernel.compile()
            except Exception as exc:  # NVRTC's log names the line; it means a bug in the generator
                raise IlsimError(f"NVRTC could not compile the kernel of model '{model.name}': {exc}") from None
            _KERNELS[key] = kernel
        return _KERNELS[key]

    def run(self, model: CompiledModel, t_eval, P) -> tuple[np.ndarray, np.ndarray]:
        """Integrate every row of ``P`` on the GPU; return ``(Y, status)`` as NumPy arrays."""
        cupy = _cupy()
        t_eval, P = check_inputs(model, t_eval, P)
        start = time.perf_counter()
        kernel = self.kernel(model)
        timing = {"compile_s": time.perf_counter() - start, "kernel_s": 0.0, "to_device_s": 0.0, "from_device_s": 0.0}
        n, nt, ns = P.shape[0], len(t_eval), len(model.species)
        Y = np.empty((n, nt, ns))
        status = np.empty(n, dtype=np.int64)
        t_dev = cupy.asarray(t_eval)
        for lo, hi in _chunks(n, nt, ns, len(model.parameters), cupy):
            start = time.perf_counter()
            P_dev = cupy.asarray(P[lo:hi])
            cupy.cuda.get_current_stream().synchronize()
            timing["to_device_s"] += time.perf_counter() - start
            Y_dev, status_dev, seconds = self.launch(kernel, t_dev, P_dev, ns)
            timing["kernel_s"] += seconds
            start = time.perf_counter()
            Y_dev.get(out=Y[lo:hi])  # straight into the result: no second host copy of a large Y
            status[lo:hi] = status_dev.get()
            timing["from_device_s"] += time.perf_counter() - start
            del Y_dev, status_dev, P_dev
        self.last_timing = timing
        return Y, status

    def launch(self, kernel, t_dev, P_dev, ns: int):
        """One kernel launch on device arrays: ``(Y, status, kernel seconds)``, results left on the GPU."""
        cupy = _cupy()
        n, nt = P_dev.shape[0], t_dev.shape[0]
        Y_dev = cupy.empty((n, nt, ns), dtype=cupy.float64)
        status_dev = cupy.empty(n, dtype=cupy.int32)
        blocks = max(1, (n + self.block_size - 1) // self.block_size)
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        kernel((blocks,), (self.block_size,), (t_dev, np.int64(nt), P_dev, np.int64(n), np.float64(self.rtol),
                                               np.float64(self.atol), np.int64(self.max_steps), Y_dev, status_dev))
        end.record()
        end.synchronize()
        return Y_dev, status_dev.astype(cupy.int64), cupy.cuda.get_elapsed_time(start, end) / 1000.0


def _chunks(n: int, nt: int, ns: int, npar: int, cupy) -> list[tuple[int, int]]:
    """Patient ranges whose outputs fit in half of the GPU's free memory."""
    free, _ = cupy.cuda.runtime.memGetInfo()
    per_patient = 8 * (nt * ns + npar) + 16
    size = int(0.5 * free) // per_patient
    if size < 1:
        raise IlsimError(f"one patient's outputs ({per_patient / 2**20:.0f} MiB) do not fit in the GPU's free memory; "
                         "ask for fewer output times")
    return [(lo, min(n, lo + size)) for lo in range(0, n, size)]

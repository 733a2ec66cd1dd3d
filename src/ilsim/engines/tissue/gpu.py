"""The tissue engine's loops on a CUDA GPU (numba.cuda): one thread per line, voxel or cell.

The device functions are the CPU's own numba bodies: ``gpu_source`` takes every ``@njit`` function of
``diffusion.py`` and ``agents.py`` (not the ``parallel`` drivers) and their module constants, exchanges the decorator
for ``@cuda.jit(device=True)`` and the small fixed-size scratch arrays (``np.empty(3)``, ...) for the GPU's local
arrays, and adds the kernels below, which call those bodies with the thread's index where the CPU's drivers loop.
So the Thomas line solve, the secretion-uptake update, the sensing, the movement, the repulsion, the random
numbers and the fates are written once for both.

- diffusion: each LOD sweep runs ``middle_task`` with one line per thread (``BLOCK = 1``: the x sweep on C viewed
  as (fields x rows x nx x 1), so it is the same recurrence as the CPU's ``x_task``, without its transposed copy);
  the fixed-value and vessel voxels one thread each;
- secretion and uptake: the cells are sorted by voxel (a stable counting sort, on the host) and one thread per voxel
  updates it for its cells in agent order, as the CPU's serial loop does, with no atomics; the amounts each cell
  secreted or took up come back per cell and are summed in agent order, so the ledger is the CPU's too;
- the cells: sensing, velocities (random walk, chemotaxis, repulsion through the CPU's cell list), the move and the
  fates one thread per cell; the draws are counter-based (``agents.uniform``), so they do not depend on the thread.

What stays on the host: the cell list and the voxel sort (numba's serial counting sorts), removing the dead and
adding the daughters and recruits (``Agents._apply``, ``_recruit``), the per-cell reading of the model's processes
(``percell.py``) and the well-mixed part. The arrays travel to the device and back around each kernel group (the
fields once per diffusion step and once for each of sensing and moving): simple and exact, but bound by those
copies; keeping the state resident on the device is the next step. Same seed, same numbers: in numba's CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``) a GPU run equals the CPU run bit for bit (tests/engines/tissue/test_gpu.py);
on a device, fused multiply-adds and the GPU's ``exp``/``cos`` may move the last bits. Checked in the simulator and
compiled to PTX only, never run on a GPU (docs/tissue.md).
"""

from __future__ import annotations

import ast
import hashlib
import re
import warnings
from pathlib import Path

import numpy as np

from ilsim.engines.tissue import agents as cpu_agents
from ilsim.engines.tissue.diffusion import DiffusionSolver
from ilsim.errors import IlsimError, argument

THREADS = 128  # threads per block: any size gives the same numbers
_LOADED: dict[str, object] = {}

# the CPU bodies' fixed-size scratch arrays as the GPU's (uninitialised) local arrays: every one is written before
# it is read (agents._bias zeroes its unused axes for this)
LOCAL_ARRAYS = {
    "np.empty(27, dtype=np.int64)": "cuda.local.array(27, int64)",
    "np.empty(3, dtype=np.int64)": "cuda.local.array(3, int64)",
    "np.zeros(3)": "cuda.local.array(3, float64)",
}

KERNELS = '''

@cuda.jit
def sweep_kernel(L, denom, cp, z, h, ratio, c1, periodic):
    """One line of the LOD sweep per thread: L is C viewed as (fields x outer x n x inner), lines along n."""
    task = cuda.grid(1)
    if task < L.shape[0] * L.shape[1] * L.shape[3]:
        middle_task(L, denom, cp, z, h, ratio, c1, periodic, task)


@cuda.jit
def cells_kernel(flat, order, start, w, S, T, U, E, dt_over_v, gain, loss):
    """One voxel per thread: its cells (``order[start[v]:start[v + 1]]``, in agent order) update it in turn."""
    v = cuda.grid(1)
    if v >= start.shape[0] - 1:
        return
    for m in range(start[v], start[v + 1]):
        a = order[m]
        for f in range(flat.shape[0]):
            g, q = cell_source(flat, f, v, w[a], S[a, f], T[a, f], U[a, f], E[a, f], dt_over_v)
            gain[a, f] = g
            loss[a, f] = q


@cuda.jit
def vessels_kernel(flat, vessels, rate_dt, blood, gained):
    """One (field, vessel voxel) per thread."""
    i = cuda.grid(1)
    n = vessels.shape[0]
    if i < flat.shape[0] * n:
        f = i // n
        if rate_dt[f] != 0.0:
            gained[f, i % n] = vessel_exchange(flat, f, vessels[i % n], rate_dt[f], blood[f])


@cuda.jit
def fixed_kernel(flat, index, values, gained):
    """One (field, fixed voxel) per thread."""
    i = cuda.grid(1)
    n = index.shape[0]
    if i < flat.shape[0] * n:
        f = i // n
        gained[f, i % n] = fix_voxel(flat, f, index[i % n], values[f, i % n])


@cuda.jit
def sense_kernel(flat, voxel, typ, occupancy, on_since, E, rec_field, rec_kd, rec_tau, sec_field, sec_rate,
                 sec_stimulus, sec_threshold, sec_lag, t, dt, rec_loss, suppression):
    a = cuda.grid(1)
    if a < voxel.shape[0]:
        _sense(a, flat, voxel, typ, occupancy, on_since, E, rec_field, rec_kd, rec_tau, sec_field, sec_rate,
               sec_stimulus, sec_threshold, sec_lag, t, dt, rec_loss, suppression)


@cuda.jit
def velocity_kernel(pos, direction, typ, ids, velocity, C, shape, dx, dims, periodic, lengths, nbins, order, start,
                    radius, speed, persistence, chemo_field, chemo_sens, chemo_bias, repulsion, seed, step, dt):
    a = cuda.grid(1)
    if a < pos.shape[0]:
        _velocity(a, (pos, direction, typ, ids, velocity), (C, shape, dx, dims, periodic, lengths, nbins, order, start),
                  (radius, speed, persistence, chemo_field, chemo_sens, chemo_bias, repulsion), seed, step, dt)


@cuda.jit
def advance_kernel(pos, velocity, dims, periodic, lengths, dt):
    """After every velocity is known (a kernel boundary: the repulsion read the positions before the move)."""
    a = cuda.grid(1)
    if a < pos.shape[0]:
        _advance(a, pos, velocity, dims, periodic, lengths, dt)


@cuda.jit
def fate_kernel(pos, typ, ids, fate, newtype, dims, periodic, lengths, nbins, order, start, radius, death, division,
                into, differentiate, target_kill, contact, seed, step, dt):
    a = cuda.grid(1)
    if a < pos.shape[0]:
        _fate(a, (pos, typ, ids, fate, newtype), (dims, periodic, lengths, nbins, order, start),
              (radius, death, division, into, differentiate, target_kill, contact), seed, step, dt)
'''


def cuda_unavailable_reason() -> str | None:
    """Why numba.cuda cannot run here (no driver, no device), or None when it can (or its simulator is on)."""
    from ilsim.engines.ssa.cuda import cuda_unavailable_reason as reason

    return reason()


def require_gpu() -> None:
    """Refuse the GPU backend, saying why and what to do, where no CUDA device (or numba's simulator) is present."""
    reason = cuda_unavailable_reason()
    if reason is not None:
        raise IlsimError(f"no CUDA GPU is available for the tissue engine ({reason}); run it on the CPU "
                         f"({argument('backend')} cpu), or install the GPU extra (pip install 'ilsim[gpu]') on a "
                         "machine with an NVIDIA GPU")


def _device_bodies(path: Path) -> str:
    """A module's numba bodies (``@njit``, not ``parallel``) and upper-case constants, as CUDA device functions."""
    text = path.read_text()
    lines = text.splitlines()
    parts = []
    for node in ast.parse(text).body:
        names = [n for t in getattr(node, "targets", []) for n in (t.elts if isinstance(t, ast.Tuple) else [t])]
        if isinstance(node, ast.Assign) and all(isinstance(n, ast.Name) and n.id.isupper() for n in names):
            parts.append("\n".join(lines[node.lineno - 1:node.end_lineno]))
        elif isinstance(node, ast.FunctionDef) and node.decorator_list:
            decorator = ast.get_source_segment(text, node.decorator_list[0])
            if decorator.startswith("njit") and "parallel=True" not in decorator:
                parts.append("@cuda.jit(device=True)\n" + "\n".join(lines[node.lineno - 1:node.end_lineno]))
    return "\n\n\n".join(parts)


def gpu_source() -> str:
    """The CPU bodies of diffusion.py and agents.py as CUDA device functions, and the kernels that call them."""
    here = Path(__file__).parent
    text = _device_bodies(here / "diffusion.py") + "\n\n\n" + _device_bodies(here / "agents.py")
    for cpu, gpu in LOCAL_ARRAYS.items():
        if cpu not in text:  # a body changed: the table must follow it (a test compiles every kernel)
            raise AssertionError(f"{cpu} is no longer in the tissue bodies")
        text = text.replace(cpu, gpu)
    text, found = re.subn(r"^BLOCK = \d+", "BLOCK = 1", text, flags=re.MULTILINE)  # one line per GPU thread
    assert found == 1
    return "import math\n\nimport numpy as np\nfrom numba import cuda, float64, int64\n\n\n" + text + KERNELS


def gpu_module():
    from ilsim.model.compile import _import_generated

    source = gpu_source()
    name = f"ilsim_tissue_cuda_{hashlib.sha256(source.encode()).hexdigest()[:24]}"
    if name not in _LOADED:
        _LOADED[name] = _import_generated(source, True, name)
    return _LOADED[name]


def _launch(kernel, n: int, *args) -> None:
    import numba

    with warnings.catch_warnings():
        if numba.config.ENABLE_CUDASIM:  # the simulator runs splitmix64's wrapping products on NumPy scalars
            warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
        kernel[max(1, -(-n // THREADS)), THREADS](*args)


def _to_device(args):
    from numba import cuda

    return [cuda.to_device(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a for a in args]


def _run(kernel, n: int, args, back=()) -> None:
    """Host arrays to the device, the kernel over ``n`` threads, the arrays at positions ``back`` copied back in place."""
    dev = _to_device(args)
    _launch(kernel, n, *dev)
    for i in back:
        dev[i].copy_to_host(args[i])


def _sequential_sum(parts: np.ndarray) -> np.ndarray:
    """Column sums adding the rows in order (as the CPU's loops accumulate; NumPy's sum would pair them)."""
    return np.cumsum(parts, axis=0)[-1] if len(parts) else np.zeros(parts.shape[1:])


class GpuDiffusion(DiffusionSolver):
    """``DiffusionSolver`` with its step on the device: C is copied there once per step and back at its end."""

    @classmethod
    def of(cls, solver: DiffusionSolver) -> GpuDiffusion:
        from numba import cuda

        gpu = cls.__new__(cls)
        gpu.__dict__.update(solver.__dict__)
        gpu.kernels = gpu_module()
        gpu.device_axes = [tuple(cuda.to_device(a) for a in axis[:5]) + (axis[5],) for axis in solver.axes]
        gpu.device_c1 = cuda.to_device(solver.c1)
        return gpu

    def step(self, C, cells=None, ledger=None, taken=None) -> None:
        from numba import cuda

        dC = cuda.to_device(C)
        super().step(dC, cells, ledger, taken)
        dC.copy_to_host(C)

    def total(self, C) -> np.ndarray:
        host = C.copy_to_host() if hasattr(C, "copy_to_host") else C  # NumPy's sum, as the CPU's ledger
        return super().total(host)

    def apply_cells(self, C, cells, sec, upt, per_cell) -> None:
        voxel, w, S, T, U, E = cells
        nvox = int(np.prod(self.grid))
        order, start = cpu_agents.counting_sort(voxel, nvox)
        gain, loss = np.zeros(S.shape), np.zeros(S.shape)
        dev = _to_device((order, start, w, S, T, U, E, gain, loss))
        _launch(self.kernels.cells_kernel, nvox, C.reshape(self.nf, nvox), *dev[:7], self.dt / self.voxel_volume, *dev[7:])
        dev[7].copy_to_host(gain)
        dev[8].copy_to_host(loss)
        per_cell[...] = loss  # each cell's uptake, as the CPU's apply_cells gives it (internalisation)
        sec += _sequential_sum(gain)
        upt += _sequential_sum(loss)

    def apply_vessels(self, C, gained) -> None:
        parts = np.zeros((self.nf, len(self.vessels)))
        flat = C.reshape(self.nf, int(np.prod(self.grid)))
        _run(self.kernels.vessels_kernel, parts.size, (flat, self.vessels, self.exchange_dt, self.blood, parts), back=(4,))
        gained += _sequential_sum(parts.T)

    def apply_fixed(self, C, gained) -> None:
        parts = np.zeros((self.nf, len(self.fixed_index)))
        flat = C.reshape(self.nf, int(np.prod(self.grid)))
        _run(self.kernels.fixed_kernel, parts.size, (flat, self.fixed_index, self.fixed_values, parts), back=(3,))
        gained += _sequential_sum(parts.T)

    def sweep(self, C, axis: int) -> None:
        denom, cp, z, h, ratio, per = self.device_axes[axis]
        L = self.lines(C, axis)
        _launch(self.kernels.sweep_kernel, L.shape[0] * L.shape[1] * L.shape[3], L, denom, cp, z, h, ratio, self.device_c1,
                bool(per))


class GpuAgents:
    """The cells' loops on the device, called as the CPU's drivers are (``Agents.sources`` and ``Agents.step``)."""

    def __init__(self):
        self.kernels = gpu_module()

    def sense(self, flat, voxel, typ, occupancy, on_since, E, *rest) -> None:
        _run(self.kernels.sense_kernel, len(voxel), (flat, voxel, typ, occupancy, on_since, E, *rest), back=(3, 4, 5))

    def move(self, cells, space, rules, seed, step, dt) -> None:
        pos, direction = cells[0], cells[1]
        dev = _to_device((*cells, *space, *rules))
        n = len(pos)
        _launch(self.kernels.velocity_kernel, n, *dev, int(seed), int(step), float(dt))
        dims, periodic, lengths = dev[8], dev[9], dev[10]
        _launch(self.kernels.advance_kernel, n, dev[0], dev[4], dims, periodic, lengths, float(dt))
        dev[0].copy_to_host(pos)
        dev[1].copy_to_host(direction)

    def fates(self, cells, space, rules, seed, step, dt) -> None:
        dev = _to_device((*cells, *space, *rules))
        _launch(self.kernels.fate_kernel, len(cells[0]), *dev, int(seed), int(step), float(dt))
        dev[3].copy_to_host(cells[3])
        dev[4].copy_to_host(cells[4])


def backend_parts(backend: str):
    """(solver of the backend for a CPU solver, the cells' drivers) of ``backend``: cpu (numba's threads) or gpu."""
    if backend == "cpu":
        return (lambda solver: solver), None
    if backend == "gpu":
        require_gpu()
        return GpuDiffusion.of, GpuAgents()
    raise IlsimError(f"{argument('backend')} must be cpu or gpu, got {backend!r}")

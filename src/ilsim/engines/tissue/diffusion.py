"""The diffusion-decay solver of the tissue engine: BioFVM's LOD scheme (Ghaffarizadeh et al. 2016,
Bioinformatics 32:1256), in numba.

One step of ``dt`` for every field c on a uniform grid of cubic voxels (edge ``dx``)::

    1. sources:  each cell, in agent order, updates its voxel implicitly (BioFVM's Basic_Agent form)
                 c <- (c + w S T) / (1 + w (S + U)) + dt E / V_voxel,   w = dt V_cell / V_voxel
                 and vessel voxels relax towards the blood level: c <- (c + dt k c_blood) / (1 + dt k)
    2. diffusion-decay, locally one-dimensional: for each axis a in x, y(, z), with the fixed-value
       voxels reset first, solve (1 + dt lambda / d) c_new - dt D / dx^2 L_a c_new = c_old
       line by line (Thomas algorithm; cyclic Thomas via Sherman-Morrison on periodic axes).

Each sub-step is implicit Euler, so the scheme is unconditionally stable (there is no explicit stability
limit on ``dt``), first order in time (operator splitting and Euler) and second order in space. No-flux
sides use the cell-centred Neumann row (1 + c1 + c2 on the diagonal), like BioFVM; a fixed-value side
holds its outermost voxel layer at the value (BioFVM's Dirichlet nodes: set before every axis sweep).

Every column of a sweep's matrix sums to 1 + c2, so a sweep removes exactly c2 * sum(c_new) by decay and
moves nothing across no-flux or periodic sides: the ledger (``Ledger``) adds up what was secreted, taken up,
decayed, exchanged with blood and set at fixed sides, and the change of the total equals it to round-off
(tests/engines/tissue/test_diffusion.py).

Parallel work: the lines of a sweep are independent, spread over numba's threads; the y and z sweeps take
blocks of x-columns, so their inner loops run along contiguous memory (vectorised), where BioFVM walks each
line with a stride. The kernels are plain loops over tasks of lines: ``gpu.py`` compiles the same bodies as CUDA
device functions, one line per GPU thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

BLOCK = 64  # x-columns per task of the y and z sweeps: enough tasks for the threads, whole cache lines each
ROWS = 16  # lines per task of the x sweep, walked side by side
PARALLEL_FROM = 20_000  # voxels x fields from which a sweep uses numba's threads (measured with agents.PARALLEL_FROM)


@dataclass
class Ledger:
    """Amounts (concentration x µm³) per field over the steps since it was made."""

    secreted: np.ndarray
    taken_up: np.ndarray
    decayed: np.ndarray
    blood: np.ndarray  # gained from vessels (negative: lost to blood)
    fixed: np.ndarray  # gained where fixed-value sides reset their voxels (negative: lost there)
    dosed: np.ndarray  # added by the model's timed events (systemic doses)

    @classmethod
    def zeros(cls, nf: int) -> Ledger:
        return cls(*(np.zeros(nf) for _ in range(6)))

    def net(self) -> np.ndarray:
        return self.secreted - self.taken_up - self.decayed + self.blood + self.fixed + self.dosed


def thomas_coefficients(n: int, c1: float, c2: float, periodic: bool):
    """Forward-elimination denominators and back-substitution factors of one axis (BioFVM's thomas_denom, thomas_c),
    and for a periodic axis the Sherman-Morrison vector z and its weights."""
    b = 1.0 + 2.0 * c1 + c2
    diag = np.full(n, b)
    z = np.zeros(n)
    h = 0.0
    ratio = 0.0
    if n == 1:
        diag[0] = 1.0 + c2
    elif periodic:
        # A = T + u v^T with u = (gamma, 0.., -c1), v = (1, 0.., -c1 / gamma); gamma = -b
        gamma = -b
        diag[0] = b - gamma
        diag[-1] = b - c1 * c1 / gamma
        ratio = -c1 / gamma
    else:
        diag[0] = diag[-1] = 1.0 + c1 + c2  # no flux through the outer faces
    denom = diag.copy()
    cp = np.full(n, -c1)
    cp[0] /= denom[0]
    for i in range(1, n):
        denom[i] += c1 * cp[i - 1]
        cp[i] /= denom[i]
    if periodic and n > 1:
        u = np.zeros(n)
        u[0], u[-1] = -b, -c1
        z = u.copy()
        _solve_line(z, denom, cp, c1)
        h = 1.0 / (1.0 + z[0] + ratio * z[-1])
    return denom, cp, z, h, ratio


@njit(cache=True, inline="always")
def _solve_line(d, denom, cp, c1):
    n = d.shape[0]
    d[0] /= denom[0]
    for i in range(1, n):
        d[i] = (d[i] + c1 * d[i - 1]) / denom[i]
    for i in range(n - 2, -1, -1):
        d[i] -= cp[i] * d[i + 1]


def x_tasks(C):
    nf, nz, ny, nx = C.shape
    return nf * nz * ((ny + ROWS - 1) // ROWS)


@njit(cache=True)
def x_task(C, denom, cp, z, h, ratio, c1, periodic, task):
    """A block of ROWS lines along the last axis of C (fields x z x y x x), walked side by side: the recurrence of one
    line waits on its previous element, so interleaving independent lines keeps the arithmetic units busy (one line
    at a time is latency-bound). The block is copied transposed, so that the walk runs over contiguous rows."""
    nf, nz, ny, nx = C.shape
    nb = (ny + ROWS - 1) // ROWS
    f = task // (nz * nb)
    k = (task // nb) % nz
    j0 = (task % nb) * ROWS
    j1 = min(j0 + ROWS, ny)
    m = j1 - j0
    B = np.empty((nx, ROWS))  # the block transposed: the walk along x runs over contiguous rows of B
    for j in range(m):
        for i in range(nx):
            B[i, j] = C[f, k, j0 + j, i]
    a = c1[f]
    inv0 = 1.0 / denom[f, 0]
    for j in range(m):
        B[0, j] *= inv0
    for i in range(1, nx):
        q = 1.0 / denom[f, i]
        for j in range(m):
            B[i, j] = (B[i, j] + a * B[i - 1, j]) * q
    for i in range(nx - 2, -1, -1):
        g = cp[f, i]
        for j in range(m):
            B[i, j] -= g * B[i + 1, j]
    if periodic:
        for j in range(m):
            s = h[f] * (B[0, j] + ratio[f] * B[nx - 1, j])
            for i in range(nx):
                B[i, j] -= s * z[f, i]
    for j in range(m):
        for i in range(nx):
            C[f, k, j0 + j, i] = B[i, j]


def middle_tasks(C):
    nf, no, n, ni = C.shape
    return nf * no * ((ni + BLOCK - 1) // BLOCK)


@njit(cache=True)
def middle_task(C, denom, cp, z, h, ratio, c1, periodic, task):
    """A block of BLOCK lines along axis 2 of C (fields x outer x n x inner), inner loops over contiguous columns."""
    nf, no, n, ni = C.shape
    nb = (ni + BLOCK - 1) // BLOCK
    f = task // (no * nb)
    o = (task // nb) % no
    i0 = (task % nb) * BLOCK
    i1 = min(i0 + BLOCK, ni)
    P = C[f, o]
    a = c1[f]
    inv0 = 1.0 / denom[f, 0]
    for i in range(i0, i1):
        P[0, i] *= inv0
    for m in range(1, n):
        q = 1.0 / denom[f, m]
        for i in range(i0, i1):
            P[m, i] = (P[m, i] + a * P[m - 1, i]) * q
    for m in range(n - 2, -1, -1):
        g = cp[f, m]
        for i in range(i0, i1):
            P[m, i] -= g * P[m + 1, i]
    if periodic:
        for i in range(i0, i1):
            s = h[f] * (P[0, i] + ratio[f] * P[n - 1, i])
            for m in range(n):
                P[m, i] -= s * z[f, m]


# The same task bodies run on numba's threads (prange) or in one thread: a small grid is done before the threads
# would have woken, and on a busy machine waiting for them costs more than the work.
@njit(cache=True, parallel=True)
def sweep_x(C, denom, cp, z, h, ratio, c1, periodic, tasks):
    for task in prange(tasks):
        x_task(C, denom, cp, z, h, ratio, c1, periodic, task)


@njit(cache=True)
def sweep_x_serial(C, denom, cp, z, h, ratio, c1, periodic, tasks):
    for task in range(tasks):
        x_task(C, denom, cp, z, h, ratio, c1, periodic, task)


@njit(cache=True, parallel=True)
def sweep_middle(C, denom, cp, z, h, ratio, c1, periodic, tasks):
    for task in prange(tasks):
        middle_task(C, denom, cp, z, h, ratio, c1, periodic, task)


@njit(cache=True)
def sweep_middle_serial(C, denom, cp, z, h, ratio, c1, periodic, tasks):
    for task in range(tasks):
        middle_task(C, denom, cp, z, h, ratio, c1, periodic, task)


@njit(cache=True)
def apply_cells(C, voxel, w, S, T, U, E, dt_over_v, secreted, taken_up, taken):
    """Each cell's secretion and uptake in its voxel, in agent order (cells sharing a voxel see each other's
    update, as BioFVM's serial loop does); amounts go to the ledger in concentration x voxel volume units, and
    each cell's uptake to ``taken`` (cells x fields, the same units; internalisation adds it to the cell)."""
    nf = C.shape[0]
    flat = C.reshape(nf, -1)
    for a in range(voxel.shape[0]):
        v = voxel[a]
        if v < 0:
            continue
        for f in range(nf):
            gain, loss = cell_source(flat, f, v, w[a], S[a, f], T[a, f], U[a, f], E[a, f], dt_over_v)
            secreted[f] += gain
            taken_up[f] += loss
            taken[a, f] = loss


@njit(cache=True, inline="always")
def cell_source(flat, f, v, w, S, T, U, E, dt_over_v):
    """One cell's implicit secretion-uptake update of its voxel in field f; (secreted, taken up) by it."""
    old = flat[f, v]
    s, u = w * S, w * U
    new = (old + s * T) / (1.0 + s + u)
    flat[f, v] = new + dt_over_v * E
    return s * (T - new) + dt_over_v * E, u * new


@njit(cache=True)
def apply_vessels(C, vessels, rate_dt, blood, gained):
    nf = C.shape[0]
    flat = C.reshape(nf, -1)
    for f in range(nf):
        if rate_dt[f] == 0.0:
            continue
        for v in vessels:
            gained[f] += vessel_exchange(flat, f, v, rate_dt[f], blood[f])


@njit(cache=True, inline="always")
def vessel_exchange(flat, f, v, rate_dt, blood):
    """A vessel voxel relaxing implicitly towards the blood level; what it gained."""
    old = flat[f, v]
    new = (old + rate_dt * blood) / (1.0 + rate_dt)
    flat[f, v] = new
    return new - old


@njit(cache=True)
def apply_fixed(C, index, values, gained):
    nf = C.shape[0]
    flat = C.reshape(nf, -1)
    for f in range(nf):
        for m in range(index.shape[0]):
            gained[f] += fix_voxel(flat, f, index[m], values[f, m])


@njit(cache=True, inline="always")
def fix_voxel(flat, f, v, value):
    """A fixed-value voxel reset; what it gained."""
    gained = value - flat[f, v]
    flat[f, v] = value
    return gained


class DiffusionSolver:
    """LOD diffusion-decay for ``nf`` fields on a grid of ``shape`` = (nx, ny[, nz]) voxels of edge ``dx`` µm.

    ``D`` (µm²/min) and ``decay`` (1/min) per field; ``periodic`` per axis; ``fixed`` maps a side name
    ('x_min', ...) to the values per field held on its voxel layer; ``vessels`` are flat voxel indices with
    their exchange rate (1/min) and blood level per field.
    """

    def __init__(self, shape, dx, dt, D, decay, periodic=(), fixed=None, vessels=None, exchange=None, blood=None):
        self.dims = len(shape)
        nx, ny = shape[0], shape[1]
        self.parallel = int(np.prod(shape)) * len(np.atleast_1d(D)) >= PARALLEL_FROM
        nz = shape[2] if self.dims == 3 else 1
        self.grid = (nz, ny, nx)
        self.dx, self.dt = float(dx), float(dt)
        self.D = np.asarray(D, dtype=float)
        self.decay = np.asarray(decay, dtype=float)
        self.nf = len(self.D)
        self.voxel_volume = self.dx**3  # 2-D: one voxel thick, as BioFVM
        periodic = tuple(periodic) + (False,) * (3 - len(tuple(periodic)))
        c1 = self.dt * self.D / self.dx**2
        c2 = self.dt * self.decay / self.dims
        self.c1, self.c2 = c1, c2
        self.axes = []
        for axis, n in enumerate((nx, ny, nz)[: self.dims]):
            per = bool(periodic[axis]) and n > 1
            parts = [thomas_coefficients(n, c1[f], c2[f], per) for f in range(self.nf)]
            denom, cp, z = (np.ascontiguousarray([p[i] for p in parts]).reshape(self.nf, n) for i in range(3))
            h = np.array([p[3] for p in parts])
            ratio = np.array([p[4] for p in parts])
            self.axes.append((denom, cp, z, h, ratio, per))
        self.fixed_index, self.fixed_values = self._fixed(fixed or {})
        self.vessels = np.asarray(vessels if vessels is not None else [], dtype=np.int64)
        self.exchange_dt = self.dt * np.asarray(exchange if exchange is not None else np.zeros(self.nf), dtype=float)
        self.blood = np.asarray(blood if blood is not None else np.zeros(self.nf), dtype=float)

    def _fixed(self, fixed):
        nz, ny, nx = self.grid
        ids = np.arange(nz * ny * nx).reshape(self.grid)
        layers = {"x_min": ids[:, :, 0], "x_max": ids[:, :, -1], "y_min": ids[:, 0, :], "y_max": ids[:, -1, :],
                  "z_min": ids[0], "z_max": ids[-1]}
        value_of: dict[int, np.ndarray] = {}
        for side, values in fixed.items():  # a voxel on two fixed sides (a corner) takes the later side's value
            for v in layers[side].ravel():
                value_of[int(v)] = np.asarray(values, dtype=float)
        index = np.array(sorted(value_of), dtype=np.int64)
        values = np.zeros((self.nf, len(index)))
        for m, v in enumerate(index):
            values[:, m] = value_of[int(v)]
        return index, np.ascontiguousarray(values)

    def zeros(self) -> np.ndarray:
        return np.zeros((self.nf, *self.grid))

    def total(self, C) -> np.ndarray:
        """Amount per field (concentration x µm³)."""
        return C.reshape(self.nf, int(np.prod(self.grid))).sum(axis=1) * self.voxel_volume  # (nf may be 0: no -1)

    def step(self, C, cells=None, ledger: Ledger | None = None, taken: np.ndarray | None = None) -> None:
        """Advance C (fields x z x y x x, in place) by one dt; ``cells`` = (voxel, w, S, T, U, E) arrays of the
        agents (voxel -1: outside the grid). With a ledger, every amount added or removed is booked; ``taken``
        (cells x fields) receives the amount each cell took up (concentration x µm³)."""
        nf = self.nf
        track = ledger is not None
        scratch = ledger if track else Ledger.zeros(nf)
        V = self.voxel_volume
        if cells is not None:
            sec, upt = np.zeros(nf), np.zeros(nf)
            per_cell = np.zeros((len(cells[0]), nf))
            self.apply_cells(C, cells, sec, upt, per_cell)
            if taken is not None:
                taken[...] = per_cell * V
            scratch.secreted += sec * V
            scratch.taken_up += upt * V
        if len(self.vessels):
            gained = np.zeros(nf)
            self.apply_vessels(C, gained)
            scratch.blood += gained * V
        for axis in range(self.dims):
            if len(self.fixed_index):
                gained = np.zeros(nf)
                self.apply_fixed(C, gained)
                scratch.fixed += gained * V
            self.sweep(C, axis)
            if track:
                scratch.decayed += self.c2 * self.total(C)

    # the parts of a step, each on C where it lives (gpu.GpuDiffusion runs them on a device array)
    def apply_cells(self, C, cells, sec, upt, per_cell) -> None:
        voxel, w, S, T, U, E = cells
        apply_cells(C, voxel, w, S, T, U, E, self.dt / self.voxel_volume, sec, upt, per_cell)

    def apply_vessels(self, C, gained) -> None:
        apply_vessels(C, self.vessels, self.exchange_dt, self.blood, gained)

    def apply_fixed(self, C, gained) -> None:
        apply_fixed(C, self.fixed_index, self.fixed_values, gained)

    def sweep(self, C, axis: int) -> None:
        """The LOD sub-step along ``axis`` (0: x)."""
        denom, cp, z, h, ratio, per = self.axes[axis]
        if axis == 0:
            sweep = sweep_x if self.parallel else sweep_x_serial
            sweep(C, denom, cp, z, h, ratio, self.c1, per, x_tasks(C))
        else:
            view = self.lines(C, axis)
            sweep = sweep_middle if self.parallel else sweep_middle_serial
            sweep(view, denom, cp, z, h, ratio, self.c1, per, middle_tasks(view))

    def lines(self, C, axis: int):
        """C viewed as (fields x outer x n x inner), the lines of ``axis`` running along its third axis."""
        nz, ny, nx = self.grid
        if axis == 0:
            return C.reshape(self.nf, nz * ny, nx, 1)
        return C if axis == 1 else C.reshape(self.nf, 1, nz, ny * nx)

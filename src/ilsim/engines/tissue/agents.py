"""Individual cells of the tissue engine: numba arrays of agents and one step of their life.

Each agent has a position (µm), a direction of motion, a type (an index into the per-type tables), an id, a
receptor occupancy (a small ODE per cell), per secretion entry, the time its stimulus began (-1: not
stimulated), and the values of the model's species internal to cells (``internal``: one column per such species,
NaN in the rows of types that do not carry it; ``percell.py`` integrates them). One step of ``dt``
(``Agents.step``), after the fields have been advanced:

- sense: the concentrations in the cell's voxel; receptor occupancy relaxes exactly over dt towards
  c / (c + kd) (d occ/dt = (c/(c+kd) - occ)/tau); a secretion entry is on once its stimulus has been at or
  above its threshold for ``lag`` minutes (off again when the stimulus falls below it);
- move: a persistent random walk (a new uniform direction with probability 1 - exp(-dt/persistence)) at
  ``speed``, plus chemotaxis ``sensitivity * grad c`` (central differences on the grid), plus soft-sphere
  repulsion ``repulsion * (1 - d/(Ri+Rj))`` along the line of centres from every overlapping neighbour
  (found through a cell list of bins at least one interaction distance wide); positions wrap on periodic
  axes and stop at the other sides;
- fates, each an event of probability 1 - exp(-rate dt): death, division (the daughter one radius away in a
  random direction), differentiation into another type, death by contact with each touching killer (its rate per
  target cell: a constant per pair of types, plus a part that depends on the target's internal state), and
  recruitment of new cells at vessel voxels; a cell that dies releases what it internalised (``uptake[].into``)
  into its voxel, one killed on contact does not (its killer digests it).

Random numbers are counter-based: every draw is a hash (splitmix64) of the run's seed, the agent's id, the
step and the purpose of the draw, so an agent's numbers do not depend on the order in which agents are
processed or on the number of threads; the arrays are kept in a deterministic order (survivors in order,
then daughters in their parents' order, then recruits), so a run gives the same numbers at any thread count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

# purposes of draws (the fourth part of the counter)
TURN, DIR1, DIR2, DEATH, DIVIDE, DDIR1, DDIR2, DIFFER, KILL, RECRUIT, RDIR1, RDIR2 = range(12)
MAX_SECRETIONS = 4
# agents from which a step uses numba's threads: on 2 idle cores, 10,000 cells on 62,500 voxels ran 1.4x faster on
# the threaded drivers (bench/tissue_agents_vs_physicell.py), and faster even with one thread; below, waking them costs more
PARALLEL_FROM = 2_000


@njit(cache=True, inline="always")
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def uniform(seed, key, step, purpose):
    """A uniform number in (0, 1) from (seed, key, step, purpose): the same wherever and whenever it is drawn."""
    golden = np.uint64(0x9E3779B97F4A7C15)
    z = _mix(np.uint64(seed) + golden)
    z = _mix(z ^ (np.uint64(key) + golden))
    z = _mix(z ^ (np.uint64(step) + golden))
    z = _mix(z ^ (np.uint64(purpose) + golden))
    return ((z >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def _direction(u1, u2, dims, out):
    if dims == 2:
        a = 2.0 * math.pi * u1
        out[0], out[1], out[2] = math.cos(a), math.sin(a), 0.0
    else:
        zc = 2.0 * u1 - 1.0
        s = math.sqrt(max(0.0, 1.0 - zc * zc))
        a = 2.0 * math.pi * u2
        out[0], out[1], out[2] = s * math.cos(a), s * math.sin(a), zc


@dataclass
class Types:
    """Per-type tables (index: agent type), built by ``setup`` from the ``agents:`` entries."""

    radius: np.ndarray
    volume: np.ndarray
    speed: np.ndarray
    persistence: np.ndarray
    chemo_field: np.ndarray  # int, -1: none
    chemo_sensitivity: np.ndarray
    chemo_bias: np.ndarray  # PhysiCell's migration bias towards (> 0) or away from (< 0) the chemotactic field
    repulsion: np.ndarray
    death: np.ndarray
    division: np.ndarray
    differentiate_into: np.ndarray  # int, -1: none
    differentiate_rate: np.ndarray
    kill_rate: np.ndarray  # killer type x target type, 1/min
    uptake: np.ndarray  # type x field, 1/min
    target_rate: np.ndarray  # type x field, 1/min: BioFVM's secretion towards a target density
    target_level: np.ndarray  # type x field
    sec_field: np.ndarray  # type x MAX_SECRETIONS, int, -1: unused
    sec_rate: np.ndarray  # amount/min
    sec_stimulus: np.ndarray  # int, -1: always stimulated
    sec_threshold: np.ndarray
    sec_lag: np.ndarray
    receptor_field: np.ndarray  # int, -1: none
    receptor_kd: np.ndarray
    receptor_tau: np.ndarray
    recruit_rate: np.ndarray  # per vessel voxel, 1/min
    recruit_field: np.ndarray  # int, -1: constant rate
    receptor_loss: np.ndarray | None = None  # fraction of receptors lost (None: none lost)
    suppression: np.ndarray | None = None  # type x (ic50, hill, blunting); ic50 <= 0: not suppressed (None: none)
    into: np.ndarray | None = None  # type x field, int: the internal column an uptake adds to (-1, None: none)
    release: np.ndarray | None = None  # type x field: the fraction of that internal amount released at death
    contact_reach: np.ndarray | None = None  # per killer type: its contact distance / (R_killer + R_target) (None: 1)

    @property
    def count(self) -> int:
        return len(self.radius)


@dataclass
class Geometry:
    dims: int
    shape: tuple  # (nx, ny, nz)
    dx: float
    periodic: np.ndarray  # bool per axis (3)

    @property
    def lengths(self) -> np.ndarray:
        return np.array(self.shape, dtype=float) * self.dx


class Agents:
    """The cells of a run as arrays (struct of arrays), kept in a deterministic order."""

    def __init__(self, pos, typ, ids, direction, occupancy, on_since, next_id, internal=None):
        self.pos = np.ascontiguousarray(pos, dtype=np.float64).reshape(-1, 3)
        self.typ = np.ascontiguousarray(typ, dtype=np.int64)
        self.ids = np.ascontiguousarray(ids, dtype=np.int64)
        self.direction = np.ascontiguousarray(direction, dtype=np.float64).reshape(-1, 3)
        self.occupancy = np.ascontiguousarray(occupancy, dtype=np.float64)
        self.on_since = np.ascontiguousarray(on_since, dtype=np.float64).reshape(-1, MAX_SECRETIONS)
        self.next_id = int(next_id)
        n = len(self.typ)
        self.internal = np.ascontiguousarray(np.zeros((n, 0)) if internal is None else internal, dtype=np.float64)

    @classmethod
    def place(cls, pos, typ, seed: int, dims: int, internal=None) -> Agents:
        n = len(typ)
        ids = np.arange(n, dtype=np.int64)
        direction = np.zeros((n, 3))
        initial_directions(direction, ids, seed, dims)
        return cls(pos, typ, ids, direction, np.zeros(n), np.full((n, MAX_SECRETIONS), -1.0), n, internal)

    def __len__(self) -> int:
        return len(self.typ)

    def arrays(self) -> dict:
        return {
            "pos": self.pos,
            "typ": self.typ,
            "ids": self.ids,
            "direction": self.direction,
            "occupancy": self.occupancy,
            "on_since": self.on_since,
            "next_id": np.array(self.next_id),
            "internal": self.internal,
        }

    def voxels(self, geometry: Geometry) -> np.ndarray:
        return voxel_of(self.pos, geometry.dx, np.array(geometry.shape, dtype=np.int64))

    def sources(self, C, types: Types, geometry: Geometry, t: float, dt: float, drivers=None):
        """Sense the voxel, update receptors and secretion states; the (voxel, w, S, T, U, E) arrays for the solver.
        ``drivers``: the loops over cells on another device (``gpu.GpuAgents``: ``sense``, ``move``, ``fates`` with the
        CPU drivers' arguments); None: numba's on the CPU."""
        n, nf = len(self), C.shape[0]
        voxel = self.voxels(geometry)
        E = np.zeros((n, nf))
        nt = types.count
        loss = types.receptor_loss if types.receptor_loss is not None else np.zeros(nt)
        suppression = types.suppression if types.suppression is not None else np.zeros((nt, 3))
        sensing = sense if drivers is None else drivers.sense
        sensing(C.reshape(nf, -1), voxel, self.typ, self.occupancy, self.on_since, E, types.receptor_field, types.receptor_kd,
                types.receptor_tau, types.sec_field, types.sec_rate, types.sec_stimulus, types.sec_threshold, types.sec_lag, t,
                dt, loss, suppression)
        w = dt * types.volume[self.typ] / geometry.dx**3
        S = np.ascontiguousarray(types.target_rate[self.typ])
        T = np.ascontiguousarray(types.target_level[self.typ])
        return voxel, w, S, T, np.ascontiguousarray(types.uptake[self.typ]), E

    def internalise(self, taken, types: Types) -> None:
        """Add what each cell took up this step (``taken``: cells x fields, amounts) to the internal species its
        type's uptake names (``uptake[].into``): the field lost exactly what the cells gained."""
        if types.into is None or not len(self):
            return
        for f in range(types.into.shape[1]):
            column = types.into[self.typ, f]
            cells = np.flatnonzero(column >= 0)
            self.internal[cells, column[cells]] += taken[cells, f]

    def release(self, C, dying, types: Types, geometry: Geometry, ledger=None) -> None:
        """Cells ``dying`` (indices) put the released fraction of their internalised amounts into their voxels."""
        if types.into is None or not len(dying) or not C.shape[0]:
            return
        flat = C.reshape(C.shape[0], -1)
        voxel = self.voxels(geometry)[dying]
        vv = geometry.dx**3
        for f in range(types.into.shape[1]):
            column = types.into[self.typ[dying], f]
            keep = column >= 0
            if not keep.any():
                continue
            amount = self.internal[dying[keep], column[keep]] * types.release[self.typ[dying[keep]], f]
            np.add.at(flat[f], voxel[keep], amount / vv)
            if ledger is not None:
                ledger.secreted[f] += amount.sum()

    def step(self, C, types: Types, geometry: Geometry, step: int, dt: float, seed: int, vessels=None, drivers=None,
             ledger=None, kill_extra=None) -> None:
        """Move the cells and draw their fates over one dt (the fields C as they are after the diffusion step);
        ``kill_extra`` (cells x killer types, 1/min per contact) adds rates that depend on each target's state."""
        n = len(self)
        if n:
            shape = np.array(geometry.shape, dtype=np.int64)
            contact = types.contact_reach if types.contact_reach is not None else np.ones(types.count)
            reach = 2.0 * float(types.radius.max()) * max(1.0, float(contact.max()))  # bins: the widest interaction
            nbins = np.maximum(1, np.floor(geometry.lengths / reach).astype(np.int64))
            nbins[geometry.dims :] = 1
            order, start = cell_list(self.pos, geometry.lengths, nbins)
            velocity = np.zeros((n, 3))
            parallel = n >= PARALLEL_FROM
            space = (C, shape, geometry.dx, geometry.dims, geometry.periodic, geometry.lengths, nbins, order, start)
            rules = (types.radius, types.speed, types.persistence, types.chemo_field, types.chemo_sensitivity,
                     types.chemo_bias, types.repulsion)
            mover = (move if parallel else move_serial) if drivers is None else drivers.move
            mover((self.pos, self.direction, self.typ, self.ids, velocity), space, rules, seed, step, dt)
            # contacts are sought where the cells now are: with the bins of before the move, a neighbour that crossed
            # into a bin two away is missed (contact killing fell short of its rate once cells moved ~reach/2 a step)
            order, start = cell_list(self.pos, geometry.lengths, nbins)
            fate = np.zeros(n, dtype=np.int64)  # 0 live, 1 die, 2 divide, 3 killed on contact; a new type in newtype
            newtype = self.typ.copy()
            space = (geometry.dims, geometry.periodic, geometry.lengths, nbins, order, start)
            # each target's rate per touching killer type: the type's constant, plus what depends on its own state
            target_kill = np.ascontiguousarray(types.kill_rate[:, self.typ].T)
            if kill_extra is not None:
                target_kill += kill_extra
            rules = (types.radius, types.death, types.division, types.differentiate_into, types.differentiate_rate,
                     target_kill, contact)
            judge = (fates if parallel else fates_serial) if drivers is None else drivers.fates
            judge((self.pos, self.typ, self.ids, fate, newtype), space, rules, seed, step, dt)
            self.release(C, np.flatnonzero(fate == 1), types, geometry, ledger)
            self._apply(fate, newtype, types, geometry, step, seed)
        if vessels is not None and len(vessels) and types.recruit_rate.any():
            self._recruit(C, types, geometry, vessels, step, dt, seed)

    def _apply(self, fate, newtype, types, geometry, step, seed):
        if not fate.any():  # most steps: nobody died or divided; only types may have changed
            self.typ = newtype
            return
        live = (fate != 1) & (fate != 3)  # 3: killed on contact (what it had internalised goes with it)
        parents = np.flatnonzero(fate == 2)
        k = len(parents)
        pos_d = self.pos[parents].copy()
        offset = np.zeros((k, 3))
        daughter_offsets(offset, self.ids[parents], seed, step, geometry.dims)
        pos_d += offset * types.radius[self.typ[parents]][:, None]
        pos_d = confine(pos_d, geometry)
        new_ids = self.next_id + np.arange(k, dtype=np.int64)
        dir_d = np.zeros((k, 3))
        initial_directions(dir_d, new_ids, seed, geometry.dims)
        self.pos = np.concatenate([self.pos[live], pos_d])
        self.typ = np.concatenate([newtype[live], newtype[parents]])
        self.ids = np.concatenate([self.ids[live], new_ids])
        self.direction = np.concatenate([self.direction[live], dir_d])
        self.occupancy = np.concatenate([self.occupancy[live], self.occupancy[parents]])
        self.on_since = np.concatenate([self.on_since[live], self.on_since[parents]])
        self.internal = np.concatenate([self.internal[live], self.internal[parents]])  # a daughter inherits the state
        self.next_id += k

    def _recruit(self, C, types, geometry, vessels, step, dt, seed):
        nf = C.shape[0]
        flat = C.reshape(nf, -1)
        shape = geometry.shape
        new_pos, new_typ = [], []
        for t in range(types.count):
            rate = types.recruit_rate[t]
            if rate <= 0:
                continue
            level = flat[types.recruit_field[t], vessels] if types.recruit_field[t] >= 0 else np.ones(len(vessels))
            p = 1.0 - np.exp(-rate * level * dt)
            draws = np.array([uniform(seed, (1 << 40) + int(v) * 64 + t, step, RECRUIT) for v in vessels])
            for v in np.asarray(vessels)[draws < p]:
                k, rem = divmod(int(v), shape[0] * shape[1])
                j, i = divmod(rem, shape[0])
                new_pos.append(
                    [(i + 0.5) * geometry.dx, (j + 0.5) * geometry.dx, (k + 0.5) * geometry.dx if geometry.dims == 3 else 0.0]
                )
                new_typ.append(t)
        if new_typ:
            self.add(np.array(new_pos), np.array(new_typ, dtype=np.int64), seed, geometry.dims)

    def add(self, pos, typ, seed: int, dims: int) -> None:
        """New cells at the end (recruits), with fresh ids and directions; their internal state is NaN until the
        per-cell reading sets it to the species' initial values."""
        k = len(typ)
        ids = self.next_id + np.arange(k, dtype=np.int64)
        direction = np.zeros((k, 3))
        initial_directions(direction, ids, seed, dims)
        self.pos = np.concatenate([self.pos, pos])
        self.typ = np.concatenate([self.typ, typ])
        self.ids = np.concatenate([self.ids, ids])
        self.direction = np.concatenate([self.direction, direction])
        self.occupancy = np.concatenate([self.occupancy, np.zeros(k)])
        self.on_since = np.concatenate([self.on_since, np.full((k, MAX_SECRETIONS), -1.0)])
        self.internal = np.concatenate([self.internal, np.full((k, self.internal.shape[1]), np.nan)])
        self.next_id += k


def confine(pos, geometry: Geometry) -> np.ndarray:
    L = geometry.lengths
    out = pos.copy()
    for a in range(geometry.dims):
        if geometry.periodic[a]:
            out[:, a] = np.mod(out[:, a], L[a])
        else:
            out[:, a] = np.clip(out[:, a], 0.0, np.nextafter(L[a], 0.0))
    return out


@njit(cache=True)
def initial_directions(out, ids, seed, dims):
    d = np.zeros(3)
    for i in range(ids.shape[0]):
        _direction(uniform(seed, ids[i], 0, DIR1), uniform(seed, ids[i], 0, DIR2), dims, d)
        out[i, 0], out[i, 1], out[i, 2] = d[0], d[1], d[2]


@njit(cache=True)
def daughter_offsets(out, ids, seed, step, dims):
    d = np.zeros(3)
    for i in range(ids.shape[0]):
        _direction(uniform(seed, ids[i], step, DDIR1), uniform(seed, ids[i], step, DDIR2), dims, d)
        out[i, 0], out[i, 1], out[i, 2] = d[0], d[1], d[2]


@njit(cache=True)
def voxel_of(pos, dx, shape):
    n = pos.shape[0]
    out = np.empty(n, dtype=np.int64)
    for a in range(n):
        i = min(max(int(pos[a, 0] / dx), 0), shape[0] - 1)
        j = min(max(int(pos[a, 1] / dx), 0), shape[1] - 1)
        k = min(max(int(pos[a, 2] / dx), 0), shape[2] - 1)
        out[a] = i + shape[0] * (j + shape[1] * k)
    return out


@njit(cache=True)
def sense(flat, voxel, typ, occupancy, on_since, E, rec_field, rec_kd, rec_tau, sec_field, sec_rate, sec_stimulus,
          sec_threshold, sec_lag, t, dt, rec_loss, suppression):
    for a in range(voxel.shape[0]):
        _sense(a, flat, voxel, typ, occupancy, on_since, E, rec_field, rec_kd, rec_tau, sec_field, sec_rate, sec_stimulus,
               sec_threshold, sec_lag, t, dt, rec_loss, suppression)


@njit(cache=True)
def _sense(a, flat, voxel, typ, occupancy, on_since, E, rec_field, rec_kd, rec_tau, sec_field, sec_rate, sec_stimulus,
           sec_threshold, sec_lag, t, dt, rec_loss, suppression):
    """One cell: its receptor occupancy and secretion states from its voxel; its secretion rates into E[a]."""
    ty = typ[a]
    v = voxel[a]
    f = rec_field[ty]
    if f >= 0:  # exact solution of the linear relaxation over dt at the voxel's concentration
        c = flat[f, v]
        target = (1.0 - rec_loss[ty]) * c / (c + rec_kd[ty])
        occupancy[a] = target + (occupancy[a] - target) * math.exp(-dt / rec_tau[ty])
    factor = 1.0  # a stop signal read through the receptor scales every secretion of the cell
    if suppression[ty, 0] > 0.0:
        factor = 1.0 / (1.0 + ((1.0 - suppression[ty, 2]) * occupancy[a] / suppression[ty, 0]) ** suppression[ty, 1])
    for k in range(sec_field.shape[1]):
        f = sec_field[ty, k]
        if f < 0:
            continue
        s = sec_stimulus[ty, k]
        stimulated = s < 0 or flat[s, v] >= sec_threshold[ty, k]
        if stimulated:
            if on_since[a, k] < 0:
                on_since[a, k] = t
            if t - on_since[a, k] >= sec_lag[ty, k] - 1e-9 * dt:
                E[a, f] += sec_rate[ty, k] * factor
        else:
            on_since[a, k] = -1.0


@njit(cache=True)
def cell_list(pos, lengths, nbins):
    """Agents sorted by bin (counting sort): ``order`` and the start of each bin in it (a stable order)."""
    n = pos.shape[0]
    b = np.empty(n, dtype=np.int64)
    for a in range(n):
        idx = 0
        for ax in range(2, -1, -1):
            q = min(max(int(pos[a, ax] / lengths[ax] * nbins[ax]), 0), nbins[ax] - 1)
            idx = idx * nbins[ax] + q
        b[a] = idx
    return counting_sort(b, nbins[0] * nbins[1] * nbins[2])


@njit(cache=True)
def counting_sort(b, total):
    """Indices 0..n-1 sorted by their key ``b`` (0..total-1; a negative key leaves the index out), stably: ``order``,
    and the start of each key's run in it (``start[total]``: how many were kept)."""
    n = b.shape[0]
    counts = np.zeros(total + 1, dtype=np.int64)
    for a in range(n):
        if b[a] >= 0:
            counts[b[a] + 1] += 1
    for i in range(total):
        counts[i + 1] += counts[i]
    start = counts.copy()
    fill = counts[:-1].copy()
    order = np.empty(counts[total], dtype=np.int64)
    for a in range(n):
        if b[a] >= 0:
            order[fill[b[a]]] = a
            fill[b[a]] += 1
    return order, start


@njit(cache=True, inline="always")
def _bin_of(p, lengths, nbins, ax):
    return min(max(int(p / lengths[ax] * nbins[ax]), 0), nbins[ax] - 1)


@njit(cache=True, inline="always")
def _separation(pi, pj, periodic, lengths, ax):
    d = pi - pj
    if periodic[ax]:
        L = lengths[ax]
        if d > 0.5 * L:
            d -= L
        elif d < -0.5 * L:
            d += L
    return d


@njit(cache=True, inline="always")
def _axis_bins(b, nb, periodic, out):
    """The distinct bins next to bin ``b`` (itself included) along one axis; how many."""
    m = 0
    for off in range(-1, 2):
        q = b + off
        if q < 0 or q >= nb:
            if not periodic:
                continue
            q %= nb
        seen = False
        for r in range(m):
            if out[r] == q:
                seen = True
        if not seen:
            out[m] = q
            m += 1
    return m


@njit(cache=True)
def _neighbours(p, lengths, nbins, periodic, dims, out):
    """Bins around the position ``p`` (each once, also on a periodic axis of one or two bins): written to ``out``,
    the count returned."""
    bx = np.empty(3, dtype=np.int64)
    by = np.empty(3, dtype=np.int64)
    bz = np.empty(3, dtype=np.int64)
    mx = _axis_bins(_bin_of(p[0], lengths, nbins, 0), nbins[0], periodic[0], bx)
    my = _axis_bins(_bin_of(p[1], lengths, nbins, 1), nbins[1], periodic[1], by)
    if dims == 3:
        mz = _axis_bins(_bin_of(p[2], lengths, nbins, 2), nbins[2], periodic[2], bz)
    else:
        mz = 1
        bz[0] = 0
    m = 0
    for iz in range(mz):
        for iy in range(my):
            for ix in range(mx):
                out[m] = (bz[iz] * nbins[1] + by[iy]) * nbins[0] + bx[ix]
                m += 1
    return m


@njit(cache=True, inline="always")
def _gradient(C, f, pos, dx, shape, periodic, ax):
    """d c / d axis at the voxel of ``pos``: central differences, one-sided at a side that is not periodic."""
    idx = np.empty(3, dtype=np.int64)  # fixed-size scratch written element by element: the GPU's local arrays (gpu.py)
    lo = np.empty(3, dtype=np.int64)
    hi = np.empty(3, dtype=np.int64)
    for b in range(3):
        idx[b] = min(max(int(pos[b] / dx), 0), shape[b] - 1)
        lo[b] = idx[b]
        hi[b] = idx[b]
    if idx[ax] > 0:
        lo[ax] = idx[ax] - 1
    elif periodic[ax]:
        lo[ax] = shape[ax] - 1
    if idx[ax] < shape[ax] - 1:
        hi[ax] = idx[ax] + 1
    elif periodic[ax]:
        hi[ax] = 0
    if lo[ax] == hi[ax]:
        return 0.0
    span = 2.0 if (lo[ax] != idx[ax] and hi[ax] != idx[ax]) else 1.0
    return (C[f, hi[2], hi[1], hi[0]] - C[f, lo[2], lo[1], lo[0]]) / (span * dx)


@njit(cache=True, inline="always")
def _bias(d, bias, C, f, pos, dx, shape, periodic, dims):
    """PhysiCell's turn of a chemotactic cell: the new direction is (1 - b) x the random one + b x the unit gradient
    (its opposite for b < 0), normalised; a flat field leaves the random direction."""
    g = np.zeros(3)
    norm = 0.0
    for ax in range(3):  # every element written: on the GPU, g is an uninitialised local array
        g[ax] = _gradient(C, f, pos, dx, shape, periodic, ax) if ax < dims else 0.0
        norm += g[ax] * g[ax]
    if norm == 0.0:
        return
    norm = math.sqrt(norm)
    b = abs(bias)
    sign = 1.0 if bias > 0 else -1.0
    size = 0.0
    for ax in range(3):
        d[ax] = (1.0 - b) * d[ax] + b * sign * g[ax] / norm
        size += d[ax] * d[ax]
    if size > 0.0:
        size = math.sqrt(size)
        for ax in range(3):
            d[ax] /= size


@njit(cache=True)
def _velocity(a, cells, space, rules, seed, step, dt):
    pos, direction, typ, ids, velocity = cells
    C, shape, dx, dims, periodic, lengths, nbins, order, start = space
    radius, speed, persistence, chemo_field, chemo_sens, chemo_bias, repulsion = rules
    ty = typ[a]
    d = np.zeros(3)
    # persistent random walk: keep the direction, or draw a new one
    if speed[ty] > 0:
        if uniform(seed, ids[a], step, TURN) < 1.0 - math.exp(-dt / persistence[ty]):
            _direction(uniform(seed, ids[a], step, DIR1), uniform(seed, ids[a], step, DIR2), dims, d)
            if chemo_bias[ty] != 0.0 and chemo_field[ty] >= 0:
                _bias(d, chemo_bias[ty], C, chemo_field[ty], pos[a], dx, shape, periodic, dims)
            direction[a, 0], direction[a, 1], direction[a, 2] = d[0], d[1], d[2]
        for ax in range(3):
            velocity[a, ax] += speed[ty] * direction[a, ax]
    # chemotaxis: sensitivity x the field's gradient at the cell's voxel
    f = chemo_field[ty]
    if f >= 0:
        for ax in range(dims):
            velocity[a, ax] += chemo_sens[ty] * _gradient(C, f, pos[a], dx, shape, periodic, ax)
    # soft-sphere repulsion from every overlapping neighbour (cell list: the 3^d bins around)
    if repulsion[ty] > 0:
        bins = np.empty(27, dtype=np.int64)
        for q in range(_neighbours(pos[a], lengths, nbins, periodic, dims, bins)):
            b = bins[q]
            for m in range(start[b], start[b + 1]):
                o = order[m]
                if o == a:
                    continue
                r2 = 0.0
                for ax in range(3):
                    d[ax] = _separation(pos[a, ax], pos[o, ax], periodic, lengths, ax)
                    r2 += d[ax] * d[ax]
                reach = radius[ty] + radius[typ[o]]
                if r2 < reach * reach and r2 > 0.0:
                    r = math.sqrt(r2)
                    push = repulsion[ty] * (1.0 - r / reach) / r
                    for ax in range(3):
                        velocity[a, ax] += push * d[ax]


@njit(cache=True)
def _advance(a, pos, velocity, dims, periodic, lengths, dt):
    for ax in range(dims):
        p = pos[a, ax] + velocity[a, ax] * dt
        L = lengths[ax]
        if periodic[ax]:
            p = p % L
        elif p < 0.0:
            p = 0.0
        elif p >= L:
            p = L * (1.0 - 1e-15)
        pos[a, ax] = p


# Each driver runs the same per-agent bodies on numba's threads (prange) or in one thread: below PARALLEL_FROM agents
# the threads cost more to wake than the work, and on a busy machine much more.
@njit(cache=True, parallel=True)
def move(cells, space, rules, seed, step, dt):
    pos, velocity = cells[0], cells[4]
    for a in prange(pos.shape[0]):
        _velocity(a, cells, space, rules, seed, step, dt)
    for a in prange(pos.shape[0]):
        _advance(a, pos, velocity, space[3], space[4], space[5], dt)


@njit(cache=True)
def move_serial(cells, space, rules, seed, step, dt):
    pos, velocity = cells[0], cells[4]
    for a in range(pos.shape[0]):
        _velocity(a, cells, space, rules, seed, step, dt)
    for a in range(pos.shape[0]):
        _advance(a, pos, velocity, space[3], space[4], space[5], dt)


@njit(cache=True)
def _fate(a, cells, space, rules, seed, step, dt):
    pos, typ, ids, fate, newtype = cells
    dims, periodic, lengths, nbins, order, start = space
    radius, death, division, into, differentiate, target_kill, contact = rules
    nt = target_kill.shape[1]
    ty = typ[a]
    if death[ty] > 0 and uniform(seed, ids[a], step, DEATH) < 1.0 - math.exp(-death[ty] * dt):
        fate[a] = 1
        return
    # killed on contact: each touching killer gets its own draw, keyed by both ids
    killable = False
    for kt in range(nt):
        if target_kill[a, kt] > 0:
            killable = True
    if killable:
        dead = False
        bins = np.empty(27, dtype=np.int64)
        for q in range(_neighbours(pos[a], lengths, nbins, periodic, dims, bins)):
            b = bins[q]
            for m in range(start[b], start[b + 1]):
                o = order[m]
                rate = target_kill[a, typ[o]]
                if o == a or rate <= 0:
                    continue
                r2 = 0.0
                for ax in range(3):
                    sep = _separation(pos[a, ax], pos[o, ax], periodic, lengths, ax)
                    r2 += sep * sep
                reach = (radius[ty] + radius[typ[o]]) * contact[typ[o]]
                if r2 < reach * reach:
                    key = ids[a] * 1000003 + ids[o]
                    if uniform(seed, key, step, KILL) < 1.0 - math.exp(-rate * dt):
                        dead = True
        if dead:
            fate[a] = 3
            return
    if division[ty] > 0 and uniform(seed, ids[a], step, DIVIDE) < 1.0 - math.exp(-division[ty] * dt):
        fate[a] = 2
    if into[ty] >= 0 and uniform(seed, ids[a], step, DIFFER) < 1.0 - math.exp(-differentiate[ty] * dt):
        newtype[a] = into[ty]


@njit(cache=True, parallel=True)
def fates(cells, space, rules, seed, step, dt):
    for a in prange(cells[0].shape[0]):
        _fate(a, cells, space, rules, seed, step, dt)


@njit(cache=True)
def fates_serial(cells, space, rules, seed, step, dt):
    for a in range(cells[0].shape[0]):
        _fate(a, cells, space, rules, seed, step, dt)

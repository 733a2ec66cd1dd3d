"""The LOD diffusion-decay solver against analytic solutions and its own mass ledger.

Oracles: the free-space heat kernel with decay (plus its images for no-flux and periodic sides), the
steady state around a point source with decay (3-D q/(4 pi D r) e^(-r/lambda), 2-D q/(2 pi D) K0(r/lambda),
with images), the observed convergence orders of the scheme (1 in time, 2 in space) and the exact
bookkeeping of every amount added or removed in a step.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import k0

from ilsim.engines.tissue.diffusion import DiffusionSolver, Ledger

D = 1000.0  # µm²/min, of the order of a cytokine's in tissue


def _centres(n, dx):
    return (np.arange(n) + 0.5) * dx


def _images(coordinate, source, length, kind, count=2):
    """Positions of a source's images along one axis: mirrored at no-flux faces, repeated on a periodic axis."""
    if kind == "periodic":
        return [source + m * length for m in range(-count, count + 1)]
    out = []
    for m in range(-count, count + 1):  # reflections at 0 and L: +-x + 2mL
        out += [source + 2 * m * length, -source + 2 * m * length]
    return out


def _gaussian(grids, centre, lengths, kinds, D, t, t0, decay, mass, dims):
    """Heat kernel started at time -t0 (a Gaussian of variance 2 D t0 at t = 0), with decay, summed over images."""
    s2 = 2 * D * (t + t0)
    total = 0.0
    axes = [_images(None, centre[a], lengths[a], kinds[a]) for a in range(len(grids))]
    for combo in itertools.product(*axes):
        r2 = sum((g - c) ** 2 for g, c in zip(grids, combo))
        total = total + np.exp(-r2 / (2 * s2))
    return mass * total / (2 * np.pi * s2) ** (dims / 2) * np.exp(-decay * t)


@pytest.mark.parametrize("dims, n, periodic", [(2, 60, (True, False)), (3, 30, (False, True, False))])
def test_spreading_gaussian_matches_the_heat_kernel(dims, n, periodic):
    dx, dt, t0, t_end, decay = 10.0, 0.02, 4.0, 6.0, 0.05
    shape = (n,) * dims
    solver = DiffusionSolver(shape, dx, dt, [D], [decay], periodic=periodic)
    x = _centres(n, dx)
    xyz = np.meshgrid(*[x] * dims, indexing="ij")[::-1]  # field arrays are (z,) y, x: coordinates listed x first
    lengths = [n * dx] * dims
    centre = [n * dx * 0.45] * dims
    kinds = ["periodic" if p else "no-flux" for p in periodic]
    C = solver.zeros()
    mass = 1.0e6
    C.reshape(-1)[:] = _gaussian(xyz, centre, lengths, kinds, D, 0.0, t0, 0.0, mass, dims).ravel()
    for _ in range(round(t_end / dt)):
        solver.step(C)
    exact = _gaussian(xyz, centre, lengths, kinds, D, t_end, t0, decay, mass, dims)
    num = C[0].reshape(exact.shape)
    rel = np.linalg.norm(num - exact) / np.linalg.norm(exact)
    assert rel < 0.01, rel


def _point_source_steady(dims, n, lv, dx=10.0, q=1.0):
    """Run a secreting cell in the middle of an n^dims grid (no-flux sides) to steady state; return the field, the
    analytic solution with images and the distance from the source (µm)."""
    lam = lv * dx
    k = D / lam**2
    c = n // 2
    C = None
    # first with long steps to approach the steady state cheaply, then with short steps (dt D / dx^2 = 0.05), so that
    # the splitting error of the long ones relaxes away; the steady state compared is that of the short steps
    for c1, duration in ((10.0, 800.0), (0.05, 200.0)):
        dt = c1 * dx**2 / D
        solver = DiffusionSolver((n,) * dims, dx, dt, [D], [k])
        if C is None:
            C = solver.zeros()
        cells = (np.array([np.ravel_multi_index((c,) * dims, (n,) * dims)]), np.zeros(1), np.zeros((1, 1)),
                 np.zeros((1, 1)), np.zeros((1, 1)), np.array([[q]]))
        steps = round(duration * dx**2 / D / dt)
        for i in range(steps):
            if i == steps - 1:
                before = C.copy()
            solver.step(C, cells)
    assert np.abs(C - before).max() < 1e-6 * C.max()  # settled
    x = _centres(n, dx)
    grids = np.meshgrid(*[x] * dims, indexing="ij")
    xs, length = (c + 0.5) * dx, n * dx
    exact = 0.0
    for shift in itertools.product((-1, 0, 1), repeat=dims):
        r = np.sqrt(sum((g - (xs if s == 0 else (-xs if s < 0 else 2 * length - xs))) ** 2 for g, s in zip(grids, shift)))
        with np.errstate(divide="ignore"):
            # 2-D: the source is spread over one voxel's thickness, as the grid is one voxel thick
            exact = exact + (q / (4 * np.pi * D * r) * np.exp(-r / lam) if dims == 3 else q / dx / (2 * np.pi * D) * k0(r / lam))
    rr = np.sqrt(sum((g - xs) ** 2 for g in grids))
    return C.reshape(exact.shape), exact, rr / dx


def test_steady_state_around_a_secreting_cell_2d_is_k0():
    num, exact, r = _point_source_steady(2, 61, 10)
    beyond = r > 3
    assert np.abs(num[beyond] / exact[beyond] - 1).max() < 0.02


def test_steady_state_around_a_secreting_cell_3d_is_yukawa():
    num, exact, r = _point_source_steady(3, 41, 10)
    err = np.abs(num / exact - 1)
    # Beyond five voxels within 2 %. Closer in, the 7-point lattice itself differs from 1/r (its exact steady state,
    # solved directly, is 2.8 % high at four voxels along an axis): a property of the grid, not of the time stepping.
    assert err[r > 5].max() < 0.02
    assert err[r > 3].max() < 0.04


def _gaussian_error(n, dt, dx_total=2000.0, t_end=8.0, t0=5.0):
    dx = dx_total / n
    solver = DiffusionSolver((n, n), dx, dt, [D], [0.0])
    x = _centres(n, dx)
    zyx = np.meshgrid(x, x, indexing="ij")
    centre = [dx_total / 2] * 2
    kinds = ["no-flux"] * 2
    C = solver.zeros()
    C[0, 0] = _gaussian(zyx[::-1], centre, [dx_total] * 2, kinds, D, 0.0, t0, 0.0, 1.0, 2)
    for _ in range(round(t_end / dt)):
        solver.step(C)
    return C[0, 0], _gaussian(zyx[::-1], centre, [dx_total] * 2, kinds, D, t_end, t0, 0.0, 1.0, 2)


def test_first_order_in_time():
    # Fixed grid, dt halved twice: the differences between successive solutions shrink by 2 (Richardson)
    sols = [_gaussian_error(50, dt)[0] for dt in (0.4, 0.2, 0.1)]
    order = np.log2(np.linalg.norm(sols[0] - sols[1]) / np.linalg.norm(sols[1] - sols[2]))
    assert 0.9 < order < 1.1, order


def test_second_order_in_space():
    # dt tied to dx^2, so the whole error (first order in dt, second in dx) falls 4 times per halving of dx
    errors = []
    for n in (25, 50, 100):
        dx = 2000.0 / n
        num, exact = _gaussian_error(n, 0.02 * dx**2 / D)
        errors.append(np.linalg.norm(num - exact) / np.linalg.norm(exact))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all((orders > 1.8) & (orders < 2.3)), orders


@pytest.mark.parametrize("dims", [2, 3])
def test_mass_balance_every_step(dims):
    rng = np.random.default_rng(7)
    shape = (13, 11) if dims == 2 else (9, 8, 7)
    solver = DiffusionSolver(shape, 10.0, 0.3, [800.0, 40.0], [0.02, 0.0], periodic=(True,) + (False,) * (dims - 1),
                             fixed={"y_max": [1.0, 3.0]}, vessels=[4, 17, 30], exchange=[0.5, 0.2], blood=[2.0, 0.0])
    C = solver.zeros()
    C[:] = rng.random(C.shape)
    nvox = C[0].size
    ncell = 12
    voxel = rng.integers(0, nvox, ncell)
    voxel[0] = voxel[1]  # two cells sharing a voxel
    voxel[2] = -1  # outside the grid: ignored
    cells = (voxel, rng.random(ncell) * 0.3, rng.random((ncell, 2)), rng.random((ncell, 2)) * 4, rng.random((ncell, 2)),
             rng.random((ncell, 2)) * 50)
    for _ in range(25):
        ledger = Ledger.zeros(2)
        before = solver.total(C)
        solver.step(C, cells, ledger)
        change = solver.total(C) - before
        assert np.all(ledger.secreted > 0) and np.all(ledger.taken_up > 0) and np.all(ledger.decayed >= 0)
        assert np.allclose(change, ledger.net(), rtol=0, atol=1e-12 * solver.total(C).max())
    assert ledger.decayed[1] == 0.0  # the second field does not decay

"""The stochastic engine's trajectory loop: numba code appended to each model's generated module.

``codegen.model_module`` writes a module that begins with this file's text and ends with the model's own
functions (``rates``, ``rate_one``, ``holds``, ``guard``, ``value``), which replace the stand-ins below: numba
looks a called function up in its module when it compiles the caller, so every model gets this loop compiled
against its own rates, inlined, and cached on disk beside its kernels (``cache=True``).

The state is held as counts (float64 holding integers); the model's functions read concentrations, counts
divided by the system size, and a propensity is the system size times the process rate. Each trajectory draws
from its own xoshiro256** stream (state seeded by ``numpy.random.SeedSequence(seed).spawn``), so its numbers
depend on the seed and its index only, never on the thread that runs it.

Methods: ``DIRECT`` (Gillespie 1977: after a reaction the propensities of its dependants in the dependency graph,
the sum of all and a linear search),
``NEXT_REACTION`` (Gibson & Bruck 2000: one putative time per process in an indexed binary heap, only the
processes whose rates read what a reaction changed re-evaluated), ``TAU`` (adaptive tau-leaping of Cao,
Gillespie & Petzold 2006: critical processes fired one at a time, the leap bounded so that no propensity
changes by more than about ``eps`` of its value, exact steps where a leap would be shorter than 10 / a0).
"""

import math

import numpy as np
from numba import njit

DIRECT, NEXT_REACTION, TAU = 0, 1, 2
# status codes of a trajectory (0..5 as ilsim.engines.base.STATUS; 7 and 8 are the stochastic engine's own)
OK, NON_FINITE, MAX_STEPS, ENDLESS_EVENTS, NEGATIVE_PROPENSITY, NEGATIVE_COUNT = 0, 1, 3, 5, 7, 8
MAX_CASCADE = 1000  # condition firings at one instant before a cascade counts as endless (as every engine)
EXACT_AFTER_SHORT_LEAP = 100  # exact steps taken when a leap would be shorter than 10 / a0 (Cao et al. 2006)


# ---- stand-ins, replaced by the model's functions in the generated module (never compiled from here)
def rates(t, y, p, out):  # pragma: no cover
    raise NotImplementedError


def rate_one(j, t, y, p):  # pragma: no cover
    raise NotImplementedError


def holds(slot, t, y, p):  # pragma: no cover
    raise NotImplementedError


def guard(slot, t, y, p):  # pragma: no cover
    raise NotImplementedError


def value(slot, t, y, p):  # pragma: no cover
    raise NotImplementedError


def next_check(t, t_stop, p):  # pragma: no cover
    raise NotImplementedError


UNROLLED = False  # the model's direct_steps is its own written-out loop (small networks), else a stand-in


def direct_steps(t, t_stop, x, p, omega, inv_omega, s, k_out, t_eval, Y, P_t, i, record_p, n_steps,
                 max_steps):  # pragma: no cover
    raise NotImplementedError


# ---- random numbers: xoshiro256** (Blackman & Vigna 2018), one state of four words per trajectory
@njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True)
def next_u64(s):
    result = _rotl(s[1] * np.uint64(5), 7) * np.uint64(9)
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@njit(cache=True)
def uniform(s):
    """A uniform number in (0, 1): 53 random bits, offset by half a unit so neither end is reached."""
    return ((next_u64(s) >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


def _ziggurat_tables():
    """Marsaglia & Tsang's (2000) 256 layers of the exponential density, with 53-bit integers as NumPy's
    ``standard_exponential``: ke (the integer below which a draw is accepted at once), we (layer widths per unit),
    fe (the density at the layer edges)."""
    m, r, v = 2.0**53, ZIGGURAT_R, 3.949659822581572e-3
    ke, we, fe = np.zeros(256, np.uint64), np.zeros(256), np.zeros(256)
    q = v / math.exp(-r)
    ke[0], we[0], we[255], fe[0], fe[255] = np.uint64(int(r / q * m)), q / m, r / m, 1.0, math.exp(-r)
    d, previous = r, r
    for i in range(254, 0, -1):
        d = -math.log(v / d + math.exp(-d))
        ke[i + 1] = np.uint64(int(d / previous * m))
        previous = d
        fe[i], we[i] = math.exp(-d), d / m
    return ke, we, fe


ZIGGURAT_R = 7.69711747013104972  # where the base layer's tail begins
ZIG_KE, ZIG_WE, ZIG_FE = _ziggurat_tables()


@njit(cache=True)
def exponential(s):
    """A standard exponential number by the ziggurat: one 64-bit draw and no logarithm 98.9% of the time (a third
    of the time of -log(uniform) per reaction); the tail and the layers' edges are sampled exactly."""
    while True:
        ri = next_u64(s) >> np.uint64(3)
        layer = ri & np.uint64(0xFF)
        ri >>= np.uint64(8)
        x = ri * ZIG_WE[layer]
        if ri < ZIG_KE[layer]:
            return x
        if layer == 0:
            return ZIGGURAT_R - math.log(uniform(s))  # the tail beyond R: memoryless, R plus an exponential
        if (ZIG_FE[layer - 1] - ZIG_FE[layer]) * uniform(s) + ZIG_FE[layer] < math.exp(-x):
            return x


@njit(cache=True)
def poisson(s, lam):
    """A Poisson number of mean ``lam``: multiplication for small means, Hormann's PTRS (1993, as NumPy) above 10."""
    if lam <= 0.0:
        return 0.0
    if lam < 10.0:
        limit = math.exp(-lam)
        k = 0.0
        prod = uniform(s)
        while prod > limit:
            k += 1.0
            prod *= uniform(s)
        return k
    slam = math.sqrt(lam)
    loglam = math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2.0)
    while True:
        u = uniform(s) - 0.5
        v = uniform(s)
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return k
        if k < 0.0 or (us < 0.013 and v > us):
            continue
        if math.log(v) + math.log(invalpha) - math.log(a / (us * us) + b) <= -lam + k * loglam - math.lgamma(k + 1.0):
            return k


# ---- pieces of a trajectory
@njit(cache=True)
def _concentrations(x, inv_omega, y):
    for i in range(x.shape[0]):
        y[i] = x[i] * inv_omega


@njit(cache=True)
def _all_propensities(t, x, y, p, omega, inv_omega, a):
    """Every propensity into ``a``; the index of the first negative or non-finite one, or -1."""
    _concentrations(x, inv_omega, y)
    rates(t, y, p, a)
    bad = -1
    for j in range(a.shape[0]):
        a[j] *= omega
        if bad < 0 and not (a[j] >= 0.0 and a[j] < np.inf):
            bad = j
    return bad


@njit(cache=True)
def _record(k, limit, inclusive, t_eval, x, p, inv_omega, Y, P_t, i, record_p):
    """States at the output times before ``limit`` (and at it, with ``inclusive``) from output k on; the next k."""
    nt = t_eval.shape[0]
    while k < nt and (t_eval[k] < limit or (inclusive and t_eval[k] <= limit)):
        for q in range(x.shape[0]):
            Y[i, k, q] = x[q] * inv_omega
        if record_p:
            for q in range(p.shape[0]):
                P_t[i, k, q] = p[q]
        k += 1
    return k


@njit(cache=True)
def _fire(ev, t, x, y, p, omega, inv_omega, nonneg, guard_slot, act_start, actions, vals, fired_row, log_t, log_k):
    """Apply event ``ev`` (its guard allowing): every value from the state before it; species set or added in
    counts (rounded to whole molecules), non-negative species clipped at zero."""
    _concentrations(x, inv_omega, y)
    g = guard_slot[ev]
    if g >= 0 and guard(g, t, y, p) == 0:
        return
    lo, hi = act_start[ev], act_start[ev + 1]
    for r in range(lo, hi):
        vals[r - lo] = value(actions[r, 3], t, y, p)
    for r in range(lo, hi):
        v = vals[r - lo]
        idx = actions[r, 2]
        if actions[r, 1] == 0:  # a species, in counts
            v = v * omega
            if actions[r, 0] == 0:
                x[idx] = math.floor(v + 0.5)
            else:
                x[idx] += math.floor(v + 0.5)
            if nonneg[idx] and x[idx] < 0.0:
                x[idx] = 0.0
        elif actions[r, 0] == 0:
            p[idx] = v
        else:
            p[idx] += v
    n = 0.0
    for e in range(fired_row.shape[0]):
        n += fired_row[e]
    if n < log_t.shape[0]:  # the first firings, with their times
        log_t[int(n)] = t
        log_k[int(n)] = ev
    fired_row[ev] += 1.0


@njit(cache=True)
def _conditions(t, x, y, p, omega, inv_omega, nonneg, cond_events, armed, guard_slot, act_start, actions, vals,
                fired_row, due, log_t, log_k):
    """Fire the condition events that became true (false -> true, in model order, together), then those their
    jumps made true, and so on; whether anything fired, or -1 for an endless cascade."""
    any_fired = 0
    firings = 0
    while True:
        _concentrations(x, inv_omega, y)
        n_due = 0
        for c in range(cond_events.shape[0]):
            h = holds(c, t, y, p) != 0
            if h and armed[c]:
                due[n_due] = c
                n_due += 1
            armed[c] = not h
        if n_due == 0:
            return any_fired
        for q in range(n_due):
            _fire(cond_events[due[q]], t, x, y, p, omega, inv_omega, nonneg, guard_slot, act_start, actions, vals,
                  fired_row, log_t, log_k)
        any_fired = 1
        firings += n_due
        if firings > MAX_CASCADE:
            return -1


# ---- indexed binary min-heap of putative times (next-reaction method)
@njit(cache=True)
def _heap_swap(heap, pos, i, j):
    a, b = heap[i], heap[j]
    heap[i], heap[j] = b, a
    pos[b], pos[a] = i, j


@njit(cache=True)
def _heap_fix(T, heap, pos, j):
    """Restore the heap after process j's time changed."""
    i = pos[j]
    while i > 0 and T[heap[(i - 1) // 2]] > T[heap[i]]:
        _heap_swap(heap, pos, i, (i - 1) // 2)
        i = (i - 1) // 2
    n = heap.shape[0]
    while True:
        left, smallest = 2 * i + 1, i
        if left < n and T[heap[left]] < T[heap[smallest]]:
            smallest = left
        if left + 1 < n and T[heap[left + 1]] < T[heap[smallest]]:
            smallest = left + 1
        if smallest == i:
            return
        _heap_swap(heap, pos, i, smallest)
        i = smallest


@njit(cache=True)
def _heap_build(T, heap, pos):
    for j in range(heap.shape[0]):
        heap[j] = j
        pos[j] = j
    for i in range(heap.shape[0] // 2 - 1, -1, -1):
        _heap_fix(T, heap, pos, heap[i])


@njit(cache=True)
def _fresh_times(t, a, T, s):
    for j in range(a.shape[0]):
        T[j] = t + exponential(s) / a[j] if a[j] > 0.0 else np.inf


# ---- tau-leaping: the leap of Cao, Gillespie & Petzold (2006), eqs. 32-33
@njit(cache=True)
def _g(order, need, xi):
    """g_i: how strongly a relative change of x_i changes the propensities of the highest-order process consuming it."""
    if order <= 1:
        return 1.0
    if order == 2:
        return 2.0 if need < 2 or xi < 2.0 else 2.0 + 1.0 / (xi - 1.0)
    if order == 3:
        if need < 2 or xi < 3.0:
            return 3.0
        if need == 2:
            return 1.5 * (2.0 + 1.0 / (xi - 1.0))
        return 3.0 + 1.0 / (xi - 1.0) + 2.0 / (xi - 2.0)
    return float(order)


@njit(cache=True)
def _leap_bound(x, a, S, critical, hor, hor_need, eps):
    """The largest leap over which the non-critical processes change no propensity by more than about eps.

    Cao et al. bound the expected net change of each reactant, |sum_j v_ij a_j| tau, and its variance by
    max(eps x_i / g_i, 1). Near an equilibrium the net change vanishes while the flows in and out do not, and
    that bound lets a leap grow until the leaps themselves inflate the variance (an immigration-death process
    at 10^4 molecules: its sd 14% too large at eps = 0.03). Here the gross flow sum_j |v_ij| a_j takes the place
    of the net one: the leap stays short against every first-order time scale of the reactants."""
    ns, nr = S.shape
    tau = np.inf
    for i in range(ns):
        if hor[i] == 0:
            continue  # consumed by no process
        flow = 0.0
        s2 = 0.0
        for j in range(nr):
            if not critical[j] and S[i, j] != 0.0:
                flow += abs(S[i, j]) * a[j]
                s2 += S[i, j] * S[i, j] * a[j]
        bound = max(eps * x[i] / _g(hor[i], hor_need[i], x[i]), 1.0)
        if flow > 0.0:
            tau = min(tau, bound / flow)
        if s2 > 0.0:
            tau = min(tau, bound * bound / s2)
    return tau


# ---- one trajectory
@njit(cache=True)
def trajectory(i, method, t_eval, x, p, omega, nonneg, S, dep_ptr, dep_idx, hor, hor_need, eps, n_critical,
               timed_t, timed_k, cond_events, guard_slot, act_start, actions, s, max_steps, Y, P_t, record_p,
               fired_row, log_t, log_k, fail_t, fail_j, steps):
    """Run trajectory i from state ``x`` (counts) with parameters ``p`` (changed in place by events); its status."""
    ns, nr = S.shape
    inv_omega = 1.0 / omega
    y = np.empty(ns)
    a = np.empty(nr)
    T = np.empty(nr)
    heap = np.empty(nr, dtype=np.int64)
    pos = np.empty(nr, dtype=np.int64)
    critical = np.zeros(nr, dtype=np.bool_)
    fires = np.zeros(nr)
    x_try = np.empty(ns)
    vals = np.empty(max(1, actions.shape[0]))
    due = np.empty(max(1, cond_events.shape[0]), dtype=np.int64)
    armed = np.zeros(cond_events.shape[0], dtype=np.bool_)
    t = t_eval[0]
    t_end = t_eval[-1]
    k_out = 0
    ti = 0
    n_timed = timed_t.shape[0]
    n_steps = 0
    exact_left = 0
    _concentrations(x, inv_omega, y)
    for c in range(cond_events.shape[0]):  # a condition true at the start does not fire
        armed[c] = holds(c, t, y, p) == 0
    check = False  # at a moment where a condition on t flips: test the conditions
    bad_dep = -1  # the direct method: the first process whose updated propensity is negative or not finite
    fresh = True  # propensities (and, next-reaction, the heap) to be computed from scratch
    while True:
        while ti < n_timed and timed_t[ti] <= t:  # timed events due now, in firing order
            _fire(timed_k[ti], t, x, y, p, omega, inv_omega, nonneg, guard_slot, act_start, actions, vals, fired_row,
                  log_t, log_k)
            ti += 1
            if _conditions(t, x, y, p, omega, inv_omega, nonneg, cond_events, armed, guard_slot, act_start, actions,
                           vals, fired_row, due, log_t, log_k) < 0:
                fail_t[i] = t
                steps[i] = n_steps
                return ENDLESS_EVENTS
            fresh = True
        if check:  # after a reaction, or at a moment where a condition on t flips
            check = False
            fired = _conditions(t, x, y, p, omega, inv_omega, nonneg, cond_events, armed, guard_slot, act_start, actions,
                                vals, fired_row, due, log_t, log_k)
            if fired < 0:
                fail_t[i] = t
                steps[i] = n_steps
                return ENDLESS_EVENTS
            if fired:
                fresh = True
        if fresh or method == TAU or bad_dep >= 0:  # (else the exact methods updated the dependants only, below)
            bad = _all_propensities(t, x, y, p, omega, inv_omega, a) if fresh or method == TAU else bad_dep
            bad_dep = -1
            if bad >= 0:
                fail_t[i] = t
                fail_j[i] = bad
                steps[i] = n_steps
                return NEGATIVE_PROPENSITY if a[bad] < 0.0 else NON_FINITE
            if method == NEXT_REACTION:
                _fresh_times(t, a, T, s)
                _heap_build(T, heap, pos)
            fresh = False
        t_stop = timed_t[ti] if ti < n_timed else np.inf
        last = t_stop > t_end
        if last:
            t_stop = t_end
        t_check = next_check(t, t_stop, p)
        at_check = t_check < t_stop  # t_stop is then a moment where a condition on t flips
        if at_check:
            t_stop = t_check
            last = False
        a0 = 0.0
        if method != NEXT_REACTION:  # (the next-reaction method needs no sum: O(processes) per reaction)
            for j in range(nr):
                a0 += a[j]
        # the next reaction (exact methods and exact steps of tau-leaping), or a leap
        leap = method == TAU and exact_left == 0 and a0 > 0.0
        tau = np.inf
        j_next = -1
        if leap:
            for j in range(nr):  # critical: fewer than n_critical firings from exhausting a reactant
                critical[j] = False
                if a[j] > 0.0:
                    for q in range(ns):
                        if S[q, j] < 0.0 and math.floor(x[q] / -S[q, j]) < n_critical:
                            critical[j] = True
            tau1 = _leap_bound(x, a, S, critical, hor, hor_need, eps)
            if tau1 < 10.0 / a0:
                leap = False
                exact_left = EXACT_AFTER_SHORT_LEAP
        if UNROLLED and not leap and method == DIRECT and cond_events.shape[0] == 0:
            # no condition to test after each reaction: the model's unrolled loop runs every reaction up to t_stop
            code, t, k_out, n_steps, j_fail = direct_steps(t, t_stop, x, p, omega, inv_omega, s, k_out, t_eval, Y, P_t,
                                                           i, record_p, n_steps, max_steps)
            if code != OK:
                fail_t[i] = t
                fail_j[i] = j_fail
                steps[i] = n_steps
                return code
            k_out = _record(k_out, t_stop, last, t_eval, x, p, inv_omega, Y, P_t, i, record_p)
            if last:
                steps[i] = n_steps
                return OK
            t = t_stop
            continue
        if not leap:
            if method == NEXT_REACTION and nr > 0:
                j_next = heap[0]
                t_next = T[j_next]
            else:
                t_next = t + exponential(s) / a0 if a0 > 0.0 else np.inf
            if t_next >= t_stop:  # no reaction before the next timed event or the end
                k_out = _record(k_out, t_stop, last, t_eval, x, p, inv_omega, Y, P_t, i, record_p)
                if last:
                    steps[i] = n_steps
                    return OK
                check = at_check
                t = t_stop
                continue
            if k_out < t_eval.shape[0] and t_eval[k_out] < t_next:  # (most reactions pass no output time)
                k_out = _record(k_out, t_next, False, t_eval, x, p, inv_omega, Y, P_t, i, record_p)
            t = t_next
            if method != NEXT_REACTION:
                r = uniform(s) * a0
                j_next = -1
                acc = 0.0
                for j in range(nr):
                    if a[j] > 0.0:
                        j_next = j
                        acc += a[j]
                        if acc > r:
                            break
            for q in range(ns):
                x[q] += S[q, j_next]
            if exact_left > 0:
                exact_left -= 1
            if method == TAU:  # (an exact step of tau-leaping: every propensity again at the top of the loop)
                pass
            elif method == DIRECT:  # only the propensities whose rates read a species the reaction changed
                _concentrations(x, inv_omega, y)
                for d in range(dep_ptr[j_next], dep_ptr[j_next + 1]):
                    j = dep_idx[d]
                    a[j] = omega * rate_one(j, t, y, p)
                    if not (a[j] >= 0.0 and a[j] < np.inf) and (bad_dep < 0 or j < bad_dep):
                        bad_dep = j  # flagged at the top of the loop, after the conditions (as a full evaluation)
            else:  # Gibson & Bruck: rescale the dependants' times, a fresh one for j
                _concentrations(x, inv_omega, y)
                for d in range(dep_ptr[j_next], dep_ptr[j_next + 1]):
                    j = dep_idx[d]
                    old = a[j]
                    new = omega * rate_one(j, t, y, p)
                    if not (new >= 0.0 and new < np.inf):
                        a[j] = new
                        fail_t[i] = t
                        fail_j[i] = j
                        steps[i] = n_steps
                        return NEGATIVE_PROPENSITY if new < 0.0 else NON_FINITE
                    a[j] = new
                    if j == j_next or not (old > 0.0) or T[j] == np.inf:
                        T[j] = t + exponential(s) / new if new > 0.0 else np.inf
                    else:
                        T[j] = t + (old / new) * (T[j] - t) if new > 0.0 else np.inf
                    _heap_fix(T, heap, pos, j)
                if j_next >= 0 and T[j_next] == t:  # j itself does not read what it changed: a fresh time
                    T[j_next] = t + exponential(s) / a[j_next] if a[j_next] > 0.0 else np.inf
                    _heap_fix(T, heap, pos, j_next)
        else:
            # Cao, Gillespie & Petzold (2006), steps 3-5: a leap of tau1 (non-critical processes only) or, when
            # a critical process comes first, up to it, with exactly one critical firing
            a0c = 0.0
            for j in range(nr):
                if critical[j]:
                    a0c += a[j]
            t_out = np.inf  # leaps end at output times, so outputs are states at their times
            for q in range(k_out, t_eval.shape[0]):
                if t_eval[q] > t:
                    t_out = t_eval[q]
                    break
            halvings = 0
            while True:
                tau2 = exponential(s) / a0c if a0c > 0.0 else np.inf
                cap = min(t_stop, t_out) - t
                tau = min(tau1, tau2, cap)
                for j in range(nr):
                    fires[j] = 0.0 if critical[j] else poisson(s, a[j] * tau)
                if tau2 <= tau1 and tau2 < cap:
                    r = uniform(s) * a0c
                    acc = 0.0
                    for j in range(nr):
                        if critical[j]:
                            acc += a[j]
                            if acc > r:
                                fires[j] = 1.0
                                break
                negative = False
                for q in range(ns):
                    v = x[q]
                    for j in range(nr):
                        v += S[q, j] * fires[j]
                    x_try[q] = v
                    if v < 0.0 and nonneg[q]:
                        negative = True
                if not negative or halvings > 60:  # (after 60 halvings the count check below flags it)
                    break
                halvings += 1
                tau1 *= 0.5  # step 6: a species went negative, halve the leap and draw again
            k_out = _record(k_out, t + tau, False, t_eval, x, p, inv_omega, Y, P_t, i, record_p)
            t = t + tau
            for q in range(ns):
                x[q] = x_try[q]
            if t >= t_stop and last:
                k_out = _record(k_out, t_stop, True, t_eval, x, p, inv_omega, Y, P_t, i, record_p)
                steps[i] = n_steps + 1
                return OK
            check = at_check and t >= t_stop
        n_steps += 1
        for q in range(ns):
            if nonneg[q] and x[q] < 0.0:  # a process whose rate does not vanish when what it consumes is gone
                fail_t[i] = t
                fail_j[i] = j_next if not leap else -1
                steps[i] = n_steps
                return NEGATIVE_COUNT
        check = cond_events.shape[0] > 0  # conditions are tested after every reaction, at the top of the loop
        if n_steps >= max_steps:
            fail_t[i] = t
            steps[i] = n_steps
            return MAX_STEPS


@njit(cache=True, nogil=True)
def run_block(lo, hi, method, t_eval, X0, P, omega, nonneg, S, dep_ptr, dep_idx, hor, hor_need, eps, n_critical,
              timed_t, timed_k, cond_events, guard_slot, act_start, actions, rng, max_steps, Y, P_t, record_p, fired,
              log_t, log_k, status, fail_t, fail_j, fail_x, steps):
    """Trajectories lo..hi-1 (one per row of X0 and P, which each changes in place: the state and the parameters at
    the end). Blocks run on threads without the GIL; each trajectory writes only its own rows, so the result does
    not depend on the threads."""
    if UNROLLED and method == DIRECT and timed_t.shape[0] == 0 and cond_events.shape[0] == 0:
        # nothing but reactions from start to end: the written-out loop alone, without the general loop's arrays
        t_end, inv_omega = t_eval[-1], 1.0 / omega
        for i in range(lo, hi):
            code, t, k_out, n_steps, j = direct_steps(t_eval[0], t_end, X0[i], P[i], omega, inv_omega, rng[i], 0, t_eval,
                                                      Y, P_t, i, record_p, 0, max_steps)
            if code == OK:  # the outputs from the last reaction to the end, as the general loop records them
                _record(k_out, t_end, True, t_eval, X0[i], P[i], inv_omega, Y, P_t, i, record_p)
            else:
                fail_t[i] = t
                fail_j[i] = j
                for q in range(X0.shape[1]):
                    fail_x[i, q] = X0[i, q]
            status[i] = code
            steps[i] = n_steps
        return
    for i in range(lo, hi):
        code = trajectory(i, method, t_eval, X0[i], P[i], omega, nonneg, S, dep_ptr, dep_idx, hor, hor_need, eps,
                          n_critical, timed_t, timed_k, cond_events, guard_slot, act_start, actions, rng[i], max_steps,
                          Y, P_t, record_p, fired[i], log_t[i], log_k[i], fail_t, fail_j, steps)
        status[i] = code
        if code != OK:
            for q in range(X0.shape[1]):
                fail_x[i, q] = X0[i, q]

"""Many children of ``numpy.random.SeedSequence`` at once: the words of their states, as NumPy gives them.

Each trajectory's xoshiro256** stream is seeded by ``SeedSequence(seed, spawn_key=key_i).generate_state(4,
uint64)``. NumPy builds one SeedSequence object per child, about 8 us each: 8 ms of a 1,000-trajectory run that
takes 40 ms. The hash behind it (O'Neill's seed_seq_fe, numpy/random/bit_generator.pyx: ``mix_entropy`` and
``generate_state``) is a fixed sequence of 32-bit multiplications whose constants do not depend on the data, so
it runs here on a whole column of children at once. The same words as NumPy's (tests/engines/test_ssa_speed.py
compares them for seeds of one to five words and both kinds of key); keys of more than one 32-bit word each are
left to NumPy.
"""

from __future__ import annotations

import numpy as np

INIT_A, MULT_A, INIT_B, MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
MIX_MULT_L, MIX_MULT_R = 0xCA01F9DD, 0x4973F715
POOL_SIZE = 4  # NumPy's default pool of 32-bit words
MASK32 = 0xFFFFFFFF


def int_words(n: int) -> list[int]:
    """A non-negative integer as NumPy's SeedSequence reads it: 32-bit words, least significant first."""
    words = [n & MASK32]
    n >>= 32
    while n:
        words.append(n & MASK32)
        n >>= 32
    return words


def states(seed: int, keys: list[tuple[int, ...]] | np.ndarray, words: int = 4) -> np.ndarray:
    """``SeedSequence(seed, spawn_key=key).generate_state(words, np.uint64)`` for each key (a row of ``keys``):
    an array of len(keys) x words uint64."""
    keys = np.asarray(keys, dtype=object if np.max(keys, initial=0) > MASK32 else np.int64).reshape(len(keys), -1)
    if keys.size and (keys.max() > MASK32 or keys.min() < 0):
        return np.array([np.random.SeedSequence(seed, spawn_key=tuple(int(v) for v in k)).generate_state(words, np.uint64)
                         for k in keys], dtype=np.uint64).reshape(len(keys), words)
    run = int_words(seed)
    run += [0] * (POOL_SIZE - len(run))  # NumPy pads the seed to the pool when there is a spawn key
    entropy = np.empty((len(keys), len(run) + keys.shape[1]), dtype=np.uint32)
    entropy[:, :len(run)] = run
    entropy[:, len(run):] = keys
    pool = mix_entropy(entropy)
    return generate(pool, 2 * words).view("<u8").astype(np.uint64)


class _Hash:
    """seed_seq_fe's hashmix: its multiplier advances with every word hashed, whatever the word."""

    def __init__(self, start: int):
        self.const = start

    def __call__(self, value: np.ndarray) -> np.ndarray:
        value = value ^ np.uint32(self.const)
        self.const = (self.const * MULT_A) & MASK32
        value = value * np.uint32(self.const)
        return value ^ (value >> np.uint32(16))


def _mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    result = np.uint32(MIX_MULT_L) * x - np.uint32(MIX_MULT_R) * y
    return result ^ (result >> np.uint32(16))


def mix_entropy(entropy: np.ndarray) -> np.ndarray:
    """The pools (rows x POOL_SIZE words) of rows of assembled entropy (the seed's words, then the key's)."""
    hashmix = _Hash(INIT_A)
    zero = np.zeros(entropy.shape[0], dtype=np.uint32)
    mixer = [hashmix(entropy[:, i] if i < entropy.shape[1] else zero) for i in range(POOL_SIZE)]
    for i_src in range(POOL_SIZE):  # every word into every other, so late words change early ones
        for i_dst in range(POOL_SIZE):
            if i_src != i_dst:
                mixer[i_dst] = _mix(mixer[i_dst], hashmix(mixer[i_src]))
    for i_src in range(POOL_SIZE, entropy.shape[1]):  # the words beyond the pool, each into every pool word
        for i_dst in range(POOL_SIZE):
            mixer[i_dst] = _mix(mixer[i_dst], hashmix(entropy[:, i_src]))
    return np.stack(mixer, axis=1)


def generate(pool: np.ndarray, n_words: int) -> np.ndarray:
    """``generate_state``'s 32-bit words (rows x n_words) from the pools, cycling through each pool."""
    const = INIT_B
    out = np.empty((pool.shape[0], n_words), dtype=np.uint32)
    for i in range(n_words):
        value = pool[:, i % POOL_SIZE] ^ np.uint32(const)
        const = (const * MULT_B) & MASK32
        value = value * np.uint32(const)
        out[:, i] = value ^ (value >> np.uint32(16))
    return out

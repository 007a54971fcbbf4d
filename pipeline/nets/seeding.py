"""numpy's SeedSequence(entropy).generate_state(2, uint32) for a whole batch of entropy triples at once: the
per-network seeds of docs/science.md §7 (Randomness) without a Python SeedSequence object per network (16 us
each, a sixth of a lean chain network's time at N = 256). Bitwise the same words (tests/nets/test_seeding.py)."""

from __future__ import annotations

import numpy as np

# constants of numpy/random/bit_generator.pyx (the SeedSequence algorithm of Melissa O'Neill's randutils)
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_MULT_L, _MIX_MULT_R, _XSHIFT, _POOL = 0xCA01F9DD, 0x4973F715, 16, 4
_U32 = np.uint32


def _hashmix(value: np.ndarray, const: list[int]) -> np.ndarray:
    """hashmix of bit_generator.pyx; `const` is the running hash constant (one Python int, advanced in place)."""
    value = value ^ _U32(const[0])
    const[0] = (const[0] * _MULT_A) & 0xFFFFFFFF
    value = value * _U32(const[0])
    return value ^ (value >> _U32(_XSHIFT))


def _mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r = _U32(_MIX_MULT_L) * x - _U32(_MIX_MULT_R) * y
    return r ^ (r >> _U32(_XSHIFT))


def seed_states(words: np.ndarray, n_words: int = 2) -> np.ndarray:
    """SeedSequence(row).generate_state(n_words, uint32) for each row of `words` (B, E), uint32 entropy words
    (a non-negative int below 2^32 is one word, as numpy coerces it). Returns (B, n_words) uint32."""
    words = np.asarray(words, dtype=_U32)
    with np.errstate(over="ignore"):
        const = [_INIT_A]
        zero = np.zeros(len(words), dtype=_U32)
        pool = [_hashmix(words[:, i] if i < words.shape[1] else zero, const) for i in range(_POOL)]
        for i_src in range(_POOL):
            for i_dst in range(_POOL):
                if i_src != i_dst:
                    pool[i_dst] = _mix(pool[i_dst], _hashmix(pool[i_src], const))
        for i_src in range(_POOL, words.shape[1]):
            for i_dst in range(_POOL):
                pool[i_dst] = _mix(pool[i_dst], _hashmix(words[:, i_src], const))
        out, h = np.empty((len(words), n_words), dtype=_U32), _INIT_B
        for i in range(n_words):
            v = pool[i % _POOL] ^ _U32(h)
            h = (h * _MULT_B) & 0xFFFFFFFF
            v = v * _U32(h)
            out[:, i] = v ^ (v >> _U32(_XSHIFT))
    return out

"""The vectorized SeedSequence hash (`seeding.seed_states`) is numpy's, word for word: the per-network seeds of
every engine (docs/science.md §7, Randomness) must not move when the hash is batched."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.nets.seeding import seed_states
from pipeline.nets.weights import generator, generators


def test_seed_states_are_numpys_seed_sequence():
    """2000 random triples (full uint32 range, and the corner cases 0 and 2^32 - 1) and longer entropy rows than
    the pool (6 words: the second mixing loop), 2 and 5 output words (the pool cycles)."""
    rng = np.random.default_rng(0)
    trip = np.stack([rng.integers(0, 2**32, 2000), rng.integers(0, 2**32, 2000), rng.integers(0, 7, 2000)], 1)
    trip[:4] = [[0, 0, 0], [7, 0, 6], [2**32 - 1, 2**32 - 1, 6], [0, 5, 0]]
    ref = [np.random.SeedSequence([int(a) for a in t]).generate_state(2, dtype=np.uint32) for t in trip]
    assert np.array_equal(seed_states(trip), np.array(ref))
    six = rng.integers(0, 2**32, (50, 6))
    ref6 = [np.random.SeedSequence([int(a) for a in t]).generate_state(5, dtype=np.uint32) for t in six]
    assert np.array_equal(seed_states(six, 5), np.array(ref6))


def test_batched_generators_draw_what_one_by_one_generators_draw():
    """The batch path, and ids of 2^32 and above (numpy splits them into two words: its own SeedSequence)."""
    ids = [0, 3, 2**32 - 1, 2**32, 2**40 + 7]
    batch = generators(11, ids, 4, torch.device("cpu"))
    for i, g in zip(ids, batch):
        state = np.random.SeedSequence([11, i, 4]).generate_state(2, dtype=np.uint32)
        seed = int(state[0]) << 31 ^ int(state[1])
        assert torch.equal(torch.randn(5, generator=g), torch.randn(5, generator=torch.Generator().manual_seed(seed)))
        one = generator(11, i, 4, torch.device("cpu"))
        assert torch.equal(torch.randn(3, generator=one), torch.randn(3, generator=torch.Generator().manual_seed(seed)))

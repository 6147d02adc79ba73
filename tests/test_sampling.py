"""Categorical draws by inverse CDF (gridmarl_wm.model.sampling)."""

import numpy as np
import torch

from gridmarl_wm.model.sampling import categorical


def test_draws_follow_the_probabilities_and_never_take_a_zero():
    probs = torch.tensor(
        [[0.0, 0.2, 0.0, 0.5, 0.3, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 2.0]]
    )  # rows unnormalised
    N = 100_000
    draws = categorical(probs[:, None].expand(2, N, 6), torch.Generator().manual_seed(0))
    assert draws.shape == (2, N) and draws.dtype == torch.long
    counts = np.bincount(draws[0].numpy(), minlength=6)
    assert counts[[0, 2, 5]].sum() == 0 and (draws[1] == 5).all()
    expected = np.array([0.2, 0.5, 0.3]) * N
    assert np.all(np.abs(counts[[1, 3, 4]] - expected) < 5 * np.sqrt(expected))


def test_the_generator_fixes_the_draws():
    probs = torch.rand(50, 7)
    a = categorical(probs, torch.Generator().manual_seed(3))
    b = categorical(probs, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)

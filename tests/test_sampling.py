"""Categorical draws by inverse CDF (gridmarl_wm.model.sampling)."""

import math

import numpy as np
import pytest
import torch

from gridmarl_wm.model.sampling import EXP_FLOOR, _inverse_cdf_by_columns, categorical, weights


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


def test_the_gpu_form_of_the_draw_is_the_cpu_form():
    """On a GPU the draw runs with the categories as the first axis (``_inverse_cdf_by_columns``); on a CPU
    both forms sum in the same order, so they must draw the same index from the same uniform number, on
    rows with zeros, rows of one category and 3-D batches (the decoder's cells), and at draws of 0."""
    g = torch.Generator().manual_seed(0)
    for shape in [(5000, 7), (300, 16, 3), (64, 1)]:
        probs = torch.rand(shape, generator=g) * (torch.rand(shape, generator=g) > 0.3)
        probs[..., 0] += (probs.sum(-1) == 0).float()  # no row of zeros only
        u = torch.rand(shape[:-1], generator=g)
        u.view(-1)[:3] = 0.0  # the largest target: the last category with weight
        assert torch.equal(_inverse_cdf_by_columns(probs, u), categorical(probs, uniform=u))


def test_a_draw_keeps_float32_precision_when_the_weights_are_bfloat16():
    """Under bf16 autocast the weights come as bfloat16; the draw must not (8 bits would round every u above
    1 - 2^-9 to 1, a target of 0, and so draw the first index even where its weight is 0)."""
    probs = torch.tensor([[0.0, 1.0, 1.0]] * 4, dtype=torch.bfloat16)
    u = torch.tensor([0.9981, 0.999, 0.9999, 0.2])
    assert torch.equal(categorical(probs, uniform=u), torch.tensor([1, 1, 1, 2]))
    assert torch.equal(_inverse_cdf_by_columns(probs, u.float()), torch.tensor([1, 1, 1, 2]))
    drawn = categorical(probs[:1].expand(20_000, 3), torch.Generator().manual_seed(0))
    assert (drawn > 0).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_draw_on_a_gpu_is_the_cpu_draw_and_keeps_its_precision_under_bf16_autocast():
    g = torch.Generator().manual_seed(1)
    probs = torch.rand(4096, 9, generator=g) * (torch.rand(4096, 9, generator=g) > 0.4)
    probs[:, 0] = 0.0
    probs[:, 1] += (probs.sum(-1) == 0).float()
    u = torch.rand(4096, generator=g)
    u[:64] = 1.0 - 2.0**-12  # above bfloat16's last step below 1
    on_cpu = categorical(probs, uniform=u)
    on_gpu = categorical(probs.cuda(), uniform=u.cuda()).cpu()
    assert (on_gpu > 0).all() and (on_gpu != on_cpu).float().mean() < 1e-3  # rounding of the sums aside
    with torch.autocast("cuda", dtype=torch.bfloat16):  # bfloat16 weights, as a bf16 model's logits give
        w = weights(torch.log(probs.cuda()).to(torch.bfloat16))
        assert w.dtype == torch.bfloat16
        drawn = categorical(w, uniform=u.cuda()).cpu()
    assert (drawn > 0).all()  # index 0's weight is at the floor, exp(-80) of the largest: never drawn


def test_the_generator_fixes_the_draws():
    probs = torch.rand(50, 7)
    a = categorical(probs, torch.Generator().manual_seed(3))
    b = categorical(probs, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_weights_draw_what_the_softmax_draws_and_keep_exp_in_its_normal_range():
    """Logits spread far wider than exp's normal range (a trained mixture's are, by hundreds): every draw
    from ``weights`` is the draw from the softmax at the same uniform number, the weights are the softmax's
    up to one factor per row where that is above the floor, and none is below the floor."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4096, 33, generator=g) * 150
    logits[:7, 5:] = float("-inf")  # rows with impossible components too
    w = weights(logits)
    assert (w > 0).all() and torch.all(w.amax(-1) == 1)
    assert torch.all(w >= math.exp(EXP_FLOOR) * 0.999)  # the floor (exp(EXP_FLOOR) relative to the largest)
    soft = logits.softmax(-1)
    above = soft > math.exp(EXP_FLOOR + 1)
    ratio = soft / w
    row = ratio.masked_fill(~above, float("nan")).nanmean(-1, keepdim=True)
    assert torch.allclose(ratio[above], row.expand_as(ratio)[above], rtol=1e-4)
    for seed in range(5):
        u = torch.rand(4096, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(categorical(w, uniform=u), categorical(soft, uniform=u))
    assert (categorical(w[:7], uniform=torch.rand(7, generator=g)) < 5).all()
    written = logits.clone()  # in place: the same weights, written over the logits
    assert weights(written, in_place=True) is written and torch.equal(written, w)

"""Drawing from categorical distributions on the device, one uniform number per draw."""

from __future__ import annotations

import torch

# on a CPU the vectorised exp (and softmax, softplus) takes a slow path, tens of times slower than elsewhere,
# where its result nears the end of float32's normal range (exp(-87.3)); below this floor it is kept off it
EXP_FLOOR = -80.0


def weights(logits: torch.Tensor, in_place: bool = False) -> torch.Tensor:
    """(..., K) unnormalised probabilities exp(logits - max) along the last axis, for :func:`categorical`,
    each at least exp(:data:`EXP_FLOOR`) (about 1.8e-35) times the largest.

    A weight at the floor is one no draw can reach (its share of the row's cumulative sum is far below a
    uniform draw's resolution, 2^-24), so the draws are those of ``logits.softmax(-1)``; the floor keeps
    exp off its slow path, which a softmax over logits spread wider than about 85 takes (on a CPU, a mixture's
    logits made the softmax about four times slower). ``in_place`` writes them over ``logits``."""
    top = logits.amax(-1, keepdim=True)
    return (logits.sub_(top) if in_place else logits - top).clamp_(min=EXP_FLOOR).exp_()


def categorical(
    probs: torch.Tensor, generator: torch.Generator | None = None, uniform: torch.Tensor | None = None
) -> torch.Tensor:
    """(...,) long indices drawn from ``probs`` (..., K) along its last axis (rows need not sum to 1).

    The inverse of each row's CDF at one uniform draw in (0, 1] times the row's total: cheaper than
    ``torch.multinomial`` (which draws K exponentials per row), and an index of probability 0 is never
    drawn (the draw is never 0). ``uniform``, of shape ``probs.shape[:-1]`` exactly, gives the draws in
    [0, 1) (``torch.rand``'s range) instead of drawing them from ``generator``.
    """
    # the CDF and the draw in at least float32, whatever the weights' precision: a bfloat16 draw (8 bits)
    # would round every u above 1 - 2^-9 to 1, a target of 0, and so the first index whatever its weight
    acc = torch.promote_types(probs.dtype, torch.float32)
    if uniform is None:
        u = torch.rand(probs.shape[:-1], generator=generator, device=probs.device, dtype=acc)
    else:
        u = uniform.to(acc)
    if probs.is_cuda:
        return _inverse_cdf_by_columns(probs, u)
    cdf = probs.cumsum(-1, dtype=acc)
    # the first index whose cumulative weight reaches the draw (the CDF never decreases)
    target = (1.0 - u.unsqueeze(-1)) * cdf[..., -1:]
    return torch.searchsorted(cdf, target).squeeze(-1).clamp(max=probs.shape[-1] - 1)


def _inverse_cdf_by_columns(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """:func:`categorical`'s draws with the K categories as the first axis: on a GPU, PyTorch's cumulative sum
    along the last axis is slow for many short rows (it was over half of an eager imagined step's GPU time at
    batch 262,144), while along the first axis each column is one thread's loop. The index is the number of
    cumulative weights below the draw, which is what ``searchsorted`` finds in a non-decreasing row; the sum
    is taken in ``u``'s precision."""
    cdf = probs.movedim(-1, 0).contiguous().cumsum(0, dtype=u.dtype)  # (K, ...)
    below = cdf < (1.0 - u) * cdf[-1]
    return below.sum(0).clamp_(max=probs.shape[-1] - 1)

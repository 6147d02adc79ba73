"""Drawing from categorical distributions on the device, one uniform number per draw."""

from __future__ import annotations

import torch


def categorical(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(...,) long indices drawn from ``probs`` (..., K) along its last axis (rows need not sum to 1).

    The inverse of each row's CDF at one uniform draw in (0, 1] times the row's total: cheaper than
    ``torch.multinomial`` (which draws K exponentials per row), and an index of probability 0 is never
    drawn (the draw is never 0).
    """
    cdf = probs.cumsum(-1)
    u = torch.rand((*cdf.shape[:-1], 1), generator=generator, device=cdf.device, dtype=cdf.dtype)
    return (cdf < (1.0 - u) * cdf[..., -1:]).sum(-1).clamp(max=probs.shape[-1] - 1)

"""Drawing from categorical distributions on the device, one uniform number per draw."""

from __future__ import annotations

import torch


def categorical(
    probs: torch.Tensor, generator: torch.Generator | None = None, uniform: torch.Tensor | None = None
) -> torch.Tensor:
    """(...,) long indices drawn from ``probs`` (..., K) along its last axis (rows need not sum to 1).

    The inverse of each row's CDF at one uniform draw in (0, 1] times the row's total: cheaper than
    ``torch.multinomial`` (which draws K exponentials per row), and an index of probability 0 is never
    drawn (the draw is never 0). ``uniform``, of shape ``probs.shape[:-1]`` exactly, gives the draws in
    [0, 1) (``torch.rand``'s range) instead of drawing them from ``generator``.
    """
    cdf = probs.cumsum(-1)
    if uniform is None:
        u = torch.rand((*cdf.shape[:-1], 1), generator=generator, device=cdf.device, dtype=cdf.dtype)
    else:
        u = uniform.to(cdf.dtype).unsqueeze(-1)
    # the first index whose cumulative weight reaches the draw (the CDF never decreases)
    return torch.searchsorted(cdf, (1.0 - u) * cdf[..., -1:]).squeeze(-1).clamp(max=probs.shape[-1] - 1)

"""PPO's pieces as pure functions: generalised advantage estimation and the clipped losses.

Every function takes and returns tensors and has no state, so each is tested against a hand computation.
"""

from __future__ import annotations

import torch


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and returns (Schulman et al. 2016).

    Args:
        rewards: (T, B) reward of step t. A truncated episode's last reward should already include
            ``gamma * V(last observation)`` (the bootstrap), and its ``done`` be 1.
        values: (T, B) V(o_t).
        dones: (T, B) 1.0 where the episode ended on step t (step t + 1 belongs to a new episode).
        last_value: (B,) V of the observation after step T - 1.
        gamma, lam: discount and GAE's lambda.

    Returns:
        advantages (T, B) and returns = advantages + values (T, B).
    """
    T = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(last_value)
    next_value = last_value
    for t in range(T - 1, -1, -1):
        live = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * live - values[t]
        running = delta + gamma * lam * live * running
        advantages[t] = running
        next_value = values[t]
    return advantages, advantages + values


def ppo_terms(
    new_logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    new_value: torch.Tensor,
    old_value: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    clip: float,
    value_clip: float | None = None,
    denominator: float | None = None,
) -> dict[str, torch.Tensor]:
    """PPO's clipped surrogate, value loss and entropy for a minibatch of B samples.

    Args:
        new_logp, old_logp: (B,) log-probabilities of the taken actions now and when they were taken.
        advantages: (B,) (already normalised if wanted).
        new_value, old_value, returns: (B,).
        entropy: (B,) entropy of the current policy.
        clip: the ratio's clip range epsilon.
        value_clip: clip the value's change to this range as well (None: plain squared error).
        denominator: what the sums are divided by (default B): a process holding part of a global
            minibatch divides by the global size, so the processes' sums add up to the global mean.

    Returns:
        ``policy`` (to minimise), ``value`` (0.5 · squared error), ``entropy``, and the diagnostics
        ``approx_kl`` (the (r - 1) - log r estimator) and ``clip_fraction``, all scalars.
    """
    denom = float(new_logp.shape[0] if denominator is None else denominator)
    log_ratio = new_logp - old_logp
    ratio = log_ratio.exp()
    surrogate = torch.minimum(ratio * advantages, ratio.clamp(1.0 - clip, 1.0 + clip) * advantages)
    value_err = (new_value - returns) ** 2
    if value_clip is not None:
        clipped = old_value + (new_value - old_value).clamp(-value_clip, value_clip)
        value_err = torch.maximum(value_err, (clipped - returns) ** 2)
    with torch.no_grad():
        approx_kl = ((ratio - 1.0) - log_ratio).sum() / denom
        clip_fraction = ((ratio - 1.0).abs() > clip).float().sum() / denom
    return {
        "policy": -surrogate.sum() / denom,
        "value": 0.5 * value_err.sum() / denom,
        "entropy": entropy.sum() / denom,
        "approx_kl": approx_kl,
        "clip_fraction": clip_fraction,
    }


def next_pickup_cells(
    positions: torch.Tensor, picked: torch.Tensor, dones: torch.Tensor, none_cell: int
) -> torch.Tensor:
    """Hindsight goals: for every step and player, the cell where that player next picks up a coin.

    Args:
        positions: (T, N, A) int64 cells after step t's move.
        picked: (T, N, A) bool, the player picked a coin on step t.
        dones: (T, N) bool, the game's episode ended on step t.
        none_cell: the label for "no pick-up before the episode ends".

    Returns:
        (T, N, A) int64: the cell, ``none_cell``, or -1 where the rollout ends before the answer is known.
    """
    T = positions.shape[0]
    out = torch.empty_like(positions)
    upcoming = torch.full_like(positions[0], -1)  # beyond the rollout: unknown
    for t in range(T - 1, -1, -1):
        after = torch.where(dones[t][:, None], torch.full_like(upcoming, none_cell), upcoming)
        upcoming = torch.where(picked[t], positions[t], after)
        out[t] = upcoming
    return out

"""Fitting a world model's opponent model to the opponents it will meet.

The transition model (what the rules do to a joint action) is the same whoever plays; the others' policy is
not. :func:`fit_observation_heads` refits only the heads that read the current observation (the opponent
head and the value head, which both depend on how the others play) on data against particular opponents,
leaving the transition model as it was.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from gridmarl_wm.data import Transitions
from gridmarl_wm.model import WorldModel


def fit_observation_heads(
    model: WorldModel,
    data: Transitions,
    steps: int = 1000,
    batch_size: int = 512,
    lr: float = 1e-3,
    seed: int = 0,
    agent: int | None = None,
    value_weight: float = 0.1,
) -> WorldModel:
    """A copy of ``model`` whose observation heads (``obs_summary``, ``opponent_head``, ``value_head``) are
    refit on ``data`` (only player ``agent``'s transitions when given). The rest keeps the original's
    parameters and buffers (the same tensors, not copies) in module objects of its own, so switching the
    copy between ``train()`` and ``eval()`` leaves the original's modes alone.

    Loss: cross-entropy of the others' actions plus ``value_weight`` times the value head's squared error
    to r + gamma * V(o').
    """
    for name, v in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    rows = np.arange(len(data)) if agent is None else np.flatnonzero(data.agent == agent)
    if len(rows) == 0:
        raise ValueError(f"data holds no transitions of agent={agent!r}")
    heads = ("obs_summary", "opponent_head", "value_head")
    # A copy of every module object (so train()/eval() on the copy never flip the original's modules) that
    # shares the original's parameters and buffers, except the observation heads' own new copies.
    in_heads = {
        id(t) for name in heads for t in (*model._modules[name].parameters(), *model._modules[name].buffers())
    }
    shared = {id(t): t for t in (*model.parameters(), *model.buffers()) if id(t) not in in_heads}
    fitted = copy.deepcopy(model, memo=shared)
    dev = model.device
    obs = torch.as_tensor(data.obs[rows], device=dev)
    next_obs = torch.as_tensor(data.next_obs[rows], device=dev)
    others = torch.as_tensor(data.others[rows], device=dev)
    reward = torch.as_tensor(data.reward[rows], device=dev)
    ids = torch.as_tensor(data.agent[rows], device=dev)
    params = [p for name in heads for p in fitted._modules[name].parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    gamma = model.cfg.gamma
    fitted.train()
    for _ in range(steps):
        idx = torch.randint(0, len(rows), (batch_size,), generator=gen).to(dev)
        o = obs[idx].float()
        value, logits = fitted.observation_heads(o, ids[idx])
        with torch.no_grad():
            v_next = fitted.observation_heads(next_obs[idx].float(), ids[idx])[0]
        loss = F.cross_entropy(logits.flatten(0, 1), others[idx].flatten()) + value_weight * F.mse_loss(
            value, reward[idx] + gamma * v_next
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    fitted.eval()
    return fitted

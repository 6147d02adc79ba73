"""Measuring a world model against the game's exact transition distribution (DESIGN section 4).

From player_0's view on a full-view game: for every (or a random sample of the) reachable state(s) and
every joint action, the true next-observation distribution comes from
:func:`gridmarl.transition_outcomes`; the model's probability of each true outcome from
``WorldModel.log_prob``. Then TV = 1 - sum over the true outcomes of min(p_true, p_model).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import torch

from gridmarl import GridConfig, GridCore, State, make_config, reachable_states, transition_outcomes
from gridmarl_wm.model import WorldModel


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def exhaustive_metrics(
    model: WorldModel,
    game: GridConfig | dict | None = None,
    sample_states: int | None = None,
    seed: int = 0,
    batch_size: int = 16384,
    observer: int = 0,
) -> dict[str, float]:
    """TV, deterministic accuracy and reward accuracy over reachable states x all joint actions.

    Args:
        sample_states: use this many reachable states drawn at random (None: all of them).
        observer: whose view is modelled (its view must be the full state: a full-view game).

    Returns:
        ``tv_mean``, ``tv_p99``, ``tv_max``; ``det_acc`` (the model's most likely next observation, decoded
        token by token, is a possible true outcome); ``reward_acc`` and ``reward_mae`` of the most likely
        reward; ``n_states``, ``n_transitions``; ``tv`` (the per-transition array, not JSON-able).
    """
    game = make_config(game)
    if game.view_size is not None:
        raise ValueError("exhaustive metrics need a full-view game: a partial view is not the full state")
    core = GridCore(game)
    states = reachable_states(game)
    if sample_states is not None and sample_states < states.batch_size:
        rows = np.random.default_rng(seed).choice(states.batch_size, sample_states, replace=False)
        states = states.take(np.sort(rows))
    joints = np.array(list(itertools.product(range(5), repeat=game.n_agents)), dtype=np.int64)  # (J, A)
    J = len(joints)
    others = [j for j in range(game.n_agents) if j != observer]
    tvs, det, rew_ok, rew_err = [], [], [], []
    per_chunk = max(1, batch_size // (J * 4))
    model.eval()
    with torch.no_grad():
        for sl in _chunks(states.batch_size, per_chunk):
            sub = states.take(sl)
            n = sub.batch_size
            rep = State(np.repeat(sub.agents, J, 0), np.repeat(sub.coins, J, 0), np.repeat(sub.t, J))
            joint = np.tile(joints, (n, 1))
            out, src = transition_outcomes(game, rep, joint)
            obs = core.observe(rep, (observer,))[:, 0]
            nxt = core.observe(out.states, (observer,))[:, 0]
            a_self, a_others = joint[:, observer], joint[:, others]
            p_model = model.log_prob(obs, a_self, a_others, nxt, source=src).exp().cpu().numpy()
            tvs.append(1.0 - np.bincount(src, weights=np.minimum(out.probs, p_model), minlength=len(obs)))
            greedy, reward = model.sample(obs, a_self, a_others, temperature=0)
            match = (torch.as_tensor(nxt) == greedy.cpu()[src]).flatten(1).all(1).numpy()
            det.append(np.bincount(src, weights=match, minlength=len(obs)) > 0)
            true_reward = np.zeros(len(obs), dtype=np.float32)
            true_reward[src] = out.rewards[:, observer]
            reward = reward.cpu().numpy()
            rew_ok.append(reward == true_reward)
            rew_err.append(np.abs(reward - true_reward))
    tv = np.concatenate(tvs).clip(0.0, 1.0)
    return {
        "tv_mean": float(tv.mean()),
        "tv_p99": float(np.quantile(tv, 0.99)),
        "tv_max": float(tv.max()),
        "det_acc": float(np.concatenate(det).mean()),
        "reward_acc": float(np.concatenate(rew_ok).mean()),
        "reward_mae": float(np.concatenate(rew_err).mean()),
        "n_states": int(states.batch_size),
        "n_transitions": len(tv),
        "tv": tv,
    }

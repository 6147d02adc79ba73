"""Measuring a world model against the game's exact transition distribution (DESIGN section 4).

From player_0's view on a full-view game: for every (or a random sample of the) reachable state(s) and
every joint action, the true next-observation distribution comes from
:func:`gridmarl.transition_outcomes`; the model's probability of each true outcome from
``WorldModel.log_prob``. Then TV = 1 - sum over the true outcomes of min(p_true, p_model)
(:func:`distribution_tv`, which also measures a model against any other known distribution, such as a
variant game's). A model with learned constraints is measured both ways: with them and without.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gridmarl import GridConfig, GridCore, State, make_config, reachable_states, transition_outcomes
from gridmarl_wm.model import WorldModel


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def distribution_tv(
    model: WorldModel,
    obs: np.ndarray,
    self_action: np.ndarray,
    other_actions: np.ndarray,
    outcomes: np.ndarray,
    probs: np.ndarray,
    source: np.ndarray,
) -> np.ndarray:
    """(B,) total variation between the model's next-observation distribution and a known one, per
    transition: 1 - sum over the known outcomes of min(p_true, p_model).

    Args:
        obs: (B, 5, h, w) observations; ``self_action`` (B,), ``other_actions`` (B, n_agents - 1).
        outcomes: (M, 5, h, w) every possible next observation, each once; outcome m belongs to transition
            ``source[m]`` (M,) and has true probability ``probs[m]`` (M,); each transition's sum to 1.
    """
    p_model = model.log_prob(obs, self_action, other_actions, outcomes, source=source).exp().cpu().numpy()
    return _overlap_tv(p_model, probs, source, len(obs))


def _overlap_tv(p_model: np.ndarray, probs: np.ndarray, source: np.ndarray, n: int) -> np.ndarray:
    """(n,) 1 - sum over each transition's known outcomes of min(p_true, p_model)."""
    overlap = np.bincount(source, weights=np.minimum(probs, p_model), minlength=n)
    return (1.0 - overlap).clip(0.0, 1.0)


def _constraints(model: WorldModel, on: bool | None) -> contextlib.AbstractContextManager:
    """Decode with the learned constraints on or off inside the block (None: as the model is)."""
    if on is None:
        return contextlib.nullcontext()
    if not getattr(model, "can_constrain", False):
        raise ValueError(f"constraints={on!r}: this model has no learned constraints to switch")
    return model.constraints(on)


def exhaustive_metrics(
    model: WorldModel,
    game: GridConfig | dict | None = None,
    sample_states: int | None = None,
    seed: int = 0,
    batch_size: int = 16384,
    observer: int = 0,
    constraints: bool | None = None,
) -> dict[str, float]:
    """TV, deterministic accuracy and reward accuracy over reachable states x all joint actions.

    Args:
        sample_states: use this many reachable states drawn at random (None: all of them).
        observer: whose view is modelled (its view must be the full state: a full-view game).
        constraints: measure with the model's learned constraints on (True) or off (False); None: as the
            model is set.

    Returns:
        ``tv_mean``, ``tv_p99``, ``tv_max``; ``det_acc`` (the model's most likely next observation, decoded
        token by token, is a possible true outcome); ``reward_acc`` and ``reward_mae`` of the most likely
        reward; ``n_states``, ``n_transitions``; ``constraints`` (whether the learned constraints were on);
        ``tv`` (the per-transition array, not JSON-able).
    """
    return _exhaustive(model, game, sample_states, seed, batch_size, observer, [constraints])[0]


def exhaustive_metrics_both_ways(
    model: WorldModel,
    game: GridConfig | dict | None = None,
    sample_states: int | None = None,
    seed: int = 0,
    batch_size: int = 16384,
    observer: int = 0,
) -> tuple[dict[str, float], dict[str, float]]:
    """:func:`exhaustive_metrics` with the learned constraints on and off, in one pass over the states:
    one forward pass and one teacher-forced decoder pass per transition serve both measures (two
    normalisations of the same logits); only the most likely next observation is decoded twice. Returns
    (with, without)."""
    if not getattr(model, "can_constrain", False):
        raise ValueError("exhaustive_metrics_both_ways: this model has no learned constraints to switch")
    with_, without = _exhaustive(model, game, sample_states, seed, batch_size, observer, [True, False])
    return with_, without


def _outcome_probs(
    model: WorldModel, obs, a_self, a_others, outcomes, source, modes: list[bool | None]
) -> list[np.ndarray]:
    """The model's probability of every outcome under each of ``modes`` (constraints on / off / as set);
    with and without from one pass where both are asked for."""
    if modes == [True, False]:
        both = model.log_prob_both_ways(obs, a_self, a_others, outcomes, source=source)
        return [lp.exp().cpu().numpy() for lp in both]
    out = []
    for on in modes:
        with _constraints(model, on):
            out.append(model.log_prob(obs, a_self, a_others, outcomes, source=source).exp().cpu().numpy())
    return out


def _exhaustive(
    model: WorldModel,
    game: GridConfig | dict | None,
    sample_states: int | None,
    seed: int,
    batch_size: int,
    observer: int,
    modes: list[bool | None],
) -> list[dict[str, float]]:
    game = make_config(game)
    if game.view_size is not None:
        raise ValueError("exhaustive metrics need a full-view game: a partial view is not the full state")
    for on in modes:
        if on is not None and not getattr(model, "can_constrain", False):
            raise ValueError(f"constraints={on!r}: this model has no learned constraints to switch")
    core = GridCore(game)
    states = reachable_states(game)
    if sample_states is not None and sample_states < states.batch_size:
        rows = np.random.default_rng(seed).choice(states.batch_size, sample_states, replace=False)
        states = states.take(np.sort(rows))
    joints = np.array(list(itertools.product(range(5), repeat=game.n_agents)), dtype=np.int64)  # (J, A)
    J = len(joints)
    others = [j for j in range(game.n_agents) if j != observer]
    acc: list[dict[str, list]] = [{"tv": [], "det": [], "ok": [], "err": []} for _ in modes]
    as_set = bool(getattr(model, "constraints_on", False))
    used = [as_set if on is None else on for on in modes]
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
            true_reward = np.zeros(len(obs), dtype=np.float32)
            true_reward[src] = out.rewards[:, observer]
            p_models = _outcome_probs(model, obs, a_self, a_others, nxt, src, modes)
            for on, p_model, a in zip(modes, p_models, acc, strict=True):
                a["tv"].append(_overlap_tv(p_model, out.probs, src, len(obs)))
                with _constraints(model, on):
                    greedy, reward = model.sample(obs, a_self, a_others, temperature=0)
                match = (torch.as_tensor(nxt) == greedy.cpu()[src]).flatten(1).all(1).numpy()
                a["det"].append(np.bincount(src, weights=match, minlength=len(obs)) > 0)
                reward = reward.cpu().numpy()
                a["ok"].append(reward == true_reward)
                a["err"].append(np.abs(reward - true_reward))
    results = []
    for a, on_used in zip(acc, used, strict=True):
        tv = np.concatenate(a["tv"]).clip(0.0, 1.0)
        results.append(
            {
                "tv_mean": float(tv.mean()),
                "tv_p99": float(np.quantile(tv, 0.99)),
                "tv_max": float(tv.max()),
                "det_acc": float(np.concatenate(a["det"]).mean()),
                "reward_acc": float(np.concatenate(a["ok"]).mean()),
                "reward_mae": float(np.concatenate(a["err"]).mean()),
                "n_states": int(states.batch_size),
                "n_transitions": len(tv),
                "constraints": on_used,
                "tv": tv,
            }
        )
    return results


def opponent_metrics(model: WorldModel, data, batch_size: int = 8192) -> dict[str, float]:
    """The opponent head on held-out transitions: top-1 accuracy and NLL of the others' actions, and, where
    their true distributions are known (scripted players), the mean TV to them and the accuracy of the
    head's top action against the true distribution's support."""
    acc, nll, tv, in_support = [], [], [], []
    model.eval()
    with torch.no_grad():
        for sl in _chunks(len(data), batch_size):
            probs = model.opponent_probs(data.obs[sl].astype(np.float32), data.agent[sl]).cpu().numpy()
            actions = data.others[sl]
            picked = np.take_along_axis(probs, actions[..., None], axis=2)[..., 0]
            acc.append(probs.argmax(-1) == actions)
            nll.append(-np.log(np.maximum(picked, 1e-12)))
            true = data.others_probs[sl]
            known = np.isfinite(true).all(-1)
            tv.append((0.5 * np.abs(probs - true).sum(-1))[known])
            top = np.take_along_axis(true, probs.argmax(-1)[..., None], axis=2)[..., 0]
            in_support.append((top > 0)[known])
    tv_all = np.concatenate(tv)
    return {
        "opponent_top1": float(np.concatenate(acc).mean()),
        "opponent_nll": float(np.concatenate(nll).mean()),
        "opponent_tv_to_true": float(tv_all.mean()) if len(tv_all) else float("nan"),
        "opponent_top1_in_true_support": float(np.concatenate(in_support).mean())
        if len(tv_all)
        else float("nan"),
    }


def open_loop(
    model: WorldModel,
    game: GridConfig | dict | None,
    episodes: int = 256,
    horizon: int = 20,
    opponent: str = "random",
    seed: int = 0,
    modelled_opponents: bool = False,
) -> dict[str, list[float]]:
    """Open-loop prediction from real episodes, player_0's view.

    Real games are played for ``horizon`` steps (player_0 random, the others ``opponent``). The model starts
    from the real first observation and is fed the real actions of player_0 and, unless
    ``modelled_opponents``, of the others (else it samples theirs from its opponent head), each step
    sampling from its own previous prediction. Per h = 1..horizon: ``position_match`` (fraction whose
    predicted self and others channels equal the real ones) and ``reward_error`` (mean absolute error of
    the cumulative reward).
    """
    import gymnasium as gym

    game = make_config(game)
    venv = gym.make_vec(
        "GridMARL-v0",
        num_envs=episodes,
        vectorization_mode="vector_entry_point",
        opponent=opponent,
        max_steps=max(horizon, game.max_steps),
        **{k: v for k, v in game.__dict__.items() if k not in ("max_steps",)},
    )
    obs, _ = venv.reset(seed=seed)
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    pred = torch.as_tensor(obs)
    true_cum = np.zeros(episodes)
    pred_cum = np.zeros(episodes)
    match, err = [], []
    model.eval()
    for _ in range(horizon):
        a = rng.integers(0, 5, episodes)
        obs, reward, _, _, info = venv.step(a)
        if modelled_opponents:
            takes_id = getattr(getattr(model, "cfg", None), "agent_id", False)
            ids = {"agent": torch.zeros(episodes, dtype=torch.long)} if takes_id else {}
            probs = model.opponent_probs(pred, **ids).cpu()  # player_0's view
            others = torch.multinomial(probs.flatten(0, 1), 1, generator=g).reshape(episodes, -1).numpy()
        else:
            others = info["opponent_actions"]
        pred, r = model.sample(pred, a, others, generator=g)
        pred, r = pred.cpu(), r.cpu().numpy()
        true_cum += reward
        pred_cum += r
        same = (pred[:, :2] == torch.as_tensor(obs[:, :2])).flatten(1).all(1).numpy()
        match.append(float(same.mean()))
        err.append(float(np.abs(pred_cum - true_cum).mean()))
    venv.close()
    return {"position_match": match, "reward_error": err}


def evaluation_report(
    model: WorldModel,
    game: GridConfig,
    plots: Path | None = None,
    sample_states: int | None = None,
    seed: int = 0,
    policy: str = "random",
    open_loop_episodes: int = 256,
    with_open_loop: bool = True,
) -> dict[str, Any]:
    """Every section-4 measure of a model that needs no planning, as one report: the learned constraints
    (``learned_structure``, ``constraints``: whether they are on), the exhaustive check (a full-view game;
    ``exhaustive`` as the model is set, and ``exhaustive_both_ways`` with and without its constraints),
    the opponent head on held-out play (the others following ``policy``) and the open-loop curves; with
    ``plots`` a folder, also ``tv_histogram.png``, ``open_loop.png`` and ``predictions.png``."""
    from gridmarl_wm.data import CollectConfig, collect
    from gridmarl_wm.viewing.plots import plot_open_loop, plot_predictions, plot_tv_histogram

    report: dict[str, Any] = {}
    if plots is not None:
        plots.mkdir(parents=True, exist_ok=True)
    structure = getattr(getattr(model, "cfg", None), "structure", None)
    on = bool(getattr(model, "constraints_on", False))
    report["constraints"] = on
    report["learned_structure"] = None if structure is None else structure.describe()
    if game.view_size is None:
        if getattr(model, "can_constrain", False):  # the same model measured both ways, in one pass
            with_, without = exhaustive_metrics_both_ways(model, game, sample_states=sample_states, seed=seed)
            exhaustive, other = (with_, without) if on else (without, with_)
            tv = exhaustive.pop("tv")
            other.pop("tv")
            report["exhaustive"] = exhaustive
            report["exhaustive_both_ways"] = {"with_constraints": with_, "without_constraints": without}
        else:
            exhaustive = exhaustive_metrics(model, game, sample_states=sample_states, seed=seed)
            tv = exhaustive.pop("tv")
            report["exhaustive"] = exhaustive
        if plots is not None:
            plot_tv_histogram(tv, plots / "tv_histogram.png")
    held_out = collect(game, CollectConfig(steps=100, num_envs=64, policy=policy, seed=seed + 1))
    report["opponent_model"] = opponent_metrics(model, held_out)
    if with_open_loop:
        report["open_loop"] = {
            "true_opponent_actions": open_loop(
                model, game, episodes=open_loop_episodes, opponent=policy, seed=seed
            ),
            "modelled_opponent_actions": open_loop(
                model, game, episodes=open_loop_episodes, opponent=policy, seed=seed, modelled_opponents=True
            ),
        }
        if plots is not None:
            plot_open_loop(report["open_loop"], plots / "open_loop.png")
    if plots is not None:
        # a few of player_0's transitions: the first two where it got a reward, then ordinary ones
        mine = np.flatnonzero(held_out.agent == 0)
        rewarded = mine[held_out.reward[mine] != 0][:2]
        rows = np.concatenate([rewarded, mine[~np.isin(mine, rewarded)][: 4 - len(rewarded)]])
        plot_predictions(model, held_out, plots / "predictions.png", rows, seed=seed)
    return report

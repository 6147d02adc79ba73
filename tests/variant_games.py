"""Games whose rules differ from GridMARL's, made only for tests and benchmarks: a world model must be able
to learn them from data, since nothing about the game's dynamics is written into it.

Each variant is a two-player full-view game seen by player_0, given as a table: a set of start
observations, every joint action, and the exact distribution of the next observation of every (start,
joint action), built from :func:`gridmarl.transition_outcomes` by post-processing its outcomes:

- ``vanishing_coins``: after the usual respawn, every coin picked this step is removed from the board with
  probability ``q`` (independently): the number of coins changes, which GridMARL never does.
- ``opening_wall``: a wall cell opens (for good) with probability ``q`` each step; from then on it is an
  ordinary cell that players and coins may use. Starts are states with the wall and states without it.

Data for training is drawn from the table: a start and a joint action uniformly, then the next observation
from its exact distribution (:func:`sample_transitions`); :func:`variant_tv` measures a model against the
table exhaustively. Benchmarks import this file too (``benchmarks/wm_variant_games.py``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

import gridmarl
from gridmarl_wm.data import Transitions
from gridmarl_wm.evaluate import distribution_tv

VARIANTS = ("vanishing_coins", "opening_wall")


@dataclass
class VariantTable:
    """Every transition of a variant game from player_0's view.

    Attributes:
        name: the variant.
        game: the game whose observation shape the variant uses (the one with walls, for ``opening_wall``).
        obs: (S, 5, h, w) uint8 start observations.
        joints: (J, 2) every joint action (player_0's first).
        next_obs: (M, 5, h, w) uint8, every possible next observation of every transition, each once.
        probs: (M,) its exact probability; ``source`` (M,) the transition it belongs to, ``s * J + j``
            (sorted), so each transition's probabilities sum to 1.
        reward: (S * J,) float32, player_0's reward of every transition (the same in all its outcomes).
    """

    name: str
    game: gridmarl.GridConfig
    obs: np.ndarray
    joints: np.ndarray
    next_obs: np.ndarray
    probs: np.ndarray
    source: np.ndarray
    reward: np.ndarray

    @property
    def n_transitions(self) -> int:
        return len(self.obs) * len(self.joints)


def _merge(next_obs: np.ndarray, probs: np.ndarray, source: np.ndarray):
    """Merge equal next observations of one transition (summing their probabilities); sorted by source."""
    M = len(next_obs)
    rows = np.concatenate(
        [source.astype(">i8").view(np.uint8).reshape(M, 8), next_obs.reshape(M, -1).astype(np.uint8)], axis=1
    )  # big-endian source first, so the rows sort by source
    keys = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.shape[1]))).ravel()
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    merged = np.bincount(inverse.ravel(), weights=probs, minlength=len(uniq))
    return next_obs[first].astype(np.uint8), merged, source[first]


def _base_block(game: gridmarl.GridConfig, states: gridmarl.State, joints: np.ndarray):
    """The real game's table for ``states``: start obs, outcome obs, probs, source, rewards, outcomes."""
    core = gridmarl.GridCore(game)
    S, J = states.batch_size, len(joints)
    rows = np.repeat(np.arange(S), J)
    rep = states.take(rows)
    joint = np.tile(joints, (S, 1))
    out, src = gridmarl.transition_outcomes(game, rep, joint)
    obs = core.observe(states, (0,))[:, 0].astype(np.uint8)
    nxt = core.observe(out.states, (0,))[:, 0].astype(np.uint8)
    reward = np.zeros(S * J, dtype=np.float32)
    reward[src] = out.rewards[:, 0]
    return obs, nxt, out.probs, src, reward, rep, out


def build_table(name: str, game: gridmarl.GridConfig | None = None, q: float = 0.3) -> VariantTable:
    """The table of variant ``name`` on ``game`` (two players, full view; default 3x3, one coin each; for
    ``opening_wall`` the wall is the centre cell unless ``game`` has exactly one wall)."""
    if name not in VARIANTS:
        raise ValueError(f"name must be one of {list(VARIANTS)}, got {name!r}")
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must lie strictly between 0 and 1, got {q!r}")
    game = gridmarl.make_config(game or {"height": 3, "width": 3})
    if game.n_agents != 2 or game.coins_per_agent != 1 or game.view_size is not None:
        raise ValueError("variant games need two players, one coin each and a full view")
    joints = np.array(list(itertools.product(range(5), repeat=2)), dtype=np.int64)
    J = len(joints)
    if name == "vanishing_coins":
        states = gridmarl.reachable_states(game)
        obs, nxt, probs, src, reward, rep, out = _base_block(game, states, joints)
        # coin c was picked when a player now stands on its old cell (it was respawned somewhere)
        picked = (rep.coins[src][:, :, None] == out.states.agents[:, None, :]).any(2)  # (M, 2)
        parts_obs, parts_p, parts_src = [], [], []
        for gone in itertools.product((False, True), repeat=2):
            gone = np.array(gone)
            possible = (~gone | picked).all(1)  # only a picked coin can vanish
            n_gone, n_picked = gone.sum(), picked.sum(1)
            weight = q**n_gone * (1 - q) ** (n_picked - n_gone)
            x = nxt[possible].copy()
            for c in np.flatnonzero(gone):
                cells = out.states.coins[possible, c]
                x.reshape(len(x), 5, -1)[np.arange(len(x)), 2 + c, cells] = 0  # channel 2 own, 3 the other's
            parts_obs.append(x)
            parts_p.append(probs[possible] * weight[possible])
            parts_src.append(src[possible])
        nxt, probs, src = _merge(
            np.concatenate(parts_obs), np.concatenate(parts_p), np.concatenate(parts_src)
        )
        return VariantTable(name, game, obs, joints, nxt, probs, src, reward)
    # opening_wall
    if len(game.walls) != 1:
        centre = (game.height // 2, game.width // 2)
        game = gridmarl.make_config(**{**game.as_kwargs(), "walls": [centre]})
    wall = game.walls[0][0] * game.width + game.walls[0][1]
    open_game = gridmarl.make_config(**{**game.as_kwargs(), "walls": []})
    closed = _base_block(game, gridmarl.reachable_states(game), joints)
    opened = _base_block(open_game, gridmarl.reachable_states(open_game), joints)
    obs_c, nxt_c, p_c, src_c, rew_c = closed[:5]
    stays_open = nxt_c.copy()
    stays_open.reshape(len(nxt_c), 5, -1)[:, 4, wall] = 0
    obs_o, nxt_o, p_o, src_o, rew_o = opened[:5]
    offset = len(obs_c) * J
    nxt = np.concatenate([nxt_c, stays_open, nxt_o])
    probs = np.concatenate([p_c * (1 - q), p_c * q, p_o])
    src = np.concatenate([src_c, src_c, src_o + offset])
    nxt, probs, src = _merge(nxt, probs, src)
    obs = np.concatenate([obs_c, obs_o])
    return VariantTable(name, game, obs, joints, nxt, probs, src, np.concatenate([rew_c, rew_o]))


def sample_transitions(table: VariantTable, n: int, seed: int = 0) -> Transitions:
    """``n`` transitions: a start and a joint action drawn uniformly, the next observation from its exact
    distribution (player_0's view; the fields a world model does not train on are filled with zeros)."""
    rng = np.random.default_rng(seed)
    J = len(table.joints)
    t = rng.integers(0, table.n_transitions, n)
    first = np.searchsorted(table.source, np.arange(table.n_transitions))  # each transition's first outcome
    cum = np.cumsum(table.probs)
    before = np.where(first > 0, cum[first - 1], 0.0)
    u = before[t] + rng.random(n) * (cum[np.append(first[1:], len(cum)) - 1][t] - before[t])
    pick = np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)
    pick = np.clip(pick, first[t], np.append(first[1:], len(cum))[t] - 1)  # rounding stays in its block
    joint = table.joints[t % J]
    zeros = np.zeros(n, dtype=np.int64)
    return Transitions(
        obs=table.obs[t // J], action=joint[:, 0], others=joint[:, 1:], reward=table.reward[t],
        next_obs=table.next_obs[pick], truncated=np.zeros(n, dtype=bool), agent=zeros, t=zeros,
        episode=zeros, policy=zeros[:, None], others_probs=np.full((n, 1, 5), np.nan, dtype=np.float32),
    )  # fmt: skip


def variant_tv(model, table: VariantTable, starts: int | None = None, seed: int = 0) -> np.ndarray:
    """Per-transition TV between ``model`` and the table's exact distribution, over every joint action of
    ``starts`` start observations drawn at random (None: all of them); (starts * J,)."""
    J = len(table.joints)
    rows = np.arange(len(table.obs))
    if starts is not None and starts < len(rows):
        rows = np.sort(np.random.default_rng(seed).choice(len(rows), starts, replace=False))
    tvs = []
    for chunk in np.array_split(rows, max(1, len(rows) // 200)):
        t = (chunk[:, None] * J + np.arange(J)[None, :]).ravel()
        keep = np.isin(table.source, t)
        local = np.searchsorted(t, table.source[keep])
        obs = table.obs[t // J].astype(np.float32)
        joint = table.joints[t % J]
        tvs.append(
            distribution_tv(
                model,
                obs,
                joint[:, 0],
                joint[:, 1:],
                table.next_obs[keep].astype(np.float32),
                table.probs[keep],
                local,
            )
        )
    return np.concatenate(tvs)

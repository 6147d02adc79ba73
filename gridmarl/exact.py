"""Exact ground truth: every next state with its probability, and the reachable state set.

These are what a learned simulator is measured against. They use the same :class:`GridCore` tables as the
envs (moves, reward matrix, free cells), so there is one copy of the rules.

States are compared in canonical form: coins of one colour are interchangeable, so each colour's coin cells
are sorted (:func:`canonical`). Two outcomes that differ only in which coin of a colour went where are one
outcome.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from gridmarl.config import N_ACTIONS, GridConfig, make_config
from gridmarl.core import GridCore, State


@lru_cache(maxsize=32)
def _core(config: GridConfig) -> GridCore:
    return GridCore(config)


def _as_state(state: State | Mapping[str, Any]) -> State:
    if isinstance(state, State):
        out = state
    elif isinstance(state, Mapping) and {"agents", "coins", "t"} <= set(state):
        out = State(
            np.asarray(state["agents"], dtype=np.int64).reshape(1, -1),
            np.asarray(state["coins"], dtype=np.int64).reshape(1, -1),
            np.asarray(state["t"], dtype=np.int64).reshape(1),
        )
    else:
        raise TypeError("state must be a State or a snapshot dict with 'agents', 'coins' and 't'")
    if out.batch_size != 1:
        raise ValueError(f"state must hold one game, got a batch of {out.batch_size}")
    return out


def canonical(config: GridConfig, state: State) -> State:
    """A copy of ``state`` with each colour's coin cells sorted, so equal games compare equal."""
    k = config.coins_per_agent
    coins = state.coins.reshape(state.batch_size, config.n_agents, k)
    return State(state.agents.copy(), np.sort(coins, axis=2).reshape(state.batch_size, -1), state.t.copy())


@dataclass
class Outcomes:
    """A distribution over next states.

    Attributes:
        states: batch of M distinct next states (canonical form).
        probs: (M,) float64, summing to 1.
        rewards: (M, n_agents) float32, every player's reward (the same in every row: rewards are decided
            before coins respawn).
    """

    states: State
    probs: np.ndarray
    rewards: np.ndarray

    def __len__(self) -> int:
        return len(self.probs)


def transition_distribution(
    config: GridConfig | Mapping[str, Any] | None,
    state: State | Mapping[str, Any],
    joint_action: Sequence[int] | np.ndarray,
) -> Outcomes:
    """Every possible next state of one game after ``joint_action``, with its probability and rewards.

    Args:
        config: the game (a :class:`GridConfig` or its keyword arguments).
        state: one game, as a :class:`State` of batch 1 or a snapshot with ``agents``, ``coins``, ``t``.
        joint_action: one action in 0..4 per player, in player order.
    """
    cfg = make_config(config)
    s = _as_state(state)
    joint = np.asarray(joint_action)
    if joint.shape != (cfg.n_agents,) or not np.issubdtype(joint.dtype, np.integer):
        raise ValueError(f"joint_action must be {cfg.n_agents} integers in 0..4, got {joint_action!r}")
    if joint.min() < 0 or joint.max() >= N_ACTIONS:
        raise ValueError(f"joint_action entries must lie in 0..{N_ACTIONS - 1}, got {joint_action!r}")
    out, _ = transition_outcomes(cfg, s, joint[None])
    return out


def transition_outcomes(
    config: GridConfig | Mapping[str, Any] | None, states: State, joint_actions: np.ndarray
) -> tuple[Outcomes, np.ndarray]:
    """:func:`transition_distribution` for a batch of B games at once.

    Args:
        states: B games.
        joint_actions: (B, n_agents) actions in 0..4 (not checked).

    Returns:
        The outcomes of all games stacked (canonical, merged within each game, sorted by game), and
        ``source`` (M,): the game each outcome belongs to. Each game's probabilities sum to 1.
    """
    cfg = make_config(config)
    core = _core(cfg)
    B = states.batch_size
    agents = core.move[states.agents, joint_actions]  # (B, A)
    coins = states.coins.copy()
    on = coins[:, :, None] == agents[:, None, :]  # (B, C, A)
    rewards = on.reshape(B, -1).astype(np.float32) @ core.reward_matrix  # (B, A)
    picked = on.any(axis=2)
    source = np.arange(B)
    probs = np.ones(B)
    # Expand the respawns in order (colour, index): each lands uniformly on a cell free at its turn.
    for c in range(core.n_coins):
        rows = np.flatnonzero(picked[source, c])
        if len(rows) == 0:
            continue
        taken = np.broadcast_to(core.wall_mask, (len(rows), core.n_cells)).copy()
        r = np.arange(len(rows))[:, None]
        taken[r, agents[source[rows]]] = True
        taken[r, coins[rows]] = True
        free = ~taken
        n_free = free.sum(axis=1)
        branch, cell = np.nonzero(free)  # every (row, free cell) pair, row-major
        keep = np.ones(len(source), dtype=bool)
        keep[rows] = False
        new_coins = coins[rows][branch]
        new_coins[:, c] = cell
        source = np.concatenate([source[keep], source[rows][branch]])
        probs = np.concatenate([probs[keep], probs[rows][branch] / n_free[branch]])
        coins = np.concatenate([coins[keep], new_coins])
        order = np.argsort(source, kind="stable")
        source, probs, coins = source[order], probs[order], coins[order]
    k = cfg.coins_per_agent
    coins = np.sort(coins.reshape(len(coins), cfg.n_agents, k), axis=2).reshape(len(coins), -1)
    if k > 1:  # outcomes that differ only in which coin of a colour went where are one outcome
        keys = np.concatenate([source[:, None], coins], axis=1)
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        probs = np.bincount(inverse.ravel(), weights=probs, minlength=len(uniq))
        source, coins = uniq[:, 0], uniq[:, 1:]
    next_states = State(agents[source].copy(), coins.astype(np.int64), states.t[source] + 1)
    return Outcomes(next_states, probs, rewards[source]), source


def count_reachable_states(config: GridConfig | Mapping[str, Any] | None, max_states: int = 5_000_000) -> int:
    """Number of reachable states (t ignored; coins of one colour interchangeable).

    On a grid without walls this is a closed formula: agents anywhere (sharing allowed), coins on distinct
    cells not under an agent. With walls, pockets can make some of those placements unreachable (two agents
    can never share a cell nobody can enter), so the states are found by search (see
    :func:`reachable_states`).
    """
    cfg = make_config(config)
    if cfg.walls:
        return reachable_states(cfg, max_states).batch_size
    return _count_placements(cfg)


def _count_placements(cfg: GridConfig) -> int:
    F, A, k = cfg.n_free_cells, cfg.n_agents, cfg.coins_per_agent
    total = 0
    # Group agent placements by how many distinct cells they cover.
    for d in range(1, min(A, F) + 1):
        placements = math.comb(F, d) * _surjections(A, d)
        coins = 1
        left = F - d
        for _ in range(A):
            coins *= math.comb(left, k)
            left -= k
        total += placements * coins
    return total


def _surjections(n: int, k: int) -> int:
    return sum((-1) ** j * math.comb(k, j) * (k - j) ** n for j in range(k + 1))


def reachable_states(config: GridConfig | Mapping[str, Any] | None, max_states: int = 5_000_000) -> State:
    """Every reachable state of a small game, canonical form, t = 0 (47,040 for the default game).

    Without walls, reset puts agents on any distinct cells, moves let them share any cell, and a coin can lie
    on any cell not under an agent, so the reachable set is exactly those placements and is enumerated
    directly. With walls it is the closure of every reset state under every joint action, by breadth-first
    search over :func:`transition_distribution`.

    Raises:
        ValueError: when the game has (or, with walls, may have) more than ``max_states`` reachable states.
    """
    cfg = make_config(config)
    n = _count_placements(cfg)  # an upper bound with walls
    if n > max_states:
        raise ValueError(f"this game has up to {n:,} reachable states, more than max_states={max_states:,}")
    free = _core(cfg).free_cells.tolist()
    keys = []
    for agents in itertools.product(free, repeat=cfg.n_agents):
        if cfg.walls and len(set(agents)) < cfg.n_agents:
            continue  # with walls, start from the reset states (distinct agents) and search
        open_cells = [c for c in free if c not in agents]
        keys.extend(
            (agents, coins) for coins in _coin_placements(open_cells, cfg.n_agents, cfg.coins_per_agent)
        )
    if cfg.walls:
        keys = _closure(cfg, keys)
    states = State(
        np.array([a for a, _ in keys], dtype=np.int64).reshape(-1, cfg.n_agents),
        np.array([c for _, c in keys], dtype=np.int64).reshape(-1, cfg.n_coins),
        np.zeros(len(keys), dtype=np.int64),
    )
    return states


def _closure(cfg: GridConfig, starts: list[tuple[tuple[int, ...], tuple[int, ...]]]) -> list:
    """All (agents, coins) keys reachable from ``starts`` under every joint action, in discovery order."""
    seen = dict.fromkeys(starts)
    frontier = list(seen)
    joints = list(itertools.product(range(N_ACTIONS), repeat=cfg.n_agents))
    while frontier:
        grown = []
        for agents, coins in frontier:
            state = {"agents": agents, "coins": coins, "t": 0}
            for joint in joints:
                out = transition_distribution(cfg, state, joint).states
                for a, c in zip(map(tuple, out.agents.tolist()), map(tuple, out.coins.tolist()), strict=True):
                    if (a, c) not in seen:
                        seen[(a, c)] = None
                        grown.append((a, c))
        frontier = grown
    return list(seen)


def _coin_placements(cells: list[int], colours: int, k: int):
    if colours == 0:
        yield ()
        return
    for group in itertools.combinations(cells, k):
        rest = [c for c in cells if c not in group]
        for tail in _coin_placements(rest, colours - 1, k):
            yield group + tail

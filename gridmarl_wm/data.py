"""Transition data: collect every player's egocentric transitions, save them, load them back.

A transition of player i is (o_i^t, a_i^t, a_{-i}^t, r_i^t, o_i^{t+1}, truncated), the others' actions in
player order with i skipped. Collection runs N games at once through :class:`gridmarl.GridCore` ("parallel")
or one game at a time ("serial"); both use the same code path and the same per-step semantics, so they
give the same distribution (``tests/test_wm_data.py`` checks it).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gridmarl import GridConfig, make_config
from gridmarl.ego import EgoGames
from gridmarl_wm.io import atomic_write

DATA_FORMAT = "gridmarl-transitions/1"
FIELDS = (
    "obs",
    "action",
    "others",
    "reward",
    "next_obs",
    "truncated",
    "agent",
    "t",
    "episode",
    "policy",
    "others_probs",
)


@dataclass
class Transitions:
    """A batch of M egocentric transitions (numpy arrays).

    Attributes:
        obs, next_obs: (M, 5, h, w) uint8 observations before and after the step.
        action: (M,) int64, the player's own action.
        others: (M, n_agents - 1) int64, the others' actions in player order (the player skipped).
        reward: (M,) float32, the player's reward.
        truncated: (M,) bool, the episode ended with this step.
        agent: (M,) int64, which player's view this is.
        t: (M,) int64, the time step of ``obs``.
        episode: (M,) int64, a collection-wide episode number.
        policy: (M, n_agents - 1) int64, the others' policy ids (index into ``policy_names``) at this step.
        others_probs: (M, n_agents - 1, 5) float32, the others' true action distributions at this step (NaN
            for callables): the reference an opponent model is measured against.
    """

    obs: np.ndarray
    action: np.ndarray
    others: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    truncated: np.ndarray
    agent: np.ndarray
    t: np.ndarray
    episode: np.ndarray
    policy: np.ndarray
    others_probs: np.ndarray

    def __len__(self) -> int:
        return len(self.action)

    def take(self, rows: np.ndarray | slice) -> Transitions:
        return Transitions(**{f: getattr(self, f)[rows] for f in FIELDS})

    def start_observations(self, limit: int = 4096, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The first observations of the episodes in this data (``t == 0``), at most ``limit`` of them (a
        seeded random subset beyond that): (N, 5, h, w) uint8 and the player index of each (N,) int64.
        What a learned simulator stores to start imagined games from (``ImaginedEnv``'s default reset)."""
        rows = np.flatnonzero(self.t == 0)
        if len(rows) > limit:
            rows = np.sort(np.random.default_rng(seed).choice(rows, limit, replace=False))
        return self.obs[rows].astype(np.uint8), self.agent[rows].astype(np.int64)

    @staticmethod
    def concatenate(parts: Sequence[Transitions]) -> Transitions:
        return Transitions(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in FIELDS})


@dataclass(frozen=True)
class CollectConfig:
    """How data is collected.

    Attributes:
        steps: game steps per game (the number of transitions is steps * num_envs * n_agents).
        num_envs: games run at once; 1 is serial collection.
        policy: every player's policy: a name from ``gridmarl.opponents.OPPONENT_CHOICES`` or a list, one
            per player.
        switch_every: for ``switching`` players.
        seed: seed of the generator that drives the games and the policies.
    """

    steps: int = 1000
    num_envs: int = 64
    policy: str | tuple[str, ...] = "random"
    switch_every: int = 10
    seed: int = 0


def collect(game: GridConfig | dict | None, cfg: CollectConfig) -> Transitions:
    """Run ``cfg.num_envs`` games for ``cfg.steps`` steps each and return every player's transitions.

    The games, the players' policies and the respawns all draw from one generator seeded with
    ``cfg.seed``; a game that reaches ``max_steps`` is reset at once.
    """
    game = make_config(game)
    if cfg.steps < 1 or cfg.num_envs < 1:
        raise ValueError(f"steps and num_envs must be >= 1, got steps={cfg.steps}, num_envs={cfg.num_envs}")
    policy = list(cfg.policy) if isinstance(cfg.policy, list | tuple) else cfg.policy
    games = EgoGames(game, cfg.num_envs, ego=None, opponent=policy, switch_every=cfg.switch_every)
    core, players = games.core, games.opponents
    rng = np.random.default_rng(cfg.seed)
    N, A = cfg.num_envs, game.n_agents
    games.reset(rng)
    episode = np.arange(N)
    next_episode = N
    others_idx = np.array([[j for j in range(A) if j != i] for i in range(A)])  # (A, A-1)
    parts = []
    for _ in range(cfg.steps):
        state = games.state
        obs = core.observe(state)  # (N, A, 5, h, w)
        t = state.t.copy()
        joint, u = games.act(rng)  # (N, A)
        policy_ids = players.current.copy()
        probs = players.action_probs(state).astype(np.float32)  # (N, A, 5), after any switch
        rewards = games.advance(None, joint, u)
        nxt = core.observe(state)
        trunc = core.truncated(state)
        parts.append(
            Transitions(
                obs=obs.reshape(N * A, *obs.shape[2:]).astype(np.uint8),
                action=joint.reshape(-1),
                others=joint[:, others_idx].reshape(N * A, A - 1),
                reward=rewards.reshape(-1),
                next_obs=nxt.reshape(N * A, *nxt.shape[2:]).astype(np.uint8),
                truncated=np.repeat(trunc, A),
                agent=np.tile(np.arange(A), N),
                t=np.repeat(t, A),
                episode=np.repeat(episode, A),
                policy=policy_ids[:, others_idx].reshape(N * A, A - 1),
                others_probs=probs[:, others_idx].reshape(N * A, A - 1, 5),
            )
        )
        if trunc.any():
            rows = np.flatnonzero(trunc)
            games.reset(rng, rows)
            episode[rows] = next_episode + np.arange(len(rows))
            next_episode += len(rows)
    data = Transitions.concatenate(parts)
    # Order by game, then time, then player: the same order whatever num_envs is.
    order = np.lexsort((data.agent, data.t, data.episode))
    return data.take(order)


def save(
    path: str | Path, data: Transitions, game: GridConfig, cfg: CollectConfig, policy_names: Sequence[str]
) -> None:
    """Write ``data`` with its game and collection config to ``path`` (.npz), atomically."""
    path = Path(path)
    meta = {
        "format": DATA_FORMAT,
        "game": asdict(game),
        "collect": asdict(cfg),
        "policy_names": list(policy_names),
    }
    atomic_write(
        path,
        lambda f: np.savez_compressed(
            f, meta=np.array(json.dumps(meta)), **{k: getattr(data, k) for k in FIELDS}
        ),
    )


def load(path: str | Path, game: GridConfig | None = None) -> tuple[Transitions, dict[str, Any]]:
    """Read a file written by :func:`save`; returns the transitions and their metadata.

    Raises:
        ValueError: the file is not a transitions file, is damaged, is of another format version, or (when
            ``game`` is given) holds another game.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            arrays = {k: npz[k] for k in FIELDS}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as err:
        raise ValueError(
            f"{path} is not a readable gridmarl transitions file ({type(err).__name__}: {err})"
        ) from None
    if meta.get("format") != DATA_FORMAT:
        raise ValueError(f"{path} has format {meta.get('format')!r}; this version reads {DATA_FORMAT!r}")
    stored = make_config(
        **{k: v for k, v in meta["game"].items() if k != "walls"},
        walls=[tuple(w) for w in meta["game"]["walls"]],
    )
    meta["game"] = stored
    if game is not None and make_config(game) != stored:
        raise ValueError(f"{path} holds transitions of another game: {stored} (expected {make_config(game)})")
    return Transitions(**arrays), meta

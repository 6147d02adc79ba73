"""The batched-env interface the PPO trainer knows, and its implementation on the native numpy core.

A batched game is N games × L learning players stepped as arrays: the trainer hands it an (N, L) array of
actions and gets back (N, L) rewards and (N, L, 5, h, w) observations. It resets finished games itself
(in the same step) and hands back the last observation of the finished episode in ``final_obs``, so that
a truncated episode is bootstrapped from its real last state and not from the next episode's first one.

:class:`BatchedGames` is the interface (a :class:`typing.Protocol`); :class:`NativeGames` implements it
with :class:`gridmarl.GridCore` and the scripted :class:`gridmarl.opponents.Opponents`. The learned
simulator can implement the same interface; the trainer never sees which one it drives.

For data-parallel training the N games are split into *groups* with one generator each: a process runs
some of the groups, and the same groups give the same games whichever process runs them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from gridmarl.config import GridConfig, make_config
from gridmarl.core import GridCore, State
from gridmarl.opponents import DEFAULT_SWITCH_POOL, OPPONENT_CHOICES, Opponents

SELF_PLAY = "self"


@dataclass
class StepResult:
    """What one step of a batched game returns.

    Attributes:
        obs: (N, L, 5, h, w) float32, every learner's next observation (a new episode's first one where
            the game was truncated on this step).
        rewards: (N, L) float32.
        truncated: (N,) bool, the game reached ``max_steps`` on this step (and was reset).
        final_obs: (N, L, 5, h, w) float32 or None: where ``truncated``, the finished episode's last
            observation; None when no game ended on this step.
        final_state: (N, S, H, W) float32 or None: the same for the global state.
        others: (N, L, n_agents - 1) int64, for every learner the other players' actions on this step, in
            player order with the learner skipped (a_{-i}, the opponent-modelling target).
        positions: (N, n_agents) int64 or None: every player's cell (row * width + col) after the move.
        pickups: (N, n_agents, n_agents) int64 or None: ``[g, a, c]`` coins of colour c picked by player a.
    """

    obs: np.ndarray
    rewards: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray | None
    final_state: np.ndarray | None
    others: np.ndarray
    positions: np.ndarray | None = None
    pickups: np.ndarray | None = None


@runtime_checkable
class BatchedGames(Protocol):
    """N games × L learners stepped as arrays (see the module docstring).

    Attributes:
        config: the game (its grid sets the goal-inference targets' cells).
        num_envs: N, the games this process steps.
        learners: the L players that the trainer's actions drive, in player order.
        group_ids, envs_per_group: the generator groups this process runs (N = len(group_ids) *
            envs_per_group); the trainer draws its own per-group randomness to match.
    """

    config: GridConfig
    num_envs: int
    learners: tuple[int, ...]
    group_ids: tuple[int, ...]
    envs_per_group: int

    def reset(self) -> np.ndarray:
        """Start every game; returns the learners' observations (N, L, 5, h, w)."""
        ...

    def step(self, actions: np.ndarray) -> StepResult:
        """Play the learners' actions (N, L) int64."""
        ...

    def state(self) -> np.ndarray:
        """The global state of every game, (N, 2 * n_agents + 1, H, W) float32 (for a centralised critic)."""
        ...

    def get_state(self) -> dict[str, Any]:
        """Everything that decides the future, generators included (for an exact resume)."""
        ...

    def set_state(self, snapshot: dict[str, Any]) -> None: ...


def check_opponent(opponent: Any, config: GridConfig) -> None:
    """Refuse an opponent spec clearly, before any game is built."""
    allowed = f"{list(OPPONENT_CHOICES)}, '{SELF_PLAY}' (every player learns), a list of these, or a policy"
    specs = opponent if isinstance(opponent, list | tuple) else [opponent]
    for spec in specs:
        if isinstance(spec, str):
            if spec not in (*OPPONENT_CHOICES, SELF_PLAY):
                raise ValueError(f"opponent={spec!r} is unknown; allowed: {allowed}")
            if spec == SELF_PLAY and isinstance(opponent, list | tuple):
                raise ValueError(f"opponent='{SELF_PLAY}' cannot be part of a list; allowed: {allowed}")
        elif not callable(spec):
            raise ValueError(f"opponent={spec!r} is neither a name nor a callable; allowed: {allowed}")
    if isinstance(opponent, list | tuple) and len(opponent) != config.n_agents - 1:
        raise ValueError(
            f"opponent list has {len(opponent)} entries; this game has {config.n_agents - 1} opponents"
        )


class _Group:
    """One generator's share of the games."""

    def __init__(self, core: GridCore, n: int, ego: int | None, specs: list[Any], seed: Sequence[int], **kw):
        self.core = core
        self.n = n
        self.rng = np.random.default_rng(list(seed))
        self.opponents = Opponents(core, ego, specs, **kw) if ego is not None else None
        self.state: State | None = None

    def reset(self, rows: np.ndarray | None = None) -> None:
        R = self.n if rows is None else len(rows)
        n_place = self.core.n_agents + self.core.n_coins
        extra = self.opponents.n_reset_draws if self.opponents is not None else 0
        u = self.rng.random((R, n_place + extra))
        fresh = self.core.reset(u[:, :n_place])
        if rows is None:
            self.state = fresh
        else:
            self.state.put(rows, fresh)
        if self.opponents is not None:
            self.opponents.reset(self.n, rows, u[:, n_place:])


class NativeGames:
    """:class:`BatchedGames` on the native numpy core.

    Args:
        config: the game (a :class:`GridConfig` or ``make_config`` keyword dict).
        num_envs: games in all groups together (divisible by ``groups``).
        opponent: ``"self"``: every player learns (L = n_agents, self-play with shared parameters).
            Otherwise player ``ego`` learns (L = 1) and the others follow ``opponent`` as
            ``gym.make("GridMARL-v0", opponent=...)`` takes it: a name (``random``, ``greedy``,
            ``selfish``, ``stay``, ``switching``), a list of these (one per opponent), a callable
            ``policy(obs) -> action``, or a loaded policy (:func:`gridmarl_wm.load_policy`), which is
            run on the whole batch at once.
        seed: seeds every group's generator (group g uses ``(seed, g)``).
        groups: generator groups; ``group_ids`` selects the ones this process runs (default: all).
        ego, switch_every, switch_pool: as in ``gym.make("GridMARL-v0", ...)``.
    """

    def __init__(
        self,
        config: GridConfig | dict | None = None,
        num_envs: int = 256,
        opponent: Any = "random",
        seed: int = 0,
        groups: int = 1,
        group_ids: Sequence[int] | None = None,
        ego: int = 0,
        switch_every: int = 10,
        switch_pool: Sequence[str] = DEFAULT_SWITCH_POOL,
    ) -> None:
        cfg = make_config(config)
        self.config = cfg
        for name, value in (("num_envs", num_envs), ("groups", groups)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if num_envs % groups:
            raise ValueError(f"num_envs={num_envs} must be divisible by groups={groups}")
        check_opponent(opponent, cfg)
        if isinstance(ego, bool) or not isinstance(ego, int | np.integer) or not 0 <= ego < cfg.n_agents:
            raise ValueError(f"ego must be a player index in 0..{cfg.n_agents - 1}, got {ego!r}")
        self.group_ids = tuple(range(groups)) if group_ids is None else tuple(int(g) for g in group_ids)
        if not self.group_ids or min(self.group_ids) < 0 or max(self.group_ids) >= groups:
            raise ValueError(f"group_ids must lie in 0..{groups - 1}, got {self.group_ids}")
        self.envs_per_group = num_envs // groups
        self.num_envs = self.envs_per_group * len(self.group_ids)
        self.core = GridCore(cfg)
        self.self_play = opponent == SELF_PLAY
        self.learners = tuple(range(cfg.n_agents)) if self.self_play else (int(ego),)
        others_of = [[j for j in range(cfg.n_agents) if j != i] for i in self.learners]
        self._others_of = np.array(others_of, dtype=np.int64)  # (L, n - 1)
        # Loaded policies act on the whole batch at once: the Opponents see "stay" in their slots and the
        # policy overwrites those actions, using the uniforms the Opponents drew for the slot.
        self._batched_slots: dict[int, Any] = {}
        specs: list[Any] = []
        if not self.self_play:
            raw = list(opponent) if isinstance(opponent, list | tuple) else [opponent] * (cfg.n_agents - 1)
            for k, spec in enumerate(raw):
                if hasattr(spec, "act_batch"):
                    self._batched_slots[k] = spec
                    specs.append("stay")
                else:
                    specs.append(spec)
        kw = {"switch_every": switch_every, "switch_pool": switch_pool}
        ego_or_none = None if self.self_play else int(ego)
        self.groups = [
            _Group(self.core, self.envs_per_group, ego_or_none, specs, (seed, g), **kw)
            for g in self.group_ids
        ]
        self._slots = np.array([j for j in range(cfg.n_agents) if j not in self.learners], dtype=np.int64)

    # ------------------------------------------------------------------ the interface
    def reset(self) -> np.ndarray:
        for g in self.groups:
            g.reset()
        return self._observe()

    def _observe(self) -> np.ndarray:
        parts = [self.core.observe(g.state, self.learners) for g in self.groups]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def state(self) -> np.ndarray:
        parts = [self.core.global_state(g.state) for g in self.groups]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _joint(self, g: _Group, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The joint action (n, n_agents) and respawn uniforms (n, n_coins) of one group's step."""
        n, A, C = g.n, self.core.n_agents, self.core.n_coins
        joint = np.empty((n, A), dtype=np.int64)
        joint[:, list(self.learners)] = actions
        if g.opponents is None:
            return joint, g.rng.random((n, C))
        n_draw = g.opponents.n_step_draws
        u = g.rng.random((n, n_draw + C))
        opp = g.opponents.act(g.state, u[:, :n_draw])
        for k, policy in self._batched_slots.items():
            agent = int(self._slots[k])
            obs = self.core.observe(g.state, (agent,))[:, 0]
            opp[:, k] = policy.act_batch(obs, u[:, k])
        joint[:, self._slots] = opp
        return joint, u[:, n_draw:]

    def step(self, actions: np.ndarray) -> StepResult:
        actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs, len(self.learners))
        n, A = self.envs_per_group, self.core.n_agents
        rewards, trunc, others, positions, pickups = [], [], [], [], []
        final_obs = final_state = None
        for k, g in enumerate(self.groups):
            rows = slice(k * n, (k + 1) * n)
            joint, u = self._joint(g, actions[rows])
            coins_before = g.state.coins.copy()
            r, _ = self.core.step(g.state, joint, u)
            pos = g.state.agents.copy()
            on = coins_before[:, :, None] == pos[:, None, :]  # (n, C, A): coin c picked by player a
            picks = np.zeros((n, A, A), dtype=np.int64)
            for colour in range(A):
                picks[:, :, colour] = on[:, self.core.coin_colour == colour].sum(axis=1)
            t = self.core.truncated(g.state)
            if t.any():
                if final_obs is None:
                    final_obs = np.zeros(
                        (self.num_envs, len(self.learners), *self.config.obs_shape), np.float32
                    )
                    final_state = np.zeros((self.num_envs, *self.config.state_shape), np.float32)
                ended = np.flatnonzero(t)
                sub = g.state.take(ended)
                final_obs[rows][ended] = self.core.observe(sub, self.learners)
                final_state[rows][ended] = self.core.global_state(sub)
                g.reset(ended)
            rewards.append(r[:, list(self.learners)])
            trunc.append(t)
            others.append(joint[:, self._others_of])
            positions.append(pos)
            pickups.append(picks)
        cat = (lambda xs: xs[0]) if len(self.groups) == 1 else np.concatenate
        return StepResult(
            obs=self._observe(), rewards=cat(rewards), truncated=cat(trunc), final_obs=final_obs,
            final_state=final_state, others=cat(others), positions=cat(positions), pickups=cat(pickups),
        )  # fmt: skip

    def get_state(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for g, gid in zip(self.groups, self.group_ids):
            out[f"group{gid}"] = {
                "agents": g.state.agents.copy(),
                "coins": g.state.coins.copy(),
                "t": g.state.t.copy(),
                "opponents": None if g.opponents is None else g.opponents.get_state(),
                # the generator's state holds 128-bit integers: kept as JSON text
                "rng": json.dumps(g.rng.bit_generator.state),
            }
        return out

    def set_state(self, snapshot: dict[str, Any]) -> None:
        for g, gid in zip(self.groups, self.group_ids):
            key = f"group{gid}"
            if key not in snapshot:
                raise ValueError(f"the saved games have no {key}: they were made with other groups")
            s = snapshot[key]
            g.state = State(
                np.asarray(s["agents"]).copy(), np.asarray(s["coins"]).copy(), np.asarray(s["t"]).copy()
            )
            if g.opponents is not None:
                g.opponents.set_state(np.asarray(s["opponents"]))
            g.rng.bit_generator.state = json.loads(s["rng"])

"""Policy checkpoints (atomic, versioned, ``weights_only``-loadable) and a trained policy as a callable.

``policy.pt`` holds plain containers and tensors only: the game, the policy config, the weights, the PPO
config, how the games were made, and (for resuming) the optimiser, generators and games in flight.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from gridmarl.config import GridConfig, make_config
from gridmarl_wm.io import atomic_write
from gridmarl_wm.model.checkpoint import read_versioned

POLICY_FORMAT = "gridmarl-wm-policy/1"


def save_policy_file(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (with ``format`` added) atomically: a crash leaves the old file in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save({"format": POLICY_FORMAT, **payload}, f))


def read_policy_file(path: str | Path) -> dict[str, Any]:
    """Read and check a policy checkpoint.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is damaged, not a gridmarl policy, or of another format version.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "policy.pt"
    return read_versioned(
        path, POLICY_FORMAT, ("game", "policy_config", "policy"), "policy", "policy checkpoint"
    )


class LoadedPolicy:
    """A trained policy as ``policy(obs) -> action``: one observation (5, h, w) gives an ``int``, a batch
    (B, 5, h, w) gives (B,) int64. Usable wherever the game takes a callable opponent
    (``gym.make("GridMARL-v0", opponent=policy)``), and batched by :class:`NativeGames`.

    Actions are sampled from the policy (``deterministic=False``, seeded by ``seed``) or its most likely
    action. A policy trained with ``history`` > 1 keeps the last observations it was called with: it treats
    successive calls as one game (a batch as B games); call :meth:`reset` at a new episode.

    Attributes:
        game: the game the policy was trained on; config: its :class:`PolicyConfig`; player: the player
            index it is given when it takes one.
    """

    def __init__(self, net, game: GridConfig, player: int = 0, deterministic: bool = False, seed: int = 0):
        self.net = net.eval()
        self.config = net.cfg
        self.game = game
        self.player = int(player)
        self.deterministic = deterministic
        self.rng = np.random.default_rng(seed)
        self.__name__ = "trained_policy"
        self._hist: np.ndarray | None = None

    def reset(self) -> None:
        self._hist = None

    def _check(self, obs: Any) -> tuple[np.ndarray, bool]:
        if isinstance(obs, torch.Tensor):
            obs = obs.detach().cpu().numpy()
        if not isinstance(obs, np.ndarray):
            raise TypeError(
                f"obs must be a numpy array or tensor of shape {self.config.obs_shape}, got {type(obs).__name__}"
            )
        shape = tuple(self.config.obs_shape)
        single = obs.shape == shape
        if not single and (obs.ndim != 4 or obs.shape[1:] != shape):
            raise ValueError(
                f"obs must have shape {shape} or (B, *{shape}) for this policy's game, got {obs.shape}"
            )
        return np.asarray(obs, dtype=np.float32).reshape(-1, *shape), single

    def _inputs(self, obs: np.ndarray) -> np.ndarray:
        k = self.config.history
        if k == 1:
            return obs
        if self._hist is None or self._hist.shape[0] != obs.shape[0]:
            self._hist = np.zeros((obs.shape[0], k, *obs.shape[1:]), np.float32)
        self._hist = np.concatenate([self._hist[:, 1:], obs[:, None]], axis=1)
        return self._hist

    @torch.no_grad()
    def logits(self, obs: np.ndarray) -> torch.Tensor:
        """Action logits (B, 5) for a batch of observations (B, 5, h, w) (advances the history)."""
        x = torch.from_numpy(np.ascontiguousarray(self._inputs(obs))).reshape(obs.shape[0], -1)
        player = torch.full((x.shape[0],), self.player, dtype=torch.int64)
        state = None
        if self.config.central_critic:  # the critic is not needed to act: give it a placeholder
            state = torch.zeros((x.shape[0], *self.config.state_shape))
        return self.net(x, player, state).logits

    def act_batch(self, obs: np.ndarray, u: np.ndarray | None = None) -> np.ndarray:
        """Actions (B,) int64 for observations (B, 5, h, w); ``u`` (B,) uniforms decide the draws."""
        from gridmarl_wm.agents.policy import sample_actions

        logits = self.logits(np.asarray(obs, dtype=np.float32))
        if self.deterministic:
            return logits.argmax(-1).numpy().astype(np.int64)
        return sample_actions(logits, self.rng.random(len(logits)) if u is None else np.asarray(u))

    def __call__(self, obs: Any) -> int | np.ndarray:
        batch, single = self._check(obs)
        actions = self.act_batch(batch)
        return int(actions[0]) if single else actions


def load_policy(
    path: str | Path,
    game: GridConfig | dict | None = None,
    player: int = 0,
    deterministic: bool = False,
    seed: int = 0,
) -> LoadedPolicy:
    """The trained policy at ``path`` (a ``policy.pt`` or the folder holding it) as a callable.

    Args:
        game: refuse a policy of another game (a :class:`GridConfig` or ``make_config`` keywords).
        player: the player index given to a policy that takes one.
        deterministic: play the most likely action instead of sampling.
        seed: of the action draws.

    Raises:
        FileNotFoundError, ValueError: no file, a damaged or foreign file, another game, or weights that do
            not fit the saved config.
    """
    from gridmarl_wm.agents.policy import ActorCritic, PolicyConfig

    data = read_policy_file(path)
    stored = make_config(**{**data["game"], "walls": [tuple(w) for w in data["game"].get("walls", [])]})
    if game is not None and make_config(game) != stored:
        raise ValueError(f"{path} holds a policy for another game: {stored} (expected {make_config(game)})")
    if isinstance(player, bool) or not isinstance(player, int) or not 0 <= player < stored.n_agents:
        raise ValueError(f"player must be a player index in 0..{stored.n_agents - 1}, got {player!r}")
    cfg = PolicyConfig.from_dict(data["policy_config"])
    if cfg.obs_shape != stored.obs_shape:
        raise ValueError(
            f"{path}: the policy's obs_shape {cfg.obs_shape} does not fit its game {stored.obs_shape}"
        )
    net = ActorCritic(cfg)
    try:
        net.load_state_dict(data["policy"])
    except RuntimeError as err:
        raise ValueError(f"{path}: the weights do not fit the saved policy config: {err}") from None
    return LoadedPolicy(net, stored, player=player, deterministic=deterministic, seed=seed)

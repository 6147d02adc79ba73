"""Small helpers shared by the world-model tests."""

import functools

import numpy as np
import torch

import gridmarl
from gridmarl_wm.model import WorldModel, WorldModelConfig
from gridmarl_wm.model.tokens import LearnedStructure, learn_structure

GAMES = {
    "default": {},
    "partial": {"view_size": 3},
    "walls-3p": {"layout": gridmarl.config.WALLED_LAYOUT, "n_agents": 3, "coins_per_agent": 2},
    "8x8-4p-partial": {"height": 8, "width": 8, "n_agents": 4, "view_size": 3},
}


def tiny_model(game, **overrides) -> WorldModel:
    """A small untrained model of ``game`` whose token layout and constraints come from random play on it
    (:func:`random_play_structure`), as training would learn them."""
    torch.manual_seed(0)
    structure = random_play_structure(game)
    settings = {"max_count": tuple(m + 1 for m in structure.max_count), "structure": structure, **overrides}
    cfg = WorldModelConfig(
        obs_shape=game.obs_shape, n_agents=game.n_agents, features=16, latent=32, d_model=32, vq_codes=16,
        vq_groups=4, reward_values=(-2.0, -1.0, 0.0, 1.0), **settings,
    )  # fmt: skip
    return WorldModel(cfg)


def eight_deterministic_transitions(game) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two start states of the default game, each with four joint actions that reach no coin and lead to
    four different next observations: observations (8, 5, 4, 4), joint actions (8, 2) and next observations.
    A model that ignores its actions cannot give each true outcome more than about a quarter."""
    core = gridmarl.GridCore(game)
    state = gridmarl.State(np.array([[5, 10], [6, 9]]), np.array([[3, 12], [0, 15]]), np.zeros(2, int))
    joints = np.array([[0, 0], [1, 2], [2, 3], [4, 1]])
    starts = state.take(np.repeat([0, 1], 4))
    obs = torch.as_tensor(core.observe(starts, (0,))[:, 0])
    joint = torch.as_tensor(np.tile(joints, (2, 1)))
    core.step(starts, joint.numpy(), np.zeros((8, 2)))
    nxt = torch.as_tensor(core.observe(starts, (0,))[:, 0])
    assert len({bytes(x.numpy()) for x in nxt}) == 8
    return obs, joint, nxt


@functools.lru_cache(maxsize=16)
def random_play_structure(game, games=256, steps=8, seed=0) -> LearnedStructure:
    """The :class:`LearnedStructure` that random play on ``game`` shows (every player's view)."""
    core, state = random_states(game, games, seed, steps=0)
    rng = np.random.default_rng(seed + 1)
    obs, nxt = [], []
    for _ in range(steps):
        obs.append(core.observe(state))
        core.step(state, rng.integers(0, 5, (games, game.n_agents)), rng.random((games, game.n_coins)))
        nxt.append(core.observe(state))
    return learn_structure(
        np.concatenate(obs).reshape(-1, *game.obs_shape), np.concatenate(nxt).reshape(-1, *game.obs_shape)
    )


def random_states(game, n, seed=0, steps=6):
    core = gridmarl.GridCore(game)
    rng = np.random.default_rng(seed)
    state = core.reset(rng.random((n, game.n_agents + game.n_coins)))
    for _ in range(steps):
        core.step(state, rng.integers(0, 5, (n, game.n_agents)), rng.random((n, game.n_coins)))
    return core, state

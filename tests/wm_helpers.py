"""Small helpers shared by the world-model tests."""

import numpy as np
import torch

import gridmarl
from gridmarl_wm.model import WorldModel, WorldModelConfig
from gridmarl_wm.tokens import TokenLayout

GAMES = {
    "default": {},
    "partial": {"view_size": 3},
    "walls-3p": {"layout": gridmarl.config.WALLED_LAYOUT, "n_agents": 3, "coins_per_agent": 2},
    "8x8-4p-partial": {"height": 8, "width": 8, "n_agents": 4, "view_size": 3},
}


def tiny_model(game, **overrides) -> WorldModel:
    torch.manual_seed(0)
    cfg = WorldModelConfig(
        obs_shape=game.obs_shape, n_agents=game.n_agents, max_count=TokenLayout.for_game(game).max_count,
        full_view=game.view_size is None, features=16, latent=32, d_model=32, vq_codes=16, vq_groups=4,
        reward_values=(-2.0, -1.0, 0.0, 1.0), **overrides,
    )  # fmt: skip
    return WorldModel(cfg)


def random_states(game, n, seed=0, steps=6):
    core = gridmarl.GridCore(game)
    rng = np.random.default_rng(seed)
    state = core.reset(rng.random((n, game.n_agents + game.n_coins)))
    for _ in range(steps):
        core.step(state, rng.integers(0, 5, (n, game.n_agents)), rng.random((n, game.n_coins)))
    return core, state

"""World-model shapes, validity of samples, exactness of log_prob, and learning on a few transitions."""

import itertools

import numpy as np
import pytest
import torch
from wm_helpers import GAMES, random_states, tiny_model

import gridmarl
from gridmarl_wm.model import FUSIONS, VARIANTS
from gridmarl_wm.tokens import TokenLayout


@pytest.mark.parametrize("game_name", list(GAMES))
def test_tokens_round_trip_and_admit_real_observations(game_name):
    game = gridmarl.make_config(**GAMES[game_name])
    core, state = random_states(game, 64)
    obs = torch.as_tensor(core.observe(state).reshape(-1, *game.obs_shape))
    layout = TokenLayout.for_game(game)
    tokens = layout.encode(obs)
    assert tokens.shape == (len(obs), layout.length)
    assert torch.equal(layout.decode(tokens, game.obs_shape[1:]), obs)
    inv = layout.invariants(obs) if game.view_size is None else None
    allowed = layout.allowed(layout.previous(tokens), invariants=inv)
    assert allowed.gather(2, tokens[..., None]).all()


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("game_name", list(GAMES))
def test_shapes_and_valid_samples(game_name, variant, fusion):
    game = gridmarl.make_config(**GAMES[game_name])
    model = tiny_model(game, variant=variant, fusion=fusion).eval()
    core, state = random_states(game, 16)
    obs = core.observe(state, (0,))[:, 0]
    a = np.arange(16) % 5
    others = np.zeros((16, game.n_agents - 1), dtype=np.int64)
    g = torch.Generator().manual_seed(0)
    nxt, reward = model.sample(obs, a, others, generator=g)
    assert nxt.shape == (16, *game.obs_shape) and reward.shape == (16,)
    assert set(reward.tolist()) <= {-2.0, -1.0, 0.0, 1.0}
    lp = model.log_prob(obs, a, others, nxt)
    assert lp.shape == (16,) and torch.isfinite(lp).all() and (lp <= 1e-6).all()
    if game.view_size is None:  # a full-view sample is always a valid observation, even untrained
        flat = nxt.flatten(2)
        walls = torch.as_tensor(obs).flatten(2)[:, 4]
        assert (flat[:, 0].sum(1) == 1).all() and (flat[:, 1].sum(1) == game.n_agents - 1).all()
        assert (flat[:, 2].sum(1) == game.coins_per_agent).all()
        assert (flat[:, 3].sum(1) == (game.n_agents - 1) * game.coins_per_agent).all()
        assert torch.equal(flat[:, 4], walls) and (flat[:, :4] * walls[:, None]).sum() == 0
    probs = model.opponent_probs(obs)
    assert probs.shape == (16, game.n_agents - 1, 5) and torch.allclose(probs.sum(-1), torch.ones(()))
    assert model.value(obs).shape == (16,)


def test_sample_log_prob_agrees_with_log_prob():
    game = gridmarl.make_config()
    model = tiny_model(game).eval()
    core, state = random_states(game, 32)
    obs = torch.as_tensor(core.observe(state, (0,))[:, 0])
    joint = torch.randint(0, 5, (32, 2), generator=torch.Generator().manual_seed(1))
    pred = model(obs, joint)
    tokens, logp = model.decoder.sample(pred.feats, obs, torch.Generator().manual_seed(2))
    assert torch.allclose(logp, model.decoder.log_prob(pred.feats, tokens, obs), atol=1e-5)


EXCLUSIVE = ((0, 2), (0, 3), (1, 2), (1, 3), (2, 3))


@pytest.mark.parametrize("exclusive", [(), EXCLUSIVE], ids=["no-exclusions", "coins-apart"])
def test_log_prob_sums_to_one_over_every_observation(exclusive):
    """On a 2x3 full-view game the model's distribution lives on the 6^4 observations that keep one self,
    one other, one coin each and no walls (fewer with channel exclusions): their probabilities sum to 1."""
    game = gridmarl.make_config(height=2, width=3)
    model = tiny_model(game, exclusive=exclusive).eval()
    core, state = random_states(game, 3)
    cells = range(6)
    candidates = []
    for s, o, c_own, c_other in itertools.product(cells, cells, cells, cells):
        x = np.zeros((5, 6), dtype=np.float32)
        x[0, s] = x[1, o] = x[2, c_own] = x[3, c_other] = 1
        candidates.append(x.reshape(5, 2, 3))
    candidates = np.stack(candidates)
    for row in range(3):
        obs = core.observe(state.take(row), (0,))[:, 0]
        source = np.zeros(len(candidates), dtype=np.int64)
        lp = model.log_prob(obs, [1], [[3]], candidates, source=source)
        assert abs(lp.exp().sum().item() - 1.0) < 1e-4


def test_a_tiny_model_overfits_a_handful_of_transitions():
    game = gridmarl.make_config()
    model = tiny_model(game)
    core, state = random_states(game, 8, seed=3)
    obs = torch.as_tensor(core.observe(state, (0,))[:, 0])
    joint = torch.zeros(8, 2, dtype=torch.long)  # everybody stays: the next observation is the same
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        pred = model(obs, joint)
        loss = -model.decode_log_prob(pred, obs, obs).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert model.log_prob(obs, joint[:, 0], joint[:, 1:], obs).exp().min() > 0.9


def test_config_errors():
    game = gridmarl.make_config()
    with pytest.raises(ValueError, match="variant must be one of"):
        tiny_model(game, variant="dreamer")
    with pytest.raises(ValueError, match="fusion must be one of"):
        tiny_model(game, fusion="add")


def test_exclusive_channels_are_never_violated():
    """Channel pairs the data never shows on one cell (coins under players, two coins together) never
    appear in samples, and get probability 0."""
    game = gridmarl.make_config(height=3, width=3, coins_per_agent=2)
    model = tiny_model(game, exclusive=EXCLUSIVE).eval()
    core, state = random_states(game, 64)
    obs = core.observe(state, (0,))[:, 0]
    nxt, _ = model.sample(
        obs, np.zeros(64, int), np.zeros((64, 1), int), generator=torch.Generator().manual_seed(0)
    )
    present = nxt.flatten(2) > 0
    for a, b in EXCLUSIVE:
        assert not (present[:, a] & present[:, b]).any()
    bad = nxt.clone()
    cell = bad[0, 0].flatten().argmax()
    bad[0, 2].view(-1)[:] = 0
    bad[0, 2].view(-1)[cell] = 1  # an own coin under the player
    bad[0, 2].view(-1)[(cell + 1) % 9] = 1
    assert model.log_prob(obs[:1], [0], [[0]], bad[:1]).item() == -np.inf

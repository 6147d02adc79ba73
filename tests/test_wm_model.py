"""World-model shapes, validity of samples, exactness of log_prob, the learned constraints, and learning a
few transitions that only the actions tell apart."""

import itertools

import numpy as np
import pytest
import torch
from wm_helpers import (
    GAMES,
    eight_deterministic_transitions,
    random_play_structure,
    random_states,
    tiny_model,
)

import gridmarl
from gridmarl_wm.model import FUSIONS, VARIANTS, WorldModel
from gridmarl_wm.model.tokens import LearnedStructure, TokenLayout, learn_structure


def _random_transitions(game, n=64, seed=0):
    """(obs, joint, next_obs) of player_0 after a random joint action from random states."""
    core, state = random_states(game, n, seed)
    obs = core.observe(state, (0,))[:, 0]
    joint = np.random.default_rng(seed).integers(0, 5, (n, game.n_agents))
    core.step(state, joint, np.random.default_rng(seed + 1).random((n, game.n_coins)))
    return obs, joint, core.observe(state, (0,))[:, 0]


@pytest.mark.parametrize("game_name", list(GAMES))
def test_tokens_round_trip_and_admit_real_transitions(game_name):
    game = gridmarl.make_config(**GAMES[game_name])
    structure = random_play_structure(game)
    layout = TokenLayout(game.obs_shape[1] * game.obs_shape[2], tuple(m + 1 for m in structure.max_count))
    obs, _, nxt = _random_transitions(game, seed=5)
    obs, nxt = torch.as_tensor(obs), torch.as_tensor(nxt)
    tokens = layout.encode(nxt)
    assert tokens.shape == (len(nxt), layout.length)
    assert torch.equal(layout.decode(tokens, game.obs_shape[1:]), nxt)
    for constraints in (None, structure):  # a real step breaks none of the constraints random play shows
        allowed = layout.allowed(layout.previous(tokens), tokens=tokens, current=obs, structure=constraints)
        assert allowed.gather(2, tokens[..., None]).all()
    assert structure.admits(obs.numpy(), nxt.numpy()).all()


def test_learn_structure_reads_each_fact_from_the_data():
    obs = np.zeros((2, 5, 2, 2), dtype=np.uint8)
    nxt = np.zeros_like(obs)
    obs[:, 0, 0, 0] = nxt[:, 0, 1, 1] = 1  # channel 0 moves, one object, never on cells 1, 2
    nxt[0, 0] = [[1, 0], [0, 0]]
    obs[:, 1, 0, 1] = 2  # channel 1 stacks two on one cell, then splits
    nxt[:, 1, 0, 1] = nxt[:, 1, 1, 0] = 1
    obs[0, 2, 1, 0] = 1  # channel 2: one object appears in the second transition
    nxt[:, 2, 1, 0] = 1
    obs[:, 4, 1, 1] = nxt[:, 4, 1, 1] = 1  # channel 4 never changes
    s = learn_structure(obs, nxt)
    assert s.max_count == (1, 2, 1, 0, 1) and s.stacks == (False, True, False, False, False)
    assert s.counts_kept == (True, True, False, True, True)
    assert s.static == (False, False, False, True, True)
    assert s.empty_cells == ((1, 2), (0, 3), (0, 1, 3), (0, 1, 2, 3), (0, 1, 2))
    # channel 0 shares cell 3 with the walls in one transition, channel 1 shares cell 2 with channel 2
    assert (0, 4) not in s.exclusive and (1, 2) not in s.exclusive and (0, 1) in s.exclusive
    assert LearnedStructure.from_dict(__import__("dataclasses").asdict(s)) == s
    with pytest.raises(ValueError, match="obs and next_obs"):
        learn_structure(obs, nxt[:1])


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
    # even untrained, a sample keeps every fact the data showed, because the learned constraints are on
    assert model.cfg.structure.admits(obs, nxt.numpy()).all()
    probs = model.opponent_probs(obs)
    assert probs.shape == (16, game.n_agents - 1, 5) and torch.allclose(probs.sum(-1), torch.ones(()))
    assert model.value(obs).shape == (16,)


def test_without_constraints_nothing_is_enforced():
    """Switched off, an untrained model breaks what the data showed (objects appear, vanish, stack and
    sit on walls), so its validity comes from the learned structure, not from anything built in."""
    game = gridmarl.make_config(**GAMES["walls-3p"])
    model = tiny_model(game).eval()
    core, state = random_states(game, 256)
    obs = core.observe(state, (0,))[:, 0]
    a, others = np.zeros(256, int), np.zeros((256, 2), int)
    with model.constraints(False):
        assert not model.constraints_on
        nxt, _ = model.sample(obs, a, others, generator=torch.Generator().manual_seed(0))
        lp_off = model.log_prob(obs, a, others, nxt)
    assert model.constraints_on
    broken = ~model.cfg.structure.admits(obs, nxt.numpy())
    assert broken.mean() > 0.5 and torch.isfinite(lp_off).all()
    assert torch.isinf(model.log_prob(obs[broken], a[broken], others[broken], nxt[broken])).all()
    counts = nxt.flatten(2).sum(-1)
    assert (counts != torch.as_tensor(obs).flatten(2).sum(-1)).any(0).all()  # every channel's count changed
    assert (nxt.flatten(2).amax(-1)[:, [0, 2]] > 1).any()  # a channel never seen stacked stacked


def test_constraints_switch_and_errors():
    game = gridmarl.make_config()
    model = tiny_model(game)
    assert model.set_constraints(False) is model and not model.constraints_on
    model.set_constraints(True)
    with pytest.raises(TypeError, match="on must be a bool"):
        model.set_constraints(1)
    bare = tiny_model(game, structure=None)
    assert not bare.constraints_on
    with pytest.raises(ValueError, match="no learned structure to apply"):
        bare.set_constraints(True)
    off = tiny_model(game, constraints=False)
    assert not off.constraints_on
    with pytest.raises(ValueError, match="cannot hold the objects the data showed"):
        tiny_model(game, max_count=(1, 1, 0, 1, 0))


def test_sample_log_prob_agrees_with_log_prob():
    game = gridmarl.make_config()
    model = tiny_model(game).eval()
    core, state = random_states(game, 32)
    obs = torch.as_tensor(core.observe(state, (0,))[:, 0])
    joint = torch.randint(0, 5, (32, 2), generator=torch.Generator().manual_seed(1))
    pred = model(obs, joint)
    for on in (True, False):
        with model.constraints(on):
            tokens, logp = model.decoder.sample(pred.feats, obs, torch.Generator().manual_seed(2))
            assert torch.allclose(logp, model.decoder.log_prob(pred.feats, tokens, obs), atol=1e-5)


@pytest.mark.parametrize("constraints", [True, False], ids=["constrained", "unconstrained"])
def test_log_prob_sums_to_one_over_every_observation(constraints):
    """On a 2x3 game with room for one object per channel, every observation the layout can write (each
    channel empty or on one of 6 cells: 7^5) gets a probability, and they sum to 1 both ways."""
    game = gridmarl.make_config(height=2, width=3)
    model = tiny_model(game, max_count=(1, 1, 1, 1, 1), constraints=constraints).eval()
    core, state = random_states(game, 2)
    candidates = []
    for cells in itertools.product(range(7), repeat=5):
        x = np.zeros((5, 7), dtype=np.float32)
        x[np.arange(5), cells] = 1
        candidates.append(x[:, :6].reshape(5, 2, 3))
    candidates = np.stack(candidates)
    for row in range(2):
        obs = core.observe(state.take(row), (0,))[:, 0]
        source = np.zeros(len(candidates), dtype=np.int64)
        p = model.log_prob(obs, [1], [[3]], candidates, source=source).exp()
        assert abs(p.sum().item() - 1.0) < 1e-4
        admitted = torch.as_tensor(model.cfg.structure.admits(np.repeat(obs, len(candidates), 0), candidates))
        if constraints:
            assert (p[~admitted] == 0).all()
        else:
            assert (p > 0).all()


def test_a_tiny_model_learns_what_the_actions_do():
    """Two start states, each with four joint actions that lead to four different next observations: a
    model that ignores its actions cannot give each more than about a quarter."""
    game = gridmarl.make_config()
    obs, joint, nxt = eight_deterministic_transitions(game)
    model = tiny_model(game)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = -model.decode_log_prob(model(obs, joint), obs, nxt).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert model.log_prob(obs, joint[:, 0], joint[:, 1:], nxt).exp().min() > 0.9


def test_config_errors():
    game = gridmarl.make_config()
    with pytest.raises(ValueError, match="variant must be one of"):
        tiny_model(game, variant="dreamer")
    with pytest.raises(ValueError, match="fusion must be one of"):
        tiny_model(game, fusion="add")
    with pytest.raises(TypeError, match="structure must be a LearnedStructure"):
        tiny_model(game, structure={"max_count": (1,) * 5})


def test_exclusive_channels_are_never_violated():
    """Channel pairs the data never shows on one cell (coins under players, two coins together) never
    appear in samples, and get probability 0."""
    game = gridmarl.make_config(height=3, width=3, coins_per_agent=2)
    model = tiny_model(game).eval()
    exclusive = model.cfg.structure.exclusive
    assert {(0, 2), (0, 3), (1, 2), (1, 3), (2, 3)} <= set(exclusive)
    core, state = random_states(game, 64)
    obs = core.observe(state, (0,))[:, 0]
    nxt, _ = model.sample(
        obs, np.zeros(64, int), np.zeros((64, 1), int), generator=torch.Generator().manual_seed(0)
    )
    present = nxt.flatten(2) > 0
    for a, b in exclusive:
        assert not (present[:, a] & present[:, b]).any()
    bad = nxt.clone()
    cell = bad[0, 0].flatten().argmax()
    bad[0, 2].view(-1)[:] = 0
    bad[0, 2].view(-1)[cell] = 1  # an own coin under the player
    bad[0, 2].view(-1)[(cell + 1) % 9] = 1
    assert model.log_prob(obs[:1], [0], [[0]], bad[:1]).item() == -np.inf
    with model.constraints(False):
        assert np.isfinite(model.log_prob(obs[:1], [0], [[0]], bad[:1]).item())


def test_more_objects_than_the_layout_holds_get_minus_infinity():
    game = gridmarl.make_config()
    model: WorldModel = tiny_model(game, constraints=False).eval()
    core, state = random_states(game, 1)
    obs = core.observe(state, (0,))[:, 0]
    crowded = obs.copy()
    crowded[0, 2] = 1  # a coin on every cell: more than the 2 the layout holds
    assert model.log_prob(obs, [0], [[0]], crowded).item() == -np.inf

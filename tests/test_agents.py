"""PPO's pieces against hand computations, and the batched games the trainer drives."""

import numpy as np
import pytest
import torch

import gridmarl
from gridmarl_wm.agents import NativeGames, PolicyConfig
from gridmarl_wm.agents.losses import gae, next_pickup_cells, ppo_terms
from gridmarl_wm.agents.policy import ActorCritic, sample_actions


def test_gae_matches_a_hand_computation():
    # One game, three steps, the episode ends on step 1; gamma 0.5, lambda 0.5.
    r = torch.tensor([[1.0], [2.0], [3.0]])
    v = torch.tensor([[0.5], [1.0], [2.0]])
    d = torch.tensor([[0.0], [1.0], [0.0]])
    last = torch.tensor([4.0])
    adv, ret = gae(r, v, d, last, gamma=0.5, lam=0.5)
    delta2 = 3 + 0.5 * 4 - 2  # 3.0
    delta1 = 2 - 1.0  # the episode ended: no bootstrap from step 2
    delta0 = 1 + 0.5 * 1.0 - 0.5  # 1.0
    a2, a1 = delta2, delta1
    a0 = delta0 + 0.25 * a1
    assert torch.allclose(adv[:, 0], torch.tensor([a0, a1, a2]))
    assert torch.allclose(ret, adv + v)


def test_gae_with_lambda_one_is_the_discounted_return_minus_value():
    torch.manual_seed(0)
    r, v = torch.rand(5, 3), torch.rand(5, 3)
    last = torch.rand(3)
    adv, ret = gae(r, v, torch.zeros(5, 3), last, gamma=0.9, lam=1.0)
    g = last.clone()
    for t in range(4, -1, -1):
        g = r[t] + 0.9 * g
        assert torch.allclose(ret[t], g, atol=1e-6)


def test_ppo_terms_match_a_hand_computation():
    old = torch.log(torch.tensor([0.5, 0.5]))
    new = torch.log(torch.tensor([0.75, 0.25]))  # ratios 1.5 and 0.5
    adv = torch.tensor([1.0, -2.0])
    terms = ppo_terms(
        new, old, adv, torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0]), torch.tensor([2.0, 1.0]),
        torch.tensor([0.3, 0.5]), clip=0.2,
    )  # fmt: skip
    # sample 0: min(1.5 * 1, 1.2 * 1) = 1.2; sample 1: min(0.5 * -2, 0.8 * -2) = -1.6
    assert terms["policy"].item() == pytest.approx(-(1.2 - 1.6) / 2)
    assert terms["value"].item() == pytest.approx(0.5 * (1 + 1) / 2)
    assert terms["entropy"].item() == pytest.approx(0.4)
    assert terms["clip_fraction"].item() == pytest.approx(1.0)
    kl = ((1.5 - 1) - np.log(1.5) + (0.5 - 1) - np.log(0.5)) / 2
    assert terms["approx_kl"].item() == pytest.approx(kl, rel=1e-5)
    clipped = ppo_terms(
        new, old, adv, torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0]), torch.tensor([2.0, 1.0]),
        torch.tensor([0.3, 0.5]), clip=0.2, value_clip=0.5, denominator=4,
    )  # fmt: skip
    # sample 0: the value moved by 1 > 0.5: max((1-2)^2, (0.5-2)^2) = 2.25; sample 1: 1; over 4
    assert clipped["value"].item() == pytest.approx(0.5 * (2.25 + 1) / 4)


def test_next_pickup_cells_by_hand():
    # One game, two players, four steps; player 0 picks on steps 1 and 3, player 1 never; the episode
    # ends on step 2.
    pos = torch.tensor([[[0, 5]], [[1, 5]], [[2, 6]], [[3, 7]]])
    picked = torch.tensor([[[False, False]], [[True, False]], [[False, False]], [[True, False]]])
    done = torch.tensor([[False], [False], [True], [False]])
    cells = next_pickup_cells(pos, picked, done, none_cell=16)
    assert cells[:, 0, 0].tolist() == [1, 1, 16, 3]
    assert cells[:, 0, 1].tolist() == [16, 16, 16, -1]  # after the rollout: unknown


def test_sample_actions_inverts_the_cdf():
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.2, 0.2]] * 4))
    a = sample_actions(logits, np.array([0.05, 0.15, 0.55, 0.999]))
    assert a.tolist() == [0, 1, 2, 4]


@pytest.mark.parametrize("env_id", sorted(gridmarl.PRESETS))
def test_native_games_match_the_core_and_truncate_with_the_last_observation(env_id):
    cfg = gridmarl.make_config(**{**gridmarl.PRESETS[env_id], "max_steps": 3})
    env = NativeGames(cfg, num_envs=6, opponent="self", seed=1, groups=2)
    obs = env.reset()
    L = cfg.n_agents
    assert obs.shape == (6, L, *cfg.obs_shape) and env.state().shape == (6, *cfg.state_shape)
    rng = np.random.default_rng(0)
    for t in range(3):
        before = [g.state.copy() for g in env.groups]
        res = env.step(rng.integers(0, 5, (6, L)))
        assert res.rewards.shape == (6, L) and res.others.shape == (6, L, L - 1)
        if t < 2:
            assert res.final_obs is None and not res.truncated.any()
            assert np.array_equal(res.obs, env._observe())
    assert res.truncated.all() and res.final_obs is not None
    # the final observation is the finished game's, the returned one a new game's (t back to 0)
    assert all((g.state.t == 0).all() for g in env.groups) and not np.array_equal(res.final_obs, res.obs)
    del before


def test_native_games_groups_make_the_same_games_in_any_process():
    cfg = gridmarl.make_config()
    whole = NativeGames(cfg, 8, opponent="greedy", seed=3, groups=2)
    half = NativeGames(cfg, 8, opponent="greedy", seed=3, groups=2, group_ids=[1])
    a, b = whole.reset(), half.reset()
    assert np.array_equal(a[4:], b)
    for _ in range(60):
        act = np.random.default_rng(0).integers(0, 5, (8, 1))
        ra, rb = whole.step(act), half.step(act[4:])
        assert np.array_equal(ra.obs[4:], rb.obs) and np.array_equal(ra.rewards[4:], rb.rewards)


def test_native_games_refuse_bad_input():
    with pytest.raises(ValueError, match="opponent='nobody' is unknown; allowed"):
        NativeGames(None, 4, opponent="nobody")
    with pytest.raises(ValueError, match="divisible by groups"):
        NativeGames(None, 5, groups=2)
    with pytest.raises(ValueError, match="opponent list has 2 entries"):
        NativeGames(None, 4, opponent=["random", "greedy"])


@pytest.mark.parametrize("goal", [None, "discrete", "continuous"])
@pytest.mark.parametrize("moa_agent_id", [False, True])
def test_policy_heads_have_the_documented_shapes(goal, moa_agent_id):
    game = gridmarl.make_config(n_agents=3, height=5, width=6)
    cfg = PolicyConfig.for_game(
        game, moa=True, moa_agent_id=moa_agent_id, goal=goal, history=2, player_id=True
    )
    net = ActorCritic(cfg)
    out = net(torch.zeros(7, 2 * 5 * 5 * 6), torch.zeros(7, dtype=torch.int64))
    assert out.logits.shape == (7, 5) and out.value.shape == (7,)
    assert out.moa_logits.shape == (7, 2, 5)
    if goal is None:
        assert out.goal is None
    else:
        assert out.goal.shape == (7, 2, 31 if goal == "discrete" else 3)


def test_policy_config_refuses_bad_values():
    game = gridmarl.make_config()
    with pytest.raises(ValueError, match="goal must be one of"):
        PolicyConfig.for_game(game, goal="somewhere")
    with pytest.raises(ValueError, match="hidden must be an integer >= 1"):
        PolicyConfig.for_game(game, hidden=0)
    with pytest.raises(ValueError, match="moa_agent_id=True needs moa=True"):
        PolicyConfig.for_game(game, moa_agent_id=True)

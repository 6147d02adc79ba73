"""The imagined envs: the exact stand-in reproduces real play; the API suites pass; bad use is refused."""

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test
from wm_helpers import tiny_model

import gridmarl
from gridmarl.gym_env import GridMARLEnv
from gridmarl_wm import ImaginedEnv
from gridmarl_wm.exact_model import ExactModel
from gridmarl_wm.imagine import ImaginedParallelEnv, ImaginedSimulator, state_from_observation, swap_view

GAME = gridmarl.make_config()


def tiny(game=GAME, **overrides):
    model = tiny_model(game, **overrides).eval()
    model.game = game
    return model


@pytest.mark.parametrize("opponent", ["greedy", "switching"])
def test_exact_stand_in_reproduces_real_trajectories(opponent):
    """Same start, same actions: the imagined observation equals the real one at every step where no coin
    respawns; where one does, positions and reward agree and the respawn is taken from the real game."""
    real = GridMARLEnv(opponent=opponent)
    recorded = []
    imagined = ImaginedEnv(ExactModel(), opponent=lambda obs: recorded[-1])
    rng = np.random.default_rng(0)
    respawns = exact_steps = 0
    for episode in range(4):
        obs, _ = real.reset(seed=episode)
        sim_obs, _ = imagined.reset(seed=episode, options={"obs": obs})
        np.testing.assert_array_equal(sim_obs, obs)
        for t in range(GAME.max_steps):
            a = int(rng.integers(5))
            obs, r, term, trunc, info = real.step(a)
            recorded.append(int(info["opponent_actions"][0]))
            sim_obs, sim_r, sim_term, sim_trunc, sim_info = imagined.step(a)
            assert sim_info["opponent_actions"].tolist() == info["opponent_actions"].tolist()
            assert (sim_r, sim_term, sim_trunc) == (r, term, trunc)
            np.testing.assert_array_equal(sim_obs[:2], obs[:2])  # the players
            if info["rewards"].any():  # a coin was picked up and respawned somewhere random
                respawns += 1
                if not trunc:
                    imagined.reset(options={"obs": obs, "t": t + 1})
            else:
                exact_steps += 1
                np.testing.assert_array_equal(sim_obs, obs)
        assert trunc
    assert respawns > 10 and exact_steps > 100


def test_respawn_is_uniform_over_free_cells():
    imagined = ImaginedEnv(ExactModel(), opponent="stay")
    state = gridmarl.State(np.array([[5, 6]]), np.array([[9, 15]]), np.array([0]))
    start = gridmarl.GridCore(GAME).observe(state, (0,))[0, 0]
    counts = np.zeros(16, int)
    for i in range(1500):
        imagined.reset(seed=i, options={"obs": start})
        obs, r, *_ = imagined.step(2)  # down from (1, 1) onto the own coin at (2, 1)
        assert r == 1.0
        counts[obs[2].argmax()] += 1
    free = [c for c in range(16) if c not in (9, 6, 15)]
    assert counts[[9, 6, 15]].sum() == 0
    assert counts[free].min() > 1500 / 13 * 0.6 and counts[free].max() < 1500 / 13 * 1.4


@pytest.mark.parametrize("opponent", ["greedy", "random", "switching", "model-tiny"])
def test_check_env(opponent):
    if opponent == "model-tiny":
        env = ImaginedEnv(tiny())
    else:
        env = ImaginedEnv(ExactModel(), opponent=opponent)
    check_env(env, skip_render_check=True)


def test_rendering_matches_the_real_env():
    real = GridMARLEnv(opponent="greedy", render_mode="rgb_array")
    imagined = ImaginedEnv(ExactModel(), opponent="greedy", render_mode="rgb_array")
    obs, _ = real.reset(seed=3)
    imagined.reset(seed=3, options={"obs": obs})
    np.testing.assert_array_equal(imagined.render(), real.render())
    ansi = ImaginedEnv(ExactModel(), render_mode="ansi", opponent="stay")
    ansi.reset(seed=3, options={"obs": obs})
    assert isinstance(ansi.render(), str)


@pytest.mark.parametrize("which", ["exact", "tiny"])
def test_parallel_api(which):
    env = ImaginedParallelEnv(ExactModel() if which == "exact" else tiny())
    parallel_api_test(env, num_cycles=60)


def test_parallel_views_are_swapped_and_rewards_per_player():
    env = ImaginedParallelEnv(ExactModel())
    state = gridmarl.State(np.array([[5, 10]]), np.array([[9, 6]]), np.array([0]))
    obs0 = gridmarl.GridCore(GAME).observe(state, (0,))[0, 0]
    obs, _ = env.reset(seed=0, options={"obs": obs0})
    np.testing.assert_array_equal(obs["player_1"], swap_view(obs0))
    # player_0 steps down onto its own coin, player_1 up onto its own
    obs, rewards, term, trunc, _ = env.step({"player_0": 2, "player_1": 1})
    assert rewards == {"player_0": 1.0, "player_1": 1.0}
    np.testing.assert_array_equal(obs["player_1"], swap_view(obs["player_0"]))


def test_seeding_and_temperature():
    model = tiny()
    env = ImaginedEnv(model)

    def run(seed):
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for a in [1, 2, 3, 4, 0, 2]:
            out.append(env.step(a)[0])
        return np.stack(out)

    np.testing.assert_array_equal(run(5), run(5))
    assert not np.array_equal(run(5)[1:], run(6)[1:])
    cold = ImaginedEnv(model, temperature=0)
    start, _ = cold.reset(seed=0)
    a = [cold.step(2)[0] for _ in range(3)]
    cold.reset(seed=99, options={"obs": start})
    b = [cold.step(2)[0] for _ in range(3)]
    np.testing.assert_array_equal(np.stack(a), np.stack(b))


def test_truncation_and_reset_errors():
    game = gridmarl.make_config(max_steps=3)
    env = ImaginedEnv(ExactModel(game), opponent="random")
    with pytest.raises(gridmarl.ResetNeeded):
        env.step(0)
    env.reset(seed=0)
    assert [env.step(0)[3] for _ in range(3)] == [False, False, True]
    with pytest.raises(gridmarl.ResetNeeded):
        env.step(0)
    env.reset(seed=0, options={"t": 2})
    assert env.step(0)[3]
    with pytest.raises(ValueError, match=r"options\['obs'\]"):
        env.reset(options={"obs": np.zeros((5, 3, 3))})
    with pytest.raises(ValueError, match=r"options\['t'\]"):
        env.reset(options={"t": 9})
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(7)


def test_games_without_whole_state_views_say_why():
    game3 = gridmarl.make_config(n_agents=3)
    model3 = tiny(game3)
    with pytest.raises(ValueError, match="two-player full-view"):
        ImaginedEnv(model3, opponent="greedy")
    with pytest.raises(ValueError, match="two-player full-view"):
        ImaginedParallelEnv(model3)
    with pytest.raises(ValueError, match="only two-player full-view games render"):
        ImaginedEnv(model3, render_mode="rgb_array")
    env = ImaginedEnv(model3)  # the model's opponent head drives both others
    obs, _ = env.reset(seed=0)
    obs, r, *_, info = env.step(1)
    assert obs.shape == game3.obs_shape and info["opponent_actions"].shape == (2,)
    partial = gridmarl.make_config(view_size=3)
    check_env(ImaginedEnv(tiny(partial)), skip_render_check=True)
    with pytest.raises(ValueError, match="pass game="):
        ImaginedEnv(tiny_model(GAME))


def test_batched_simulator_tensors_in_and_out():
    model = tiny()
    g = torch.Generator().manual_seed(0)
    sim = ImaginedSimulator(model, generator=g)
    core = gridmarl.GridCore(GAME)
    state = core.reset(np.random.default_rng(0).random((64, 4)))
    obs = torch.as_tensor(core.observe(state, (0,))[:, 0])
    nxt, reward, others = sim.step(obs, torch.randint(0, 5, (64,)))
    assert nxt.shape == obs.shape and reward.shape == (64,) and others.shape == (64, 1)
    assert isinstance(nxt, torch.Tensor) and others.dtype == torch.long
    # every sample is a valid observation: one self, one other, one coin of each colour
    assert (nxt.flatten(2).sum(2)[:, :4] == 1).all()
    fixed = ImaginedSimulator(model, opponent=lambda o: torch.full((len(o), 1), 3), generator=g)
    assert (fixed.step(obs, torch.zeros(64, dtype=torch.long))[2] == 3).all()
    with pytest.raises(ValueError, match="temperature"):
        ImaginedSimulator(model, temperature=-1)
    with pytest.raises(ValueError, match="opponent"):
        ImaginedSimulator(model, opponent="greedy")
    with pytest.raises(ValueError, match="has none"):
        ImaginedSimulator(ExactModel()).step(obs, torch.zeros(64, dtype=torch.long))


def test_state_from_observation_round_trips():
    core = gridmarl.GridCore(GAME)
    state = core.reset(np.random.default_rng(1).random((200, 4)))
    back = state_from_observation(GAME, core.observe(state, (0,))[:, 0])
    np.testing.assert_array_equal(back.agents, state.agents)
    np.testing.assert_array_equal(back.coins, state.coins)

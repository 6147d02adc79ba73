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
from gridmarl_wm.data import CollectConfig, collect
from gridmarl_wm.simulation.exact_model import ExactModel
from gridmarl_wm.simulation.imagine import (
    ImaginedParallelEnv,
    ImaginedSimulator,
    state_from_observation,
    swap_view,
)

GAME = gridmarl.make_config()


def tiny(game=GAME, **overrides):
    model = tiny_model(game, **overrides).eval()
    model.game = game
    # what training stores with a model: the first observations of its data's episodes
    model.start_obs, model.start_agent = collect(
        game, CollectConfig(steps=1, num_envs=8)
    ).start_observations()
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


@pytest.mark.parametrize("decoder", ["pointer", "mixture"])
def test_the_others_actions_follow_the_opponent_head_at_every_temperature(decoder):
    """The others' actions an imagined step draws follow ``opponent_probs`` (at temperature T, its
    probabilities to the power 1 / T, renormalised; at 0 the most likely), whichever decoder the model has."""
    model = tiny(**({"decoder": "mixture", "trunk": "mlp"} if decoder == "mixture" else {}))
    last = model.opponent_head[-1]
    with torch.no_grad():  # the same logits at every observation, spread wide: 3, 0, -30, 1, -2
        last.weight.zero_()
        last.bias.copy_(torch.tensor([3.0, 0.0, -30.0, 1.0, -2.0]))
    core = gridmarl.GridCore(GAME)
    obs = torch.as_tensor(core.observe(core.reset(np.random.default_rng(0).random((8, 4))), (0,))[:, 0])
    logits = model.opponent_logits(obs)
    assert torch.allclose(logits.softmax(-1), model.opponent_probs(obs))
    N = 40_000
    big, actions = obs.repeat(N // 8, 1, 1, 1), torch.zeros(N, dtype=torch.long)
    for T in (1.0, 0.5):
        sim = ImaginedSimulator(model, temperature=T, generator=torch.Generator().manual_seed(0))
        counts = np.bincount(sim.step(big, actions)[2][:, 0].numpy(), minlength=5)
        p = (torch.tensor([3.0, 0.0, -30.0, 1.0, -2.0]) / T).softmax(-1).numpy()
        assert np.all(np.abs(counts - p * N) <= 5 * np.sqrt(p * N) + 1), (T, counts, p * N)
    assert (ImaginedSimulator(model, temperature=0).step(obs, actions[:8])[2] == 0).all()


def test_a_step_gives_ordinary_tensors_and_runs_a_callable_opponent_as_called():
    """The model runs in inference mode, but what a step returns can be changed in place and used where
    autograd records; a callable opponent runs outside inference mode."""
    model = tiny(decoder="mixture", trunk="mlp")
    core = gridmarl.GridCore(GAME)
    obs = torch.as_tensor(core.observe(core.reset(np.random.default_rng(1).random((6, 4))), (0,))[:, 0])
    seen = []

    def opponent(o):
        seen.append(torch.is_inference_mode_enabled())
        return torch.zeros(len(o), 1, dtype=torch.long)

    for sim in (
        ImaginedSimulator(model),
        ImaginedSimulator(model, max_batch=4),
        ImaginedSimulator(model, opponent=opponent),
    ):
        for t in sim.step(obs, torch.zeros(6, dtype=torch.long)):
            assert not t.is_inference()
            t.add_(0)  # in place: refused on an inference tensor outside inference mode
        nxt = sim.step(obs, torch.zeros(6, dtype=torch.long))[0]
        w = torch.ones(nxt[0].numel(), requires_grad=True)
        (nxt.flatten(1) @ w).sum().backward()  # saved for backward: refused on an inference tensor
    assert seen == [False, False]


def test_batched_simulator_steps_large_batches_in_slices():
    """``max_batch`` slices a large batch and puts the pieces back in order: at temperature 0 the step is
    the same function of its inputs either way, given the others' actions or drawing them; with a
    mixture decoder at temperature 1 too, from the same generator."""
    model = tiny()
    core = gridmarl.GridCore(GAME)
    state = core.reset(np.random.default_rng(2).random((50, 4)))
    obs = torch.as_tensor(core.observe(state, (0,))[:, 0])
    actions, others = torch.randint(0, 5, (50,)), torch.randint(0, 5, (50, 1))
    whole = ImaginedSimulator(model, temperature=0, max_batch=50)
    sliced = ImaginedSimulator(model, temperature=0, max_batch=16)
    for given in (others, None):
        a, b = whole.step(obs, actions, given), sliced.step(obs, actions, given)
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True)) and a[0].shape == obs.shape
    # a mixture-decoder model draws every game's numbers in one block before slicing: the same samples
    mixture = tiny(decoder="mixture", trunk="mlp").eval()
    for given in (others, None):
        a, b = (
            ImaginedSimulator(mixture, generator=torch.Generator().manual_seed(4), max_batch=m).step(
                obs, actions, given
            )
            for m in (50, 16)
        )
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="max_batch"):
            ImaginedSimulator(model, max_batch=bad)


def test_state_from_observation_round_trips():
    core = gridmarl.GridCore(GAME)
    state = core.reset(np.random.default_rng(1).random((200, 4)))
    back = state_from_observation(GAME, core.observe(state, (0,))[:, 0])
    np.testing.assert_array_equal(back.agents, state.agents)
    np.testing.assert_array_equal(back.coins, state.coins)


class CoinFlipRewardModel:
    """A stand-in whose reward for any view is 1 with probability 0.7 and 0 otherwise (most likely: 1), and
    whose next observation is the current one."""

    def __init__(self, game=GAME):
        self.game = game
        self.device = torch.device("cpu")
        self.start_obs, self.start_agent = collect(
            game, CollectConfig(steps=1, num_envs=4)
        ).start_observations()

    def sample(self, obs, self_action, other_actions, generator=None, temperature=1.0):
        obs = torch.as_tensor(obs, dtype=torch.float32)
        if temperature == 0:
            return obs.clone(), torch.ones(len(obs))
        return obs.clone(), (torch.rand(len(obs), generator=generator) < 0.7).float()

    def reward(self, obs, self_action, other_actions):
        return torch.ones(len(obs))


def test_parallel_env_samples_both_players_rewards_alike():
    """Both players' rewards are drawn from the model at the env's temperature; at temperature 0 both are
    the most likely one. (Player 1 used to get the most likely reward while player 0's was sampled.)"""
    env = ImaginedParallelEnv(CoinFlipRewardModel())
    env.reset(seed=0)
    got = {"player_0": [], "player_1": []}
    for _ in range(4):
        env.reset()
        for _ in range(GAME.max_steps):
            _, rewards, *_ = env.step({"player_0": 0, "player_1": 0})
            for agent, r in rewards.items():
                got[agent].append(r)
    for agent, values in got.items():
        assert 0.55 < np.mean(values) < 0.85, (agent, np.mean(values))  # 200 draws of p = 0.7
    assert np.mean(np.array(got["player_0"]) != np.array(got["player_1"])) > 0.2  # drawn apart
    cold = ImaginedParallelEnv(CoinFlipRewardModel(), temperature=0)
    cold.reset(seed=0)
    assert cold.step({"player_0": 1, "player_1": 2})[1] == {"player_0": 1.0, "player_1": 1.0}


@pytest.mark.parametrize("opponent", ["greedy", "switching", "model"])
def test_info_has_the_real_envs_keys_and_kinds(opponent):
    """reset's and step's info have GridMARL-v0's keys, dtypes and shapes; with the exact stand-in both
    players' rewards are the real ones and the policy ids name the policies in use."""
    real = GridMARLEnv(opponent="greedy" if opponent == "model" else opponent, switch_every=3)
    model = ExactModel() if opponent != "model" else tiny()
    imagined = ImaginedEnv(model, opponent=opponent, switch_every=3)

    def follow_real_policies():
        if (
            imagined._scripted is not None
        ):  # the same policies as the real opponents (switching draws its own)
            imagined._scripted.opponents.set_state(real.games.opponents.get_state())

    obs, real_info = real.reset(seed=1)
    _, info = imagined.reset(seed=1, options={"obs": obs})
    assert info.keys() == real_info.keys()
    follow_real_policies()
    names = imagined.opponent_policy_names
    compared = rewarded = 0
    for t in range(1, 12 if opponent == "model" else 25):
        obs, _, _, _, real_info = real.step(t % 5)
        _, reward, _, _, info = imagined.step(t % 5)
        assert info.keys() == real_info.keys() and info["t"] == real_info["t"] == t
        for key in ("opponent_actions", "rewards", "opponent_policy_ids"):
            assert info[key].dtype == real_info[key].dtype and info[key].shape == real_info[key].shape, key
        assert [names[i] for i in info["opponent_policy_ids"]] == info["opponent_policies"]
        assert reward == info["rewards"][0]
        if opponent == "model":
            assert info["opponent_policies"] == ["model"]
        elif np.array_equal(info["opponent_actions"], real_info["opponent_actions"]):
            # same state, same actions: the rules give every player the real reward, coins picked or not
            np.testing.assert_array_equal(info["rewards"], real_info["rewards"])
            compared += 1
            rewarded += bool(real_info["rewards"].any())
            if (t - 1) % 3:  # at a switch each env draws the new policy from its own generator
                np.testing.assert_array_equal(info["opponent_policy_ids"], real_info["opponent_policy_ids"])
        imagined.reset(options={"obs": obs, "t": t})  # resync after any respawn
        follow_real_policies()
    if opponent != "model":
        assert compared >= 10 and rewarded >= 1, (compared, rewarded)


def test_single_env_other_players_reward_is_sampled_and_three_player_rewards_say_what_is_seen():
    env = ImaginedEnv(CoinFlipRewardModel(), opponent=lambda obs: 0)
    env.reset(seed=3)
    others = [env.step(0)[4]["rewards"][1] for _ in range(GAME.max_steps)]
    assert 0.5 < np.mean(others) < 0.9 and env.rewards_seen == (True, True)
    game3 = gridmarl.make_config(n_agents=3)
    env3 = ImaginedEnv(tiny(game3), ego=1)
    _, info = env3.reset(seed=0)
    assert info["opponent_policy_ids"].tolist() == [4, 4] and env3.opponent_policy_names[4] == "model"
    _, reward, *_, info = env3.step(2)
    assert env3.rewards_seen == (False, True, False)
    assert info["rewards"][1] == reward and info["rewards"][[0, 2]].tolist() == [0.0, 0.0]
    quiet = ImaginedEnv(ExactModel(), opponent="greedy", policy_names_in_info=False)
    assert "opponent_policies" not in quiet.reset(seed=0)[1] and "opponent_policies" not in quiet.step(0)[4]


def test_plain_reset_starts_from_the_models_stored_first_observations():
    """A plain reset draws from the start observations stored with the model, not from the real game's
    reset; the real reset is only an explicit option."""
    game = gridmarl.make_config()
    model = tiny(game)
    core = gridmarl.GridCore(game)
    state = gridmarl.State(np.array([[0, 15]]), np.array([[5, 10]]), np.array([0]))
    only = core.observe(state, (0, 1))[0].astype(np.uint8)  # (2, 5, 4, 4): both players' views of one state
    model.start_obs, model.start_agent = only, np.array([0, 1])
    for ego in (0, 1):
        env = ImaginedEnv(model, ego=ego)
        for seed in range(5):
            np.testing.assert_array_equal(env.reset(seed=seed)[0], only[ego])
    real = ImaginedEnv(model, start="real")
    starts = {real.reset(seed=seed)[0].tobytes() for seed in range(5)}
    assert len(starts) == 5 and only[0].tobytes() not in starts
    model.start_obs = None
    with pytest.raises(ValueError, match="no start observations"):
        ImaginedEnv(model).reset(seed=0)
    assert ImaginedEnv(model).reset(seed=0, options={"obs": only[0]})[0].shape == (5, 4, 4)
    with pytest.raises(ValueError, match="start must be"):
        ImaginedEnv(model, start="game")


def test_an_ego_without_stored_starts_of_its_own_draws_the_other_players():
    """Data seen by player 0 only still starts player 1's imagined games (the fallback), and a player's own
    stored starts are preferred when there are any."""
    model = tiny(GAME)
    core = gridmarl.GridCore(GAME)
    state = gridmarl.State(np.array([[0, 15], [3, 12]]), np.array([[5, 10], [6, 9]]), np.array([0, 0]))
    views = core.observe(state, (0, 1)).astype(np.uint8)  # (2 states, 2 players, 5, 4, 4)
    model.start_obs, model.start_agent = views[:, 0], np.array([0, 0])
    seen = {ImaginedEnv(model, ego=1).reset(seed=seed)[0].astype(np.uint8).tobytes() for seed in range(12)}
    assert seen == {views[0, 0].tobytes(), views[1, 0].tobytes()}
    model.start_obs, model.start_agent = np.concatenate([views[:, 0], views[:1, 1]]), np.array([0, 0, 1])
    seen = {ImaginedEnv(model, ego=1).reset(seed=seed)[0].astype(np.uint8).tobytes() for seed in range(6)}
    assert seen == {views[0, 1].tobytes()}


@pytest.mark.parametrize(
    "game",
    [
        gridmarl.make_config(height=2, width=3, coins_per_agent=1),
        gridmarl.make_config(layout="...\n.#.\n...", n_agents=3, coins_per_agent=1, view_size=3),
    ],
    ids=["2 players full view", "3 players partial view with a wall"],
)
def test_every_players_first_observation_has_the_same_distribution(game):
    """What the fallback above rests on, checked exactly: enumerate every reset the game can draw (each
    uniform at the middle of each of its equally likely bins) and count each player's first observations."""
    core = gridmarl.GridCore(game)
    free = game.height * game.width - len(game.walls)
    slots = game.n_agents + game.n_agents * game.coins_per_agent
    grids = [(np.arange(free - j) + 0.5) / (free - j) for j in range(slots)]
    u = np.stack(np.meshgrid(*grids, indexing="ij"), -1).reshape(-1, slots)
    obs = core.observe(core.reset(u))  # (resets, players, 5, h, w)

    def counts(player):
        return sorted(
            zip(*np.unique(obs[:, player].reshape(len(u), -1), axis=0, return_counts=True), strict=True),
            key=lambda pair: pair[0].tobytes(),
        )

    first = counts(0)
    for player in range(1, game.n_agents):
        other = counts(player)
        assert len(other) == len(first)
        for (a, n), (b, m) in zip(first, other, strict=True):
            np.testing.assert_array_equal(a, b)
            assert n == m

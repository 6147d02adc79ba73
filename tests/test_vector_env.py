"""The native vector env: same games as the single env, Gymnasium's next-step autoreset, valid steps."""

import gymnasium as gym
import numpy as np
import pytest

import gridmarl
from gridmarl.exact import canonical


def make_vec(n, **kw):
    return gym.make_vec("GridMARL-v0", num_envs=n, vectorization_mode="vector_entry_point", **kw)


@pytest.mark.parametrize("opponent", ["random", "switching", "greedy"])
def test_single_and_vector_env_give_identical_trajectories(preset, opponent):
    """With one game, the vector env draws what the single env draws: identical over several episodes,
    through the vector env's autoreset and the single env's reset()."""
    env_id, kw = preset
    single = gym.make(env_id, opponent=opponent, max_steps=12, switch_every=4)
    vec = gym.make_vec(
        env_id, 1, vectorization_mode="vector_entry_point", opponent=opponent, max_steps=12, switch_every=4
    )
    o1, i1 = single.reset(seed=9)
    o2, i2 = vec.reset(seed=9)
    np.testing.assert_array_equal(o1, o2[0])
    actions = np.random.default_rng(0).integers(0, 5, 40)
    ended = False
    for a in actions:
        o2, r2, _, t2, i2 = vec.step(np.array([a]))
        if ended:  # the vector env's autoreset step mirrors the single env's reset()
            o1, i1 = single.reset()
            np.testing.assert_array_equal(o1, o2[0])
            assert r2[0] == 0 and not t2[0] and not i2["_rewards"][0]
            ended = False
            continue
        o1, r1, _, t1, i1 = single.step(int(a))
        np.testing.assert_array_equal(o1, o2[0])
        assert r1 == r2[0] and t1 == t2[0]
        np.testing.assert_array_equal(i1["opponent_actions"], i2["opponent_actions"][0])
        np.testing.assert_array_equal(i1["rewards"], i2["rewards"][0])
        assert list(i1["opponent_policies"]) == list(i2["opponent_policies"][0])
        ended = t1


def test_batch_follows_the_exact_rules():
    vec = gym.make_vec("GridMARL-Walls3P-v0", 16, vectorization_mode="vector_entry_point", opponent="selfish")
    vec.reset(seed=0)
    env = vec.unwrapped
    rng = np.random.default_rng(0)
    for _ in range(30):
        before = env.get_state()
        actions = rng.integers(0, 5, 16)
        _, rew, _, _, info = vec.step(actions)
        after = env.get_state()
        for i in range(16):
            joint = np.insert(info["opponent_actions"][i], 0, actions[i])
            dist = gridmarl.transition_distribution(env.config, before[i], joint)
            s = canonical(
                env.config,
                gridmarl.State(after[i]["agents"][None], after[i]["coins"][None], np.array([after[i]["t"]])),
            )
            assert ((dist.states.coins == s.coins).all(1) & (dist.states.agents == s.agents).all(1)).any()
            assert rew[i] == dist.rewards[0, 0]


def test_next_step_autoreset():
    vec = make_vec(3, max_steps=4)
    vec.reset(seed=0)
    for t in range(4):
        obs, rew, term, trunc, info = vec.step(np.zeros(3, dtype=np.int64))
        assert trunc.all() == (t == 3) and not term.any()
    obs, rew, term, trunc, info = vec.step(np.full(3, 4))
    assert not trunc.any() and (rew == 0).all() and not info["_opponent_actions"].any()
    assert [s["t"] for s in vec.unwrapped.get_state()] == [0, 0, 0]
    obs, rew, term, trunc, info = vec.step(np.full(3, 4))
    assert info["_opponent_actions"].all() and [s["t"] for s in vec.unwrapped.get_state()] == [1, 1, 1]


def test_partial_autoreset_after_set_state():
    """Games that end at different times reset on their own next step; the others go on."""
    vec = make_vec(2, max_steps=5)
    vec.reset(seed=0)
    states = vec.unwrapped.get_state()
    states[0]["t"] = 4
    vec.unwrapped.set_state(states)
    _, _, _, trunc, _ = vec.step(np.zeros(2, dtype=np.int64))
    assert trunc.tolist() == [True, False]
    _, rew, _, trunc, info = vec.step(np.zeros(2, dtype=np.int64))
    assert info["_rewards"].tolist() == [False, True] and rew[0] == 0
    assert [s["t"] for s in vec.unwrapped.get_state()] == [0, 2]


def test_spaces_and_dtypes():
    vec = make_vec(8, opponent="greedy")
    obs, _ = vec.reset(seed=1)
    assert vec.single_observation_space.contains(obs[0]) and obs.dtype == np.float32
    assert vec.observation_space.shape == (8, 5, 4, 4) and vec.action_space.shape == (8,)
    obs, rew, term, trunc, info = vec.step(vec.action_space.sample())
    assert rew.dtype == np.float32 and trunc.dtype == bool and info["opponent_actions"].shape == (8, 1)
    assert info["rewards"].shape == (8, 2) and info["opponent_policies"].shape == (8, 1)


def test_vector_action_errors():
    vec = make_vec(2)
    with pytest.raises(gridmarl.ResetNeeded, match="reset"):
        vec.step(np.zeros(2, dtype=np.int64))
    vec.reset(seed=0)
    with pytest.raises(TypeError, match="integers"):
        vec.step(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match=r"0\.\.4"):
        vec.step(np.array([0, 5]))
    with pytest.raises(ValueError, match="shape"):
        vec.step(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="num_envs"):
        make_vec(0)

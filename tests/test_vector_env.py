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


def assert_same_info(native, sync, where="info"):
    """Infos equal as Gymnasium defines them: the same ``_key`` masks (a key that is absent counts as
    masked out everywhere), and the same values where the mask is True. Names may come as a list per game
    (SyncVectorEnv) or as a row of a string array (the native env)."""
    keys = {k for k in (*native, *sync) if not k.startswith("_")}
    for key in keys:
        n_mask = native.get(f"_{key}", np.zeros(len(next(iter(sync.values()))), dtype=bool))
        s_mask = sync.get(f"_{key}", np.zeros_like(n_mask))
        assert np.array_equal(n_mask, s_mask), (where, key, n_mask, s_mask)
        for i in np.flatnonzero(s_mask):
            if isinstance(sync[key], dict):
                continue
            a, b = native[key][i], sync[key][i]
            if isinstance(b, list):
                assert list(a) == b, (where, key, i)
            else:
                assert np.array_equal(a, b) and np.asarray(a).dtype == np.asarray(b).dtype, (
                    where,
                    key,
                    i,
                    a,
                    b,
                )
        if isinstance(sync.get(key), dict):
            assert_same_info(native[key], sync[key], f"{where}[{key!r}]")


@pytest.mark.parametrize("mode", list(gym.vector.AutoresetMode), ids=lambda m: m.name)
@pytest.mark.parametrize("opponent", ["random", "switching"])
def test_every_autoreset_mode_matches_gymnasiums_sync_vector_env(preset, mode, opponent):
    """Each autoreset mode against Gymnasium's own SyncVectorEnv over single GridMARL-v0 envs in that mode.

    SyncVectorEnv seeds sub-env i with ``seed + i``, one generator per game, while the native env draws the
    whole batch from one generator seeded with ``seed``: with one game both draw the same numbers, so every
    output must be identical (observations, rewards, flags, infos and, in SAME_STEP, the final observations
    and infos) over several episodes, resets included. Staggered ends in a batch are tested below.
    """
    env_id, _ = preset
    kw = dict(opponent=opponent, max_steps=6, switch_every=4)
    native = gym.make_vec(env_id, 1, vectorization_mode="vector_entry_point", autoreset_mode=mode, **kw)
    sync = gym.make_vec(env_id, 1, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode}, **kw)
    assert native.metadata["autoreset_mode"] is sync.metadata["autoreset_mode"] is mode
    assert native.unwrapped.autoreset_mode is mode
    (o1, i1), (o2, i2) = native.reset(seed=3), sync.reset(seed=3)
    np.testing.assert_array_equal(o1, o2)
    assert_same_info(i1, i2)
    actions = np.random.default_rng(1).integers(0, 5, (27, 1))
    ends, trunc1 = 0, np.zeros(1, dtype=bool)
    for step, a in enumerate(actions):
        if mode is gym.vector.AutoresetMode.DISABLED and trunc1.any():
            mask = trunc1.copy()
            seed = 40 + step if step % 2 else None
            (o1, i1), (o2, i2) = (
                native.reset(seed=seed, options={"reset_mask": mask}),
                sync.reset(seed=seed, options={"reset_mask": mask.copy()}),
            )
            np.testing.assert_array_equal(o1, o2)
            assert_same_info(i1, i2)
        o1, r1, term1, trunc1, i1 = native.step(a)
        o2, r2, term2, trunc2, i2 = sync.step(a)
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(term1, term2)
        np.testing.assert_array_equal(trunc1, trunc2)
        assert_same_info(i1, i2)
        ends += int(trunc1[0])
    assert ends == 4  # the comparison ran through every kind of step


@pytest.mark.parametrize("mode", list(gym.vector.AutoresetMode), ids=lambda m: m.name)
def test_staggered_ends_have_gymnasiums_masks(mode):
    """Games that end at different times: the same info keys and masks as SyncVectorEnv (set to the same
    times), and in SAME_STEP a final observation that the exact rules allow from the game's last state."""
    kw = dict(opponent="greedy", max_steps=5)
    native = gym.make_vec(
        "GridMARL-v0", 3, vectorization_mode="vector_entry_point", autoreset_mode=mode, **kw
    )
    sync = gym.make_vec(
        "GridMARL-v0", 3, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode}, **kw
    )
    native.reset(seed=0)
    sync.reset(seed=0)
    states = native.unwrapped.get_state()
    for i, t in enumerate([4, 2, 3]):
        states[i]["t"] = t
        sync.unwrapped.envs[i].unwrapped.set_state(states[i])
    native.unwrapped.set_state(states)
    core = native.unwrapped.core
    for step in range(4):
        before = native.unwrapped.get_state()
        actions = np.array([step % 5, 1, 2])
        n_out, s_out = native.step(actions), sync.step(actions)
        for a, b in zip(n_out[2:4], s_out[2:4]):
            np.testing.assert_array_equal(a, b)
        n_info, s_info = n_out[4], s_out[4]
        masks = lambda info: {k: v.tolist() for k, v in info.items() if k.startswith("_")}  # noqa: E731
        # Absent keys count as masked out: Gymnasium leaves a key out when no game reports it.
        assert {k: v for k, v in masks(n_info).items() if any(v) or k in s_info} == masks(s_info)
        if mode is gym.vector.AutoresetMode.SAME_STEP and n_out[3].any():
            assert set(n_info["final_info"]) == set(s_info["final_info"])
            for i in np.flatnonzero(n_out[3]):
                final = n_info["final_info"]
                joint = np.insert(final["opponent_actions"][i], 0, actions[i])
                dist = gridmarl.transition_distribution(native.unwrapped.config, before[i], joint)
                outcomes = core.observe(dist.states, (0,))[:, 0]
                assert (outcomes == n_info["final_obs"][i]).reshape(len(outcomes), -1).all(1).any()
                np.testing.assert_array_equal(final["rewards"][i], dist.rewards[0])
                assert native.unwrapped.get_state()[i]["t"] == 0 and n_out[1][i] == dist.rewards[0, 0]
        if mode is gym.vector.AutoresetMode.DISABLED and n_out[3].any():
            with pytest.raises(gridmarl.ResetNeeded, match="reset_mask"):
                native.step(actions)
            kept = native.unwrapped.get_state()
            mask = n_out[3].copy()
            _, info = native.reset(options={"reset_mask": mask})
            sync.reset(options={"reset_mask": mask.copy()})
            assert info["_opponent_policy_ids"].tolist() == mask.tolist()
            after = native.unwrapped.get_state()
            for i in range(3):
                assert (after[i]["t"] == 0) if mask[i] else (after[i]["t"] == kept[i]["t"])


def test_autoreset_mode_and_reset_mask_are_checked():
    vec = make_vec(2, autoreset_mode="SAME_STEP")
    assert vec.unwrapped.autoreset_mode is gym.vector.AutoresetMode.SAME_STEP
    assert (
        make_vec(2, autoreset_mode="Disabled").metadata["autoreset_mode"] is gym.vector.AutoresetMode.DISABLED
    )
    assert make_vec(2).metadata["autoreset_mode"] is gym.vector.AutoresetMode.NEXT_STEP
    with pytest.raises(ValueError, match=r"autoreset_mode must be .*'SameStep'.*got 'sometimes'"):
        make_vec(2, autoreset_mode="sometimes")
    with pytest.raises(gridmarl.ResetNeeded, match="without a reset_mask"):
        vec.reset(options={"reset_mask": np.array([True, False])})
    vec.reset(seed=0)
    for bad in (np.array([1, 0]), np.array([False, False]), np.array([True])):
        with pytest.raises(ValueError, match="reset_mask"):
            vec.reset(options={"reset_mask": bad})


def test_numeric_info_and_names_left_out():
    """``opponent_policy_ids`` name the same policies as ``opponent_policies``; with
    ``policy_names_in_info=False`` every info value is a number or bool array."""
    vec = make_vec(6, opponent="switching", switch_every=2)
    names = vec.unwrapped.opponent_policy_names
    _, info = vec.reset(seed=2)
    for _ in range(5):
        ids = info["opponent_policy_ids"]
        assert ids.dtype == np.int64 and ids.shape == (6, 1)
        assert [[names[j] for j in row] for row in ids] == info["opponent_policies"].tolist()
        *_, info = vec.step(np.zeros(6, dtype=np.int64))
    quiet = make_vec(
        6, opponent="switching", policy_names_in_info=False, autoreset_mode="SameStep", max_steps=2
    )
    for info in (
        quiet.reset(seed=0)[1],
        quiet.step(np.zeros(6, dtype=np.int64))[4],
        quiet.step(np.zeros(6, dtype=np.int64))[4],
    ):
        assert "opponent_policies" not in info
        flat = {**info, **info.get("final_info", {})}
        assert all(
            v.dtype != object and v.dtype.kind in "biuf"
            for k, v in flat.items()
            if k not in ("final_obs", "final_info")
        )

"""PettingZoo conformance and behaviour of the parallel and AEC envs on every registered config."""

import pickle

import numpy as np
import pytest
from pettingzoo.test import (
    api_test,
    max_cycles_test,
    parallel_api_test,
    parallel_seed_test,
    render_test,
    seed_test,
)
from pettingzoo.utils.conversions import parallel_to_aec

import gridmarl
from gridmarl import ResetNeeded, transition_distribution
from gridmarl.exact import canonical


def test_parallel_api(preset):
    parallel_api_test(gridmarl.parallel_env(**preset[1]), num_cycles=300)


def test_aec_api(preset):
    api_test(gridmarl.env(**preset[1]), num_cycles=300)


def test_seed_aec_and_converted(preset):
    kw = preset[1]
    seed_test(lambda **k: gridmarl.env(**kw, **k), num_cycles=200)
    seed_test(lambda **k: parallel_to_aec(gridmarl.parallel_env(**kw, **k)), num_cycles=200)
    parallel_seed_test(lambda **k: gridmarl.parallel_env(**kw, **k), num_cycles=200)


def test_render(preset):
    kw = preset[1]
    render_test(lambda render_mode=None: gridmarl.env(render_mode=render_mode, **kw))


def test_max_cycles():
    max_cycles_test(gridmarl)


def _rollout(env, seed, steps, action_seed=123):
    """Observations, rewards and truncations of ``steps`` parallel steps over several episodes."""
    acts = np.random.default_rng(action_seed)
    out = []
    obs, _ = env.reset(seed=seed)
    out.append(np.stack(list(obs.values())))
    for _ in range(steps):
        if not env.agents:
            obs, _ = env.reset()
            out.append(np.stack(list(obs.values())))
        actions = {a: int(acts.integers(5)) for a in env.agents}
        obs, rew, term, trunc, _ = env.step(actions)
        out += [np.stack(list(obs.values())), np.array(list(rew.values())), np.array(list(trunc.values()))]
    return out


def test_multistep_determinism(preset):
    """Same seed and actions give the same trajectory over many steps and episodes (parallel_seed_test
    compares one step only); another seed gives another trajectory."""
    kw = {**preset[1], "max_steps": 30}
    a = _rollout(gridmarl.parallel_env(**kw), seed=7, steps=200)
    b = _rollout(gridmarl.parallel_env(**kw), seed=7, steps=200)
    c = _rollout(gridmarl.parallel_env(**kw), seed=8, steps=200)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_steps_follow_exact_distribution(preset):
    """Every step the env takes lies in the support of transition_distribution, with its rewards."""
    env = gridmarl.parallel_env(**preset[1])
    env.reset(seed=3)
    acts = np.random.default_rng(0)
    for _ in range(150):
        if not env.agents:
            env.reset()
        before = env.get_state()
        joint = acts.integers(0, 5, env.config.n_agents)
        _, rew, _, _, _ = env.step(dict(zip(env.agents, joint.tolist(), strict=True)))
        dist = transition_distribution(env.config, before, joint)
        after = canonical(env.config, gridmarl.State(*_as_arrays(env.get_state())))
        match = (dist.states.agents == after.agents).all(1) & (dist.states.coins == after.coins).all(1)
        assert match.sum() == 1
        assert np.array_equal(dist.rewards[0], np.array(list(rew.values()), dtype=np.float32))


def _as_arrays(snapshot):
    return snapshot["agents"][None], snapshot["coins"][None], np.array([snapshot["t"]])


def test_state_and_snapshot_roundtrip(preset):
    env = gridmarl.parallel_env(**preset[1])
    env.reset(seed=0)
    cfg = env.config
    state = env.state()
    assert state.shape == cfg.state_shape == env.state_space.shape
    assert state[: cfg.n_agents].sum() == cfg.n_agents
    assert state[cfg.n_agents : 2 * cfg.n_agents].sum() == cfg.n_coins
    snap = env.get_state()
    actions = {a: 1 for a in env.agents}
    first = env.step(actions)
    env.set_state(snap)
    # the generator goes on, so respawns may differ, but a step without pick-ups repeats exactly
    again = env.step(actions)
    if not any(first[1].values()):
        for a in env.agents:
            np.testing.assert_array_equal(first[0][a], again[0][a])


def test_reset_from_state_option():
    env = gridmarl.parallel_env()
    env.reset(seed=0)
    snap = {"agents": np.array([0, 15]), "coins": np.array([5, 10]), "t": 3}
    obs, _ = env.reset(options={"state": snap})
    assert obs["player_0"][0, 0, 0] == 1 and obs["player_0"][1, 3, 3] == 1
    assert obs["player_0"][2, 1, 1] == 1 and obs["player_0"][3, 2, 2] == 1
    assert obs["player_1"][2, 2, 2] == 1 and obs["player_1"][3, 1, 1] == 1
    assert env.get_state()["t"] == 3


def test_truncation_at_max_steps_and_reset_needed():
    env = gridmarl.parallel_env(max_steps=3)
    with pytest.raises(ResetNeeded, match="reset"):
        env.step({"player_0": 0, "player_1": 0})
    env.reset(seed=0)
    for t in range(3):
        _, _, term, trunc, _ = env.step({"player_0": 0, "player_1": 0})
        assert not any(term.values())
        assert all(trunc.values()) == (t == 2)
    assert env.agents == []
    with pytest.raises(ResetNeeded, match=r"call reset\(\)"):
        env.step({"player_0": 0, "player_1": 0})


def test_aec_pending_actions_apply_together():
    """In the AEC env nothing moves until the last player has chosen."""
    env = gridmarl.env()
    env.reset(seed=0)
    before = env.get_state()
    env.step(1)
    mid = env.get_state()
    assert np.array_equal(mid["agents"], before["agents"]) and mid["pending_actions"] == {"player_0": 1}
    env.step(2)
    assert env.get_state()["t"] == 1
    # a mid-round snapshot restores the pending action and the turn
    env.step(3)
    snap = env.get_state()
    env.step(4)
    env.set_state(snap)
    assert env.agent_selection == "player_1" and env.get_state()["pending_actions"] == {"player_0": 3}


def test_pickle_continues_identically():
    env = gridmarl.parallel_env(n_agents=3, height=5, width=5)
    env.reset(seed=11)
    clone = pickle.loads(pickle.dumps(env))
    for _ in range(20):
        actions = {a: 2 for a in env.agents}
        o1, r1, *_ = env.step(actions)
        o2, r2, *_ = clone.step(actions)
        assert r1 == r2 and all(np.array_equal(o1[a], o2[a]) for a in o1)


def test_supersuit_vector_conversion():
    ss = pytest.importorskip("supersuit")
    vec = ss.pettingzoo_env_to_vec_env_v1(gridmarl.parallel_env())
    vec = ss.concat_vec_envs_v1(vec, 2, num_cpus=0, base_class="gymnasium")
    obs, _ = vec.reset(seed=0)
    assert obs.shape == (4, 5, 4, 4)
    for _ in range(60):  # past one episode, through SuperSuit's own autoreset
        obs, rew, term, trunc, _ = vec.step(np.random.default_rng(0).integers(0, 5, 4))
    assert obs.shape == (4, 5, 4, 4) and rew.shape == (4,)
    vec.close()

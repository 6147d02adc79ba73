"""Data collection: every player's transitions, parallel and serial alike, saved and loaded safely."""

import numpy as np
import pytest
from helpers import P_MIN, chi2_sf

import gridmarl
from gridmarl_wm.data import FIELDS, CollectConfig, collect, load, save

WALLS = {"layout": gridmarl.config.WALLED_LAYOUT, "n_agents": 3, "coins_per_agent": 2}


def test_transitions_are_every_players_view_of_real_steps():
    game = gridmarl.make_config(**WALLS)
    data = collect(
        game, CollectConfig(steps=30, num_envs=4, policy=("greedy", "switching", "random"), seed=1)
    )
    assert len(data) == 30 * 4 * 3
    assert data.obs.shape == (len(data), 5, 5, 6) and data.others.shape == (len(data), 2)
    # rows come as (episode, t, player); the three players of one step share the joint action
    first = data.take(slice(0, 3))
    assert first.agent.tolist() == [0, 1, 2] and len(set(first.t.tolist())) == 1
    joint = np.insert(first.others[0], 0, first.action[0])
    assert first.action.tolist() == joint.tolist()
    assert first.others[1].tolist() == [joint[0], joint[2]]
    # the others' true action distributions come along: a point mass or uniform over the best moves
    probs = data.others_probs
    assert probs.shape == (len(data), 2, 5) and np.allclose(probs.sum(-1), 1)
    assert (probs[np.arange(len(data)), 0, data.others[:, 0]] > 0).all()
    # the reward is the player's own, as the exact rules give it
    assert set(np.unique(data.reward)) <= {-6.0, -5.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0}


def _homogeneity_p(a: np.ndarray, b: np.ndarray) -> float:
    """Chi-square test that two samples of integer keys come from one distribution (categories whose
    expected count is under 5 are pooled into one)."""
    keys, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    counts = np.zeros((2, len(keys)))
    np.add.at(counts[0], inverse[: len(a)], 1)
    np.add.at(counts[1], inverse[len(a) :], 1)
    expected_any = counts.sum(0) * min(len(a), len(b)) / (len(a) + len(b))
    rare = expected_any < 5
    counts = np.concatenate([counts[:, ~rare], counts[:, rare].sum(1, keepdims=True)], 1)
    counts = counts[:, counts.sum(0) > 0]
    expected = counts.sum(1, keepdims=True) * counts.sum(0, keepdims=True) / counts.sum()
    stat = float(((counts - expected) ** 2 / expected).sum())
    return chi2_sf(stat, counts.shape[1] - 1)


def _transition_keys(d) -> dict[str, np.ndarray]:
    """Integer keys of what a transition shows: where the player stood and went, the joint action and
    reward, where its coin lies after the step, and the start observation of each episode."""
    flat = d.obs.reshape(len(d), 5, -1).astype(np.int64)
    nxt = d.next_obs.reshape(len(d), 5, -1).astype(np.int64)
    cells = flat.shape[-1]
    me, me_next = flat[:, 0].argmax(1), nxt[:, 0].argmax(1)
    other, coin_next = flat[:, 1].argmax(1), nxt[:, 2].argmax(1)
    reward = np.searchsorted([-2.0, -1.0, 0.0, 1.0], d.reward)
    joint = d.action * 5 + d.others[:, 0]
    start = d.t == 0
    return {
        "move": me * cells + me_next,
        "joint action and reward": joint * 4 + reward,
        "own coin after a pick-up": coin_next[d.reward != 0],
        "own coin and player after the step": coin_next * cells + me_next,
        "start": (me * cells + other)[start] * cells + flat[start, 2].argmax(1),
    }


def test_parallel_and_serial_collection_give_the_same_distribution():
    """The research notes saw returns stall only in parallel runs: the same policies collected 256 games
    at a time and one game at a time must give statistically indistinguishable transitions, and games
    collected side by side must be independent of each other."""
    game = gridmarl.make_config()
    parallel = collect(game, CollectConfig(steps=200, num_envs=256, policy="greedy", seed=0))
    serial = collect(game, CollectConfig(steps=200 * 256, num_envs=1, policy="greedy", seed=1))
    assert len(parallel) == len(serial)
    serial_keys, parallel_keys = _transition_keys(serial), _transition_keys(parallel)
    for name in serial_keys:
        p = _homogeneity_p(serial_keys[name], parallel_keys[name])
        assert p > P_MIN, (name, p)
    # Independence of neighbouring games: player_0's (joint action, reward, move) in games 2k and 2k + 1 at
    # the same step (side by side in parallel, one after the other in serial) agree as often in both.
    for d, keys in ((serial, serial_keys), (parallel, parallel_keys)):
        mine = d.agent == 0
        key = (keys["joint action and reward"] * 10**4 + keys["move"])[mine]
        ep, t = d.episode[mine], d.t[mine]
        order = np.lexsort((ep, t))  # by step, then game
        key, ep = key[order].reshape(-1, 2), ep[order].reshape(-1, 2)
        assert (ep[:, 0] % 2 == 0).all() and (ep[:, 1] == ep[:, 0] + 1).all()
        keys["same in neighbouring games"] = (key[:, 0] == key[:, 1]).astype(np.int64)
    p = _homogeneity_p(serial_keys["same in neighbouring games"], parallel_keys["same in neighbouring games"])
    assert p > P_MIN, p


def test_save_load_round_trip_and_errors(tmp_path):
    game = gridmarl.make_config()
    cfg = CollectConfig(steps=10, num_envs=2, seed=3)
    data = collect(game, cfg)
    path = tmp_path / "data.npz"
    save(path, data, game, cfg, ["random"])
    back, meta = load(path, game)
    assert meta["game"] == game and meta["collect"]["seed"] == 3
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(back, field), getattr(data, field))
    with pytest.raises(ValueError, match="another game"):
        load(path, gridmarl.make_config(height=5))
    (tmp_path / "bad.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="not a readable gridmarl transitions file"):
        load(tmp_path / "bad.npz")
    fields = {k: getattr(data, k) for k in FIELDS}
    np.savez(tmp_path / "other.npz", meta=np.array('{"format": "x/1"}'), **fields)
    with pytest.raises(ValueError, match="format 'x/1'"):
        load(tmp_path / "other.npz")


def test_bad_collect_config():
    with pytest.raises(ValueError, match="num_envs"):
        collect(gridmarl.make_config(), CollectConfig(steps=5, num_envs=0))
    with pytest.raises(ValueError, match="unknown opponent"):
        collect(gridmarl.make_config(), CollectConfig(steps=5, num_envs=1, policy="smart"))


def test_save_is_atomic_with_a_unique_temporary_name(tmp_path):
    game = gridmarl.make_config()
    cfg = CollectConfig(steps=5, num_envs=2, seed=0)
    data = collect(game, cfg)
    path = tmp_path / "data.npz"
    # another writer's temporary file under a fixed name must not be in the way (nor be clobbered)
    (tmp_path / "data.npz.tmp").mkdir()
    save(path, data, game, cfg, ["random"])
    assert load(path, game)[0].obs.shape == data.obs.shape
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npz", "data.npz.tmp"]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    from gridmarl_wm.io import atomic_copy, atomic_write, atomic_write_text

    path = tmp_path / "report.json"
    atomic_write_text(path, "old")

    def broken(f):
        f.write(b"half a fi")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, broken)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.json"]
    atomic_copy(path, tmp_path / "copy.json")
    assert (tmp_path / "copy.json").read_text() == "old"

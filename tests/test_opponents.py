"""Scripted opponents: behaviour against an independent reference that reads only their observation."""

from collections import deque

import gymnasium as gym
import numpy as np
import pytest

import gridmarl
from gridmarl.core import ACTION_DELTAS, GridCore, State
from gridmarl.opponents import Opponents


def reference_probs(obs: np.ndarray, selfish: bool) -> np.ndarray:
    """greedy/selfish from one observation (5, h, w) alone: BFS over the cells not marked as walls,
    targets in channel 2 (greedy) or channels 2 and 3 (selfish)."""
    _, h, w = obs.shape
    (r0,), (c0,) = np.nonzero(obs[0])
    targets = obs[2] + (obs[3] if selfish else 0) > 0
    dist = np.full((h, w), np.inf)
    queue = deque()
    for r, c in zip(*np.nonzero(targets), strict=True):
        dist[r, c] = 0
        queue.append((r, c))
    while queue:
        r, c = queue.popleft()
        for dr, dc in ACTION_DELTAS[1:]:
            r2, c2 = r + dr, c + dc
            if 0 <= r2 < h and 0 <= c2 < w and obs[4, r2, c2] == 0 and dist[r2, c2] == np.inf:
                dist[r2, c2] = dist[r, c] + 1
                queue.append((r2, c2))
    after = []
    for dr, dc in ACTION_DELTAS:
        r2, c2 = r0 + dr, c0 + dc
        inside = 0 <= r2 < h and 0 <= c2 < w and obs[4, r2, c2] == 0
        after.append(dist[r2, c2] if inside else dist[r0, c0])
    after = np.array(after)
    best = after == after.min() if np.isfinite(after.min()) else np.ones(5, bool)
    return best / best.sum()


@pytest.mark.parametrize("kind", ["greedy", "selfish"])
def test_targeting_policies_match_observation_reference(preset, kind):
    """In full and partial views the built-ins act exactly as BFS on their own observation says."""
    env = gym.make(preset[0], opponent=kind).unwrapped
    env.reset(seed=0)
    core = env.core
    checked = 0
    for t in range(200):
        probs = env.action_probs()
        obs = core.observe(env.games.state)[0]
        for k, agent in enumerate(env.games.opponents.slots):
            np.testing.assert_allclose(probs[k], reference_probs(obs[agent], kind == "selfish"))
            checked += 1
        if env.step(t % 5)[3]:
            env.reset()
    assert checked >= 200


def test_greedy_walks_to_own_coin_around_a_wall():
    """player_1 at (0,0), a wall at (0,1), its coin at (0,2): the only shortest path goes down first."""
    core = GridCore(gridmarl.make_config(layout=".#..\n....\n....", n_agents=2))
    opp = Opponents(core, ego=0, opponent="greedy")
    state = State(np.array([[11, 0]]), np.array([[8, 2]]), np.array([0]))
    opp.reset(1, None, np.zeros((1, 0)))
    np.testing.assert_allclose(opp.action_probs(state)[0, 0], [0, 0, 1, 0, 0])
    # selfish goes for the nearer coin of player_0 at (2,0) instead: down as well, stays on the same path
    opp = Opponents(core, ego=0, opponent="selfish")
    opp.reset(1, None, np.zeros((1, 0)))
    np.testing.assert_allclose(opp.action_probs(state)[0, 0], [0, 0, 1, 0, 0])


def test_greedy_ties_are_uniform_and_sampled():
    """Coin diagonal from the opponent: up and right both shorten the path; samples split evenly."""
    env = gym.make("GridMARL-v0", opponent="greedy").unwrapped
    env.reset(seed=0)
    snap = {"agents": np.array([0, 9]), "coins": np.array([15, 6]), "t": 0}
    np.testing.assert_allclose((env.set_state(snap), env.action_probs())[1][0], [0, 0.5, 0, 0, 0.5])
    counts = np.zeros(5)
    for _ in range(400):
        env.set_state(snap)
        counts[env.step(0)[4]["opponent_actions"][0]] += 1
    assert counts[[0, 2, 3]].sum() == 0 and 150 < counts[1] < 250


def test_no_target_in_view_is_uniform():
    env = gym.make("GridMARL-8x8-4P-Partial-v0", opponent="greedy").unwrapped
    env.reset(seed=0)
    # player_1 at (4,4); its coin far away at (0,0): not in its 3x3 window
    snap = {"agents": np.array([63, 36, 7, 56]), "coins": np.array([62, 0, 1, 8]), "t": 0}
    env.set_state(snap)
    np.testing.assert_allclose(env.action_probs()[0], np.full(5, 0.2))


def test_stay_and_random():
    env = gym.make("GridMARL-v0", opponent="stay")
    env.reset(seed=0)
    assert all(env.step(1)[4]["opponent_actions"][0] == 0 for _ in range(20))
    env = gym.make("GridMARL-v0", opponent="random", max_steps=5000)
    env.reset(seed=0)
    counts = np.bincount([env.step(0)[4]["opponent_actions"][0] for _ in range(2000)], minlength=5)
    assert counts.min() > 330 and counts.max() < 470


def test_switching_changes_on_schedule_to_a_different_policy():
    env = gym.make("GridMARL-v0", opponent="switching", switch_every=3, max_steps=400)
    _, info = env.reset(seed=0)
    names = [info["opponent_policies"][0]]
    for _ in range(300):
        names.append(env.step(0)[4]["opponent_policies"][0])
    # reset's info names the policy that acts at t = 0; a step's info names the one that just acted
    acting = names[1:]  # acting[t]: the policy that chose the action at time t
    assert acting[0] == names[0]
    assert set(acting) == {"greedy", "selfish", "random"}
    for t in range(1, 300):
        if t % 3 == 0:
            assert acting[t] != acting[t - 1]
        else:
            assert acting[t] == acting[t - 1]


def test_switching_pool_and_lists():
    env = gym.make(
        "GridMARL-Walls3P-v0", opponent=["switching", "stay"], switch_every=2, switch_pool=("stay", "random")
    )
    env.reset(seed=1)
    for _ in range(20):
        info = env.step(0)[4]
        assert info["opponent_policies"][0] in ("stay", "random") and info["opponent_policies"][1] == "stay"
        assert info["opponent_actions"][1] == 0


def test_callable_gets_its_own_observation():
    seen = []

    def policy(obs):
        seen.append(obs.copy())
        return 3

    env = gym.make("GridMARL-8x8-4P-Partial-v0", opponent=[policy, "stay", "stay"]).unwrapped
    env.reset(seed=0)
    for _ in range(5):
        before = env.core.observe(env.games.state)[0, 1]
        info = env.step(0)[4]
        np.testing.assert_array_equal(seen[-1], before)
        assert info["opponent_actions"].tolist() == [3, 0, 0] and info["opponent_policies"][0] == "policy"


@pytest.mark.parametrize(("bad", "error"), [(2.0, TypeError), ("up", TypeError), (7, ValueError)])
def test_callable_returning_a_bad_action(bad, error):
    env = gym.make("GridMARL-v0", opponent=lambda obs: bad)
    env.reset(seed=0)
    with pytest.raises(error, match="opponent policy"):
        env.step(0)

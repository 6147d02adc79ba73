"""``gridmarl.exact``: the exact next-state distribution and the reachable state set are the ground truth the
learned simulator is scored against, so they are checked here against the sampling core (``GridCore.step``),
against counts worked out by hand, and against a breadth-first search of the game itself.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from helpers import (
    P_MIN,
    chi2_pvalue,
    draw_picture,
    parse_picture,
    random_states,
    ref_move,
    ref_rewards,
    repeat_state,
)

from gridmarl.config import PRESETS, GridConfig, make_config
from gridmarl.core import GridCore, State
from gridmarl.exact import (
    canonical,
    count_reachable_states,
    reachable_states,
    transition_distribution,
)

STAY, UP, DOWN, LEFT, RIGHT = range(5)

CONFIGS = {
    "default": make_config(),
    "walls-5x6-3p-2coins": make_config(**PRESETS["GridMARL-Walls3P-v0"]),
    "3x4-4p": make_config(height=3, width=4, n_agents=4),
}


def key(state: State, row: int = 0) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    return tuple(state.agents[row].tolist()), tuple(state.coins[row].tolist()), int(state.t[row])


def coin_seeking_actions(cfg: GridConfig, state: State, rng: np.random.Generator) -> np.ndarray:
    """A joint action per game in which most agents that can step onto a coin do, so that single, double and
    triple pick-ups (multi-stage respawns) are common rather than rare."""
    actions = rng.integers(0, 5, size=(state.batch_size, cfg.n_agents))
    for b in range(state.batch_size):
        coins = set(state.coins[b].tolist())
        for i, cell in enumerate(state.agents[b]):
            onto = [a for a in range(5) if ref_move(cfg, cell, a) in coins]
            if onto and rng.random() < 0.9:
                actions[b, i] = rng.choice(onto)
    return actions


def expected_outcomes(cfg: GridConfig, moved: np.ndarray, coins: np.ndarray) -> int:
    """Hand count of distinct canonical outcomes: the P picked coins go, in order, to distinct cells among
    the F' cells with no wall, agent or unpicked coin (F'!/(F'-P)! ordered ways); coins of one colour are
    interchangeable, so the m_c! orders of the m_c picked coins of colour c are one outcome."""
    picked = np.isin(coins, moved)
    free = cfg.n_free_cells - len(set(moved.tolist())) - int((~picked).sum())
    ordered = math.perm(free, int(picked.sum()))
    per_colour = np.bincount(np.flatnonzero(picked) // cfg.coins_per_agent, minlength=cfg.n_agents)
    return ordered // math.prod(math.factorial(int(m)) for m in per_colour)


# ---------------------------------------------------------------------------------------------- distribution
@pytest.mark.parametrize("name", list(CONFIGS))
def test_distribution_is_a_valid_distribution_over_canonical_outcomes(name: str) -> None:
    """On many random states: probabilities sum to 1, outcomes are distinct, canonical and valid, their
    number and probabilities match the hand count, and the rewards are the reference rewards."""
    cfg = CONFIGS[name]
    rng = np.random.default_rng(0)
    states = random_states(cfg, rng, 60)
    joint = coin_seeking_actions(cfg, states, rng)
    n_picks = []
    for b in range(states.batch_size):
        s = states.take(b)
        out = transition_distribution(cfg, s, joint[b])
        M = len(out)
        assert abs(out.probs.sum() - 1.0) <= 1e-12
        assert (out.probs > 0).all()
        assert out.states == canonical(cfg, out.states)
        assert len({key(out.states, i) for i in range(M)}) == M
        moved = np.array([ref_move(cfg, a, act) for a, act in zip(s.agents[0], joint[b])])
        assert (out.states.agents == moved).all() and (out.states.t == s.t[0] + 1).all()
        walls = {r * cfg.width + c for r, c in cfg.walls}
        for i in range(M):
            cells = set(out.states.coins[i].tolist())
            assert len(cells) == cfg.n_coins and not cells & (walls | set(moved.tolist()))
        # Unpicked coins stay put: each one's cell is among its colour's cells in every outcome.
        picked = np.isin(s.coins[0], moved)
        by_colour = out.states.coins.reshape(M, cfg.n_agents, cfg.coins_per_agent)
        for j in np.flatnonzero(~picked):
            assert (by_colour[:, j // cfg.coins_per_agent] == s.coins[0, j]).any(axis=1).all()
        # Every ordered placement of the picked coins has the same probability and every outcome gathers
        # the same number of them, so the outcomes are equally likely.
        assert expected_outcomes(cfg, moved, s.coins[0]) == M
        np.testing.assert_allclose(out.probs, 1.0 / M, rtol=1e-12)
        assert out.rewards.shape == (M, cfg.n_agents)
        np.testing.assert_array_equal(out.rewards, np.tile(ref_rewards(cfg, moved, s.coins[0]), (M, 1)))
        n_picks.append(int(picked.sum()))
    assert max(n_picks) >= 2 and 0 in n_picks  # the sample did exercise multi-stage respawns


@pytest.mark.parametrize("name", list(CONFIGS))
def test_sampled_steps_lie_in_the_support_with_the_same_rewards(name: str) -> None:
    """``GridCore.step`` with random uniforms, put in canonical form, always lands on a listed outcome and
    gets the listed rewards."""
    cfg = CONFIGS[name]
    core = GridCore(cfg)
    rng = np.random.default_rng(1)
    states = random_states(cfg, rng, 25)
    joint = coin_seeking_actions(cfg, states, rng)
    for b in range(states.batch_size):
        s = states.take(b)
        out = transition_distribution(cfg, s, joint[b])
        support = {key(out.states, i) for i in range(len(out))}
        batch = repeat_state(s, 50)
        rewards, _ = core.step(batch, np.tile(joint[b], (50, 1)), rng.random((50, cfg.n_coins)))
        sampled = canonical(cfg, batch)
        assert {key(sampled, i) for i in range(50)} <= support
        np.testing.assert_array_equal(rewards, np.tile(out.rewards[0], (50, 1)))


# Pick-ups of several coins at once, so the respawn has two or three stages.
MULTI_PICK_CASES = [
    # Default 4x4 game, each player on its own coin: 14 * 13 ordered cells for (a, b).
    pytest.param(
        ". . . . \n 0 a b 1 \n . . . . \n . . . .", (RIGHT, LEFT), 182, (1, 1), id="4x4-two-colours"
    ),
    # Both colour-0 coins at once: 5 * 4 ordered cells, an unordered pair each, so 10 outcomes.
    pytest.param("0 a . \n . 1 a \n b . b", (RIGHT, RIGHT), 10, (-1, 1), id="3x3-same-colour-pair"),
    # Three players, three coins picked (one own, two steals): 5 * 4 * 3 ordered cells.
    pytest.param("0 a . \n b # . \n 2 c 1", (RIGHT, LEFT, UP), 60, (1, -1, -1), id="3x3-walls-3-coins"),
]


@pytest.mark.parametrize(("picture", "joint", "n_outcomes", "rewards"), MULTI_PICK_CASES)
def test_sampled_frequencies_match_the_probabilities(
    picture: str, joint: tuple[int, ...], n_outcomes: int, rewards: tuple[float, ...]
) -> None:
    cfg, s = parse_picture(picture)
    out = transition_distribution(cfg, s, joint)
    assert len(out) == n_outcomes
    np.testing.assert_array_equal(out.rewards[0], rewards)
    index = {key(out.states, i): i for i in range(len(out))}
    n = 40_000
    batch = repeat_state(s, n)
    GridCore(cfg).step(batch, np.tile(joint, (n, 1)), np.random.default_rng(2).random((n, cfg.n_coins)))
    sampled = canonical(cfg, batch)
    hits = [index.get(key(sampled, i), -1) for i in range(n)]
    assert min(hits) >= 0, "a sampled step is not in the support"
    p = chi2_pvalue(np.bincount(hits, minlength=len(out)), out.probs)
    assert p > P_MIN, p


def test_hand_computed_cases_on_the_default_game() -> None:
    """Default 4x4 game, worked out by hand."""
    cfg, s = parse_picture(". . . . \n . 0 a . \n . . . . \n 1 . . b")
    assert cfg == make_config()
    # player_0 takes its own coin; the agents stand on 2 distinct cells and coin b holds one more, so coin a
    # can go to any of 16 - 2 - 1 = 13 cells, each with probability 1/13.
    out = transition_distribution(cfg, s, (RIGHT, STAY))
    assert len(out) == 13
    np.testing.assert_allclose(out.probs, 1 / 13, rtol=1e-12)
    np.testing.assert_array_equal(out.rewards, np.tile([1.0, 0.0], (13, 1)))
    assert (out.states.agents == [6, 12]).all() and (out.states.coins[:, 1] == 15).all()
    assert set(out.states.coins[:, 0].tolist()) == set(range(16)) - {6, 12, 15}
    # player_1 steals it instead: same 13 cells, rewards -2 / +1.
    cfg, s = parse_picture(". . . . \n . . a 1 \n . 0 . . \n . . . b")
    out = transition_distribution(cfg, s, (STAY, LEFT))
    assert len(out) == 13 and (out.rewards == [-2.0, 1.0]).all()
    # Owner and thief on the coin share a cell: 16 - 1 - 1 = 14 cells, rewards +1 - 2 = -1 and +1.
    cfg, s = parse_picture(". . . . \n . 0 a 1 \n . . . . \n . . . b")
    out = transition_distribution(cfg, s, (RIGHT, LEFT))
    assert len(out) == 14
    np.testing.assert_allclose(out.probs, 1 / 14, rtol=1e-12)
    assert (out.rewards == [-1.0, 1.0]).all()
    # No pick-up: one outcome, certain, the moved state, no reward.
    out = transition_distribution(cfg, s, (UP, DOWN))
    assert len(out) == 1 and out.probs.tolist() == [1.0] and (out.rewards == 0).all()
    assert out.states == State(np.array([[1, 11]]), s.coins.copy(), np.array([1]))


def test_snapshot_dict_and_config_mapping_are_accepted() -> None:
    cfg, s = parse_picture("0 a . \n . 1 b")
    from_state = transition_distribution(cfg, s, [RIGHT, RIGHT])
    snapshot = {"agents": s.agents[0].tolist(), "coins": s.coins[0].tolist(), "t": 0}
    kwargs = {"height": 2, "width": 3}
    from_dict = transition_distribution(kwargs, snapshot, np.array([RIGHT, RIGHT]))
    assert from_dict.states == from_state.states
    np.testing.assert_array_equal(from_dict.probs, from_state.probs)
    np.testing.assert_array_equal(from_dict.rewards, from_state.rewards)


@pytest.mark.parametrize(
    "joint",
    [[0], [0, 0, 0], [0, 5], [-1, 0], [0.0, 1.0], np.zeros((1, 2), dtype=np.int64)],
    ids=["too-short", "too-long", "action-5", "action-minus-1", "floats", "batched"],
)
def test_bad_joint_action_raises_value_error(joint: Any) -> None:
    cfg, s = parse_picture("0 a . \n . 1 b")
    with pytest.raises(ValueError, match="joint_action"):
        transition_distribution(cfg, s, joint)


def test_bad_state_is_refused() -> None:
    cfg, s = parse_picture("0 a . \n . 1 b")
    with pytest.raises(ValueError, match="one game"):
        transition_distribution(cfg, repeat_state(s, 2), [0, 0])
    with pytest.raises(TypeError, match="state"):
        transition_distribution(cfg, [0, 4], [0, 0])


# ---------------------------------------------------------------------------------------------- reachable set
def test_default_game_has_47040_reachable_states() -> None:
    cfg = make_config()
    states = reachable_states(cfg)
    assert states.batch_size == 47_040 == count_reachable_states(cfg)
    assert states == canonical(cfg, states) and (states.t == 0).all()
    rows = np.concatenate([states.agents, states.coins], axis=1)
    assert len(np.unique(rows, axis=0)) == 47_040
    assert (states.coins[:, 0] != states.coins[:, 1]).all()
    assert not np.equal(states.coins[:, :, None], states.agents[:, None, :]).any()  # no coin under an agent
    # By hand: 16 cells for two agents on one cell (then 15 * 14 coin placements) plus 16 * 15 ordered
    # distinct cells (then 14 * 13).
    assert 16 * 15 * 14 + 16 * 15 * 14 * 13 == 47_040


@pytest.mark.parametrize(
    "kwargs",
    [
        {"height": 2, "width": 3},
        {"layout": ".#.\n...\n..."},
        {"height": 2, "width": 3, "n_agents": 3},
        {"height": 3, "width": 3, "coins_per_agent": 2},
    ],
    ids=str,
)
def test_count_matches_the_enumeration(kwargs: dict[str, Any]) -> None:
    cfg = make_config(**kwargs)
    states = reachable_states(cfg)
    assert states.batch_size == count_reachable_states(cfg)
    assert states == canonical(cfg, states)
    rows = np.concatenate([states.agents, states.coins], axis=1)
    assert len(np.unique(rows, axis=0)) == states.batch_size


def reset_states(cfg: GridConfig) -> State:
    """Every state reset can produce: reset places object j on the free cell of rank floor(u_j * (F - j)),
    so the middles of all rank intervals give each placement once."""
    F, m = cfg.n_free_cells, cfg.n_agents + cfg.n_coins
    ranks = itertools.product(*[range(F - j) for j in range(m)])
    u = np.array([[(r + 0.5) / (F - j) for j, r in enumerate(rk)] for rk in ranks])
    return canonical(cfg, GridCore(cfg).reset(u))


def closure(cfg: GridConfig) -> set[tuple]:
    """States (t ignored) reachable from any reset state under any joint actions, by breadth-first search
    over ``transition_distribution``."""
    starts = reset_states(cfg)
    seen = {key(starts, i)[:2] for i in range(starts.batch_size)}
    frontier = list(seen)
    joints = list(itertools.product(range(5), repeat=cfg.n_agents))
    while frontier:
        new = []
        for agents, coins in frontier:
            s = State(np.array([agents]), np.array([coins]), np.array([0]))
            for joint in joints:
                out = transition_distribution(cfg, s, joint)
                for i in range(len(out)):
                    k = key(out.states, i)[:2]
                    if k not in seen:
                        seen.add(k)
                        new.append(k)
        frontier = new
    return seen


@pytest.mark.parametrize(
    "layout",
    [
        pytest.param("...\n...", id="2x3-open"),
        # As crowded as a game can be (4 free cells for 2 agents and 2 coins): still every placement.
        pytest.param("..\n..", id="2x2-open"),
        pytest.param(".#.\n...", id="2x3-one-wall"),
        # An isolated free cell (top left): reset can put one agent there, but no agent can ever step in,
        # so two agents can never share it.
        pytest.param(".#..\n#...", id="2x4-isolated-cell"),
        # A two-cell pocket (right column): two agents on one pocket cell with a coin on the other cannot be
        # reached, since the second agent must come from that other cell.
        pytest.param("..#.\n..#.", id="2x4-two-cell-pocket"),
    ],
)
def test_reachable_states_is_the_closure_of_reset_under_the_rules(layout: str) -> None:
    cfg = make_config(layout=layout)
    states = reachable_states(cfg)
    listed = {key(states, i)[:2] for i in range(states.batch_size)}
    found = closure(cfg)
    assert found <= listed, "the game reaches states reachable_states does not list"
    missing = sorted(listed - found)
    assert not missing, (
        f"reachable_states lists {len(missing)} of {len(listed)} states that no play from reset reaches, "
        f"e.g.\n{draw_picture(cfg, State(np.array([missing[0][0]]), np.array([missing[0][1]]), np.array([0])))}"
    )

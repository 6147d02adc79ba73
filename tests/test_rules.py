"""The rules of the coin game (DESIGN.md section 2), checked on ``gridmarl.core.GridCore``.

Most cases are pictures side by side, ``before | after`` (see ``tests/helpers.py`` for the notation), with
the joint action and every player's reward. Respawns in the pictures use ``u = 0``: the core places a respawned
coin on the free cell of rank ``floor(u * F)`` in increasing cell order, so ``u = 0`` means "the first cell
in reading order with no wall, agent or coin", which makes the "after" pictures exact. Separate tests check
that, over all ``u``, a respawn reaches exactly the allowed cells and each with the same probability.

The last part runs random games (hypothesis) and checks every step against loop-by-loop reference rules.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pytest
from helpers import (
    P_MIN,
    chi2_pvalue,
    draw_picture,
    normalise_picture,
    parse_picture,
    ref_global_state,
    ref_move,
    ref_observation,
    ref_rewards,
    relabel_picture,
    repeat_state,
    split_pair,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gridmarl.config import ACTION_NAMES, make_config
from gridmarl.core import GridCore, State

STAY, UP, DOWN, LEFT, RIGHT = range(5)


@dataclass(frozen=True)
class Case:
    """One step from a ``before | after`` picture under ``actions``; ``rewards`` None means all zero."""

    pair: str
    actions: tuple[int, ...]
    rewards: tuple[float, ...] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def before(self) -> str:
        return split_pair(self.pair)[0]

    @property
    def after(self) -> str:
        return split_pair(self.pair)[1]


def run_case(case: Case, u: float = 0.0) -> tuple[Any, State, np.ndarray, np.ndarray]:
    """Step the ``before`` picture once; returns (config, state after, rewards, picked)."""
    cfg, state = parse_picture(case.before, **case.kwargs)
    core = GridCore(cfg)
    rewards, picked = core.step(state, np.array([case.actions]), np.full((1, cfg.n_coins), u))
    return cfg, state, rewards[0], picked[0]


def check_case(case: Case) -> None:
    cfg, state, rewards, _ = run_case(case)
    assert draw_picture(cfg, state) == normalise_picture(case.after)
    expected = case.rewards if case.rewards is not None else (0.0,) * cfg.n_agents
    assert rewards.dtype == np.float32
    np.testing.assert_array_equal(rewards, np.array(expected, dtype=np.float32))
    assert state.t.tolist() == [1]


# ---------------------------------------------------------------------------------------------- moves
# A non-square 3x4 grid; player_0 tries every action.
MOVE_CASES = [
    pytest.param(
        Case(
            """
            . . . a  |  . . . a
            . 0 . .  |  . 0 . .
            b . . 1  |  b . . 1
            """,
            (STAY, STAY),
        ),
        id="stay",
    ),
    pytest.param(
        Case(
            """
            . . . a  |  . 0 . a
            . 0 . .  |  . . . .
            b . . 1  |  b . . 1
            """,
            (UP, STAY),
        ),
        id="up-is-row-minus-1",
    ),
    pytest.param(
        Case(
            """
            . . . a  |  . . . a
            . 0 . .  |  . . . .
            b . . 1  |  b 0 . 1
            """,
            (DOWN, STAY),
        ),
        id="down-is-row-plus-1",
    ),
    pytest.param(
        Case(
            """
            . . . a  |  . . . a
            . 0 . .  |  0 . . .
            b . . 1  |  b . . 1
            """,
            (LEFT, STAY),
        ),
        id="left-is-col-minus-1",
    ),
    pytest.param(
        Case(
            """
            . . . a  |  . . . a
            . 0 . .  |  . . 0 .
            b . . 1  |  b . . 1
            """,
            (RIGHT, STAY),
        ),
        id="right-is-col-plus-1",
    ),
    pytest.param(
        Case(
            """
            . . . a  |  . 0 . a
            . 0 . .  |  . . . .
            b . . 1  |  b . 1 .
            """,
            (UP, LEFT),
        ),
        id="both-move-at-once",
    ),
]

# Four players in the corners of a 3x5 grid all take the same action: two are pushed against an edge and
# stay, the other two move. Together the four cases cover every edge and corner, and no wrap-around.
EDGE_CASES = [
    pytest.param(
        Case(
            """
            0 . a . 1  |  0 . a . 1
            . b . c .  |  2 b . c 3
            2 . d . 3  |  . . d . .
            """,
            (UP,) * 4,
        ),
        id="all-up",
    ),
    pytest.param(
        Case(
            """
            0 . a . 1  |  . . a . .
            . b . c .  |  0 b . c 1
            2 . d . 3  |  2 . d . 3
            """,
            (DOWN,) * 4,
        ),
        id="all-down",
    ),
    pytest.param(
        Case(
            """
            0 . a . 1  |  0 . a 1 .
            . b . c .  |  . b . c .
            2 . d . 3  |  2 . d 3 .
            """,
            (LEFT,) * 4,
        ),
        id="all-left",
    ),
    pytest.param(
        Case(
            """
            0 . a . 1  |  . 0 a . 1
            . b . c .  |  . b . c .
            2 . d . 3  |  . 2 d . 3
            """,
            (RIGHT,) * 4,
        ),
        id="all-right",
    ),
    pytest.param(
        Case(
            """
            . . . a  |  . . . a
            0 . . 1  |  0 . . 1
            b . . .  |  b . . .
            """,
            (LEFT, RIGHT),
        ),
        id="off-left-and-right-no-wrap",
    ),
]

# player_0 is boxed in by walls; player_1 sits in a corner between two walls and two edges.
BOXED = """
    a # b  |  a # b
    # 0 #  |  # 0 #
    1 # .  |  1 # .
"""
WALL_CASES = [
    *(
        pytest.param(Case(BOXED, (a, a)), id=f"boxed-{name}")
        for a, name in zip(range(1, 5), ACTION_NAMES[1:])
    ),
    pytest.param(
        Case(
            """
            . # . a  |  . # . a
            0 # 1 .  |  0 # 1 .
            b . . .  |  b . . .
            """,
            (RIGHT, LEFT),
        ),
        id="into-a-wall-from-both-sides",
    ),
    pytest.param(
        Case(
            """
            . # . a  |  0 # 1 a
            0 # 1 .  |  . # . .
            b . . .  |  b . . .
            """,
            (UP, UP),
        ),
        id="along-a-wall",
    ),
]

# Agents never block each other: several may share a cell.
SHARE_CASES = [
    pytest.param(
        Case(
            """
            0 . 1  |  . 01 .
            . . .  |  . .  .
            a . b  |  a .  b
            """,
            (RIGHT, LEFT),
        ),
        id="meet-on-an-empty-cell",
    ),
    pytest.param(
        Case(
            """
            0 1 .  |  1 0 .
            . . .  |  . . .
            a . b  |  a . b
            """,
            (RIGHT, LEFT),
        ),
        id="swap-places",
    ),
    pytest.param(
        Case(
            """
            0 1 .  |  . 01 .
            . . .  |  . .  .
            a . b  |  a .  b
            """,
            (RIGHT, STAY),
        ),
        id="onto-a-player-who-stays",
    ),
    pytest.param(
        Case(
            """
            . 0 .  |  .  .   .
            1 . 2  |  .  012 .
            a b c  |  a  b   c
            """,
            (DOWN, RIGHT, LEFT),
        ),
        id="three-meet",
    ),
    pytest.param(
        Case(
            """
            .  .   .  |  . 0 .
            .  012 .  |  1 . 2
            a  b   c  |  a b c
            """,
            (UP, LEFT, RIGHT),
        ),
        id="three-split-up",
    ),
    pytest.param(
        Case(
            """
            .  .   .  |  .  .   .
            .  012 .  |  .  012 .
            a  b   c  |  a  b   c
            """,
            (STAY, STAY, STAY),
        ),
        id="three-stay-together",
    ),
]


@pytest.mark.parametrize("case", MOVE_CASES + EDGE_CASES + WALL_CASES + SHARE_CASES)
def test_moves(case: Case) -> None:
    check_case(case)


# ---------------------------------------------------------------------------------------------- pick-ups
# Each picked coin respawns on the first allowed cell in reading order (u = 0), coins in order (colour,
# index); a coin respawned earlier in the step blocks its cell for the next one.
OWNER_AND_THIEF = Case(
    """
    . . . .  |  a . .  .
    . 0 a 1  |  . . 01 .
    . . b .  |  . . b  .
    """,
    (RIGHT, LEFT),
    (-1, 1),
)
TWO_THIEVES = Case(
    """
    0 . . .  |  0 a .  .
    . 1 a 2  |  . . 12 .
    c . b .  |  c . b  .
    """,
    (STAY, RIGHT, LEFT),
    (-4, 1, 1),
)
PICK_CASES = [
    pytest.param(
        Case(
            """
            1 . . .  |  1 a . .
            . 0 a .  |  . . 0 .
            . . b .  |  . . b .
            """,
            (RIGHT, STAY),
            (1, 0),
        ),
        id="own-coin",
    ),
    pytest.param(
        Case(
            """
            . . . .  |  a . . .
            . 0 a 1  |  . 0 1 .
            . . b .  |  . . b .
            """,
            (STAY, LEFT),
            (-2, 1),
        ),
        id="steal",
    ),
    pytest.param(OWNER_AND_THIEF, id="owner-and-one-thief"),
    pytest.param(TWO_THIEVES, id="two-thieves-owner-away"),
    pytest.param(
        Case(
            """
            . . 0 .  |  a . .   .
            . 1 a 2  |  . . 012 .
            c . b .  |  c . b   .
            """,
            (DOWN, RIGHT, LEFT),
            (-3, 1, 1),
        ),
        id="owner-and-two-thieves",
    ),
    pytest.param(
        Case(
            """
            . . 1 . .  |  a . .   . .
            . 2 a 3 .  |  . . 123 . .
            b c . d 0  |  b c .   d 0
            """,
            (STAY, DOWN, RIGHT, LEFT),
            (-6, 1, 1, 1),
        ),
        id="three-thieves-of-four-players",
    ),
    pytest.param(
        Case(
            """
            . . . .  |  a b . .
            0 a b 1  |  . 0 1 .
            . . . .  |  . . . .
            """,
            (RIGHT, LEFT),
            (1, 1),
        ),
        id="two-own-coins-at-once",
    ),
    pytest.param(
        Case(
            """
            . . . .  |  a b . .
            0 b a 1  |  . 0 1 .
            . . . .  |  . . . .
            """,
            (RIGHT, LEFT),
            (-1, -1),
        ),
        id="two-steals-at-once",
    ),
    pytest.param(
        Case(
            """
            a . . b  |  a a . b
            0 a . .  |  . 0 . .
            . . 1 b  |  . . 1 b
            """,
            (RIGHT, STAY),
            (1, 0),
        ),
        id="one-of-two-same-colour-coins",
    ),
    pytest.param(
        Case(
            """
            0 a . b  |  a 0 a b
            . . a 1  |  . . 1 .
            . . . b  |  . . . b
            """,
            (RIGHT, LEFT),
            (-1, 1),
        ),
        id="both-coins-of-a-colour-at-once",
    ),
    pytest.param(
        Case(
            """
            0 # a  |  0 # a
            . # .  |  . # .
            1 # b  |  1 # b
            """,
            (STAY, STAY),
        ),
        id="no-pick-beside-a-coin",
    ),
]


@pytest.mark.parametrize("case", PICK_CASES)
def test_pick_ups(case: Case) -> None:
    check_case(case)


@pytest.mark.parametrize("case", PICK_CASES)
def test_simultaneous_pick_ups_are_symmetric(case: Case) -> None:
    """Renaming the players (and their coin colours) renames the outcome: no player is favoured.

    Respawn cells may differ (they follow colour order), so this compares moves, rewards and the cells whose
    coins were picked, for every permutation of the players.
    """
    cfg, base_after, base_rewards, base_picked = run_case(case)
    _, base_before = parse_picture(case.before)
    base_picked_cells = set(base_before.coins[0][base_picked].tolist())
    n = cfg.n_agents
    for perm in itertools.permutations(range(n)):
        actions = [0] * n
        for i, p in enumerate(perm):
            actions[p] = case.actions[i]
        renamed = Case(relabel_picture(case.pair, perm), tuple(actions))
        _, after, rewards, picked = run_case(renamed)
        _, before = parse_picture(renamed.before)
        for i, p in enumerate(perm):
            assert rewards[p] == base_rewards[i], (perm, rewards, base_rewards)
            assert after.agents[0, p] == base_after.agents[0, i], perm
        assert set(before.coins[0][picked].tolist()) == base_picked_cells, perm


@pytest.mark.parametrize(
    ("reward_pick", "reward_stolen"), [(3.0, -0.5), (1.0, 0.0), (0.5, -5.0), (0.0, -1.0)], ids=str
)
def test_reward_keywords_change_the_figures(reward_pick: float, reward_stolen: float) -> None:
    """The owner-and-one-thief and two-thieves cases again, with other reward figures."""
    kwargs = {"reward_pick": reward_pick, "reward_stolen": reward_stolen}
    owner_and_thief = replace(OWNER_AND_THIEF, kwargs=kwargs)
    cfg, _, rewards, _ = run_case(owner_and_thief)
    assert (cfg.reward_pick, cfg.reward_stolen) == (reward_pick, reward_stolen)
    np.testing.assert_array_equal(rewards, [reward_pick + reward_stolen, reward_pick])

    two_thieves = replace(TWO_THIEVES, kwargs=kwargs)
    _, _, rewards, _ = run_case(two_thieves)
    np.testing.assert_array_equal(rewards, [2 * reward_stolen, reward_pick, reward_pick])


def test_t_increments_and_truncation_at_max_steps() -> None:
    cfg, state = parse_picture("0 . a \n . . . \n b . 1", max_steps=3)
    core = GridCore(cfg)
    seen = []
    for _ in range(3):
        assert not core.truncated(state).any()
        core.step(state, np.zeros((1, 2), dtype=np.int64), np.zeros((1, 2)))
        seen.append((int(state.t[0]), bool(core.truncated(state)[0])))
    assert seen == [(1, False), (2, False), (3, True)]
    # From a picture part-way through an episode: one step from t = max_steps - 1 truncates.
    cfg, state = parse_picture("0 . a \n . . . \n b . 1", t=49)
    core = GridCore(cfg)
    assert cfg.max_steps == 50 and not core.truncated(state)[0]
    core.step(state, np.array([[RIGHT, UP]]), np.zeros((1, 2)))
    assert state.t.tolist() == [50] and core.truncated(state).tolist() == [True]


# ---------------------------------------------------------------------------------------------- respawn
def allowed_cells(cfg: Any, agents: np.ndarray, coins: np.ndarray) -> list[int]:
    """Cells with no wall, no agent and none of ``coins``, in increasing order."""
    taken = {r * cfg.width + c for r, c in cfg.walls} | set(agents.tolist()) | set(coins.tolist())
    return [cell for cell in range(cfg.height * cfg.width) if cell not in taken]


RESPAWN_CASES = [
    pytest.param("1 . . . \n . 0 a . \n . . b .", (RIGHT, STAY), id="open-grid"),
    pytest.param("0 a # . . \n . 1 . c . \n b . # . 2", (RIGHT, STAY, STAY), id="walls-3-players"),
    pytest.param("0 a 1 \n . # b", (RIGHT, LEFT), id="two-agents-on-the-coin"),
    pytest.param(". . 0 . \n . 1 a 2 \n c . b .", (DOWN, RIGHT, LEFT), id="three-on-one-coin"),
]


@pytest.mark.parametrize(("before", "actions"), RESPAWN_CASES)
def test_respawn_ranks_cover_exactly_the_allowed_cells(before: str, actions: tuple[int, ...]) -> None:
    """With one coin picked and F allowed cells, u in [r/F, (r+1)/F) gives the r-th allowed cell: every
    allowed cell is reachable and nothing else (no wall, no agent, no other coin) ever is."""
    cfg, state = parse_picture(before)
    core = GridCore(cfg)
    moved = np.array([ref_move(cfg, a, act) for a, act in zip(state.agents[0], actions)])
    picked = np.flatnonzero(np.isin(state.coins[0], moved))
    assert len(picked) == 1
    allowed = allowed_cells(cfg, moved, np.delete(state.coins[0], picked))
    F = len(allowed)
    # Both ends of every rank's interval, and its middle.
    u = np.concatenate([np.arange(F) / F, (np.arange(F) + 0.5) / F, np.nextafter((np.arange(F) + 1) / F, 0)])
    batch = repeat_state(state, len(u))
    uu = np.zeros((len(u), cfg.n_coins))
    uu[:, picked[0]] = u
    core.step(batch, np.tile(actions, (len(u), 1)), uu)
    landed = batch.coins[:, picked[0]]
    np.testing.assert_array_equal(landed, np.tile(allowed, 3))


def test_respawn_in_a_crowded_grid_takes_the_only_allowed_cell() -> None:
    """Four free cells for two agents and two coins: once player_0 steps onto its coin, the only cell with
    no wall, agent or coin is the one it left, whatever u is."""
    cfg, state = parse_picture("0 a # \n b 1 #")
    core = GridCore(cfg)
    u = np.concatenate([np.linspace(0, 1, 97, endpoint=False), [np.nextafter(1.0, 0)]])
    batch = repeat_state(state, len(u))
    core.step(batch, np.tile([RIGHT, STAY], (len(u), 1)), np.stack([u, u[::-1]], axis=1))
    assert (batch.coins[:, 0] == core.cell(0, 0)).all()
    assert (batch.coins[:, 1] == core.cell(1, 0)).all()


def test_two_stage_respawn_in_a_crowded_grid() -> None:
    """Both coins picked with three allowed cells left: coin a takes one of the three, then coin b one of the
    two left (a coin respawned this step blocks its cell). Each of the 3 * 2 ordered pairs comes from one
    (u_a, u_b) rank pair, and nothing else is ever reached."""
    cfg, state = parse_picture("0 a 1 \n . # b")
    core = GridCore(cfg)
    u = np.array([((i + 0.5) / 3, (j + 0.5) / 2) for i in range(3) for j in range(2)])
    batch = repeat_state(state, len(u))
    _, picked = core.step(batch, np.tile([RIGHT, DOWN], (len(u), 1)), u)
    assert picked.all()
    allowed = [core.cell(0, 0), core.cell(0, 2), core.cell(1, 0)]
    expected = [(a, b) for a in allowed for b in allowed if a != b]  # (rank_a, rank_b) in reading order
    assert [tuple(row) for row in batch.coins.tolist()] == expected


# A 3x5 map with walls and three players; player_0 steps onto its coin, leaving 8 allowed cells.
UNIFORM_BEFORE = "0 a # . . \n . 1 . c . \n b . # . 2"
UNIFORM_ACTIONS = (RIGHT, STAY, STAY)
N_DRAWS = 20_000


def core_sampler(cfg: Any, state: State, u: np.ndarray) -> np.ndarray:
    """Respawn cells of coin a from the real core, one per uniform."""
    batch = repeat_state(state, len(u))
    uu = np.zeros((len(u), cfg.n_coins))
    uu[:, 0] = u
    GridCore(cfg).step(batch, np.tile(UNIFORM_ACTIONS, (len(u), 1)), uu)
    return batch.coins[:, 0]


def skip_agents_sampler(cfg: Any, state: State, u: np.ndarray) -> np.ndarray:
    """A plausible bug: draw among cells with no wall or coin, ignoring agents, and when the draw lands under
    an agent take the next allowed cell. Never invalid, but the cells after agents get double weight."""
    moved = np.array([ref_move(cfg, a, act) for a, act in zip(state.agents[0], UNIFORM_ACTIONS)])
    allowed = allowed_cells(cfg, moved, state.coins[0, 1:])
    candidates = allowed_cells(cfg, np.array([], dtype=np.int64), state.coins[0, 1:])
    drawn = np.array(candidates)[(u * len(candidates)).astype(int)]
    return np.array([next((a for a in allowed if a >= d), allowed[0]) for d in drawn])


def off_by_one_sampler(cfg: Any, state: State, u: np.ndarray) -> np.ndarray:
    """Another plausible bug: rank floor(u * (F + 1)) clipped to F - 1, so the last cell gets twice the mass."""
    moved = np.array([ref_move(cfg, a, act) for a, act in zip(state.agents[0], UNIFORM_ACTIONS)])
    allowed = np.array(allowed_cells(cfg, moved, state.coins[0, 1:]))
    return allowed[np.minimum((u * (len(allowed) + 1)).astype(int), len(allowed) - 1)]


def respawn_uniformity_pvalue(sampler: Any, seed: int = 0) -> float:
    """Chi-square p-value of ``sampler``'s respawn cells against "uniform over the allowed cells" (a cell
    outside the allowed set gives p = 0)."""
    cfg, state = parse_picture(UNIFORM_BEFORE)
    moved = np.array([ref_move(cfg, a, act) for a, act in zip(state.agents[0], UNIFORM_ACTIONS)])
    allowed = allowed_cells(cfg, moved, state.coins[0, 1:])
    assert len(allowed) == 8
    u = np.random.default_rng(seed).random(N_DRAWS)
    counts = np.bincount(sampler(cfg, state, u), minlength=cfg.height * cfg.width)
    probs = np.isin(np.arange(cfg.height * cfg.width), allowed) / len(allowed)
    return chi2_pvalue(counts, probs)


@pytest.mark.parametrize("seed", [0, 1])
def test_respawn_is_uniform_over_allowed_cells(seed: int) -> None:
    assert respawn_uniformity_pvalue(core_sampler, seed) > P_MIN


@pytest.mark.parametrize("sampler", [skip_agents_sampler, off_by_one_sampler], ids=lambda f: f.__name__)
def test_respawn_uniformity_check_rejects_biased_samplers(sampler: Any) -> None:
    """The same check fails on biased samplers, so passing it means something."""
    assert respawn_uniformity_pvalue(sampler) < P_MIN


# ---------------------------------------------------------------------------------------------- reset
RESET_CFG = make_config(layout="..#.\n....\n.#..", n_agents=3)  # 10 free cells, non-square


def core_reset(cfg: Any, u: np.ndarray) -> State:
    return GridCore(cfg).reset(u)


def lazy_reset(cfg: Any, u: np.ndarray) -> State:
    """A plausible bug: player_1 drawn among all free cells and moved to the next free cell on a clash."""
    state = GridCore(cfg).reset(u)
    free = GridCore(cfg).free_cells
    drawn = free[(u[:, 1] * len(free)).astype(int)]
    clash = drawn == state.agents[:, 0]
    drawn[clash] = free[(np.searchsorted(free, drawn[clash]) + 1) % len(free)]
    state.agents[:, 1] = drawn
    return state


def reset_pvalues(reset: Any, seed: int = 0, n: int = 30_000) -> dict[str, float]:
    """p-values of: player_0's cell uniform over free cells; (player_0, player_1) uniform over ordered
    pairs of distinct free cells; the last coin's cell uniform over free cells (placements are an ordered
    sample without replacement, so every marginal is uniform)."""
    cfg = RESET_CFG
    cells = cfg.height * cfg.width
    u = np.random.default_rng(seed).random((n, cfg.n_agents + cfg.n_coins))
    state = reset(cfg, u)
    free = np.isin(np.arange(cells), GridCore(cfg).free_cells)
    uniform_free = free / free.sum()
    pair_probs = np.outer(free, free) * (1 - np.eye(cells))
    pair_probs /= pair_probs.sum()
    pair_counts = np.bincount(state.agents[:, 0] * cells + state.agents[:, 1], minlength=cells * cells)
    return {
        "player_0": chi2_pvalue(np.bincount(state.agents[:, 0], minlength=cells), uniform_free),
        "pair": chi2_pvalue(pair_counts, pair_probs.ravel()),
        "last_coin": chi2_pvalue(np.bincount(state.coins[:, -1], minlength=cells), uniform_free),
    }


def test_reset_places_agents_and_coins_on_distinct_free_cells() -> None:
    core = GridCore(RESET_CFG)
    u = np.random.default_rng(3).random((5_000, RESET_CFG.n_agents + RESET_CFG.n_coins))
    u[0], u[1] = 0.0, np.nextafter(1.0, 0)  # the extremes of the rank mapping
    state = core.reset(u)
    everything = np.concatenate([state.agents, state.coins], axis=1)
    assert (np.sort(everything, axis=1)[:, 1:] != np.sort(everything, axis=1)[:, :-1]).all()  # all distinct
    assert not core.wall_mask[everything].any()
    assert (state.t == 0).all()
    assert GridCore(RESET_CFG).reset(u) == state  # same uniforms, same games


def test_reset_is_uniform() -> None:
    pvalues = reset_pvalues(core_reset)
    assert min(pvalues.values()) > P_MIN, pvalues


def test_reset_uniformity_check_rejects_a_biased_reset() -> None:
    assert reset_pvalues(lazy_reset)["pair"] < P_MIN


# ---------------------------------------------------------------------------------------------- random games
REWARD_SETTINGS = [(1.0, -2.0), (2.5, -0.5), (0.0, -1.0), (1.0, 0.0)]


@st.composite
def configs(draw: Any) -> Any:
    """Valid configs over 2..6 x 2..6 grids, 2..4 players, 1..2 coins each, random walls, some partial."""
    n_agents = draw(st.integers(2, 4))
    k = draw(st.integers(1, 2))
    height = draw(st.integers(2, 6))
    width = draw(st.integers(2, 6))
    needed = n_agents * (k + 1)
    assume(height * width >= needed)
    n_walls = draw(st.integers(0, height * width - needed))
    walls = draw(
        st.lists(st.integers(0, height * width - 1), min_size=n_walls, max_size=n_walls, unique=True)
    )
    reward_pick, reward_stolen = draw(st.sampled_from(REWARD_SETTINGS))
    try:
        return make_config(
            height=height,
            width=width,
            n_agents=n_agents,
            coins_per_agent=k,
            walls=[divmod(w, width) for w in walls],
            view_size=draw(st.sampled_from([None, None, 3, 5])),
            max_steps=draw(st.integers(1, 12)),
            reward_pick=reward_pick,
            reward_stolen=reward_stolen,
        )
    except ValueError:
        assume(False)


def check_valid(core: GridCore, state: State) -> None:
    """What holds in every reachable state."""
    cfg = core.config
    assert state.agents.shape == (state.batch_size, cfg.n_agents)  # one cell per agent
    assert state.coins.shape == (state.batch_size, cfg.n_coins)  # the coin count never changes
    for agents, coins in zip(state.agents, state.coins):
        assert ((agents >= 0) & (agents < core.n_cells)).all() and not core.wall_mask[agents].any()
        assert ((coins >= 0) & (coins < core.n_cells)).all() and not core.wall_mask[coins].any()
        assert len(set(coins.tolist())) == cfg.n_coins  # coins on distinct cells
        assert not set(coins.tolist()) & set(agents.tolist())  # never under an agent


def check_views(core: GridCore, state: State) -> None:
    cfg = core.config
    obs = core.observe(state)
    assert obs.dtype == np.float32 and obs.shape == (state.batch_size, cfg.n_agents, *cfg.obs_shape)
    gs = core.global_state(state)
    assert gs.shape == (state.batch_size, *cfg.state_shape)
    A, k = cfg.n_agents, cfg.coins_per_agent
    walls = core.wall_mask.reshape(cfg.height, cfg.width)
    for b, (agents, coins) in enumerate(zip(state.agents, state.coins)):
        for i in range(A):
            np.testing.assert_array_equal(obs[b, i], ref_observation(cfg, agents, coins, i))
        if cfg.view_size is None:
            np.testing.assert_array_equal(obs[b, :, 0].sum(axis=(1, 2)), 1)
            np.testing.assert_array_equal(obs[b, :, 1].sum(axis=(1, 2)), A - 1)
            np.testing.assert_array_equal(obs[b, :, 2].sum(axis=(1, 2)), k)
            np.testing.assert_array_equal(obs[b, :, 3].sum(axis=(1, 2)), (A - 1) * k)
            np.testing.assert_array_equal(obs[b, :, 4], np.broadcast_to(walls, obs[b, :, 4].shape))
        else:  # the observer is always in the centre of its window
            centre = np.zeros((cfg.view_size, cfg.view_size))
            centre[cfg.view_size // 2, cfg.view_size // 2] = 1
            np.testing.assert_array_equal(obs[b, :, 0], np.broadcast_to(centre, obs[b, :, 0].shape))
        np.testing.assert_array_equal(gs[b], ref_global_state(cfg, agents, coins))
        np.testing.assert_array_equal(gs[b, :A].sum(axis=(1, 2)), 1)
        np.testing.assert_array_equal(gs[b, A : 2 * A].sum(axis=(1, 2)), k)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(cfg=configs(), seed=st.integers(0, 2**32 - 1), n_steps=st.integers(1, 15))
def test_random_games_keep_the_invariants(cfg: Any, seed: int, n_steps: int) -> None:
    """Every step of random games (4 at once) agrees with the loop-by-loop reference rules and keeps every
    invariant of a valid state and of the observations."""
    rng = np.random.default_rng(seed)
    core = GridCore(cfg)
    B, A, C = 4, cfg.n_agents, cfg.n_coins
    state = core.reset(rng.random((B, A + C)))
    check_valid(core, state)
    check_views(core, state)
    for _ in range(n_steps):
        before = state.copy()
        actions = rng.integers(0, 5, size=(B, A))
        rewards, picked = core.step(state, actions, rng.random((B, C)))
        check_valid(core, state)
        check_views(core, state)
        np.testing.assert_array_equal(state.t, before.t + 1)
        np.testing.assert_array_equal(core.truncated(state), state.t >= cfg.max_steps)
        for b in range(B):
            moved = [ref_move(cfg, a, act) for a, act in zip(before.agents[b], actions[b])]
            np.testing.assert_array_equal(state.agents[b], moved)
            on = before.coins[b][:, None] == np.array(moved)[None, :]  # (coin, agent) pairs that meet
            np.testing.assert_array_equal(picked[b], on.any(axis=1))
            np.testing.assert_array_equal(state.coins[b][~picked[b]], before.coins[b][~picked[b]])
            np.testing.assert_array_equal(rewards[b], ref_rewards(cfg, moved, before.coins[b]))
            thieves = sum(on[j, i] for j in range(C) for i in range(A) if i != j // cfg.coins_per_agent)
            total = cfg.reward_pick * on.sum() + cfg.reward_stolen * thieves
            assert rewards[b].sum() == pytest.approx(total)

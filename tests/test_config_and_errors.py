"""Bad input gets a clear error that names the argument, the value and what is allowed."""

import gymnasium as gym
import numpy as np
import pytest

import gridmarl
from gridmarl import make_config


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"n_agents": 1}, ValueError, r"n_agents must be an integer >= 2, got 1"),
        ({"coins_per_agent": 0}, ValueError, r"coins_per_agent .* >= 1, got 0"),
        (
            {"height": 2, "width": 2, "coins_per_agent": 2},
            ValueError,
            r"too few free cells: 4 .*\(need >= 6\)",
        ),
        ({"layout": "##.\n.#."}, ValueError, r"too few free cells: 3 non-wall cells .*\(need >= 4\)"),
        ({"view_size": 4}, ValueError, r"view_size must be odd and >= 3 .* got 4"),
        ({"view_size": 1}, ValueError, r"view_size must be an integer >= 3"),
        ({"view_size": 3.0}, TypeError, r"view_size must be an integer"),
        ({"max_steps": 0}, ValueError, r"max_steps must be an integer >= 1, got 0"),
        ({"height": "4"}, TypeError, r"height must be an integer >= 1, got '4'"),
        ({"layout": "..\n.x"}, ValueError, r"only '#' \(wall\) and '\.' \(floor\); row 1 col 1 is 'x'"),
        ({"layout": "...\n.."}, ValueError, r"same width: row 0 has 3 cells, row 1 has 2"),
        ({"layout": "....\n....", "height": 3}, ValueError, r"height=3 disagrees with the layout"),
        ({"walls": [(9, 9)]}, ValueError, r"wall \(9, 9\) lies outside the 4x4 grid"),
        (
            {"colour": 3},
            TypeError,
            r"\(\) got an unexpected keyword argument 'colour'; allowed: \[.*'height'",
        ),
        ({"reward_pick": "1"}, TypeError, r"reward_pick must be a number"),
        ({"max_cycles": 5, "max_steps": 6}, ValueError, r"max_cycles=5 and max_steps=6 disagree"),
    ],
)
def test_impossible_configs(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        make_config(**kwargs)
    with pytest.raises(error, match=pattern):
        gridmarl.parallel_env(**kwargs)


def test_layout_sets_size_and_walls():
    cfg = make_config(
        layout="""
        ..#.
        ....
        #...
    """
    )
    assert (cfg.height, cfg.width, cfg.walls) == (3, 4, ((0, 2), (2, 0)))
    assert cfg.layout == "..#.\n....\n#..."
    assert make_config(max_cycles=7).max_steps == 7
    with pytest.raises(Exception, match=r"frozen|cannot assign"):
        cfg.height = 5


@pytest.mark.parametrize(
    ("opponent", "pattern"),
    [
        (
            "smart",
            r"unknown opponent 'smart'; allowed: \['random', 'greedy', 'selfish', 'stay', 'switching'\]",
        ),
        (["greedy", "random"], r"opponent list has 2 entries, but there are 1 opponents"),
        (3, r"opponent 3 is neither a policy name"),
    ],
)
def test_unknown_opponents(opponent, pattern):
    with pytest.raises(ValueError, match=pattern):
        gym.make("GridMARL-v0", opponent=opponent)


def test_bad_switching_settings():
    with pytest.raises(ValueError, match="switch_every must be an integer >= 1, got 0"):
        gym.make("GridMARL-v0", opponent="switching", switch_every=0)
    with pytest.raises(ValueError, match=r"switch_pool entry 'smart' is not one of"):
        gym.make("GridMARL-v0", opponent="switching", switch_pool=("greedy", "smart"))
    with pytest.raises(ValueError, match="at least 2 distinct"):
        gym.make("GridMARL-v0", opponent="switching", switch_pool=("greedy",))


BAD_ACTIONS = [
    (1.0, TypeError, r"must be an integer in 0\.\.4 .*got 1\.0 of type float"),
    ("up", TypeError, r"got 'up' of type str"),
    (True, TypeError, r"got True of type bool"),
    (np.float32(2), TypeError, r"of type float32"),
    (5, ValueError, r"must be an integer in 0\.\.4, got 5"),
    (-1, ValueError, r"got -1"),
]


@pytest.mark.parametrize(("action", "error", "pattern"), BAD_ACTIONS)
def test_bad_actions_everywhere(action, error, pattern):
    env = gym.make("GridMARL-v0")
    env.reset(seed=0)
    with pytest.raises(error, match=pattern):
        env.step(action)
    par = gridmarl.parallel_env()
    par.reset(seed=0)
    with pytest.raises(error, match=r"actions\['player_1'\] .*" + pattern):
        par.step({"player_0": 0, "player_1": action})
    aec = gridmarl.env()
    aec.reset(seed=0)
    with pytest.raises(error, match="action of player_0 .*" + pattern):
        aec.step(action)


@pytest.mark.parametrize("action", [np.int64(3), np.int8(0), np.array(2), 4])
def test_integer_kinds_accepted(action):
    """A numpy integer (or 0-d array) acts exactly as the plain int of the same value."""
    plain = int(action)
    env, twin = gym.make("GridMARL-v0"), gym.make("GridMARL-v0")
    before, _ = env.reset(seed=0)
    twin.reset(seed=0)
    got, want = env.step(action), twin.step(plain)
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1] == want[1]
    np.testing.assert_array_equal(got[4]["opponent_actions"], want[4]["opponent_actions"])
    row, col = np.argwhere(before[0] == 1)[0]
    dr, dc = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)][plain]
    r2, c2 = min(max(row + dr, 0), 3), min(max(col + dc, 0), 3)
    assert got[0][0, r2, c2] == 1  # the ego made that move
    par, par_twin = gridmarl.parallel_env(), gridmarl.parallel_env()
    par.reset(seed=0)
    par_twin.reset(seed=0)
    got = par.step({"player_0": action, "player_1": action})
    want = par_twin.step({"player_0": plain, "player_1": plain})
    for agent in ("player_0", "player_1"):
        np.testing.assert_array_equal(got[0][agent], want[0][agent])
    assert got[1] == want[1]


def test_missing_and_unknown_agents():
    par = gridmarl.parallel_env(n_agents=3, height=5, width=5)
    par.reset(seed=0)
    with pytest.raises(ValueError, match=r"missing: \['player_2'\], unknown: \[\]"):
        par.step({"player_0": 0, "player_1": 0})
    with pytest.raises(ValueError, match=r"unknown: \['player_7'\]"):
        par.step({"player_0": 0, "player_1": 0, "player_2": 0, "player_7": 0})
    with pytest.raises(TypeError, match="dict"):
        par.step([0, 0, 0])


def test_render_mode_checked():
    with pytest.raises(
        ValueError, match=r"render_mode must be None or one of \['human', 'rgb_array', 'ansi'\]"
    ):
        gridmarl.parallel_env(render_mode="video")


def test_as_kwargs_makes_the_same_game():
    cfg = gridmarl.make_config(layout=gridmarl.config.WALLED_LAYOUT, n_agents=3, coins_per_agent=2)
    assert gridmarl.make_config(**cfg.as_kwargs()) == cfg
    assert gym.make("GridMARL-v0", **cfg.as_kwargs()).unwrapped.config == cfg


@pytest.mark.parametrize(
    ("make", "allowed"),
    [
        (lambda **kw: make_config(**kw), "'reward_stolen', 'layout', 'max_cycles'"),
        (lambda **kw: gridmarl.parallel_env(**kw), "'render_mode', 'height'"),
        (lambda **kw: gridmarl.env(**kw), "'render_mode', 'height'"),
        (lambda **kw: gym.make("GridMARL-v0", **kw), "'opponent', 'ego'"),
        (
            lambda **kw: gym.make_vec("GridMARL-v0", 2, vectorization_mode="vector_entry_point", **kw),
            "'num_envs', 'autoreset_mode', 'render_mode'",
        ),
    ],
    ids=["make_config", "parallel_env", "env", "gym.make", "make_vec"],
)
def test_unknown_keyword_in_pythons_own_wording(make, allowed):
    """Tools that pass an argument on speculation retry without it only on Python's own wording (TorchRL's
    GymEnv passes frameskip=1); the allowed arguments still follow."""
    with pytest.raises(TypeError) as err:
        make(frameskip=1)
    message = str(err.value)
    assert "() got an unexpected keyword argument 'frameskip'; allowed: [" in message
    assert allowed in message
    with pytest.raises(TypeError, match=r"argument 'colour' \(and also \['shape'\]\); allowed"):
        make(colour=1, shape=2)


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: make_config(**kw),
        lambda **kw: make_config(kw),
        lambda **kw: make_config({"height": 5}, **kw),
    ],
    ids=["keywords", "mapping", "mapping+keywords"],
)
def test_an_unknown_name_is_refused_even_when_its_value_is_none(make):
    """None means "the default" for a known argument; it does not make an unknown name acceptable."""
    with pytest.raises(TypeError, match="unexpected keyword argument 'frameskip'"):
        make(frameskip=None)
    with pytest.raises(TypeError, match=r"argument 'colour' \(and also \['shape'\]\)"):
        make(colour=None, shape=1)
    assert make(view_size=None, max_cycles=None, layout=None).view_size is None

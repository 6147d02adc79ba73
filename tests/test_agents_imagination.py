"""Learning in imagination: the batched-env interface on a model of observations, and the loop."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from gridmarl import make_config
from gridmarl_wm.agents.batched import BatchedGames, NativeGames
from gridmarl_wm.agents.imagination import (
    ImaginationConfig,
    collect_policy_play,
    learn_in_imagination,
    scripted_tensor_opponent,
)
from gridmarl_wm.agents.imagined import ImaginedGames
from gridmarl_wm.simulation import allocator
from gridmarl_wm.simulation.exact_model import ExactModel


class ActionBlind(ExactModel):
    """The rules with the ego's action replaced by 'stay': a deliberately wrong model."""

    def sample(self, obs, self_action, other_actions, generator=None, temperature=1.0):
        stay = torch.zeros_like(torch.as_tensor(self_action))
        return super().sample(obs, stay, other_actions, generator, temperature)


def _starts(n: int = 64, seed: int = 0) -> np.ndarray:
    games = NativeGames(make_config(), n, "stay", seed=seed)
    return games.reset()[:, 0]


def test_imagined_games_follow_the_interface_and_the_rules():
    game = make_config()
    starts = _starts()
    stay = scripted_tensor_opponent(game, "stay")
    env = ImaginedGames(ExactModel(game), starts, num_envs=8, horizon=3, opponent=stay, seed=0)
    assert isinstance(env, BatchedGames)
    obs = env.reset()
    assert obs.shape == (8, 1, 5, 4, 4)
    assert all(any((o == s).all() for s in starts) for o in obs[:, 0])  # games start from the given starts
    for t in range(1, 7):
        before = obs[:, 0]
        res = env.step(np.full((8, 1), 2))  # everybody steps down
        assert res.rewards.shape == (8, 1) and res.others.shape == (8, 1, 1)
        assert (res.others == 0).all()  # the stay opponent
        if t % 3:
            assert res.final_obs is None and not res.truncated.any()
            moved = res.obs[:, 0, 0].reshape(8, -1).argmax(1)
            was = before[:, 0].reshape(8, -1).argmax(1)
            assert (moved == np.where(was >= 12, was, was + 4)).all()  # down, unless on the bottom row
        else:  # the horizon: truncated, the last observation kept, a new start given
            assert res.truncated.all() and res.final_obs is not None
        obs = res.obs
    assert env.imagined_steps == 6 * 8
    with pytest.raises(ValueError, match="no global state"):
        env.state()


def test_imagined_games_resume_exactly():
    game = make_config()
    stay = scripted_tensor_opponent(game, "stay")  # a callable's own randomness is its own business
    env = ImaginedGames(ExactModel(game), _starts(), num_envs=16, horizon=4, opponent=stay, seed=3)
    env.reset()
    env.step(np.zeros((16, 1), dtype=np.int64))
    snap = env.get_state()
    a = [env.step(np.full((16, 1), k % 5)).obs for k in range(6)]
    env.set_state(snap)
    b = [env.step(np.full((16, 1), k % 5)).obs for k in range(6)]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_bad_input_is_refused_clearly():
    game = make_config()
    with pytest.raises(ValueError, match="starts must be"):
        ImaginedGames(ExactModel(game), np.zeros((3, 5, 3, 3)), num_envs=4)
    with pytest.raises(ValueError, match="horizon must be"):
        ImaginedGames(ExactModel(game), _starts(), num_envs=4, horizon=0)
    with pytest.raises(ValueError, match="simulator='bogus' is unknown"):
        ImaginationConfig(simulator="bogus")
    with pytest.raises(ValueError, match="'switching' opponents"):
        scripted_tensor_opponent(game, "switching")
    with pytest.raises(ValueError, match="opponent='nobody' is unknown"):
        learn_in_imagination("unused", opponent="nobody")


def test_collected_play_is_the_learners_real_transitions():
    games = NativeGames(make_config(max_steps=5), 4, "stay", seed=0)
    obs = games.reset()
    data, _, _ = collect_policy_play(games, lambda o: np.full(len(o), 4), 7, obs, np.zeros(4, np.int64))
    assert len(data) == 28
    assert (data.action == 4).all() and (data.others == 0).all()
    assert data.truncated.reshape(7, 4)[4].all() and data.truncated.sum() == 4
    # next_obs is the step's own outcome, also where the game was truncated and restarted
    rows = np.flatnonzero(~data.truncated[:-4])
    np.testing.assert_array_equal(data.next_obs[rows], data.obs[rows + 4])
    assert (data.t.reshape(7, 4)[:, 0] == [0, 1, 2, 3, 4, 0, 1]).all()


@pytest.mark.parametrize("seed", [0])
def test_imagined_training_beats_the_start_and_a_wrong_model_does_worse(tmp_path, seed):
    """Against 'stay' opponents, a policy trained inside the rules ends well above the uniform policy it
    started as; the same training inside a model that ignores the ego's actions ends far below it."""
    cfg = ImaginationConfig(
        real_steps=2048, real_steps_per_iteration=2048, real_envs=64, imagined_steps_per_iteration=81920,
        imagined_envs=256, horizon=8, simulator="exact", eval_seeds=5, eval_episodes=4, seed=seed,
    )  # fmt: skip
    exact = learn_in_imagination(tmp_path / "exact", opponent="stay", cfg=cfg)[-1]
    blind = learn_in_imagination(tmp_path / "blind", opponent="stay", cfg=cfg, simulator=ActionBlind())[-1]
    from gridmarl_wm.agents.evaluate import policy_returns

    uniform = policy_returns(lambda o: np.random.default_rng(0).integers(5), "stay", range(5), 4)
    assert exact["real_steps"] == 2048 and exact["imagined_steps"] >= 81920
    assert exact["return_mean"] > uniform.mean + 4
    assert exact["return_mean"] > blind["return_mean"] + 4


def test_the_learned_loop_runs_and_counts_real_steps(tmp_path):
    cfg = ImaginationConfig(
        real_steps=1024, real_steps_per_iteration=512, real_envs=32, model_steps=20, model_batch=128,
        imagined_steps_per_iteration=2048, imagined_envs=128, horizon=4, eval_seeds=2, eval_episodes=1,
    )  # fmt: skip
    lines = learn_in_imagination(tmp_path, opponent="greedy", cfg=cfg)
    assert [line["real_steps"] for line in lines] == [512, 1024]
    assert lines[-1]["imagined_steps"] >= 4096
    assert (tmp_path / "policy.pt").exists() and (tmp_path / "imagination.json").exists()
    assert (tmp_path / "model" / "iteration1" / "checkpoint.pt").exists()


def test_an_interrupted_loop_resumes_to_the_same_result(tmp_path):
    """Stopped after its first outer iteration and resumed, the loop ends where an uninterrupted run does:
    the same real and imagined step counts, the same evaluation returns and the same policy weights."""
    cfg = ImaginationConfig(
        real_steps=1024, real_steps_per_iteration=512, real_envs=32, model_steps=20, model_batch=128,
        imagined_steps_per_iteration=2048, imagined_envs=128, horizon=4, eval_seeds=2, eval_episodes=1,
    )  # fmt: skip
    full = learn_in_imagination(tmp_path / "full", opponent="greedy", cfg=cfg)
    part = learn_in_imagination(tmp_path / "part", opponent="greedy", cfg=cfg, stop_at=1)
    assert len(part) == 1 and not (tmp_path / "part" / "imagination.json").exists()
    with pytest.raises(ValueError, match="other settings"):
        learn_in_imagination(tmp_path / "part", opponent="random", cfg=cfg, resume=True)
    resumed = learn_in_imagination(tmp_path / "part", opponent="greedy", cfg=cfg, resume=True)
    drop = lambda line: {k: v for k, v in line.items() if k != "seconds"}  # noqa: E731
    assert [drop(x) for x in resumed] == [drop(x) for x in full]
    a, b = (torch.load(tmp_path / run / "policy.pt", weights_only=True)["policy"] for run in ("full", "part"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(FileNotFoundError):
        learn_in_imagination(tmp_path / "none", opponent="greedy", cfg=cfg, resume=True)


@pytest.mark.parametrize("preset", ["GridMARL-Partial-v0", "GridMARL-8x8-4P-Partial-v0"])
def test_the_learned_loop_runs_egocentric_on_partial_views_and_four_players(tmp_path, preset):
    """Partial views and more players: the model learns player_0's window, imagination runs from it (the
    others' actions from the model's opponent head), and the policy plays the real game."""
    from gridmarl.config import PRESETS

    game = make_config(PRESETS[preset])
    cfg = ImaginationConfig(
        real_steps=512, real_steps_per_iteration=512, real_envs=32, model_steps=10, model_batch=64,
        imagined_steps_per_iteration=1024, imagined_envs=64, horizon=4, eval_seeds=1, eval_episodes=1,
    )  # fmt: skip
    line = learn_in_imagination(tmp_path, game=game, opponent="random", cfg=cfg)[-1]
    assert line["real_steps"] == 512 and line["imagined_steps"] >= 1024
    assert np.isfinite(line["return_mean"])
    from gridmarl_wm.model import WorldModel

    model = WorldModel.load(tmp_path / "model" / "iteration0" / "checkpoint.pt")
    assert model.cfg.obs_shape == game.obs_shape and model.cfg.n_agents == game.n_agents


def test_example_runs_both_simulators(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "examples/learn_in_imagination.py", "--real-steps", "512", "--iterations", "2",
         "--model-steps", "10", "--imagined-steps", "2048", "--out", str(tmp_path)],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert out.count("learned:") == 2 and out.count("exact:") == 2 and "real-env return" in out


def test_the_learned_dynamics_control_plays_the_true_opponents_in_the_learned_model(tmp_path, monkeypatch):
    """simulator='learned-dynamics': the world model is trained as for 'learned', and the imagined games'
    others act as the true opponents do (here 'stay': always action 0), not as its opponent head says."""
    import gridmarl_wm.agents.imagination as loop
    from gridmarl_wm.model import WorldModel

    seen = []

    class Recording(ImaginedGames):
        def __init__(self, model, starts, num_envs, horizon, opponent, **kw):
            seen.append((model, opponent))
            super().__init__(model, starts, num_envs, horizon, opponent, **kw)

    monkeypatch.setattr(loop, "ImaginedGames", Recording)
    cfg = ImaginationConfig(
        real_steps=512, real_steps_per_iteration=512, real_envs=32, model_steps=10, model_batch=64,
        imagined_steps_per_iteration=1024, imagined_envs=64, horizon=4, eval_seeds=1, eval_episodes=1,
        simulator="learned-dynamics",
    )  # fmt: skip
    line = learn_in_imagination(tmp_path, opponent="stay", cfg=cfg)[-1]
    assert line["simulator"] == "learned-dynamics" and line["real_steps"] == 512
    ((model, opponent),) = seen
    assert isinstance(model, WorldModel)  # the learned model, trained on the real data
    assert (tmp_path / "model" / "iteration0" / "checkpoint.pt").exists()
    obs = torch.as_tensor(_starts(32), dtype=torch.float32)
    assert callable(opponent) and (opponent(obs) == 0).all()  # the true 'stay' opponents
    with pytest.raises(ValueError, match="switching"):
        learn_in_imagination(tmp_path / "sw", opponent="switching", cfg=cfg)


def test_the_command_line_runs_the_loop_and_refuses_to_overwrite(tmp_path, capsys):
    from gridmarl_wm.cli import main

    small = ["--real-steps", "512", "--real-steps-per-iteration", "256", "--real-envs", "32", "--model-steps",
             "10", "--model-batch", "64", "--imagined-steps-per-iteration", "1024", "--imagined-envs", "64",
             "--horizon", "4", "--eval-seeds", "1", "--eval-episodes", "1", "--threads", "1", "--no-progress"]  # fmt: skip
    out = tmp_path / "run"
    model = '{"decoder": "mixture", "trunk": "mlp", "fusion": "film"}'
    main(["learn-in-imagination", "--out", str(out), "--opponent", "greedy", "--model", model, *small])
    printed = capsys.readouterr().out
    assert printed.count("real steps") == 2 and "512 real steps" in printed
    assert (out / "policy.pt").exists() and (out / "imagination.json").exists()
    from gridmarl_wm.model import WorldModel

    assert WorldModel.load(out / "model" / "iteration1" / "checkpoint.pt").cfg.decoder == "mixture"
    for argv, message in (
        (["--out", str(out)], "already holds a run"),
        (["--out", str(tmp_path / "b"), "--model", "[1]"], "--model must be a JSON object"),
        (["--out", str(tmp_path / "c"), "--simulator", "exact", "--opponent", "switching"], "switching"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(["learn-in-imagination", *small, *argv])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_compile_reaches_the_imagined_games_and_is_refused_where_it_cannot_apply(
    tmp_path, monkeypatch, capsys
):
    """``compile=True`` (``--compile``) steps the imagined games through ``torch.compile`` (replaced here
    by a recorder: compiling takes a minute), and is refused by name for the rules and the pointer decoder;
    ``--retain-memory`` switches the allocator first, and is refused where the C library has no switch."""
    from gridmarl_wm.cli import main

    compiled = []

    def fake_compile(fn, **kwargs):
        compiled.append(kwargs)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    cfg = ImaginationConfig(
        real_steps=256, real_steps_per_iteration=256, real_envs=32, model_steps=5, model_batch=64,
        imagined_steps_per_iteration=256, imagined_envs=64, horizon=4, eval_seeds=1, eval_episodes=1,
    )  # fmt: skip
    learn_in_imagination(tmp_path / "api", opponent="greedy", cfg=cfg, compile=True)
    assert compiled == [{"dynamic": True}]
    small = ["--real-steps", "256", "--real-steps-per-iteration", "256", "--real-envs", "32", "--model-steps",
             "5", "--model-batch", "64", "--imagined-steps-per-iteration", "256", "--imagined-envs", "64",
             "--horizon", "4", "--eval-seeds", "1", "--eval-episodes", "1", "--threads", "1", "--no-progress"]  # fmt: skip
    retained = []  # --retain-memory calls the allocator switch first (recorded here: it holds for the process)
    monkeypatch.setattr(allocator, "retain_freed_memory", lambda: retained.append(True) or True)
    main(["learn-in-imagination", "--out", str(tmp_path / "cli"), "--opponent", "greedy", "--compile",
          "--retain-memory", *small])  # fmt: skip
    assert len(compiled) == 2 and retained == [True]
    monkeypatch.setattr(allocator, "retain_freed_memory", lambda: False)  # not glibc
    with pytest.raises(SystemExit) as exit_info:
        main(["learn-in-imagination", "--out", str(tmp_path / "cli2"), "--retain-memory", *small])
    assert exit_info.value.code == 2 and "--retain-memory needs glibc's malloc" in capsys.readouterr().err
    assert not (tmp_path / "cli2").exists()
    for kwargs, message in (
        ({"cfg": replace(cfg, simulator="exact")}, "simulator='exact'"),
        ({"cfg": cfg, "model_overrides": {"decoder": "pointer"}}, "decoder='pointer'"),
    ):
        with pytest.raises(ValueError, match=f"compile=True steps a learned simulator.*{message}"):
            learn_in_imagination(tmp_path / "bad", opponent="greedy", compile=True, **kwargs)
    with pytest.raises(ValueError, match="compile must be True or False, got 'yes'"):
        learn_in_imagination(tmp_path / "bad", opponent="greedy", cfg=cfg, compile="yes")

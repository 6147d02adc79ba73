"""The RL libraries people train with take the envs unmodified: TorchRL, Tianshou and Gymnasium's vector
envs and wrappers, on the real game and on the imagined one. The examples run here with tiny budgets."""

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import gridmarl
from gridmarl_wm import ImaginedEnv
from gridmarl_wm.simulation.exact_model import ExactModel

ROOT = Path(__file__).resolve().parents[1]
GAME = gridmarl.make_config()


def example(name):
    """The example script ``examples/<name>.py`` as a module (its ``main`` not run)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def printed_results(stdout):
    """The ``part {figures}`` lines an example prints, as a dict."""
    out = {}
    for line in stdout.splitlines():
        part, _, figures = line.partition(" ")
        if figures.startswith("{"):
            out[part] = ast.literal_eval(figures)
    return out


def tiny_world_model():
    """An untrained small model: it carries no start observations, so its imagined envs take
    ``start="real"`` (a plain reset draws from the real game's reset)."""
    from wm_helpers import tiny_model

    model = tiny_model(GAME).eval()
    model.game = GAME
    return model


# ---------------------------------------------------------------------------------------------- TorchRL
def torchrl_or_skip():
    return pytest.importorskip(
        "torchrl", reason="TorchRL is not installed (pip install torchrl; see the README's Ecosystem section)"
    )


def test_torchrl_gymenv_by_id_and_numeric_info():
    """``GymEnv("GridMARL-v0")`` passes ``frameskip=1`` and drops it only on Python's own TypeError
    wording; with the names left out, TorchRL reads every info value into tensors."""
    torchrl_or_skip()
    from torchrl.envs import GymEnv, check_env_specs

    env = GymEnv("GridMARL-v0", opponent="switching", switch_every=3, policy_names_in_info=False)
    check_env_specs(env)
    env.auto_register_info_dict()
    data = env.rollout(12, break_when_any_done=False)
    names = env._env.unwrapped.opponent_policy_names
    assert {"opponent_actions", "rewards", "opponent_policy_ids", "t"} <= set(data["next"].keys())
    ids = data["next", "opponent_policy_ids"]  # (12, 1)
    assert ids.dtype.is_floating_point is False and {names[i] for i in ids.flatten().tolist()} <= {
        "greedy",
        "selfish",
        "random",
    }
    assert data["next", "t"].flatten().tolist() == list(range(1, 13))
    assert (data["next", "rewards"][:, 0] == data["next", "reward"][:, 0]).all()


def _moved(core, cell, action):
    return int(core.move[cell, action])


@pytest.mark.parametrize("mode", ["SameStep", "Disabled"])
def test_torchrl_wraps_the_native_vector_env(mode):
    """TorchRL takes SAME_STEP and DISABLED vector envs. Its next observation at the end of an episode must
    be the game's last one (``final_obs`` in SAME_STEP), not the next episode's first: every recorded
    transition must move both players as their actions say."""
    torchrl_or_skip()
    from torchrl.envs import GymWrapper

    venv = gym.make_vec(
        "GridMARL-v0",
        3,
        vectorization_mode="vector_entry_point",
        autoreset_mode=mode,
        policy_names_in_info=False,
        opponent="random",
        max_steps=4,
    )
    env = GymWrapper(venv, categorical_action_encoding=True)  # SAME_STEP: TorchRL reads info itself
    env.set_seed(0)
    data = env.rollout(13, break_when_any_done=False)  # (3 games, 13 steps)
    core = venv.unwrapped.core
    done = data["next", "done"].squeeze(-1)
    # max_steps=4: every game ends (truncated) at steps 4, 8 and 12, so the loop below checks those ends too
    assert [done[i].nonzero().flatten().tolist() for i in range(3)] == [[3, 7, 11]] * 3
    for i in range(3):
        for t in range(13):
            obs = data["observation"][i, t].numpy()
            nxt = data["next", "observation"][i, t].numpy()
            ego, other = int(obs[0].argmax()), int(obs[1].argmax())
            a = int(data["action"][i, t])
            assert nxt[0].argmax() == _moved(core, ego, a)
            if mode == "SameStep":
                opp = int(data["next", "opponent_actions"][i, t, 0])
                assert nxt[1].argmax() == _moved(core, other, opp)


def test_torchrl_refuses_next_step_mode_itself():
    """A limit of TorchRL, not of the env: it takes Gymnasium vector envs only in SAME_STEP or DISABLED."""
    torchrl_or_skip()
    from torchrl.envs import GymWrapper

    venv = gym.make_vec("GridMARL-v0", 2, vectorization_mode="vector_entry_point")
    with pytest.raises(RuntimeError, match="SAME_STEP or DISABLED"):
        GymWrapper(venv)


@pytest.mark.parametrize("which", ["exact", "tiny"])
def test_torchrl_wraps_the_imagined_env(which):
    torchrl_or_skip()
    from torchrl.envs import GymWrapper, check_env_specs

    if which == "exact":
        imagined = ImaginedEnv(ExactModel(), opponent="greedy", policy_names_in_info=False)
    else:
        imagined = ImaginedEnv(tiny_world_model(), policy_names_in_info=False, start="real")
    env = GymWrapper(imagined, categorical_action_encoding=True)
    check_env_specs(env)
    env.auto_register_info_dict()
    data = env.rollout(60, break_when_any_done=False)
    assert data["next", "done"].sum() == 1 and data["next", "rewards"].shape == (60, 2)
    assert (data["next", "rewards"][:, 0] == data["next", "reward"][:, 0]).all()


def test_torchrl_example(tmp_path):
    torchrl_or_skip()
    results = example("torchrl_ppo_collect").main(
        ["--frames", "256", "--frames-per-batch", "128", "--num-envs", "3", "--steps", "12"]
    )
    ppo = results["gym_env_ppo"]
    assert ppo["frames"] == 256 and np.isfinite(ppo["last_loss"])
    for mode in ("SAME_STEP", "DISABLED"):
        assert results["native_vector_env"][mode]["frames"] == 36
        assert results["native_vector_env"][mode]["episodes_ended"] == 3  # max_steps=10 in 12 steps
    pz = results["pettingzoo_parallel_env"]
    assert pz["players"] == 2 and pz["frames"] == 12


# ---------------------------------------------------------------------------------------------- Tianshou
def test_tianshou_example_both_players_and_the_imagined_env():
    """Tianshou's PettingZoo env and multi-agent algorithm on the AEC env, and its Gymnasium vector env on
    ``ImaginedEnv``. Run in a subprocess with numba's compiler off (NUMBA_DISABLE_JIT=1): Tianshou's replay
    buffer compiles its numba functions on every start, which takes longer than this whole test."""
    pytest.importorskip("tianshou", reason="Tianshou is not installed (pip install tianshou)")
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "examples/tianshou_collect.py",
            "--rounds",
            "2",
            "--steps",
            "50",
            "--model",
            "exact",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    results = printed_results(out)
    both = results["pettingzoo_both_players"]
    assert both["transitions"] == 100 and both["turns"] == {"player_0": 50, "player_1": 50}
    assert both["episodes"] == 4 and len(both["mean_return"]) == 2 and both["learner_changed"]
    one = results["gymnasium_one_player"]
    assert one["transitions"] == 100 and one["episodes"] == 10  # two envs, episodes of 10 steps


# ------------------------------------------------------------------------------------ Gymnasium vector
def test_gymnasium_vector_example():
    """Sync and async vectorizers with FlattenObservation and RecordEpisodeStatistics, the native env in
    every autoreset mode (RecordEpisodeStatistics reads the mode from the metadata: a wrong mode would
    count 9- or 11-step episodes), and ImaginedEnv in a SyncVectorEnv and, built in worker processes, in an
    AsyncVectorEnv, where it plays the same games."""
    results = example("gymnasium_vector").main(
        ["--num-envs", "3", "--steps", "45", "--max-steps", "10", "--model", "exact"]
    )
    for mode in ("sync", "async"):
        assert results["gymnasium_vectorizers"][mode] == {
            **results["gymnasium_vectorizers"][mode],
            "episodes": 12,
        }
        assert results["gymnasium_vectorizers"][mode]["mean_length"] == 10
    native = results["native_vector_env"]
    assert native["NEXT_STEP"]["episodes"] == 12 and native["SAME_STEP"]["episodes"] == 12
    assert native["NEXT_STEP"]["mean_length"] == native["SAME_STEP"]["mean_length"] == 10
    assert native["DISABLED"]["episodes"] == 12
    assert results["imagined_sync"]["episodes"] == 12 and results["imagined_sync"]["mean_length"] == 10
    assert results["imagined_async"] == results["imagined_sync"]


def test_imagined_env_in_gymnasium_vector_envs_with_a_learned_model(tmp_path):
    from dataclasses import asdict

    from gridmarl_wm.model.checkpoint import game_to_dict, save_checkpoint

    module = example("gymnasium_vector")
    model = tiny_world_model()
    figures = module.imagined(lambda: ImaginedEnv(model, game={"max_steps": 5}, start="real"), 2, 11, seed=0)
    assert figures["episodes"] == 4 and figures["mean_length"] == 5
    # AsyncVectorEnv: each worker process loads the model from its checkpoint and plays the same games
    ckpt = tmp_path / "model.pt"
    save_checkpoint(
        ckpt, {"game": game_to_dict(GAME), "model_config": asdict(model.cfg), "model": model.state_dict()}
    )
    factory = module.ImaginedEnvFactory(str(ckpt), max_steps=5, start="real")
    assert module.imagined_async(factory, 2, 11, seed=0) == figures
    venv = gym.vector.SyncVectorEnv(
        [lambda: ImaginedEnv(model, game={"max_steps": 3}, start="real")] * 2,
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    venv.reset(seed=0)
    for _ in range(3):
        *_, trunc, info = venv.step(np.zeros(2, dtype=np.int64))
    assert trunc.all() and info["final_info"]["t"].tolist() == [3, 3] and info["t"].tolist() == [0, 0]

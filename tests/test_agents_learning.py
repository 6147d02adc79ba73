"""PPO learns, its checkpoints round-trip and resume exactly, a trained policy plays as an opponent, and
every registered game trains."""

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import gridmarl
from gridmarl_wm import load_policy
from gridmarl_wm.agents import PPOConfig, make_trainer
from gridmarl_wm.agents.checkpoint import POLICY_FORMAT, read_policy_file
from gridmarl_wm.agents.evaluate import policy_returns, self_play_stats
from gridmarl_wm.agents.policy import ActorCritic
from gridmarl_wm.planning import ScriptedEgo, play
from gridmarl_wm.training.distributed import end_process_group

TINY = {"rollout_steps": 8, "minibatch_size": 256, "log_every": 1, "checkpoint_every": 2}


@pytest.fixture(autouse=True)
def one_thread():
    # A shared machine: one thread each keeps small torch ops from spinning against other processes.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(tmp_path, iterations=4, opponent="random", num_envs=16, **kw):
    policy = {k: kw.pop(k) for k in list(kw) if k not in PPOConfig.__dataclass_fields__}
    ppo = PPOConfig(total_steps=iterations * TINY["rollout_steps"] * num_envs, **{**TINY, **kw})
    return make_trainer(tmp_path, opponent=opponent, num_envs=num_envs, ppo=ppo, hidden=32, **policy)


@pytest.fixture
def blind(monkeypatch):
    """A mutation: the network sees only zeros instead of its observation."""
    forward = ActorCritic.forward

    def ignoring(self, obs, player=None, state=None):
        return forward(self, torch.zeros_like(obs), player, state)

    monkeypatch.setattr(ActorCritic, "forward", ignoring)


@pytest.mark.parametrize(("mutation", "precision"), [(None, "fp32"), (None, "bf16"), ("blind", "auto")])
def test_tiny_ppo_against_stay_beats_the_random_ego(tmp_path, request, mutation, precision):
    """60k steps against ``stay`` opponents: the learner collects coins, in either precision; blind to its
    observation it cannot."""
    if mutation:
        request.getfixturevalue(mutation)
    ppo = PPOConfig(
        total_steps=60_000, rollout_steps=16, minibatch_size=512, log_every=100, seed=0, precision=precision
    )
    trainer = make_trainer(tmp_path, opponent="stay", num_envs=128, ppo=ppo, hidden=64)
    trainer.run(progress=False)
    learned = policy_returns(load_policy(tmp_path / "policy.pt"), "stay", seeds=(0, 1), episodes=8).mean
    random_ego = play(ScriptedEgo("random"), None, "stay", (0, 1), 8).mean
    clear_margin = learned >= random_ego + 5.0
    assert clear_margin == (mutation is None), (learned, random_ego)


def test_checkpoint_round_trip_and_load_policy_shapes(tmp_path):
    trainer = tiny(tmp_path, iterations=2)
    trainer.run(progress=False)
    path = tmp_path / "policy.pt"
    data = torch.load(path, weights_only=True)
    assert data["format"] == POLICY_FORMAT and data["meta"]["algorithm"] == "ppo"
    policy = load_policy(path, game=gridmarl.make_config(), deterministic=True)
    obs = np.random.default_rng(0).integers(0, 2, (6, 5, 4, 4)).astype(np.float32)
    batch = policy(obs)
    assert batch.shape == (6,) and batch.dtype == np.int64
    single = policy(obs[0])
    assert isinstance(single, int) and single == batch[0]
    expected = trainer.net(torch.from_numpy(obs).reshape(6, -1)).logits.argmax(-1)
    assert np.array_equal(batch, expected.numpy())
    with pytest.raises(ValueError, match=r"obs must have shape \(5, 4, 4\)"):
        policy(np.zeros((5, 3, 3), np.float32))
    assert load_policy(tmp_path)(obs[0]) in range(5)  # the folder works too


def test_refuses_broken_foreign_and_mismatched_files(tmp_path):
    tiny(tmp_path, iterations=2).run(progress=False)
    path = tmp_path / "policy.pt"
    with pytest.raises(ValueError, match="another game"):
        load_policy(path, game=gridmarl.make_config(height=5))
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match="not a readable gridmarl policy"):
        load_policy(damaged)
    other = tmp_path / "other.pt"
    torch.save({"format": "gridmarl-wm-checkpoint/1", "policy": {}}, other)
    with pytest.raises(ValueError, match="format 'gridmarl-wm-checkpoint/1'"):
        load_policy(other)
    with pytest.raises(FileNotFoundError):
        load_policy(tmp_path / "missing.pt")
    wider = make_trainer(tmp_path, num_envs=16, ppo=PPOConfig(total_steps=256, **TINY), hidden=48)
    with pytest.raises(ValueError, match=r"another policy_config.*hidden: saved 32, now 48"):
        wider.resume()
    other_opponent = make_trainer(
        tmp_path, opponent="greedy", num_envs=16, ppo=PPOConfig(total_steps=256, **TINY), hidden=32
    )
    with pytest.raises(ValueError, match=r"another meta.*opponent"):
        other_opponent.resume()


def test_resume_is_exact(tmp_path):
    straight = tiny(tmp_path / "a", iterations=4, moa=True)
    straight.run(progress=False)
    tiny(tmp_path / "b", iterations=4, moa=True).run(progress=False, stop_at=2)
    resumed = tiny(tmp_path / "b", iterations=4, moa=True)
    resumed.resume()
    assert resumed.iteration == 2
    resumed.run(progress=False)
    for (k, v), (_, w) in zip(straight.net.state_dict().items(), resumed.net.state_dict().items()):
        assert torch.equal(v, w), k
    a = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    b = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert len(a) == len(b) == 4


def test_trained_policy_is_an_opponent_in_gym_and_in_training(tmp_path):
    tiny(tmp_path / "p", iterations=2).run(progress=False)
    policy = load_policy(tmp_path / "p" / "policy.pt")
    env = gym.make("GridMARL-v0", opponent=policy)
    obs, _ = env.reset(seed=0)
    for _ in range(50):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert truncated and info["opponent_policies"] == ["trained_policy"]
    # and as the opponent a new learner trains against, batched
    trainer = tiny(tmp_path / "q", iterations=2, opponent=str(tmp_path / "p" / "policy.pt"))
    assert np.isfinite(trainer.run(progress=False)["value"])


@pytest.mark.parametrize("env_id", sorted(gridmarl.PRESETS))
@pytest.mark.parametrize("algorithm", ["ppo", "mappo"])
def test_every_registered_game_trains_in_self_play(tmp_path, env_id, algorithm):
    game = gridmarl.make_config(**gridmarl.PRESETS[env_id])
    ppo = PPOConfig(total_steps=3 * 8 * 8, **TINY)
    trainer = make_trainer(
        tmp_path, game=game, opponent="self", algorithm=algorithm, num_envs=8, ppo=ppo, hidden=16,
        moa=True, moa_agent_id=True, goal="discrete", player_id=True, history=2,
    )  # fmt: skip
    last = trainer.run(progress=False)
    assert np.isfinite(last["policy"]) and np.isfinite(last["moa"]) and np.isfinite(last["goal"])
    policy = load_policy(tmp_path, game=game, player=game.n_agents - 1)
    stats = self_play_stats(policy, game, games=4)
    assert stats["coins"] >= stats["steals"] >= 0 and 0 <= stats["own_share"] <= 1


def test_a_make_config_game_with_walls_and_continuous_goals(tmp_path):
    game = gridmarl.make_config(layout="....#\n.#...\n.....", n_agents=3, max_steps=10)
    ppo = PPOConfig(total_steps=3 * 8 * 8, **TINY)
    trainer = make_trainer(tmp_path, game=game, opponent=["greedy", "switching"], num_envs=8, ppo=ppo,
                           hidden=16, goal="continuous", moa=True)  # fmt: skip
    last = trainer.run(progress=False)
    assert np.isfinite(last["goal"]) and 0 <= last["moa_accuracy"] <= 1
    assert policy_returns(load_policy(tmp_path), ["greedy", "switching"], (0,), 2, game).returns.shape == (
        1,
        2,
    )


def test_the_moa_head_learns_the_opponents_actions(tmp_path):
    """Against ``stay`` opponents the others always play 0: the MOA head must find that out."""
    trainer = tiny(tmp_path, iterations=12, opponent="stay", moa=True, num_envs=32, lr=1e-2)
    last = trainer.run(progress=False)
    assert last["moa_accuracy"] > 0.99 and last["moa"] < 0.1
    batch = trainer.rollout()
    assert batch["others"].eq(0).all()  # the logged a_-i are the opponents' real actions
    with torch.no_grad():
        predicted = trainer.net(batch["x"].reshape(-1, batch["x"].shape[-1])).moa_logits.argmax(-1)
    assert predicted.eq(0).float().mean() > 0.99


def test_bad_input_is_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match=r"algorithm='a2c' is unknown; allowed: \['ppo', 'mappo'\]"):
        make_trainer(tmp_path, algorithm="a2c")
    with pytest.raises(ValueError, match="opponent='wizard' is unknown; allowed"):
        make_trainer(tmp_path, opponent="wizard")
    with pytest.raises(ValueError, match="minibatch_size must be an integer >= 1"):
        PPOConfig(minibatch_size=0)
    with pytest.raises(ValueError, match=r"precision must be one of \['auto', 'fp32', 'bf16'\], got 'fp8'"):
        PPOConfig(precision="fp8")
    with pytest.raises(ValueError, match="num_envs=10 must be divisible by groups=4"):
        make_trainer(tmp_path, num_envs=10, groups=4)


# fp32: bfloat16 products of differently split minibatches round differently, and the test asks for equality
DDP_RUN = {
    "iterations": 3,
    "num_envs": 16,
    "groups": 2,
    "moa": True,
    "opponent": "greedy",
    "precision": "fp32",
}


def _ddp_worker(rank, world, init_file, out):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        trainer = tiny(out, **DDP_RUN)
        trainer.run(progress=False)
        del trainer  # dropped before the group goes, as the learn command does
    except BaseException:
        dist.destroy_process_group()
        raise
    end_process_group()


def test_two_processes_match_one(tmp_path):
    single = tiny(tmp_path / "single", **DDP_RUN)
    single.run(progress=False)
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), tmp_path / "ddp"), nprocs=2, join=True)
    ddp = read_policy_file(tmp_path / "ddp" / "policy.pt")
    for k, v in single.net.state_dict().items():
        assert torch.allclose(v, ddp["policy"][k], atol=1e-5, rtol=1e-4), k
    assert torch.equal(ddp["resume"]["hist"], torch.from_numpy(single.hist))


def test_learn_command_and_viewer(tmp_path, capsys):
    from gridmarl_wm.cli import main
    from gridmarl_wm.viewing.viewer import main_view

    args = ["learn", "--out", str(tmp_path), "--steps", "1024", "--num-envs", "16", "--rollout-steps", "8",
            "--minibatch-size", "64", "--threads", "1", "--no-progress", "--eval-episodes", "1"]  # fmt: skip
    main(args)
    out = capsys.readouterr().out
    assert "real-env return per episode against random" in out
    assert {"policy.pt", "metrics.jsonl", "returns.png", "eval.json"} <= {p.name for p in tmp_path.iterdir()}
    with pytest.raises(SystemExit):  # the folder holds a run: it is not overwritten
        main(args)
    assert "pass --resume" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["learn", "--out", str(tmp_path), "--resume", "--hidden", "8"])
    assert "--hidden 8 does not match the run" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["learn", "--out", str(tmp_path / "x"), "--algorithm", "a2c"])
    assert "algorithm='a2c' is unknown" in capsys.readouterr().err
    gif = tmp_path / "view.gif"
    assert (
        main_view(["--exact", "--policy", str(tmp_path / "policy.pt"), "--steps", "3", "--gif", str(gif)])
        == 0
    )
    assert gif.exists()


@pytest.mark.parametrize("bootstrap", [True, False])
def test_truncated_episodes_are_bootstrapped_from_their_last_observation(tmp_path, bootstrap):
    ppo = PPOConfig(
        total_steps=64,
        rollout_steps=4,
        minibatch_size=16,
        gamma=0.9,
        bootstrap_truncation=bootstrap,
        precision="fp32",  # the value below is recomputed in float32
    )
    trainer = make_trainer(tmp_path, game={"max_steps": 3}, opponent="greedy", num_envs=4, ppo=ppo, hidden=8)
    seen = []
    step = trainer.env.step

    def spy(actions):
        res = step(actions)
        seen.append(res)
        return res

    trainer.env.step = spy
    batch = trainer.rollout()
    assert batch["done"][:, 0].tolist() == [0.0, 0.0, 1.0, 0.0]
    final = torch.from_numpy(seen[2].final_obs.reshape(4, -1))
    with torch.no_grad():
        v_final = trainer.net(final).value
    raw = torch.from_numpy(seen[2].rewards.reshape(4))
    expected = raw + 0.9 * v_final if bootstrap else raw
    assert torch.allclose(batch["reward"][2], expected)
    assert not np.array_equal(seen[2].final_obs, seen[2].obs)  # the next episode's start is not used

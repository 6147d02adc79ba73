"""Training infrastructure: checkpoints, refusal of bad files, exact resume, NaN stop, DDP equivalence."""

import pickle

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import gridmarl
from gridmarl_wm.data import CollectConfig, collect
from gridmarl_wm.model import WorldModel
from gridmarl_wm.model import checkpoint as ckpt
from gridmarl_wm.model.tokens import learn_structure
from gridmarl_wm.training.distributed import end_process_group
from gridmarl_wm.training.trainer import TrainConfig, Trainer, TrainingDiverged, model_config_for

GAME = gridmarl.make_config()
SMALL = {"features": 16, "latent": 32, "d_model": 32}


@pytest.fixture(scope="module")
def data():
    return collect(GAME, CollectConfig(steps=60, num_envs=32, seed=0))


def make_trainer(data, out, steps=10, seed=0, **train):
    torch.manual_seed(seed)
    model = WorldModel(model_config_for(GAME, data, **SMALL))
    cfg = TrainConfig(
        steps=steps, batch_size=64, log_every=5, checkpoint_every=5, seed=seed, warmup=2, **train
    )
    return Trainer(model, data, GAME, cfg, out)


def test_train_writes_checkpoint_metrics_and_loads(data, tmp_path):
    trainer = make_trainer(data, tmp_path, steps=10)
    last = trainer.run(progress=False)
    assert last["step"] == 10 and np.isfinite(last["total"])
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and (tmp_path / "config.json").exists()
    loaded = WorldModel.load(tmp_path / "checkpoint.pt", GAME)
    obs = data.obs[:8].astype(np.float32)
    a, o, nxt = data.action[:8], data.others[:8], data.next_obs[:8]
    assert torch.allclose(loaded.log_prob(obs, a, o, nxt), trainer.model.log_prob(obs, a, o, nxt))
    from gridmarl_wm.training.trainer import plot_losses

    plot_losses(tmp_path / "metrics.jsonl", tmp_path / "losses.png")
    assert (tmp_path / "losses.png").stat().st_size > 1000


def test_resume_is_exact(data, tmp_path):
    straight = make_trainer(data, tmp_path / "a", steps=10)
    straight.run(progress=False)
    make_trainer(data, tmp_path / "b", steps=10).run(progress=False, stop_at=5)
    resumed = make_trainer(
        data, tmp_path / "b", steps=10, seed=1
    )  # a different init: resume must overwrite it
    resumed.resume()
    assert resumed.step == 5
    resumed.run(progress=False)
    for (k, v), (_, w) in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        assert torch.equal(v, w), k


def test_refuses_bad_files(data, tmp_path):
    trainer = make_trainer(data, tmp_path, steps=5)
    trainer.run(progress=False)
    path = tmp_path / "checkpoint.pt"
    with pytest.raises(ValueError, match="another game"):
        WorldModel.load(path, gridmarl.make_config(height=5))
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match="not a readable"):
        WorldModel.load(damaged)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else/9", "model": {}}, other)
    with pytest.raises(ValueError, match="format 'something-else/9'"):
        WorldModel.load(other)
    with pytest.raises(FileNotFoundError):
        WorldModel.load(tmp_path / "missing.pt")


class _Boom:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_checkpoint_cannot_run_code(tmp_path):
    """weights_only loading: a pickle that would call a function is refused, not executed."""
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": ckpt.CHECKPOINT_FORMAT, "model": _Boom()}, f)
    with pytest.raises(ValueError, match="not a readable"):
        WorldModel.load(path)


def test_nan_stops_and_keeps_the_last_good_checkpoint(data, tmp_path):
    trainer = make_trainer(data, tmp_path, steps=20)
    trainer.run(progress=False, stop_at=5)
    good = (tmp_path / "checkpoint.pt").read_bytes()
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="at step 5"):
        trainer.run(progress=False)
    assert (tmp_path / "checkpoint.pt").read_bytes() == good


def test_the_datas_first_observations_are_stored_with_the_model(data, tmp_path):
    """ImaginedEnv's plain reset starts from these: they must come from the data and survive a reload
    (60 steps of 32 games: 64 episodes, two players each)."""
    from gridmarl_wm import ImaginedEnv

    trainer = make_trainer(data, tmp_path, steps=1)
    trainer.run(progress=False)
    starts, agents = data.start_observations()
    assert len(starts) == 2 * 32 * 2 and (data.obs[data.t == 0] == starts).all()
    loaded = WorldModel.load(tmp_path / "checkpoint.pt", GAME)
    np.testing.assert_array_equal(loaded.start_obs, starts)
    np.testing.assert_array_equal(loaded.start_agent, agents)
    obs, _ = ImaginedEnv(loaded).reset(seed=0)
    assert (starts[agents == 0] == obs).all((1, 2, 3)).any()


def test_non_finite_gradients_stop_before_the_weights_are_saved(data, tmp_path):
    """A finite loss can still give NaN gradients; the step must not reach the weights (and a checkpoint)."""
    trainer = make_trainer(data, tmp_path, steps=20)
    trainer.run(progress=False, stop_at=4)  # the next step (to 5) would write a checkpoint
    good = (tmp_path / "checkpoint.pt").read_bytes()
    weight = next(trainer.model.parameters())
    weight.register_hook(lambda grad: torch.full_like(grad, float("nan")))
    with pytest.raises(TrainingDiverged, match=r"gradients.*at step 4"):
        trainer.run(progress=False)
    assert (tmp_path / "checkpoint.pt").read_bytes() == good
    assert torch.isfinite(weight).all()


def _ddp_worker(rank, world, init_file, out, data):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        trainer = make_trainer(data, out, steps=6)
        trainer.run(progress=False)
        del trainer  # dropped before the group goes, as the train command does
    except BaseException:
        dist.destroy_process_group()
        raise
    end_process_group()


def test_ddp_two_processes_match_one(data, tmp_path):
    torch.set_num_threads(1)
    single = make_trainer(data, tmp_path / "single", steps=6)
    single.run(progress=False)
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), tmp_path / "ddp", data), nprocs=2, join=True)
    ddp = ckpt.read_checkpoint(tmp_path / "ddp" / "checkpoint.pt")["model"]
    for k, v in single.model.state_dict().items():
        assert torch.allclose(v, ddp[k], atol=1e-5, rtol=1e-4), k


def test_vq_reports_code_usage_and_restarts_dead_codes(data, tmp_path):
    torch.manual_seed(0)
    model = WorldModel(model_config_for(GAME, data, variant="vq", vq_codes=16, vq_groups=4, **SMALL))
    cfg = TrainConfig(steps=8, batch_size=32, log_every=8, vq_restart_every=4, warmup=1)
    last = Trainer(model, data, GAME, cfg, tmp_path).run(progress=False)
    assert 0 < last["vq_codes_used"] <= 1 and last["vq_restarted"] == round(16 * (1 - last["vq_codes_used"]))


def test_model_config_takes_only_shapes_from_the_game(data, tmp_path):
    """Everything the decoder may enforce comes from the data: the same game with other data (coins that
    vanish) gives another structure, and the layout holds one object more per channel than the data showed."""
    cfg = model_config_for(GAME, data)
    s = cfg.structure
    assert s == learn_structure(data.obs, data.next_obs) and s.transitions == len(data)
    assert s.max_count == (1, 1, 1, 1, 0) and cfg.max_count == (2, 2, 2, 2, 1)
    assert all(s.counts_kept) and s.static == (False, False, False, False, True)
    fewer = data.take(np.arange(len(data)))
    fewer.next_obs = fewer.next_obs.copy()
    fewer.next_obs[:10, 2] = 0  # the own coin gone in ten transitions
    assert model_config_for(GAME, fewer).structure.counts_kept == (True, True, False, True, True)
    assert model_config_for(GAME, data, count_margin=0).max_count == (1, 1, 1, 1, 0)
    with pytest.raises(ValueError, match="count_margin must be an int >= 0"):
        model_config_for(GAME, data, count_margin=-1)


def test_checkpoint_keeps_the_learned_structure_and_the_switch(data, tmp_path):
    for constraints in (True, False):
        torch.manual_seed(0)
        model = WorldModel(model_config_for(GAME, data, constraints=constraints, **SMALL))
        trainer = Trainer(
            model, data, GAME, TrainConfig(steps=2, batch_size=16, warmup=1), tmp_path / str(constraints)
        )
        last = trainer.run(progress=False)
        assert (
            "obs_nll_unconstrained" in last
        ) is constraints  # trained both ways while the constraints are on
        loaded = WorldModel.load(tmp_path / str(constraints) / "checkpoint.pt", GAME)
        assert loaded.cfg == model.cfg and loaded.constraints_on is constraints
        obs, a, o, nxt = data.obs[:8].astype(np.float32), data.action[:8], data.others[:8], data.next_obs[:8]
        assert torch.allclose(loaded.log_prob(obs, a, o, nxt), model.log_prob(obs, a, o, nxt))

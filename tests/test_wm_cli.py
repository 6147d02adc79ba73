"""``gridmarl-wm collect | train | eval`` end to end with a tiny budget, and its errors."""

import json
import subprocess
import sys

import pytest


def cli(*args, check=True):
    return subprocess.run(
        [sys.executable, "-m", "gridmarl_wm.cli", *args], capture_output=True, text=True, check=check
    )


def train_args(data, out, steps: int, batch_size: int) -> list[str]:
    """``gridmarl-wm train`` on ``data`` into ``out``, without a progress bar."""
    return ["train", "--data", str(data), "--out", str(out), "--steps", str(steps), "--batch-size",
            str(batch_size), "--no-progress"]  # fmt: skip


def test_collect_train_resume_eval(tmp_path):
    data, run = tmp_path / "data.npz", tmp_path / "run"
    out = cli("collect", "--out", str(data), "--steps", "30", "--num-envs", "8").stdout
    assert "collected 480 transitions" in out
    cli(*train_args(data, run, 4, 32))
    assert (run / "checkpoint.pt").exists() and (run / "losses.png").exists()
    model = json.loads((run / "config.json").read_text())["model"]  # the defaults: the main job's model
    assert (model["decoder"], model["trunk"], model["fusion"]) == ("mixture", "mlp", "film")
    resumed = cli(*train_args(data, run, 6, 32), "--resume").stdout
    assert "resumed at step 4" in resumed and '"step": 6' in resumed
    report = tmp_path / "eval.json"
    cli(
        "eval",
        "--model",
        str(run / "checkpoint.pt"),
        "--sample-states",
        "10",
        "--out",
        str(report),
        "--plots",
        str(tmp_path / "plots"),
    )
    for name in ("tv_histogram.png", "open_loop.png", "predictions.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 10_000
    r = json.loads(report.read_text())
    assert r["exhaustive"]["n_transitions"] == 250 and 0 <= r["exhaustive"]["tv_mean"] <= 1
    assert 0 <= r["opponent_model"]["opponent_top1"] <= 1
    assert len(r["open_loop"]["true_opponent_actions"]["position_match"]) == 20


def test_train_takes_the_model_width_and_refuses_a_bad_one(tmp_path):
    data, run = tmp_path / "data.npz", tmp_path / "run"
    cli("collect", "--out", str(data), "--steps", "10", "--num-envs", "4")
    cli(*train_args(data, run, 2, 8), "--d-model", "64")
    assert json.loads((run / "config.json").read_text())["model"]["d_model"] == 64
    bad = cli(*train_args(data, tmp_path / "bad", 2, 8), "--d-model", "0", check=False)
    assert bad.returncode != 0 and "d_model must be an int >= 1, got 0" in bad.stderr


def test_partial_view_game_collects_and_trains(tmp_path):
    data, run = tmp_path / "data.npz", tmp_path / "run"
    cli(
        "collect",
        "--out",
        str(data),
        "--env",
        "GridMARL-8x8-4P-Partial-v0",
        "--steps",
        "10",
        "--num-envs",
        "4",
        "--policy",
        "switching",
    )
    cli(*train_args(data, run, 3, 16))
    r = json.loads(cli("eval", "--model", str(run / "checkpoint.pt"), "--no-open-loop").stdout)
    assert "exhaustive" not in r and "opponent_model" in r


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--data", "missing.npz", "--out", "x"], "No such file"),
        (["eval", "--model", "missing.pt"], "no checkpoint at missing.pt"),
        (["collect", "--out", "x.npz", "--env", "Nope-v0"], "--env must be one of"),
    ],
)
def test_errors_are_clear(args, message, tmp_path):
    result = cli(*args, check=False)
    assert result.returncode != 0 and message in result.stderr


@pytest.mark.parametrize(
    "variant, flags, expected",
    [
        ("direct", {}, ("mixture", "mlp", "film")),
        ("direct", {"decoder": "pointer"}, ("pointer", "conv", "concat")),
        ("direct", {"trunk": "conv"}, ("pointer", "conv", "concat")),
        ("direct", {"trunk": "local"}, ("mixture", "local", "concat")),
        ("direct", {"decoder": "mixture", "trunk": "conv", "fusion": "film"}, ("mixture", "conv", "film")),
        ("latent", {}, ("pointer", "conv", "concat")),
        ("vq", {"decoder": "mixture"}, ("mixture", "conv", "concat")),
    ],
)
def test_train_architecture_defaults(variant, flags, expected):
    from gridmarl_wm.training.trainer import architecture_defaults

    given = {"decoder": None, "trunk": None, "fusion": None} | flags
    assert tuple(architecture_defaults(variant, **given).values()) == expected

"""Every example runs with a tiny budget."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


def test_random_play_text():
    out = run("examples/random_play.py", "--steps", "5")
    assert "t=0" in out and "t=5" in out and "return of the ego" in out


def test_random_play_png(tmp_path):
    pygame = pytest.importorskip("pygame")
    path = tmp_path / "frame.png"
    run("examples/random_play.py", "--env", "GridMARL-Walls3P-v0", "--steps", "3", "--out", str(path))
    image = pygame.surfarray.array3d(pygame.image.load(str(path)))
    assert image.shape == (6 * 48, 5 * 48, 3)  # (width px, height px, 3) for the 5x6 map
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 5


def test_keyboard_play_script_gif(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    path = tmp_path / "played.gif"
    script = "41230"
    out = run("examples/keyboard_play.py", "--script", script, "--gif", str(path), "--fps", "50")
    assert "t=5" in out and f"wrote {path}" in out
    with Image.open(path) as im:
        assert im.n_frames == len(script) + 1
        assert im.size == (4 * 48, 4 * 48)


def test_train_plan_and_swap_examples(tmp_path):
    """The learned-model examples in the order a newcomer runs them, with tiny budgets."""
    out = run("examples/train_model.py", "--steps", "30", "--out", str(tmp_path / "wm"), "--states", "50")
    assert "TV mean" in out and "checkpoint:" in out
    model = str(tmp_path / "wm" / "checkpoint.pt")
    out = run("examples/plan_in_imagination.py", "--model", model, "--episodes", "1", "--sequences", "4")
    assert "planning in the learned simulator" in out and "planning in the exact simulator" in out
    out = run("examples/swap_in_imagined_env.py", "--model", model, "--episodes", "2")
    assert "real env" in out and "imagined env" in out and "episodes of 50 steps" in out


def test_train_agent_example(tmp_path):
    out = run("examples/train_agent.py", "--steps", "8000", "--num-envs", "32", "--threads", "1",
              "--out", str(tmp_path / "agent"))  # fmt: skip
    assert "return per 50-step episode against greedy" in out and "scripted greedy ego" in out
    assert (tmp_path / "agent" / "policy.pt").exists()

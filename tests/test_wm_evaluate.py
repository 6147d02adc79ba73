"""The section-4 metrics, checked with the exact stand-in model (TV 0) and an untrained one."""

import numpy as np
import torch
from wm_helpers import tiny_model

import gridmarl
from gridmarl_wm.evaluate import exhaustive_metrics
from gridmarl_wm.exact_model import ExactModel


def test_exact_stand_in_scores_perfectly():
    game = gridmarl.make_config()
    report = exhaustive_metrics(ExactModel(game), game, sample_states=150, seed=0)
    assert report["n_transitions"] == 150 * 25
    assert report["tv_max"] < 1e-9 and report["det_acc"] == 1.0
    assert report["reward_acc"] == 1.0 and report["reward_mae"] == 0.0


def test_untrained_model_is_far_off_and_tv_is_per_transition():
    game = gridmarl.make_config()
    report = exhaustive_metrics(tiny_model(game).eval(), game, sample_states=40, seed=1)
    tv = report["tv"]
    assert tv.shape == (40 * 25,) and ((tv >= 0) & (tv <= 1)).all()
    assert report["tv_mean"] > 0.3 and report["tv_p99"] <= report["tv_max"]


def test_exact_stand_in_samples_the_true_distribution():
    game = gridmarl.make_config()
    model = ExactModel(game)
    core = gridmarl.GridCore(game)
    state = gridmarl.State(np.array([[5, 6]]), np.array([[9, 15]]), np.array([0]))
    obs = np.repeat(core.observe(state, (0,))[:, 0], 2600, axis=0)
    nxt, reward = model.sample(
        obs, np.full(2600, 2), np.zeros((2600, 1), int), generator=torch.Generator().manual_seed(0)
    )
    assert (reward == 1).all()
    own_coin = nxt.flatten(2)[:, 2].argmax(1).numpy()
    counts = np.bincount(own_coin, minlength=16)
    allowed = [c for c in range(16) if c not in (9, 6, 15)]
    assert counts[[9, 6, 15]].sum() == 0 and counts[allowed].min() > 130


def test_open_loop_with_modelled_opponents_runs_a_model_that_takes_the_player_index():
    from gridmarl_wm.evaluate import open_loop

    game = gridmarl.make_config()
    curves = open_loop(tiny_model(game, agent_id=True), game, episodes=4, horizon=2, modelled_opponents=True)
    assert len(curves["position_match"]) == 2

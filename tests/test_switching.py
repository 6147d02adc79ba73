"""The switch detector on hand-made sequences, goal labels, and the opponent models' plumbing."""

import numpy as np
import pytest
import torch
from wm_helpers import tiny_model

import gridmarl
from gridmarl.gym_env import GridMARLEnv
from gridmarl.opponents import Opponents
from gridmarl_wm.data import CollectConfig, collect
from gridmarl_wm.opponents.switching import (
    Episodes,
    OpponentNet,
    TypeFilter,
    TypeFilterSimulator,
    episodes,
    fit,
    fit_types_em,
    goal_labels,
    hindsight_goals,
    predict_episodes,
    type_posteriors,
)
from gridmarl_wm.planning import RandomShooting, play

GAME = gridmarl.make_config()
# two opponent types over 5 actions: A mostly stays, B mostly goes up
A = np.array([0.84, 0.04, 0.04, 0.04, 0.04])
B = np.array([0.04, 0.84, 0.04, 0.04, 0.04])


def run_filter(actions, hazard=0.1):
    filt = TypeFilter(2, batch=1, hazard=hazard)
    probs = np.stack([A, B])[None]  # (1, K, 5)
    detected, predicted = [], []
    for a in actions:
        predicted.append(filt.predict(probs)[0])
        detected.append(bool(filt.update(probs, np.array([a]))[0]))
    return np.array(detected), np.array(predicted)


def test_detector_finds_switches_fast_with_few_false_alarms():
    rng = np.random.default_rng(0)
    early = fast = 0
    for _ in range(50):
        before = rng.choice(5, 15, p=A)
        after = rng.choice(5, 15, p=B)
        detected, predicted = run_filter(np.concatenate([before, after]))
        early += detected[:15].any()
        fast += detected[15:19].any()
        assert predicted[-1].argmax() == 1  # it adapts
    assert fast >= 45  # within 4 steps of the switch in at least 90% of the runs
    assert early <= 5  # a false alarm needs two unlikely actions in a row


def test_detector_mostly_quiet_without_a_switch():
    rng = np.random.default_rng(1)
    detected, _ = run_filter(rng.choice(5, 1000, p=A))
    assert detected.sum() <= 10


def test_filter_arguments():
    with pytest.raises(ValueError, match="hazard"):
        TypeFilter(2, hazard=1.0)
    with pytest.raises(TypeError, match="hazard"):  # no default that could match the real opponent's rate
        TypeFilter(2)
    with pytest.raises(ValueError, match="threshold"):
        TypeFilter(2, hazard=0.1, threshold=0)


def obs_of(agents, coins):
    state = gridmarl.State(np.array([agents]), np.array([coins]), np.array([0]))
    return gridmarl.GridCore(GAME).observe(state, (0,))[:, 0]


def test_goal_labels_follow_the_policy():
    # player_0 at 0, opponent at 15 (3,3); player_0's coin at 14 (next to the opponent), the opponent's at 1
    obs = obs_of([0, 15], [14, 1])
    assert goal_labels(obs, np.array(["greedy"])).tolist() == [1]  # its own coin, far away
    assert goal_labels(obs, np.array(["selfish"])).tolist() == [14]  # the nearest coin of any colour
    assert goal_labels(obs, np.array(["random"])).tolist() == [16]  # none


def test_goal_labels_measure_paths_around_walls():
    """The labelled goal is the coin the greedy policy heads for, which goes by shortest paths around the
    walls: a coin two cells away behind a wall is farther than one three cells away in the open."""
    game = gridmarl.make_config(layout=".....\n.###.\n.....", coins_per_agent=2)
    core = gridmarl.GridCore(game)
    # player_0 at (2,4), the opponent at (0,2); player_0's coins at (0,0), (2,0); the opponent's at (2,2)
    # (2 away as the crow flies, 6 by path) and (1,4) (3 either way)
    state = gridmarl.State(np.array([[14, 2]]), np.array([[0, 10, 12, 9]]), np.array([0]))
    obs = core.observe(state, (0,))[:, 0]
    assert goal_labels(obs, np.array(["greedy"]), game).tolist() == [9]
    assert goal_labels(obs, np.array(["selfish"]), game).tolist() == [0]  # (0,0): 2 by path
    # the greedy policy itself agrees: its best moves are the ones towards (1,4)
    opp = Opponents(core, 0, "greedy")
    opp.reset(1, None, np.zeros((1, 0)))
    probs = opp.action_probs(state)[0, 0]
    assert probs[4] > 0 and probs[3] == 0  # right, not left


def test_hindsight_goals_are_the_next_pick_up_seen_in_the_observations():
    game = gridmarl.make_config()
    spec = ("random", "switching")
    names = Opponents(gridmarl.GridCore(game), None, list(spec)).names
    data = collect(game, CollectConfig(steps=100, num_envs=8, policy=spec, seed=3))
    ep = episodes(data, names)
    # the opponent (player_1) picked a coin in a step exactly when its own reward is odd (+1 per pick-up,
    # -2 per coin of its own taken)
    mine = data.agent == 1
    order = np.lexsort((data.t[mine], data.episode[mine]))
    reward = data.reward[mine][order].reshape(ep.picked.shape)
    np.testing.assert_array_equal(ep.picked < 16, np.abs(reward) % 2 == 1)
    goals = hindsight_goals(ep, horizon=5)
    e, t = np.argwhere(ep.picked < 16)[0]
    assert goals[e, t] == ep.picked[e, t]
    later = np.flatnonzero(ep.picked[e] < 16)
    for s in range(T := ep.picked.shape[1]):
        nxt = later[later >= s]
        want = ep.picked[e, nxt[0]] if len(nxt) and nxt[0] - s < 5 else 16
        assert goals[e, s] == want, (s, T)
    with pytest.raises(ValueError, match="horizon"):
        hindsight_goals(ep, horizon=0)


def two_type_episodes(E=48, T=50, seed=0):
    """Synthetic play: the opponent follows type A (mostly stays) or B (mostly goes up) and changes type
    at t = 10, 20, 30, 40; observations carry no hint of the type."""
    rng = np.random.default_rng(seed)
    types = np.zeros((E, T), dtype=np.int64)
    types[:, 0] = rng.integers(2, size=E)
    for t in range(1, T):
        types[:, t] = 1 - types[:, t - 1] if t % 10 == 0 else types[:, t - 1]
    table = np.stack([A, B])
    other = (rng.random((E, T, 1)) > np.cumsum(table[types], -1)).sum(-1)
    obs = np.zeros((E, T, 5, 4, 4), dtype=np.float32)
    obs[:, :, 0, 0, 0] = obs[:, :, 1, 3, 3] = 1
    zeros = np.zeros((E, T), dtype=np.int64)
    ep = Episodes(obs, zeros, other, types, table[types], zeros + 16, zeros + 16)
    return ep, types


def test_em_learns_the_types_and_the_hazard_without_labels():
    ep, types = two_type_episodes()
    torch.manual_seed(0)
    net = OpponentNet(GAME.obs_shape, "types", n_types=2, d=16)
    history = fit_types_em(net, ep, rounds=5, steps_per_round=30, hazard=0.02, batch=16, lr=5e-3)
    assert history[-1]["loglik_per_step"] > history[0]["loglik_per_step"]
    # a change happens at 4 of 49 steps; with a type redrawn uniformly (K = 2) that is a hazard of 0.163
    assert 0.12 < net.hazard < 0.21, net.hazard
    probs = net(torch.as_tensor(ep.obs[:1, :1]))[0][0, 0].softmax(-1).detach().numpy()  # (K, 5)
    found = sorted(int(k.argmax()) for k in probs)
    assert found == [0, 1]  # one head stays, the other goes up (in either order)
    post, _, _ = type_posteriors(
        np.stack([probs[:, a] for a in ep.other.reshape(-1)]).reshape(*ep.other.shape, 2), net.hazard
    )
    head_of_a = int(probs[:, 0].argmax())
    agree = ((post.argmax(-1) == head_of_a) == (types == 0)).mean()
    assert agree > 0.9, agree
    with pytest.raises(ValueError, match="types"):
        fit_types_em(OpponentNet(GAME.obs_shape, "memoryless"), ep)


def switching_episodes(seed=0, steps=100, envs=16, spec=("random", "switching")):
    names = Opponents(gridmarl.GridCore(GAME), None, list(spec)).names
    return episodes(collect(GAME, CollectConfig(steps=steps, num_envs=envs, policy=spec, seed=seed)), names)


def test_episodes_and_steps_since_switch():
    ep = switching_episodes()
    assert ep.obs.shape == (32, 50, 5, 4, 4) and ep.other.shape == (32, 50)
    since = ep.steps_since_switch
    assert (since[ep.switched] == 0).all()
    # switching opponents change every 10 steps (the policy can only change at t = 10, 20, ...)
    assert set(np.flatnonzero(ep.switched.any(0)).tolist()) <= {10, 20, 30, 40}
    assert ep.switched[:, 10].all()
    assert np.allclose(ep.probs.sum(-1), 1)


@pytest.mark.parametrize(("kind", "goal"), [("memoryless", None), ("recurrent", None), ("recurrent", "discrete"), ("recurrent", "continuous"), ("types", None)])  # fmt: skip
def test_models_learn_a_fixed_opponent(kind, goal):
    ep = switching_episodes(steps=50, envs=32, spec=("random", "stay"))
    torch.manual_seed(0)
    net = OpponentNet(GAME.obs_shape, kind, goal, n_types=1, d=32)
    fit(net, ep, np.zeros_like(ep.policy), steps=60, batch=16, lr=5e-3)
    probs, goals, detected = predict_episodes(net, ep)
    assert probs.shape == (32, 50, 5)
    assert probs[..., 0].mean() > 0.8  # it stays
    if goal is not None:
        assert goals.shape == (32, 50) and ((goals >= 0) & (goals <= 16)).all()
    assert (detected is None) == (kind != "types")


def test_model_arguments():
    with pytest.raises(ValueError, match="kind"):
        OpponentNet(GAME.obs_shape, "lstm")
    with pytest.raises(ValueError, match="goal"):
        OpponentNet(GAME.obs_shape, "memoryless", "discrete")
    net = OpponentNet(GAME.obs_shape, "types", n_types=2)
    with pytest.raises(ValueError, match="type_ids"):
        fit(net, switching_episodes(steps=50, envs=2), None, steps=1)


def test_type_filter_simulator_plans_and_tracks_the_real_games():
    model = tiny_model(GAME).eval()
    model.game = GAME
    net = OpponentNet(GAME.obs_shape, "types", n_types=3, d=16)
    with pytest.raises(ValueError, match="hazard"):  # an unfitted types model has learned no hazard
        TypeFilterSimulator(model, net, seed=0)
    sim = TypeFilterSimulator(model, net, hazard=0.1, seed=0)
    result = play(RandomShooting(8, 2), sim, "switching", seeds=[0], episodes=2, game=GAME)
    assert result.returns.shape == (1, 2)
    assert sim.filter.posterior.shape == (2, 3) and np.allclose(sim.filter.posterior.sum(1), 1)
    env = GridMARLEnv(opponent="switching")
    obs, _ = env.reset(seed=0)
    roots = sim.roots([env], obs[None])
    states, reward, others = sim.step(sim.repeat(roots, 4), torch.zeros(4, dtype=torch.long))
    assert states.obs.shape == (4, 5, 4, 4) and (states.types >= 0).all() and others.shape == (4, 1)
    with pytest.raises(ValueError, match="types"):
        TypeFilterSimulator(model, OpponentNet(GAME.obs_shape, "memoryless"))


def test_switch_recovery_plot(tmp_path):
    from gridmarl_wm.viewing.plots import plot_switch_recovery

    out = tmp_path / "recovery.png"
    plot_switch_recovery({"memoryless": [0.4, 0.4, 0.4], "types": [0.5, 0.3, 0.2]}, out)
    assert out.stat().st_size > 5000


@pytest.mark.parametrize("as_tensor", [False, True], ids=["numpy", "torch"])
def test_fit_sets_the_hazard_from_type_labels_given_as_numpy_or_torch(as_tensor):
    ep, types = two_type_episodes(E=8, T=50)
    torch.manual_seed(0)
    net = OpponentNet(GAME.obs_shape, "types", n_types=2, d=8)
    fit(net, ep, torch.as_tensor(types) if as_tensor else types, steps=2, batch=4)
    # 4 changes in 49 steps, each a redraw of one of K = 2 types: (4 / 49) / (1 - 1 / 2)
    assert net.hazard == pytest.approx((4 / 49) / 0.5)


def test_a_types_models_hazard_survives_its_state_dict():
    torch.manual_seed(0)
    net = OpponentNet(GAME.obs_shape, "types", n_types=2, d=8)
    assert net.hazard is None
    net.hazard = 0.125
    again = OpponentNet(GAME.obs_shape, "types", n_types=2, d=8)
    again.load_state_dict(net.state_dict())
    assert again.hazard == 0.125
    assert TypeFilterSimulator(tiny_model(GAME), again).hazard == 0.125
    unset = OpponentNet(GAME.obs_shape, "types", n_types=2, d=8)
    again.load_state_dict(unset.state_dict())
    assert again.hazard is None


def test_the_switching_benchmarks_em_model_takes_its_number_of_types_from_the_flag():
    """The unlabelled types model is told only the number of types (--n-types); the labelled one has one per
    policy its labels name."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import opponent_switching as bench

    ep, _ = two_type_episodes(E=4, T=12)
    pool = np.array([0, 1])
    em = "types + switch filter, unlabelled (EM, hazard learned)"
    labelled = "types + switch filter, labelled (simulator's policy ids)"
    assert bench.train_model(em, GAME, ep, pool, 2, 1)[0].n_types == 2  # default: the pool's size
    assert bench.train_model(em, GAME, ep, pool, 2, 1, em_types=4)[0].n_types == 4
    assert bench.train_model(labelled, GAME, ep, pool, 2, 1, em_types=4)[0].n_types == 2

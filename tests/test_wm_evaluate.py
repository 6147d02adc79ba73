"""The section-4 metrics on models whose answers are known, against references worked out here by brute
force (not through ``transition_outcomes``, which the evaluator itself uses): the exact stand-in, a model
that always predicts "nobody moves and nothing changes", a known mixture of the two, opponent heads with
known distributions, and open-loop prediction."""

import itertools

import numpy as np
import pytest
import torch
from wm_helpers import tiny_model

import gridmarl
from gridmarl_wm.data import CollectConfig, collect
from gridmarl_wm.evaluate import (
    exhaustive_metrics,
    exhaustive_metrics_both_ways,
    open_loop,
    opponent_metrics,
)
from gridmarl_wm.simulation.exact_model import ExactModel

SMALL = gridmarl.make_config(height=2, width=3)  # 480 states x 25 joint actions
DELTAS = {0: (0, 0), 1: (-1, 0), 2: (1, 0), 3: (0, -1), 4: (0, 1)}  # stay, up, down, left, right


def _move(game, cell, action):
    r, c = divmod(cell, game.width)
    dr, dc = DELTAS[action]
    if 0 <= r + dr < game.height and 0 <= c + dc < game.width:
        return (r + dr) * game.width + c + dc
    return cell


def _observe(game, agents, coins):
    """Player_0's full view: self, the other player, own coin, the other's coin, walls (none here)."""
    x = np.zeros((5, game.height * game.width), dtype=np.float32)
    x[0, agents[0]] += 1
    x[1, agents[1]] += 1
    x[2, coins[0]] += 1
    x[3, coins[1]] += 1
    return x.reshape(5, game.height, game.width)


def brute_force(game, agents, coins, joint):
    """Player_0's next-observation distribution {bytes: (obs, prob)} and reward, by enumerating the rules:
    both players move; a coin under a player is picked (+1 to each player on it, -2 to its owner for every
    other-colour picker); picked coins respawn in colour order, each uniformly on a cell holding no player
    and no coin at its turn."""
    moved = tuple(_move(game, a, j) for a, j in zip(agents, joint, strict=True))
    reward = 0.0
    for colour, cell in enumerate(coins):
        for player, at in enumerate(moved):
            if at == cell:
                reward += (player == 0) * 1.0 + (colour == 0 and player != 0) * -2.0
    branches = [(list(coins), 1.0)]
    for colour in range(2):
        if coins[colour] not in moved:
            continue
        grown = []
        for placed, p in branches:
            free = [v for v in range(game.height * game.width) if v not in moved and v not in placed]
            for v in free:
                grown.append(([v if k == colour else placed[k] for k in range(2)], p / len(free)))
        branches = grown
    dist = {}
    for placed, p in branches:
        x = _observe(game, moved, placed)
        key = x.tobytes()
        dist[key] = (x, dist.get(key, (x, 0.0))[1] + p)
    return dist, reward


def every_state(game):
    """All (agents, coins) of a wall-free two-player game: players anywhere, coins apart and off players."""
    cells = range(game.height * game.width)
    for agents in itertools.product(cells, repeat=2):
        for coins in itertools.permutations([v for v in cells if v not in agents], 2):
            yield agents, coins


class StayModel:
    """Predicts with certainty that the next observation is the current one, and reward 0."""

    def eval(self):
        return self

    def log_prob(self, obs, self_action, other_actions, next_obs, source=None):
        obs = np.asarray(obs)
        rows = np.arange(len(obs)) if source is None else np.asarray(source)
        same = (np.asarray(next_obs) == obs[rows]).reshape(len(rows), -1).all(1)
        return torch.as_tensor(np.where(same, 0.0, -np.inf))

    def sample(self, obs, self_action, other_actions, generator=None, temperature=1.0):
        obs = torch.as_tensor(np.asarray(obs))
        return obs.clone(), torch.zeros(len(obs))


class MixtureModel(StayModel):
    """``weight`` x the exact game + (1 - weight) x "stay"."""

    def __init__(self, game, weight):
        self.exact, self.weight = ExactModel(game), weight

    def log_prob(self, obs, self_action, other_actions, next_obs, source=None):
        p_exact = self.exact.log_prob(obs, self_action, other_actions, next_obs, source).exp()
        p_stay = super().log_prob(obs, self_action, other_actions, next_obs, source).exp()
        return (self.weight * p_exact + (1 - self.weight) * p_stay).log()


@pytest.fixture(scope="module")
def reference():
    """Per transition of SMALL: P(next observation == current one), whether that can happen, the reward."""
    p_same, reward = [], []
    for agents, coins in every_state(SMALL):
        obs = _observe(SMALL, agents, coins)
        for joint in itertools.product(range(5), repeat=2):
            dist, r = brute_force(SMALL, agents, coins, joint)
            assert abs(sum(p for _, p in dist.values()) - 1) < 1e-12
            p_same.append(dist.get(obs.tobytes(), (None, 0.0))[1])
            reward.append(r)
    return np.array(p_same), np.array(reward)


def test_brute_force_matches_the_exact_stand_in():
    """The reference and ``ExactModel`` give every outcome of a few hundred transitions the same probability
    (and nothing else any probability)."""
    model = ExactModel(SMALL)
    rng = np.random.default_rng(0)
    states = list(every_state(SMALL))
    for i in rng.choice(len(states), 40, replace=False):
        agents, coins = states[i]
        obs = _observe(SMALL, agents, coins)[None]
        for joint in itertools.product(range(5), repeat=2):
            dist, _ = brute_force(SMALL, agents, coins, joint)
            outcomes = np.stack([x for x, _ in dist.values()])
            lp = model.log_prob(obs, [joint[0]], [[joint[1]]], outcomes, source=np.zeros(len(outcomes), int))
            assert np.allclose(lp.exp().numpy(), [p for _, p in dist.values()])


def test_exact_stand_in_scores_perfectly():
    report = exhaustive_metrics(ExactModel(SMALL), SMALL)
    assert report["n_states"] == 480 and report["n_transitions"] == 480 * 25
    assert report["tv_max"] < 1e-9 and report["det_acc"] == 1.0
    assert report["reward_acc"] == 1.0 and report["reward_mae"] == 0.0


def test_stay_model_scores_what_brute_force_says(reference):
    p_same, reward = reference
    report = exhaustive_metrics(StayModel(), SMALL)
    assert report["n_transitions"] == len(p_same)
    # the per-transition TVs are 1 - P(nothing changes), as a multiset (the two orders of states differ)
    assert np.allclose(np.sort(report["tv"]), np.sort(1 - p_same))
    assert report["tv_mean"] == pytest.approx(1 - p_same.mean(), abs=1e-12)
    assert report["det_acc"] == pytest.approx((p_same > 0).mean())
    assert report["reward_acc"] == pytest.approx((reward == 0).mean())
    assert report["reward_mae"] == pytest.approx(np.abs(reward).mean())
    assert 0.05 < p_same.mean() < 0.5  # the reference is not degenerate


def test_known_mixture_scores_what_brute_force_says(reference):
    """0.7 x exact + 0.3 x stay overlaps the truth in 0.7 of every outcome plus, where nothing changing is
    possible, all of it: TV = 0.3 x (1 - P(nothing changes))."""
    p_same, _ = reference
    report = exhaustive_metrics(MixtureModel(SMALL, 0.7), SMALL)
    assert np.allclose(np.sort(report["tv"]), np.sort(0.3 * (1 - p_same)))


def test_untrained_model_is_far_off_both_ways_and_tv_is_per_transition():
    game = gridmarl.make_config()
    model = tiny_model(game).eval()
    for constraints in (True, False):
        report = exhaustive_metrics(model, game, sample_states=40, seed=1, constraints=constraints)
        tv = report["tv"]
        assert report["constraints"] is constraints
        assert tv.shape == (40 * 25,) and ((tv >= 0) & (tv <= 1)).all()
        assert report["tv_mean"] > 0.3 and report["tv_p99"] <= report["tv_max"]
    assert model.constraints_on  # the switch is undone after the measurement
    with pytest.raises(ValueError, match="no learned constraints to switch"):
        exhaustive_metrics(ExactModel(SMALL), SMALL, sample_states=5, constraints=False)


def test_both_ways_in_one_pass_equals_two_passes():
    """The shared-pass measure with and without the learned constraints gives what two separate passes
    give (the two normalisations of one set of logits are the two models)."""
    game = gridmarl.make_config()
    torch.manual_seed(0)
    model = tiny_model(game).eval()
    with_, without = exhaustive_metrics_both_ways(model, game, sample_states=30, seed=2)
    for got, on in ((with_, True), (without, False)):
        ref = exhaustive_metrics(model, game, sample_states=30, seed=2, constraints=on)
        assert got["constraints"] is on
        np.testing.assert_allclose(got.pop("tv"), ref.pop("tv"), atol=1e-5)
        for k, v in ref.items():
            assert got[k] == pytest.approx(v, abs=1e-5), k
    assert with_["det_acc"] != without["det_acc"] or with_["tv_mean"] != without["tv_mean"]
    assert model.constraints_on
    with pytest.raises(ValueError, match="no learned constraints to switch"):
        exhaustive_metrics_both_ways(ExactModel(SMALL), SMALL, sample_states=5)


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


class FixedOpponentHead:
    """An opponent head that always gives ``probs`` (5,), or looks the true ones up in ``table``."""

    def __init__(self, probs=None, table=None):
        self.probs, self.table = probs, table

    def eval(self):
        return self

    def opponent_probs(self, obs, agent=None):
        if self.table is None:
            return torch.as_tensor(np.tile(self.probs, (len(obs), 1, 1)))
        return torch.as_tensor(
            np.stack([self.table[(o.tobytes(), int(a))] for o, a in zip(obs, agent, strict=True)])
        )


def test_opponent_metrics_on_heads_with_known_answers():
    game = gridmarl.make_config()
    data = collect(game, CollectConfig(steps=30, num_envs=16, policy="random", seed=3))
    others = data.others[:, 0]
    uniform = opponent_metrics(FixedOpponentHead(np.full((1, 5), 0.2)), data)
    assert uniform["opponent_tv_to_true"] == pytest.approx(0.0, abs=1e-7)
    assert uniform["opponent_nll"] == pytest.approx(np.log(5), rel=1e-6)
    assert uniform["opponent_top1"] == pytest.approx((others == 0).mean())  # ties go to the first action
    assert uniform["opponent_top1_in_true_support"] == 1.0
    leaning = np.array([[0.1, 0.1, 0.6, 0.1, 0.1]])
    lean = opponent_metrics(FixedOpponentHead(leaning), data)
    assert lean["opponent_tv_to_true"] == pytest.approx(0.4, rel=1e-6)
    assert lean["opponent_nll"] == pytest.approx(-np.log(leaning[0, others]).mean(), rel=1e-6)
    assert lean["opponent_top1"] == pytest.approx((others == 2).mean())
    # a scripted opponent whose true distribution is not uniform, and a head that knows it exactly
    greedy = collect(game, CollectConfig(steps=30, num_envs=16, policy="greedy", seed=4))
    table = {
        (o.astype(np.float32).tobytes(), int(a)): p
        for o, a, p in zip(greedy.obs, greedy.agent, greedy.others_probs, strict=True)
    }
    exact = opponent_metrics(FixedOpponentHead(table=table), greedy)
    assert exact["opponent_tv_to_true"] == pytest.approx(0.0, abs=1e-6)
    assert exact["opponent_top1_in_true_support"] == 1.0
    picked = greedy.others_probs[np.arange(len(greedy)), 0, greedy.others[:, 0]]
    assert exact["opponent_nll"] == pytest.approx(-np.log(picked).mean(), rel=1e-5)


def test_open_loop_on_models_with_known_answers():
    """Fed the real actions, the exact model predicts both players' cells without error at every step. A
    model that predicts "stay" is right exactly when both players are back on their start cells, whose
    chance after h random steps (uniform actions, distinct uniform start cells) is worked out here."""
    game = gridmarl.make_config()
    horizon, episodes = 4, 600
    exact = open_loop(ExactModel(game), game, episodes=64, horizon=horizon, seed=1)
    assert exact["position_match"] == [1.0] * horizon
    stay = open_loop(StayModel(), game, episodes=episodes, horizon=horizon, seed=2)
    V = game.height * game.width
    step = np.zeros((V, V))
    for v in range(V):
        for a in range(5):
            step[v, _move(game, v, a)] += 0.2
    expected = []
    for h in range(1, horizon + 1):
        back = np.diag(np.linalg.matrix_power(step, h))
        expected.append((np.outer(back, back).sum() - (back**2).sum()) / (V * (V - 1)))
    expected = np.array(expected)
    sd = np.sqrt(expected * (1 - expected) / episodes)
    assert (np.abs(np.array(stay["position_match"]) - expected) < 4 * sd + 1e-9).all(), (stay, expected)
    assert expected[0] > 0.1 and expected[-1] < expected[0]


class StayWithOpponentHead(StayModel):
    """A "stay" model with an opponent head that takes the player index: it records the ``agent`` it is told and
    answers action 2 for every opponent; ``sample`` records the others' actions it is fed."""

    def __init__(self):
        from types import SimpleNamespace

        self.cfg = SimpleNamespace(agent_id=True)
        self.agents, self.fed = [], []

    def opponent_probs(self, obs, agent=None):
        self.agents.append(None if agent is None else torch.as_tensor(agent).tolist())
        return torch.nn.functional.one_hot(torch.full((len(obs), 1), 2), 5).float()

    def sample(self, obs, self_action, other_actions, generator=None, temperature=1.0):
        self.fed.append(np.asarray(other_actions).tolist())
        return super().sample(obs, self_action, other_actions, generator, temperature)


def test_open_loop_with_modelled_opponents_tells_the_model_it_sees_player_0():
    """open_loop imagines player_0's view, so a model whose opponent head takes the player index is told 0
    for every episode at every step, and the others' actions it answers are the ones fed to ``sample``."""
    game = gridmarl.make_config()
    stub = StayWithOpponentHead()
    curves = open_loop(stub, game, episodes=3, horizon=2, modelled_opponents=True)
    assert len(curves["position_match"]) == 2
    assert stub.agents == [[0, 0, 0], [0, 0, 0]]
    assert stub.fed == [[[2], [2], [2]]] * 2
    curves = open_loop(tiny_model(game, agent_id=True), game, episodes=4, horizon=2, modelled_opponents=True)
    assert len(curves["position_match"]) == 2  # and a real model with a player-index head runs


def test_the_report_lists_the_learned_structure_and_measures_both_ways():
    from gridmarl_wm.cli import build_parser
    from gridmarl_wm.evaluate import evaluation_report

    game = gridmarl.make_config()
    model = tiny_model(game).eval()
    report = evaluation_report(model, game, sample_states=10, with_open_loop=False)
    listed = report["learned_structure"]
    assert report["constraints"] is True and listed["counts_kept"] == [
        "self",
        "other players",
        "own coins",
        "others' coins",
        "walls",
    ]
    assert listed["static"] == ["walls"] and listed["cells_never_held"]["walls"] == list(range(16))
    both = report["exhaustive_both_ways"]
    assert (
        both["with_constraints"] is report["exhaustive"] and both["with_constraints"]["constraints"] is True
    )
    assert both["without_constraints"]["constraints"] is False and model.constraints_on
    for command in (["eval", "--model", "m.pt"], ["train", "--data", "d.npz", "--out", "o"]):
        assert build_parser().parse_args([*command, "--no-constraints"]).no_constraints

"""Planners: they find the coin with the exact simulator, run unchanged on the learned interface, and
refuse bad budgets; the opponent heads refit to new opponents."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from wm_helpers import tiny_model

import gridmarl
from gridmarl.gym_env import GridMARLEnv
from gridmarl_wm.data import CollectConfig, collect
from gridmarl_wm.opponents.refit import fit_observation_heads
from gridmarl_wm.planning import (
    CEM,
    MCTS,
    ExactSimulator,
    LearnedSimulator,
    RandomShooting,
    ScriptedEgo,
    paired_gap,
    play,
    play_paired,
)
from gridmarl_wm.simulation.exact_model import ExactModel

GAME = gridmarl.make_config()
DOWN, RIGHT = 2, 4


def planners():
    return {
        "shooting": RandomShooting(n_sequences=64, horizon=4, seed=0),
        "cem": CEM(n_samples=32, horizon=4, iterations=3, seed=0),
        "mcts": MCTS(simulations=64, horizon=4, parallel=16, seed=0),
    }


def envs_at(*placements):
    """Real envs (the other player stays put) set to hand-built states: (ego cell, other cell, coins)."""
    out = []
    for ego, other, coins in placements:
        env = GridMARLEnv(opponent="stay")
        env.reset(seed=0)
        env.set_state({"agents": [ego, other], "coins": coins, "t": 0})
        out.append(env)
    return out


# ego at (1,1), its coin one step down; ego at (1,1), its coin two steps right and the other coin four
# steps away; ego at (0,0), the nearest coin (the other's) three steps away, down or right
PLACEMENTS = [(5, 15, [9, 3]), (5, 12, [7, 15]), (0, 15, [10, 12])]
FIRST_MOVES = [{DOWN}, {RIGHT}, {DOWN, RIGHT}]


@pytest.mark.parametrize("name", list(planners()))
def test_planners_find_the_coin_with_the_exact_simulator(name):
    planner = planners()[name]
    envs = envs_at(*PLACEMENTS)
    sim = ExactSimulator(GAME, opponent="stay", seed=0)
    actions = planner.act(sim, sim.roots(envs))
    assert actions.shape == (3,)
    for a, allowed in zip(actions, FIRST_MOVES):
        assert a in allowed


@pytest.mark.parametrize("name", list(planners()))
def test_planners_run_unchanged_on_the_learned_interface(name):
    """The same planner, given the world-model interface (here answered exactly), finds the same moves."""
    planner = planners()[name]
    envs = envs_at(*PLACEMENTS)
    sim = LearnedSimulator(ExactModel(GAME), opponent=lambda obs: torch.zeros(len(obs), 1, dtype=torch.long))
    obs = np.stack([env.games.observe()[0] for env in envs])
    actions = planner.act(sim, sim.roots(envs, obs))
    for a, allowed in zip(actions, FIRST_MOVES):
        assert a in allowed


@pytest.mark.parametrize("learned", [False, True])
def test_maxmin_mcts_takes_the_adjacent_coin(learned):
    planner = MCTS(simulations=256, horizon=2, parallel=32, opponents="maxmin", seed=0)
    envs = envs_at(PLACEMENTS[0])
    if learned:
        sim = LearnedSimulator(ExactModel(GAME))
        roots = sim.roots(envs, envs[0].games.observe())
    else:
        sim = ExactSimulator(GAME, opponent="stay")
        roots = sim.roots(envs)
    assert planner.act(sim, roots).tolist() == [DOWN]


def test_value_bootstrap_reaches_past_the_horizon():
    """With horizon 1 the coin three steps away is invisible; a value that grows towards it points the way."""
    envs = envs_at((0, 15, [3, 12]))  # own coin at (0, 3): three steps right

    def value(obs):
        ego = obs.flatten(2)[:, 0].argmax(1)
        return -(3 - ego % 4).abs().float()  # minus the column distance to the coin

    sim = ExactSimulator(GAME, opponent="stay", value_fn=value)
    plain = RandomShooting(n_sequences=32, horizon=1, seed=0)
    boot = RandomShooting(n_sequences=32, horizon=1, value_bootstrap=True, seed=0)
    assert boot.act(sim, sim.roots(envs))[0] == RIGHT
    assert plain.act(ExactSimulator(GAME, opponent="stay"), sim.roots(envs)).shape == (1,)


def test_play_reports_returns_with_confidence_intervals():
    greedy = play(ScriptedEgo("greedy", GAME), None, "random", seeds=[0, 1, 2], episodes=2)
    rand = play(ScriptedEgo("random", GAME), None, "random", seeds=[0, 1, 2], episodes=2)
    assert greedy.returns.shape == (3, 2) and np.isfinite(greedy.ci95) and greedy.ci95 > 0
    assert greedy.mean > rand.mean + 5  # about 17 against about 0
    planned = play(RandomShooting(64, 4), ExactSimulator(GAME, "random"), "random", seeds=[0], episodes=2)
    assert planned.mean > rand.mean + 5 and planned.decisions == 2 * GAME.max_steps


def test_paired_play_gives_each_simulator_the_same_games_and_planner_seed():
    """Two runs on the same simulator and seeds are one run twice (the pairing leaves nothing else free);
    a planner reused instead of made afresh would not be, and a simulator that ignores the game loses."""
    seeds = [0, 1]

    def make():
        return RandomShooting(32, 3, seed=5)

    runs = play_paired(
        make,
        {"a": ExactSimulator(GAME, "random", seed=1), "b": ExactSimulator(GAME, "random", seed=1)},
        "random",
        seeds,
        episodes=2,
    )
    np.testing.assert_array_equal(runs["a"].returns, runs["b"].returns)
    assert paired_gap(runs["a"], runs["b"]) == (pytest.approx(1.0), pytest.approx(0.0, abs=1e-12))
    shared = make()  # one planner object for both runs: its generator runs on, the pairs differ
    again = [play(shared, ExactSimulator(GAME, "random", seed=1), "random", seeds, 2) for _ in range(2)]
    assert not np.array_equal(again[0].returns, again[1].returns)
    blind = play_paired(
        make,
        {"exact": ExactSimulator(GAME, "random", seed=1), "stay": LearnedSimulator(StayWorld(), seed=1)},
        "random",
        seeds,
        episodes=2,
    )
    gap, half = paired_gap(blind["stay"], blind["exact"])
    assert gap + half < 0.9  # planning in a world where nothing moves plays badly
    with pytest.raises(TypeError, match="make_planner"):
        play_paired(make(), {"a": ExactSimulator(GAME)}, "random", seeds, 1)
    with pytest.raises(ValueError, match="same"):
        paired_gap(runs["a"], play(make(), ExactSimulator(GAME), "random", [0], 1))


class StayWorld:
    """A world model that predicts that nothing ever changes and nobody is ever rewarded."""

    device = torch.device("cpu")

    def sample(self, obs, self_action, other_actions, generator=None, temperature=1.0):
        obs = torch.as_tensor(obs)
        return obs.clone(), torch.zeros(obs.shape[0])

    def opponent_probs(self, obs, agent=None):
        return torch.full((obs.shape[0], 1, 5), 0.2)


def test_planner_arguments_are_checked():
    with pytest.raises(ValueError, match="n_sequences"):
        RandomShooting(n_sequences=0)
    with pytest.raises(ValueError, match="elite_frac"):
        CEM(elite_frac=0)
    with pytest.raises(ValueError, match="opponents"):
        MCTS(opponents="minimax")
    with pytest.raises(ValueError, match="horizon"):
        MCTS(horizon=1.5)


def test_fit_observation_heads_learns_new_opponents_and_shares_the_rest():
    model = tiny_model(GAME).eval()
    data = collect(GAME, CollectConfig(steps=30, num_envs=32, policy=("random", "stay"), seed=0))
    fitted = fit_observation_heads(model, data, steps=150, lr=3e-3, agent=0)
    obs = data.obs[data.agent == 0][:256].astype(np.float32)
    assert fitted.opponent_probs(obs)[:, 0, 0].mean() > 0.9  # "stay" learned
    assert model.opponent_probs(obs)[:, 0, 0].mean() < 0.5  # the original is untouched
    shared = [
        n
        for n, _ in model.named_parameters()
        if n.split(".")[0] not in ("obs_summary", "opponent_head", "value_head")
    ]
    mine, theirs = dict(fitted.named_parameters()), dict(model.named_parameters())
    assert shared and all(mine[n] is theirs[n] for n in shared)  # the transition model is shared
    assert all(mine[n] is not theirs[n] for n in mine if n.startswith("opponent_head"))
    with pytest.raises(ValueError, match="agent=5"):
        fit_observation_heads(model, data, agent=5)


def test_fit_observation_heads_leaves_the_original_models_modes_alone():
    model = tiny_model(GAME).train()
    data = collect(GAME, CollectConfig(steps=5, num_envs=4, seed=0))
    fitted = fit_observation_heads(model, data, steps=2, batch_size=8)
    assert all(m.training for m in model.modules())  # the fit ends with fitted.eval()
    assert not any(m.training for m in fitted.modules())
    fitted.train()
    model.eval()
    assert not any(m.training for m in model.modules()) and all(m.training for m in fitted.modules())


class RecordingOpponentModel:
    """A stand-in opponent model that records what it is asked: the views and the ``agent`` it is given;
    it answers ``action`` for every opponent (or uniform probabilities without one)."""

    def __init__(self, agent_id: bool, action: int | None = None):
        self.cfg = SimpleNamespace(agent_id=agent_id)
        self.action, self.calls = action, []

    def opponent_probs(self, obs, agent=None):
        self.calls.append((torch.as_tensor(obs).clone(), None if agent is None else torch.as_tensor(agent)))
        probs = torch.full((len(obs), GAME.n_agents - 1, 5), 0.2)
        if self.action is not None:
            probs = torch.nn.functional.one_hot(torch.full(probs.shape[:2], self.action), 5).float()
        return probs


@pytest.mark.parametrize("ego", [0, 1])
def test_exact_simulator_tells_a_model_that_takes_the_player_index_the_egos(ego):
    """The opponent model is asked about the ego's view and told it is the ego's (not player 0's), and the
    others' actions it answers are the ones played."""
    env = GridMARLEnv(opponent="random", ego=ego)
    obs, _ = env.reset(seed=0)
    for agent_id in (True, False):
        model = RecordingOpponentModel(agent_id, action=3)
        sim = ExactSimulator(GAME, opponent_model=model, seed=0, ego=ego)
        roots = sim.roots([env])
        states, reward, others = sim.step(sim.repeat(roots, 2), torch.zeros(2, dtype=torch.long))
        assert others.tolist() == [[3], [3]] and reward.shape == (2,)
        ((views, agent),) = model.calls
        np.testing.assert_array_equal(views.numpy(), np.stack([obs, obs]))
        if agent_id:
            assert agent.tolist() == [ego, ego]
        else:
            assert agent is None
    real = tiny_model(GAME, agent_id=True).eval()  # and a real model with a player-index head runs
    sim = ExactSimulator(GAME, opponent_model=real, seed=0, ego=ego)
    assert sim.step(sim.roots([env]), torch.zeros(1, dtype=torch.long))[2].shape == (1, 1)


def test_t_quantiles_match_tables_beyond_ten_degrees_of_freedom():
    from gridmarl_wm.planning import ci95, t_quantile

    table = {
        1: 12.7062,
        2: 4.3027,
        4: 2.7764,
        10: 2.2281,
        11: 2.2010,
        15: 2.1314,
        29: 2.0452,
        60: 2.0003,
        120: 1.9799,
    }
    for dof, value in table.items():
        assert abs(t_quantile(0.975, dof) - value) < 1e-4, dof
    assert abs(t_quantile(0.95, 9) - 1.8331) < 1e-4 and abs(t_quantile(0.025, 3) + 3.1824) < 1e-4
    assert abs(t_quantile(0.975, 10**7) - 1.95996) < 1e-4
    values = np.arange(12.0)  # 11 degrees of freedom: t = 2.201, not the normal 1.96
    assert abs(ci95(values) - 2.2010 * values.std(ddof=1) / np.sqrt(12)) < 1e-3
    for bad in ({"p": 0.5, "dof": 0}, {"p": 1.0, "dof": 3}, {"p": 0.9, "dof": 2.5}):
        with pytest.raises(ValueError, match=r"dof|p must"):
            t_quantile(**bad)


def test_model_gap_is_the_ratio_of_mean_returns_with_a_delta_method_interval():
    from gridmarl_wm.planning import model_gap

    exact = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    gap, half = model_gap(0.5 * exact, exact)
    assert gap == pytest.approx(0.5) and half == pytest.approx(0.0, abs=1e-12)  # a constant ratio: no spread
    learned = np.array([1.0, 20.0, 30.0, 40.0, 50.0])
    gap, half = model_gap(learned, exact)
    assert gap == pytest.approx(141 / 150)  # the ratio of the means, not the mean of the ratios (0.82)
    assert 0 < half < 1
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(400):  # the interval covers the true ratio (0.8) about 95% of the time
        e = rng.normal(15, 3, 8)
        g, h = model_gap(0.8 * e + rng.normal(0, 1, 8), e)
        covered += abs(g - 0.8) <= h
    assert 360 <= covered <= 396
    assert np.isnan(model_gap(learned, -exact)[0]) and np.isnan(model_gap(learned[:1], exact[:1])[1])
    with pytest.raises(ValueError, match="same shape"):
        model_gap(learned, exact[:3])


class _ReferenceMCTS(MCTS):
    """The search written node by node (one dict of nodes per root, one descent at a time): the array
    search of :class:`MCTS` must take exactly its decisions."""

    def act(self, sim, roots, steps_left=None):
        import math

        from gridmarl_wm.planning.planners import _horizon, _repeat_steps, _rollout

        R, W = len(roots), self.parallel
        H = _horizon(self.horizon, steps_left)
        maxmin, n_joint = self.opponents == "maxmin", 5**self.n_others
        trees = [{} for _ in range(R)]
        base, left = sim.repeat(roots, W), _repeat_steps(steps_left, R, W)

        def ucb(stats, sign):
            n, w, pending = stats
            visits = n + pending
            if (visits == 0).any():
                return int(np.flatnonzero(visits == 0)[0])
            return int(np.argmax(sign * w / visits + self.c * np.sqrt(np.log(visits.sum()) / visits)))

        def node(tree, key, k):
            if key not in tree:
                tree[key] = (np.zeros(k), np.zeros(k), np.zeros(k))
                return tree[key], True
            return tree[key], False

        for _ in range(math.ceil(self.simulations / W)):
            actions = torch.randint(0, 5, (R, W, H), generator=self.generator).numpy()
            others = torch.randint(0, n_joint, (R, W, H), generator=self.generator).numpy()
            paths = []
            for r in range(R):
                for w in range(W):
                    path, key = [], ()
                    for d in range(H):
                        stats, fresh = node(trees[r], key, 5)
                        a = int(actions[r, w, d]) if fresh else ucb(stats, 1.0)
                        stats[2][a] += 1
                        actions[r, w, d] = a
                        path.append((key, a, d))
                        if maxmin:
                            okey = (*key, a, "o")
                            ostats, _ = node(trees[r], okey, n_joint)
                            b = int(others[r, w, d]) if fresh else ucb(ostats, -1.0)
                            ostats[2][b] += 1
                            others[r, w, d] = b
                            path.append((okey, b, d))
                            key = (*key, (a, b))
                        else:
                            key = (*key, a)
                        if fresh:
                            break
                    paths.append(path)
            opp = None
            if maxmin:
                digits = 5 ** np.arange(self.n_others - 1, -1, -1)
                opp = torch.as_tensor((others.reshape(R * W, H)[:, :, None] // digits) % 5)
            ret, rew = _rollout(
                sim, base, torch.as_tensor(actions.reshape(R * W, H)), self.gamma, False, left, opp
            )
            togo = self._returns_to_go(rew, ret).numpy()
            for i, path in enumerate(paths):
                for key, a, d in path:
                    n, w, pending = trees[i // W][key]
                    pending[a] -= 1
                    n[a] += 1
                    w[a] += togo[i, d]
        best = []
        for tree in trees:
            n, w, _ = tree[()]
            best.append(int(np.argmax(np.where(n >= n.max() / 2, w / np.maximum(n, 1), -np.inf))))
        return np.array(best), trees


@pytest.mark.parametrize("opponents", ["chance", "maxmin"])
@pytest.mark.parametrize("learned", [False, True])
def test_mcts_searches_as_the_node_by_node_reference(opponents, learned):
    """The same decisions as a search written one node at a time, on real games mid-play, several budgets
    (the simulators draw alike given the same seed, so any difference in the search shows)."""
    envs = [GridMARLEnv(opponent="random") for _ in range(6)]
    obs = []
    for i, env in enumerate(envs):
        o, _ = env.reset(seed=i)
        for _ in range(i):
            o = env.step(i % 5)[0]
        obs.append(o)
    obs = np.stack(obs)

    def make_sim():
        if learned:
            return LearnedSimulator(tiny_model(GAME), seed=3)
        return ExactSimulator(GAME, opponent="random", seed=3)

    for sims, horizon, parallel in [(64, 4, 16), (100, 3, 32), (40, 6, 7)]:
        kw = dict(simulations=sims, horizon=horizon, parallel=parallel, opponents=opponents, seed=1)
        sim_a, sim_b = make_sim(), make_sim()
        got = MCTS(**kw).act(sim_a, sim_a.roots(envs, obs), steps_left=np.arange(6) + 2)
        want, trees = _ReferenceMCTS(**kw).act(sim_b, sim_b.roots(envs, obs), steps_left=np.arange(6) + 2)
        assert got.tolist() == want.tolist()
    # and the searches are not trivial: the roots' visits differ between actions
    assert any(len(set(tree[()][0].tolist())) > 1 for tree in trees)

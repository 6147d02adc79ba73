"""Planners that run unchanged on the exact simulator and on the learned one.

A *simulator* (:mod:`gridmarl_wm.simulation.simulators`: the rules or a world model) is batched and branchable:
``roots``, ``repeat``, ``take``, ``step`` and ``value``; the planners know nothing else of it.

Planners (:class:`RandomShooting`, :class:`CEM`, :class:`MCTS`) take a batch of roots and return one ego
action per root. :func:`play` runs a planner in real games and reports its returns.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gridmarl import GridConfig, GridCore, make_config
from gridmarl.config import N_ACTIONS
from gridmarl.gym_env import GridMARLEnv
from gridmarl.opponents import Opponents
from gridmarl_wm.simulation.simulators import ExactSimulator, ExactStates, LearnedSimulator  # noqa: F401 (public here too)

# ---------------------------------------------------------------------------------------------- planners


def _horizon(horizon: int, steps_left) -> int:
    if steps_left is None:
        return horizon
    return max(1, min(horizon, int(np.max(steps_left))))


def _rollout(sim, states, actions: torch.Tensor, gamma: float, bootstrap: bool, steps_left=None, others=None):
    """Discounted returns (N,) and per-step rewards (N, H) of action sequences ``actions`` (N, H)."""
    H = actions.shape[1]
    rewards = []
    for h in range(H):
        o = None if others is None else others[:, h]
        states, r, _ = sim.step(states, actions[:, h], o)
        rewards.append(r.float())
    rew = torch.stack(rewards, 1)
    disc = gamma ** torch.arange(H, dtype=rew.dtype, device=rew.device)
    if steps_left is not None:
        left = torch.as_tensor(np.broadcast_to(steps_left, (rew.shape[0],)).copy(), device=rew.device)
        rew = rew * (torch.arange(H, device=rew.device)[None] < left[:, None])
    ret = (rew * disc).sum(1)
    if bootstrap:
        v = sim.value(states)
        if v is not None:
            ret = ret + gamma**H * v.to(ret.device).float()
    return ret, rew


def _repeat_steps(steps_left, R: int, k: int):
    if steps_left is None:
        return None
    return np.repeat(np.broadcast_to(np.asarray(steps_left), (R,)), k)


@dataclass
class RandomShooting:
    """Random-shooting MPC: roll out ``n_sequences`` uniformly random action sequences of length
    ``horizon`` from each root and play the first action of the best."""

    n_sequences: int = 256
    horizon: int = 6
    gamma: float = 0.8
    value_bootstrap: bool = False
    seed: int = 0
    generator: torch.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check_positive(n_sequences=self.n_sequences, horizon=self.horizon)
        self.generator = torch.Generator().manual_seed(self.seed)

    def act(self, sim, roots, steps_left=None) -> np.ndarray:
        R, K = len(roots), self.n_sequences
        H = _horizon(self.horizon, steps_left)
        seqs = torch.randint(0, N_ACTIONS, (R, K, H), generator=self.generator)
        dev = getattr(sim, "device", torch.device("cpu"))
        ret, _ = _rollout(
            sim,
            sim.repeat(roots, K),
            seqs.reshape(R * K, H).to(dev),
            self.gamma,
            self.value_bootstrap,
            _repeat_steps(steps_left, R, K),
        )
        best = ret.reshape(R, K).argmax(1).cpu()
        return seqs[torch.arange(R), best, 0].numpy()


@dataclass
class CEM:
    """The cross-entropy method over categorical action sequences: sample ``n_samples`` sequences from
    per-step categoricals, refit them to the ``elite_frac`` best, ``iterations`` times; play the most
    likely first action."""

    n_samples: int = 64
    horizon: int = 8
    iterations: int = 4
    elite_frac: float = 0.125
    smoothing: float = 0.2
    gamma: float = 0.8
    value_bootstrap: bool = False
    seed: int = 0
    generator: torch.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check_positive(n_samples=self.n_samples, horizon=self.horizon, iterations=self.iterations)
        if not 0 < self.elite_frac <= 1:
            raise ValueError(f"elite_frac must lie in (0, 1], got {self.elite_frac!r}")
        if not 0 <= self.smoothing < 1:
            raise ValueError(f"smoothing must lie in [0, 1), got {self.smoothing!r}")
        self.generator = torch.Generator().manual_seed(self.seed)

    def act(self, sim, roots, steps_left=None) -> np.ndarray:
        R, K = len(roots), self.n_samples
        H = _horizon(self.horizon, steps_left)
        n_elite = max(1, round(self.elite_frac * K))
        probs = torch.full((R, H, N_ACTIONS), 1.0 / N_ACTIONS)
        dev = getattr(sim, "device", torch.device("cpu"))
        base = sim.repeat(roots, K)
        left = _repeat_steps(steps_left, R, K)
        for _ in range(self.iterations):
            seqs = torch.multinomial(
                probs.reshape(R * H, N_ACTIONS), K, replacement=True, generator=self.generator
            )
            seqs = seqs.reshape(R, H, K).transpose(1, 2)  # (R, K, H)
            ret, _ = _rollout(
                sim, base, seqs.reshape(R * K, H).to(dev), self.gamma, self.value_bootstrap, left
            )
            elite = ret.reshape(R, K).topk(n_elite, dim=1).indices.cpu()  # (R, E)
            chosen = seqs[torch.arange(R)[:, None], elite]  # (R, E, H)
            freq = torch.nn.functional.one_hot(chosen, N_ACTIONS).float().mean(1)  # (R, H, 5)
            probs = (1 - self.smoothing) * freq + self.smoothing * probs
        return probs[:, 0].argmax(1).numpy()


class _Trees:
    """One search tree per root, as arrays grown on demand: node ``j`` of tree ``r`` has ``k`` choices, with
    visits ``n[r, j]``, summed returns ``w[r, j]``, visits in flight ``pending[r, j]`` (taken by the
    simulations of the current batch, not yet backed up) and children ``child[r, j]`` (-1: none)."""

    def __init__(self, roots: int, k: int, capacity: int) -> None:
        self.n = np.zeros((roots, capacity, k))
        self.w = np.zeros((roots, capacity, k))
        self.pending = np.zeros((roots, capacity, k))
        self.child = np.full((roots, capacity, k), -1, dtype=np.int64)
        self.size = np.zeros(roots, dtype=np.int64)

    def add(self, rows: np.ndarray) -> np.ndarray:
        """A new node in each of the trees ``rows`` (distinct); returns their ids."""
        ids = self.size[rows]
        if len(rows) and ids.max() >= self.n.shape[1]:
            grow = self.n.shape[1]
            for name, fill in (("n", 0.0), ("w", 0.0), ("pending", 0.0), ("child", -1)):
                a = getattr(self, name)
                setattr(
                    self, name, np.concatenate([a, np.full((a.shape[0], grow, a.shape[2]), fill, a.dtype)], 1)
                )
        self.size[rows] += 1
        return ids

    def ucb(self, rows: np.ndarray, nodes: np.ndarray, c: float, sign: float) -> np.ndarray:
        """The choice UCB1 takes at node ``nodes[i]`` of tree ``rows[i]``: the first one not visited yet (in
        flight counts as visited), else the best ``sign`` * mean + ``c`` * sqrt(log(visits) / its visits)."""
        visits = self.n[rows, nodes] + self.pending[rows, nodes]
        unvisited = visits == 0
        with np.errstate(divide="ignore", invalid="ignore"):
            q = sign * self.w[rows, nodes] / visits
            score = q + c * np.sqrt(np.log(visits.sum(1, keepdims=True)) / visits)
        return np.where(unvisited.any(1), unvisited.argmax(1), score.argmax(1))

    def backup(self, rows, nodes, choices, returns) -> None:
        """Back one simulation's return up through each (tree, node, choice), in the order given."""
        np.add.at(self.pending, (rows, nodes, choices), -1)
        np.add.at(self.n, (rows, nodes, choices), 1)
        np.add.at(self.w, (rows, nodes, choices), returns)


@dataclass
class MCTS:
    """Open-loop Monte Carlo tree search over the ego's action sequences, ``parallel`` simulations at a time
    per root (virtual visits keep them apart), random rollouts to ``horizon``.

    ``opponents="chance"``: the others' moves are chance events drawn by the simulator's opponent model, so
    a node's value is an average over them. ``"maxmin"``: the others' joint action is a tree node of its
    own, chosen to minimise the ego's return (a pessimistic plan). It plays the root action with the best
    mean return among those visited at least half as often as the most visited one.

    Every root's tree is searched at once: the trees are arrays (:class:`_Trees`), and each step of a
    descent is a few array operations over all the roots.
    """

    simulations: int = 256
    horizon: int = 6
    parallel: int = 32
    c: float = 0.5
    opponents: str = "chance"
    gamma: float = 0.8
    value_bootstrap: bool = False
    seed: int = 0
    n_others: int = 1
    generator: torch.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check_positive(simulations=self.simulations, horizon=self.horizon, parallel=self.parallel)
        if self.opponents not in ("chance", "maxmin"):
            raise ValueError(f"opponents must be 'chance' or 'maxmin', got {self.opponents!r}")
        if self.opponents == "maxmin" and N_ACTIONS**self.n_others > 625:
            raise ValueError(f"maxmin over {self.n_others} others' joint actions is too wide; use 'chance'")
        self.generator = torch.Generator().manual_seed(self.seed)

    def act(self, sim, roots, steps_left=None) -> np.ndarray:
        R, W = len(roots), self.parallel
        H = _horizon(self.horizon, steps_left)
        maxmin = self.opponents == "maxmin"
        n_joint = N_ACTIONS**self.n_others
        rounds = math.ceil(self.simulations / W)
        trees = _Trees(R, N_ACTIONS, W + 1)  # each simulation adds at most one ego node; they grow
        other_trees = _Trees(R, n_joint, W + 1) if maxmin else None
        base = sim.repeat(roots, W)
        left = _repeat_steps(steps_left, R, W)
        dev = getattr(sim, "device", torch.device("cpu"))
        for _ in range(rounds):
            actions = torch.randint(0, N_ACTIONS, (R, W, H), generator=self.generator).numpy()
            others = torch.randint(0, n_joint, (R, W, H), generator=self.generator).numpy()
            # the (node, choice) each simulation took at each depth, -1 below where it stopped
            path = np.full((2, R, W, H), -1, dtype=np.int64)
            opath = np.full((2, R, W, H), -1, dtype=np.int64) if maxmin else None
            for w in range(W):  # one after another: each sees the visits in flight of those before it
                opath_w = None if opath is None else opath[:, :, w]
                self._descend(trees, other_trees, actions[:, w], others[:, w], path[:, :, w], opath_w)
            ego = torch.as_tensor(actions.reshape(R * W, H), device=dev)
            opp = None
            if maxmin:
                joint = others.reshape(R * W, H)
                digits = N_ACTIONS ** np.arange(self.n_others - 1, -1, -1)
                opp = torch.as_tensor((joint[:, :, None] // digits) % N_ACTIONS, device=dev)
            ret, rew = _rollout(sim, base, ego, self.gamma, self.value_bootstrap, left, opp)
            togo = self._returns_to_go(rew, ret).cpu().numpy().reshape(R, W, H)
            for t, p in ((trees, path), (other_trees, opath)):
                if t is None:
                    continue
                r, s, d = np.nonzero(p[0] >= 0)  # in (root, simulation, depth) order
                t.backup(r, p[0, r, s, d], p[1, r, s, d], togo[r, s, d])
        n, total = trees.n[:, 0], trees.w[:, 0]  # the roots: the best mean among the well-visited actions
        q = np.where(n >= n.max(1, keepdims=True) / 2, total / np.maximum(n, 1), -np.inf)
        return q.argmax(1)

    def _descend(self, trees: _Trees, other_trees, actions, others, path, opath) -> None:
        """One simulation per root from the root down, by UCB, to the first node not in its tree, which it
        adds. ``actions``/``others`` (R, H): the random draws, overwritten with the choices taken (below the
        new node they stay: the rollout); ``path``/``opath`` (2, R, H) get each depth's (node, choice), in
        the ego's and (maxmin) the others' trees."""
        rows = np.arange(len(actions))
        node = np.zeros(len(rows), dtype=np.int64)
        fresh = trees.size == 0
        link = None  # where a new node below the current depth hangs: (tree, parent nodes, choices)
        for d in range(actions.shape[1]):
            if d > 0:
                tree, parent, choice = link
                node = tree.child[rows, parent, choice]
                fresh = node < 0
            if fresh.any():  # expand here, then roll out at random from here
                ids = trees.add(rows[fresh])
                if d > 0:
                    tree.child[rows[fresh], parent[fresh], choice[fresh]] = ids
                node[fresh] = ids
            seen = ~fresh
            a = actions[rows, d]
            if seen.any():
                a[seen] = trees.ucb(rows[seen], node[seen], self.c, 1.0)
            trees.pending[rows, node, a] += 1
            actions[rows, d] = a
            path[0, rows, d], path[1, rows, d] = node, a
            link = (trees, node, a)
            if other_trees is not None:  # maxmin: the others' joint action is a node of its own
                onode = trees.child[rows, node, a]
                new = onode < 0
                if new.any():
                    onode[new] = other_trees.add(rows[new])
                    trees.child[rows[new], node[new], a[new]] = onode[new]
                b = others[rows, d]
                if seen.any():
                    b[seen] = other_trees.ucb(rows[seen], onode[seen], self.c, -1.0)
                other_trees.pending[rows, onode, b] += 1
                others[rows, d] = b
                opath[0, rows, d], opath[1, rows, d] = onode, b
                link = (other_trees, onode, b)
            rows = rows[seen]  # the simulations that expanded stop descending
            if not len(rows):
                return
            link = (link[0], link[1][seen], link[2][seen])

    def _returns_to_go(self, rew: torch.Tensor, ret: torch.Tensor) -> torch.Tensor:
        """(N, H): the discounted return from each step on, including any bootstrap in ``ret``."""
        H = rew.shape[1]
        disc = self.gamma ** torch.arange(H, dtype=rew.dtype, device=rew.device)
        running = ret - (rew * disc).sum(1)  # the bootstrap, discounted to step 0
        out = torch.empty_like(rew)
        for h in range(H - 1, -1, -1):
            running = running + rew[:, h] * disc[h]
            out[:, h] = running / disc[h]
        return out


def _check_positive(**values: int) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")


# ---------------------------------------------------------------------------------------------- playing


class ScriptedEgo:
    """A scripted policy (``"greedy"``, ``"random"``, ...) playing the ego, behind the planner interface
    (it reads the real games, so it needs no simulator)."""

    def __init__(self, policy: str = "greedy", game: GridConfig | dict | None = None, seed: int = 0) -> None:
        self.core = GridCore(make_config(game))
        self.opponents = Opponents(self.core, None, policy)
        self.rng = np.random.default_rng(seed)
        self.name = policy

    def act(self, sim, roots: ExactStates, steps_left=None) -> np.ndarray:
        self.opponents.current = np.tile(self.opponents.fixed, (len(roots), 1))
        u = self.rng.random((len(roots), self.opponents.n_step_draws))
        return self.opponents.act(roots.state, u)[:, 0]


@dataclass
class PlayResult:
    """Real-env returns of a planner: ``returns`` (seeds, episodes), with mean and a 95% confidence
    interval over the seeds' means, and how many decisions per second it made."""

    returns: np.ndarray
    seconds: float
    decisions: int

    @property
    def seed_means(self) -> np.ndarray:
        return self.returns.mean(axis=1)

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def ci95(self) -> float:
        """Half-width of the 95% t interval of the mean over seeds."""
        return ci95(self.seed_means)

    @property
    def decisions_per_s(self) -> float:
        return self.decisions / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "ci95": self.ci95,
            "returns": self.returns.tolist(),
            "seed_means": self.seed_means.tolist(),
            "decisions_per_s": self.decisions_per_s,
        }


def ci95(values: np.ndarray) -> float:
    """Half-width of the 95% Student-t interval of the mean of ``values`` (NaN for fewer than two)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float("nan")
    return float(t_quantile(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))


def model_gap(learned: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    """The model gap of DESIGN section 4 and the half-width of its 95% interval.

    ``learned`` and ``exact`` (n,) are paired real-env returns of one planner planning with the learned
    simulator and with the exact one: per episode, where pair i is the same game (game seed and planner
    seed) played both ways (:func:`play_paired`), or per-seed means of such episodes. The gap is the ratio
    of the means, mean(learned) / mean(exact); its interval is the delta-method one for a ratio of paired
    means, t(0.975, n - 1) * sd(learned - gap * exact) / (sqrt(n) * mean(exact)), so whatever the two runs
    of a pair share cancels. NaN when the exact mean is not positive (a ratio of returns then says nothing)
    or, for the interval, with fewer than two pairs.
    """
    learned = np.asarray(learned, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64)
    if learned.shape != exact.shape or learned.ndim != 1:
        raise ValueError(
            f"learned and exact must be paired returns of the same shape (n,), got {learned.shape} and "
            f"{exact.shape}"
        )
    den = exact.mean() if len(exact) else float("nan")
    if not den > 0:
        return float("nan"), float("nan")
    gap = float(learned.mean() / den)
    if len(learned) < 2:
        return gap, float("nan")
    residual = learned - gap * exact
    half = t_quantile(0.975, len(learned) - 1) * residual.std(ddof=1) / (math.sqrt(len(learned)) * den)
    return gap, float(half)


def paired_gap(learned: PlayResult, exact: PlayResult) -> tuple[float, float]:
    """:func:`model_gap` of two :func:`play_paired` runs, each episode a pair (the games are independent
    of one another; the two runs of one game share its seed)."""
    if learned.returns.shape != exact.returns.shape:
        raise ValueError(
            f"paired runs must have the same (seeds, episodes), got {learned.returns.shape} and "
            f"{exact.returns.shape}"
        )
    return model_gap(learned.returns.ravel(), exact.returns.ravel())


def t_quantile(p: float, dof: int) -> float:
    """The ``p`` quantile of Student's t distribution with ``dof`` degrees of freedom (``dof`` >= 1).

    scipy is not a dependency: the CDF is written through the regularised incomplete beta function
    (evaluated by its continued fraction) and inverted by bisection to about 1e-12.
    """
    if isinstance(dof, bool) or not isinstance(dof, int | np.integer) or dof < 1:
        raise ValueError(f"dof must be an integer >= 1, got {dof!r}")
    if not 0 < p < 1:
        raise ValueError(f"p must lie strictly between 0 and 1, got {p!r}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1 - p, dof)
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, dof) < p:
        lo, hi = hi, 2 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_cdf(mid, dof) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def _t_cdf(x: float, dof: int) -> float:
    """P(T <= x) for x >= 0: 1 - I_{dof / (dof + x^2)}(dof / 2, 1 / 2) / 2."""
    return 1.0 - 0.5 * _incomplete_beta(dof / (dof + x * x), dof / 2.0, 0.5)


def _incomplete_beta(x: float, a: float, b: float) -> float:
    """The regularised incomplete beta function I_x(a, b), by its continued fraction (modified Lentz)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below this point: use the symmetry
        return 1.0 - _incomplete_beta(1 - x, b, a)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return math.exp(log_front) * f / a


def play(
    planner: Any,
    sim: Any,
    opponent: Any = "random",
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    episodes: int = 4,
    game: GridConfig | dict | None = None,
    switch_every: int = 10,
    progress: Any = None,
    make_env: Any = None,
) -> PlayResult:
    """Play ``episodes`` real games per seed (game seeds ``1000 * seed + e``), all in lockstep, with the
    planner choosing the ego's action by planning in ``sim`` (its roots come from the real games).

    ``progress``: an optional callable ``(t, max_steps)`` called after every step. A simulator with an
    ``observe_step(obs, actions, opponent_actions)`` method is shown every real step (and ``begin(n)`` is
    called first). ``make_env``: a
    callable returning the env to play in instead of ``GridMARLEnv(opponent=...)`` (an ``ImaginedEnv``, to
    measure returns in imagination).
    """
    cfg = make_config(game)
    if make_env is None:

        def make_env():
            return GridMARLEnv(opponent=opponent, switch_every=switch_every, **cfg.as_kwargs())

    envs = [make_env() for _ in range(len(seeds) * episodes)]
    game_seeds = [1000 * s + e for s in seeds for e in range(episodes)]
    obs = np.stack([env.reset(seed=gs)[0] for env, gs in zip(envs, game_seeds, strict=True)])
    returns = np.zeros(len(envs))
    if hasattr(sim, "begin"):  # a simulator with memory of the real games starts afresh
        sim.begin(len(envs))
    exact_roots = (
        ExactSimulator(cfg, opponent, switch_every=switch_every) if isinstance(planner, ScriptedEgo) else None
    )
    start = time.perf_counter()
    for t in range(cfg.max_steps):
        if exact_roots is not None:
            actions = planner.act(None, exact_roots.roots(envs))
        else:
            actions = planner.act(sim, sim.roots(envs, obs), steps_left=cfg.max_steps - t)
        steps = [env.step(int(a)) for env, a in zip(envs, actions, strict=True)]
        if hasattr(sim, "observe_step"):  # a simulator that tracks the real games' history
            sim.observe_step(obs, actions, np.stack([s[4]["opponent_actions"] for s in steps]))
        obs = np.stack([s[0] for s in steps])
        returns += [s[1] for s in steps]
        if progress is not None:
            progress(t + 1, cfg.max_steps)
    seconds = time.perf_counter() - start
    return PlayResult(returns.reshape(len(seeds), episodes), seconds, len(envs) * cfg.max_steps)


def play_paired(
    make_planner: Any,
    sims: dict[str, Any],
    opponent: Any = "random",
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    episodes: int = 4,
    game: GridConfig | dict | None = None,
    switch_every: int = 10,
) -> dict[str, PlayResult]:
    """:func:`play` once per simulator in ``sims`` on paired episodes: the same games (game seeds
    ``1000 * seed + e``: the same starts, and the same opponents' and respawn draws for as long as the
    ego's actions agree) and a fresh planner from ``make_planner()`` for each (the same planner seed).
    Only the simulator differs between the runs; :func:`paired_gap` compares them game by game."""
    if not callable(make_planner):
        raise TypeError(f"make_planner must be a callable returning a fresh planner, got {make_planner!r}")
    return {
        name: play(make_planner(), sim, opponent, seeds, episodes, game, switch_every)
        for name, sim in sims.items()
    }

"""The planners: :class:`RandomShooting`, :class:`CEM` and :class:`MCTS`, which plan in any simulator, and
:class:`ScriptedEgo`, a scripted policy behind the same interface.

Each takes a batch of roots and returns one ego action per root (``act(sim, roots, steps_left)``); a
simulator (:mod:`gridmarl_wm.simulation.simulators`) is batched and branchable: ``roots``, ``repeat``,
``take``, ``step`` and ``value``, and the planners know nothing else of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from gridmarl import GridConfig, GridCore, make_config
from gridmarl.config import N_ACTIONS
from gridmarl.opponents import Opponents
from gridmarl_wm.simulation.simulators import ExactStates


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

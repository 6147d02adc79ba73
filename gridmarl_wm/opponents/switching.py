"""Opponents that change policy: history-aware opponent models, a switch detector and goal inference.

Three opponent models predict the others' next actions a_{-i}^t from the observer's view:

- ``memoryless``: from o_t alone (what the world model's opponent head does);
- ``recurrent``: a GRU over the episode so far (o_t and the previous joint action), optionally with an
  inferred goal fed to its action head: ``goal="discrete"`` (a categorical over the cell the opponent heads
  for, or none) or ``goal="continuous"`` (the target's (row, col) as numbers);
- ``types``: one action head per opponent *type*; :class:`TypeFilter` tracks a posterior over the current
  type of each game's opponent with a switch hazard (a Bayesian change-point filter), predicts with the
  posterior mixture and reports a switch when the most likely type changes.

What each model learns from, and what is privileged:

- *Unlabelled* (from what the observer sees: observations and both players' actions):
  :func:`fit_types_em` fits the types model and its switch hazard by expectation-maximisation over a
  hidden-Markov mixture of policies (which type acts when is never given); :func:`hindsight_goals` labels
  each step with the cell where the opponent next picks up a coin, read off the observations, for the
  goal heads.
- *Labelled* (privileged: from the simulator, not from play): :func:`fit` with ``type_ids``, the policy id
  the simulator reports for the opponent at every step, and :attr:`Episodes.goal`, the coin the scripted
  ``greedy``/``selfish`` policy chases, which :func:`goal_labels` works out from the policy's name with
  the game's own shortest-path distances. They serve as references for the unlabelled versions.

The world model's transition rules are not used here; the scripted policies' true action distributions
(``Episodes.probs``) serve only to score the models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from gridmarl import GridConfig, GridCore, make_config
from gridmarl.config import N_ACTIONS
from gridmarl.opponents import _distance_tables
from gridmarl_wm.data import Transitions
from gridmarl_wm.simulation.simulators import LearnedSimulator

KINDS = ("memoryless", "recurrent", "types")
GOALS = (None, "discrete", "continuous")


@dataclass
class Episodes:
    """Player ``agent``'s view of whole episodes as (E, T, ...) arrays (two-player games: one opponent)."""

    obs: np.ndarray  # (E, T, 5, h, w) float32
    action: np.ndarray  # (E, T) own action
    other: np.ndarray  # (E, T) the opponent's action
    policy: np.ndarray  # (E, T) the opponent's policy id
    probs: np.ndarray  # (E, T, 5) the opponent's true action distribution (for scoring only)
    goal: np.ndarray  # (E, T) labelled: the cell the opponent's policy heads for, h * w for none
    picked: np.ndarray  # (E, T) the cell where the opponent picked up a coin in step t, h * w for none

    @property
    def steps_since_switch(self) -> np.ndarray:
        """(E, T): steps since the opponent's policy last changed (since the start before any change)."""
        E, T = self.policy.shape
        out = np.zeros((E, T), dtype=np.int64)
        for t in range(1, T):
            changed = self.policy[:, t] != self.policy[:, t - 1]
            out[:, t] = np.where(changed, 0, out[:, t - 1] + 1)
        return out

    @property
    def switched(self) -> np.ndarray:
        """(E, T) bool: the opponent's policy changed before step t."""
        out = np.zeros(self.policy.shape, dtype=bool)
        out[:, 1:] = self.policy[:, 1:] != self.policy[:, :-1]
        return out


def episodes(
    data: Transitions, policy_names: list[str], agent: int = 0, game: GridConfig | dict | None = None
) -> Episodes:
    """Cut ``agent``'s transitions into whole episodes (collect with ``steps`` a multiple of ``max_steps``)
    of a two-player full-view ``game`` (default: the default game). Each step also gets the labelled goal
    (:func:`goal_labels`) and the cell where the opponent picked up a coin in it, if it did (seen in the
    observations: it stands after the step on a cell that held a coin before)."""
    rows = np.flatnonzero(data.agent == agent)
    if data.others.shape[1] != 1:
        raise ValueError("episodes() handles two-player games (one opponent)")
    ep = data.episode[rows]
    order = np.lexsort((data.t[rows], ep))
    rows = rows[order]
    ids, counts = np.unique(data.episode[rows], return_counts=True)
    T = counts.max()
    full = ids[counts == T]
    keep = rows[np.isin(data.episode[rows], full)]
    if len(keep) == 0:
        raise ValueError("no complete episode in data: collect with steps a multiple of max_steps")
    E = len(full)
    game = make_config(game)
    if game.obs_shape != data.obs.shape[1:] or game.view_size is not None:
        raise ValueError(
            f"game (obs shape {game.obs_shape}) is not the full-view game of this data {data.obs.shape[1:]}"
        )
    obs = data.obs[keep].astype(np.float32).reshape(E, T, *data.obs.shape[1:])
    nxt = data.next_obs[keep].reshape(E, T, 5, -1)
    before = obs.reshape(E, T, 5, -1)
    cells = before.shape[-1]
    opp_after = nxt[:, :, 1].argmax(-1)  # (E, T) the opponent's cell after step t
    had_coin = np.take_along_axis(before[:, :, 2] + before[:, :, 3], opp_after[..., None], -1)[..., 0] > 0
    policy = data.policy[keep, 0].reshape(E, T)
    names = np.array(policy_names)[policy]
    return Episodes(
        obs=obs,
        action=data.action[keep].reshape(E, T),
        other=data.others[keep, 0].reshape(E, T),
        policy=policy,
        probs=data.others_probs[keep, 0].reshape(E, T, N_ACTIONS),
        goal=goal_labels(obs, names, game),
        picked=np.where(had_coin, opp_after, cells),
    )


def hindsight_goals(ep: Episodes, horizon: int = 10) -> np.ndarray:
    """Unlabelled goals (E, T): the cell where the opponent next picks up a coin, if it does so within
    ``horizon`` steps (in step t or one of the next ``horizon - 1``), else h * w (none). Read off the
    observations alone, so a goal model can learn from play without knowing what the opponent's policy is.
    """
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
    E, T = ep.picked.shape
    none = ep.obs.shape[-1] * ep.obs.shape[-2]
    goal = np.full((E, T), none)
    next_pick = np.full(E, -1)  # the step of the next pick-up at or after t
    for t in range(T - 1, -1, -1):
        next_pick = np.where(ep.picked[:, t] < none, t, next_pick)
        soon = (next_pick >= 0) & (next_pick - t < horizon)
        goal[:, t] = np.where(soon, ep.picked[np.arange(E), np.maximum(next_pick, 0)], none)
    return goal


def goal_labels(obs: np.ndarray, names: np.ndarray, game: GridConfig | dict | None = None) -> np.ndarray:
    """Labelled goals (privileged: from the policy's name): the opponent's target cell in a full-view
    two-player observation (..., 5, h, w) of ``game`` (default: the default game), the coin its
    ``greedy`` (own colour) or ``selfish`` (any colour) policy heads for, nearest by the game's own
    shortest-path distances around the walls (ties to the lowest cell); h * w (none) for other policies or
    when no such coin is reachable."""
    game = make_config(game)
    shape = obs.shape[:-3]
    h, w = obs.shape[-2:]
    if (5, h, w) != game.obs_shape or game.view_size is not None:
        raise ValueError(
            f"goal_labels needs full-view observations of game {game.obs_shape}, got {obs.shape}"
        )
    flat = obs.reshape(-1, 5, h * w)
    names = np.asarray(names).reshape(-1)
    opp = flat[:, 1].argmax(1)
    dist = _distance_tables(GridCore(game))[0][opp][:, : h * w]  # (N, cells), inf where unreachable
    own = flat[:, 3] > 0  # the opponent's coins
    any_coin = own | (flat[:, 2] > 0)
    out = np.full(len(flat), h * w)
    for name, mask in (("greedy", own), ("selfish", any_coin)):
        sel = names == name
        d = np.where(mask[sel], dist[sel], np.inf)
        out[sel] = np.where(np.isfinite(d).any(1), d.argmin(1), h * w)
    return out.reshape(shape)


class OpponentNet(nn.Module):
    """An opponent model of kind ``memoryless``, ``recurrent`` or ``types`` (see the module docstring)."""

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        kind: str = "recurrent",
        goal: str | None = None,
        n_types: int = 1,
        d: int = 64,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if goal not in GOALS or (goal is not None and kind != "recurrent"):
            raise ValueError(f"goal must be one of {GOALS} (and only with kind='recurrent'), got {goal!r}")
        _, h, w = obs_shape
        self.kind, self.goal, self.n_types, self.cells = kind, goal, n_types, h * w
        self.encoder = nn.Sequential(
            nn.Conv2d(5, 32, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32 * h * w, d), nn.ReLU()
        )
        head_in = d
        if kind == "recurrent":
            self.rnn = nn.GRU(d + 2 * N_ACTIONS, d, batch_first=True)
            if goal == "discrete":
                self.goal_head = nn.Linear(d, h * w + 1)
                head_in = d + h * w + 1
            elif goal == "continuous":
                self.goal_head = nn.Linear(d, 3)  # row, col (scaled to 0..1) and 'has a goal'
                head_in = d + 3
        n_out = N_ACTIONS * (n_types if kind == "types" else 1)
        self.head = nn.Sequential(nn.Linear(head_in, d), nn.ReLU(), nn.Linear(d, n_out))
        self.shape = (h, w)
        # ``types``: the switch hazard learned with the heads, NaN until learned; a buffer, so that it is
        # saved and loaded with the heads by ``state_dict``/``load_state_dict`` (see :attr:`hazard`)
        self.register_buffer("switch_hazard", torch.tensor(float("nan"), dtype=torch.float64))

    @property
    def hazard(self) -> float | None:
        """``types``: the switch hazard learned with the heads (by :func:`fit` or :func:`fit_types_em`), or
        None before it is learned."""
        value = float(self.switch_hazard)
        return None if np.isnan(value) else value

    @hazard.setter
    def hazard(self, value: float | None) -> None:
        self.switch_hazard.fill_(float("nan") if value is None else float(value))

    def forward(self, obs: torch.Tensor, prev_joint: torch.Tensor | None = None, h0=None):
        """``obs`` (B, T, 5, h, w); ``prev_joint`` (B, T, 2) the previous step's (own, other) actions, -1 at
        the start. Returns action logits (B, T, 5) (``types``: (B, T, K, 5)), goal output or None, and the
        recurrent state."""
        B, T = obs.shape[:2]
        z = self.encoder(obs.reshape(B * T, *obs.shape[2:])).reshape(B, T, -1)
        goal_out, h = None, None
        if self.kind == "recurrent":
            prev = prev_joint.clamp_min(0)
            onehot = F.one_hot(prev, N_ACTIONS).float() * (prev_joint >= 0)[..., None]
            y, h = self.rnn(torch.cat([z, onehot.flatten(2)], -1), h0)
            feats = y
            if self.goal is not None:
                goal_out = self.goal_head(y)
                extra = goal_out.softmax(-1) if self.goal == "discrete" else goal_out
                feats = torch.cat([y, extra], -1)
        else:
            feats = z
        logits = self.head(feats)
        if self.kind == "types":
            logits = logits.reshape(B, T, self.n_types, N_ACTIONS)
        return logits, goal_out, h

    def goal_cells(self, goal_out: torch.Tensor) -> torch.Tensor:
        """The inferred target cell (h * w for none) from the goal output."""
        if self.goal == "discrete":
            return goal_out.argmax(-1)
        h, w = self.shape
        row = (goal_out[..., 0] * (h - 1)).round().clamp(0, h - 1).long()
        col = (goal_out[..., 1] * (w - 1)).round().clamp(0, w - 1).long()
        return torch.where(goal_out[..., 2] > 0, row * w + col, torch.full_like(row, h * w))


def prev_joint(ep: Episodes) -> np.ndarray:
    """(E, T, 2): the previous step's own and opponent actions, -1 at t = 0."""
    prev = np.full((*ep.action.shape, 2), -1, dtype=np.int64)
    prev[:, 1:, 0] = ep.action[:, :-1]
    prev[:, 1:, 1] = ep.other[:, :-1]
    return prev


def fit(
    net: OpponentNet,
    ep: Episodes,
    type_ids: np.ndarray | None = None,
    steps: int = 1500,
    batch: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    goal_weight: float = 1.0,
) -> list[float]:
    """Train on whole episodes; goal heads learn ``ep.goal`` (the labelled goals, or unlabelled ones such as
    :func:`hindsight_goals` put in their place), and a ``types`` model needs ``type_ids`` (E, T), each step's
    opponent type: privileged labels (for unlabelled play use :func:`fit_types_em`); it also sets the
    model's switch hazard from the labels' switch rate.
    Returns the loss per step."""
    if net.kind == "types" and type_ids is None:
        raise ValueError("kind='types' needs type_ids: the opponent's policy type at every step")
    gen = torch.Generator().manual_seed(seed)
    obs = torch.as_tensor(ep.obs)
    other = torch.as_tensor(ep.other)
    prev = torch.as_tensor(prev_joint(ep))
    goal = torch.as_tensor(ep.goal)
    types = None if type_ids is None else torch.as_tensor(type_ids).cpu()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    net.train()
    h, w = net.shape
    for _ in range(steps):
        idx = torch.randint(0, len(obs), (batch,), generator=gen)
        logits, goal_out, _ = net(obs[idx], prev[idx])
        if net.kind == "types":
            logits = logits.gather(2, types[idx][..., None, None].expand(-1, -1, 1, N_ACTIONS)).squeeze(2)
        loss = F.cross_entropy(logits.reshape(-1, N_ACTIONS), other[idx].reshape(-1))
        if goal_out is not None:
            g = goal[idx]
            if net.goal == "discrete":
                loss = loss + goal_weight * F.cross_entropy(goal_out.reshape(-1, h * w + 1), g.reshape(-1))
            else:
                has = (g < h * w).float()
                target = torch.stack([(g // w) / max(h - 1, 1), (g % w) / max(w - 1, 1)], -1).float()
                reg = ((goal_out[..., :2] - target) ** 2).sum(-1)
                loss = loss + goal_weight * (
                    (reg * has).sum() / has.sum().clamp_min(1)
                    + F.binary_cross_entropy_with_logits(goal_out[..., 2], has)
                )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    net.eval()
    if net.kind == "types":  # the switch rate the labels show, as the filter's hazard (see TypeFilter)
        labels = type_ids.cpu().numpy() if isinstance(type_ids, torch.Tensor) else np.asarray(type_ids)
        changed = float((labels[:, 1:] != labels[:, :-1]).mean())
        net.hazard = float(min(changed / (1 - 1 / net.n_types), 0.5)) if net.n_types > 1 else 0.0
    return losses


# ---------------------------------------------------------------------------------------------- types, unlabelled


@torch.no_grad()
def type_likelihoods(net: OpponentNet, ep: Episodes, chunk: int = 256) -> np.ndarray:
    """(E, T, K): each type's probability of the opponent's action at every step."""
    out = []
    for start in range(0, len(ep.obs), chunk):
        obs = torch.as_tensor(ep.obs[start : start + chunk])
        logits = net(obs)[0]  # (B, T, K, 5)
        other = torch.as_tensor(ep.other[start : start + chunk])
        out.append(
            logits.softmax(-1).gather(3, other[..., None, None].expand(-1, -1, net.n_types, 1))[..., 0]
        )
    return torch.cat(out).double().numpy()


def type_posteriors(like: np.ndarray, hazard: float) -> tuple[np.ndarray, float, float]:
    """Forward-backward over the hidden type sequence of every episode: a type is drawn uniformly at the
    start and before every later step the type is redrawn uniformly (possibly the same) with probability
    ``hazard`` (:class:`TypeFilter`'s model). ``like`` (E, T, K) is each type's probability of the action
    taken. Returns the posteriors (E, T, K), the expected number of type changes over all episodes, and
    the log-likelihood of the actions per step."""
    E, T, K = like.shape
    like = np.maximum(like, 1e-12)
    stay = 1 - hazard + hazard / K
    alpha = np.zeros((E, T, K))
    scale = np.zeros((E, T))
    a = like[:, 0] / K
    for t in range(T):
        if t:
            a = ((1 - hazard) * alpha[:, t - 1] + hazard / K) * like[:, t]  # rows of alpha sum to 1
        scale[:, t] = a.sum(1)
        alpha[:, t] = a / scale[:, t : t + 1]
    beta = np.ones((E, T, K))
    changes = 0.0
    for t in range(T - 1, 0, -1):
        nb = like[:, t] * beta[:, t]  # (E, K)
        # expected transitions from t-1 to t, normalised by the step's scale
        xi_diag = alpha[:, t - 1] * stay * nb / scale[:, t : t + 1]
        changes += float(E - xi_diag.sum())  # every step's transitions sum to one
        beta[:, t - 1] = ((1 - hazard) * nb + hazard / K * nb.sum(1, keepdims=True)) / scale[:, t : t + 1]
    post = alpha * beta
    post /= post.sum(2, keepdims=True)
    return post, changes, float(np.log(scale).sum() / (E * T))


def fit_types_em(
    net: OpponentNet,
    ep: Episodes,
    rounds: int = 10,
    steps_per_round: int = 150,
    hazard: float = 0.05,
    hard_rounds: int = 5,
    batch: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
) -> list[dict[str, float]]:
    """Fit a ``types`` model and its switch hazard from unlabelled play, by expectation-maximisation over a
    hidden-Markov mixture of policies: which type acts at which step is never given.

    Start: every episode is cut at random into stretches of one random type (a new stretch before each step
    with probability ``hazard``, the hazard's starting value). Each round: the heads take
    ``steps_per_round`` gradient steps on the actions weighted by the current posteriors of the types
    (M-step for the heads), then forward-backward gives new posteriors and the expected number of type
    changes, from which the hazard is re-estimated in closed form (M-step for the hazard: with every type
    redrawn uniformly with probability h, a change happens with probability h (1 - 1/K)). Sets
    ``net.hazard``; returns per round the action log-likelihood per step and the hazard.
    """
    if net.kind != "types":
        raise ValueError(f"fit_types_em fits a model of kind 'types', got {net.kind!r}")
    for name, v in (("rounds", rounds), ("steps_per_round", steps_per_round), ("batch", batch)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if not 0 < hazard < 1:
        raise ValueError(f"hazard (its starting value) must lie in (0, 1), got {hazard!r}")
    K = net.n_types
    E, T = ep.other.shape
    rng = np.random.default_rng(seed)
    types = np.zeros((E, T), dtype=np.int64)
    types[:, 0] = rng.integers(K, size=E)
    for t in range(1, T):
        redraw = rng.random(E) < hazard
        types[:, t] = np.where(redraw, rng.integers(K, size=E), types[:, t - 1])
    post = np.eye(K)[types]
    gen = torch.Generator().manual_seed(seed)
    obs = torch.as_tensor(ep.obs)
    other = torch.as_tensor(ep.other)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    history = []
    for r in range(rounds):
        if r < hard_rounds:  # hard EM first: each step goes wholly to its most likely type, which breaks
            post = np.eye(K)[post.argmax(-1)]  # the symmetry between heads that start out alike faster
        weights = torch.as_tensor(post, dtype=torch.float32)
        net.train()
        for _ in range(steps_per_round):
            idx = torch.randint(0, E, (batch,), generator=gen)
            logp = net(obs[idx])[0].log_softmax(-1)  # (B, T, K, 5)
            taken = logp.gather(3, other[idx][..., None, None].expand(-1, -1, K, 1))[..., 0]  # (B, T, K)
            loss = -(weights[idx] * taken).sum(-1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        net.eval()
        post, changes, loglik = type_posteriors(type_likelihoods(net, ep), hazard)
        change_rate = changes / (E * (T - 1))
        hazard = float(np.clip(change_rate / (1 - 1 / K), 1e-4, 0.5)) if K > 1 else 0.0
        history.append({"loglik_per_step": loglik, "hazard": hazard})
    net.hazard = hazard
    return history


class TypeFilter:
    """A Bayesian change-point filter over opponent types for B games at once.

    Before each step the posterior over the opponent's current type mixes in a switch with probability
    ``hazard`` (to any type, uniformly); after the opponent acts it is weighted by each type's probability
    of that action. ``predict`` is the posterior mixture of the types' action distributions; ``update``
    returns, per game, whether the most likely type changed with posterior mass above ``threshold``.
    """

    def __init__(self, n_types: int, batch: int = 1, *, hazard: float, threshold: float = 0.9) -> None:
        if not 0 <= hazard < 1:
            raise ValueError(f"hazard must lie in [0, 1), got {hazard!r}")
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must lie in (0, 1], got {threshold!r}")
        self.n_types, self.hazard, self.threshold = n_types, hazard, threshold
        self.posterior = np.full((batch, n_types), 1.0 / n_types)
        self.current = np.full(batch, -1)

    def prior(self) -> np.ndarray:
        """The type distribution before the next action: the posterior after a possible switch."""
        return (1 - self.hazard) * self.posterior + self.hazard / self.n_types

    def predict(self, type_probs: np.ndarray) -> np.ndarray:
        """(B, 5) from the types' action distributions ``type_probs`` (B, K, 5)."""
        return np.einsum("bk,bka->ba", self.prior(), type_probs)

    def update(self, type_probs: np.ndarray, action: np.ndarray) -> np.ndarray:
        """Observe the opponents' ``action`` (B,); returns (B,) bool: a switch was detected."""
        like = type_probs[np.arange(len(action)), :, action]  # (B, K)
        post = self.prior() * np.maximum(like, 1e-6)
        self.posterior = post / post.sum(1, keepdims=True)
        best = self.posterior.argmax(1)
        confident = self.posterior.max(1) >= self.threshold
        switched = confident & (self.current >= 0) & (best != self.current)
        self.current = np.where(confident, best, self.current)
        return switched


@torch.no_grad()
def predict_episodes(
    net: OpponentNet, ep: Episodes, hazard: float | None = None, threshold: float = 0.9
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Each step's predicted opponent action distribution (E, T, 5), the inferred goal cells (E, T) (or None)
    and, for ``types``, the switches the filter detected (E, T) with ``hazard`` (default: the one the
    model learned, ``net.hazard``) and detection ``threshold``."""
    obs = torch.as_tensor(ep.obs)
    logits, goal_out, _ = net(obs, torch.as_tensor(prev_joint(ep)))
    probs = logits.softmax(-1).numpy()
    goals = None if goal_out is None else net.goal_cells(goal_out).numpy()
    if net.kind != "types":
        return probs, goals, None
    E, T = ep.other.shape
    filt = TypeFilter(net.n_types, E, hazard=learned_hazard(net, hazard), threshold=threshold)
    mixed = np.zeros((E, T, N_ACTIONS))
    detected = np.zeros((E, T), dtype=bool)
    for t in range(T):
        mixed[:, t] = filt.predict(probs[:, t])
        detected[:, t] = filt.update(probs[:, t], ep.other[:, t])
    return mixed, goals, detected


def learned_hazard(net: OpponentNet, hazard: float | None = None) -> float:
    """``hazard`` if given, else the one ``net`` learned (set by :func:`fit` or :func:`fit_types_em`)."""
    if hazard is not None:
        return hazard
    if getattr(net, "hazard", None) is None:
        raise ValueError(
            "this types model has learned no switch hazard (fit it with fit() or fit_types_em()); pass hazard="
        )
    return net.hazard


def scores(probs: np.ndarray, ep: Episodes) -> dict[str, np.ndarray]:
    """Per step: top-1 in the true policy's support, NLL of the action taken, TV to the true distribution."""
    top = probs.argmax(-1)
    in_support = np.take_along_axis(ep.probs, top[..., None], -1)[..., 0] > 0
    nll = -np.log(np.maximum(np.take_along_axis(probs, ep.other[..., None], -1)[..., 0], 1e-12))
    tv = 0.5 * np.abs(probs - ep.probs).sum(-1)
    return {"accuracy": in_support, "nll": nll, "tv": tv}


@dataclass
class TypedStates:
    """Imagined games with the opponent type each one plays under."""

    obs: torch.Tensor  # (N, 5, h, w)
    types: torch.Tensor  # (N,) type index, -1 before one is drawn
    root: torch.Tensor  # (N,) which real game each row comes from

    def __len__(self) -> int:
        return len(self.obs)


class TypeFilterSimulator(LearnedSimulator):
    """The learned simulator with the others' moves from a ``types`` opponent model whose type posterior
    is tracked per real game by a :class:`TypeFilter` (:func:`~gridmarl_wm.planning.play` feeds it every real
    step through :meth:`observe_step`). Each imagined rollout draws its opponent's type from that posterior
    and may switch with the filter's hazard (default: the one the types model learned) at every imagined
    step."""

    def __init__(
        self,
        model,
        types_net: OpponentNet,
        hazard: float | None = None,
        temperature: float = 1.0,
        seed: int = 0,
    ):
        if types_net.kind != "types":
            raise ValueError(f"types_net must be of kind 'types', got {types_net.kind!r}")
        super().__init__(model, opponent="model", temperature=temperature, seed=seed)
        self.net = types_net.to(self.device)
        self.hazard = learned_hazard(types_net, hazard)
        self.filter: TypeFilter | None = None
        self.gen = torch.Generator().manual_seed(seed)

    def begin(self, batch: int) -> None:
        """Forget every game's history: ``batch`` new games start."""
        self.filter = TypeFilter(self.net.n_types, batch, hazard=self.hazard)

    @torch.no_grad()
    def type_probs(self, obs: torch.Tensor) -> torch.Tensor:
        """(N, K, 5) each type's action distribution at ``obs``."""
        return self.net(obs[:, None].float())[0][:, 0].softmax(-1)

    def observe_step(self, obs: np.ndarray, actions: np.ndarray, other_actions: np.ndarray) -> None:
        """A real step of every game: the opponents played ``other_actions`` (R, 1) at ``obs``."""
        if self.filter is None or len(self.filter.posterior) != len(obs):
            self.begin(len(obs))
        probs = self.type_probs(torch.as_tensor(obs, device=self.device)).cpu().numpy()
        self.filter.update(probs, np.asarray(other_actions).reshape(-1))

    def roots(self, envs, obs) -> TypedStates:
        o = super().roots(envs, obs)
        if self.filter is None or len(self.filter.posterior) != len(o):
            self.begin(len(o))
        n = len(o)
        return TypedStates(o, torch.full((n,), -1), torch.arange(n))

    def take(self, states: TypedStates, rows) -> TypedStates:
        rows = torch.as_tensor(rows)
        return TypedStates(
            states.obs[rows.to(self.device)], states.types[rows.cpu()], states.root[rows.cpu()]
        )

    def repeat(self, states: TypedStates, k: int) -> TypedStates:
        return self.take(states, torch.arange(len(states)).repeat_interleave(k))

    def step(self, states: TypedStates, actions, other_actions=None):
        types = states.types.clone()
        if other_actions is None:
            prior = torch.as_tensor(self.filter.prior(), dtype=torch.float32)[states.root]
            fresh = types < 0
            switch = torch.rand(len(types), generator=self.gen) < self.hazard
            draw = torch.multinomial(prior, 1, generator=self.gen).squeeze(1)
            uniform = torch.randint(0, self.net.n_types, (len(types),), generator=self.gen)
            types = torch.where(fresh, draw, torch.where(switch, uniform, types))
            probs = self.type_probs(states.obs)[torch.arange(len(types)), types.to(self.device)]
            other_actions = torch.multinomial(probs, 1, generator=self.generator)
        nxt, reward, others = super().step(states.obs, actions, other_actions)
        return TypedStates(nxt, types, states.root), reward, others

    def value(self, states: TypedStates):
        return super().value(states.obs)

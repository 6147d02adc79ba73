"""A next-observation decoder in five passes (one per channel) with an exact log-probability, and the
small MLP trunk that makes a fast imagined step.

:class:`MixtureDecoder` writes the next observation channel by channel. Channel c's plane of counts
``y_c`` (V = h * w cells, each 0 .. ``max_per_cell[c]``) is drawn given the transition features and the
planes of the channels before it, from a mixture of K products of independent per-cell categoricals::

    P(y_c | x, y_<c) = sum_k pi_k(x, y_<c) * prod_v Cat(y_c[v]; softmax(base(x, y_<c)[v] + offset_k[v]))

``log_prob`` is exact (a logsumexp over the K components), a sample is one pass per channel (pick a
component, then every cell at once), and neither grows with the number of objects or tokens. For
sampling the parameters are regrouped once into tables (each channel's inputs, then its mixture logits,
scorer context and cell logits, are one matrix product each) and regrouped again only after they change.
A step that moves objects deterministically is one sharp component; an object that appears at a random
cell needs one component per cell it may take (so K defaults to cells + 1), and objects of different
channels that appear in the same step are exact because a later channel is conditioned on the earlier
ones. Nothing about the game is built in: the shape comes from the observation, the most objects per
cell from the data (:func:`max_per_cell`), and everything else is learned.

The features' mixture logits are one output per cell of a global network, so an object that should be
equally likely on several cells gets a slightly different logit on each (each cell's logit is fitted on its
own from single draws). The cell scorer (``scorer`` > 0, the default) adds V components whose logits come
from one small network shared by every cell, reading what the observation and the planes decoded so far
hold at that cell: cells that look alike get equal logits, as a convolution's shared weights give equal
answers. On the default game this takes the exhaustive TV of a 3,000-step model from about 0.05 to about
0.004 (``benchmarks/fast_decoder.py``).

:class:`MLPTrunk` replaces the convolutional trunk: the flattened observation and the one-hot joint action
through a two-layer MLP (the default grid has 16 cells, so this is about a tenth of the convolutions' cost).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gridmarl_wm.model.sampling import categorical, weights

N_CHANNELS = 5
N_ACTIONS = 5
OFFSET_GAIN = 8.0
MAX_FILM_TABLE = 1024  # the MLP trunk looks its FiLM rows up when there are at most this many joint actions


# whether torch.compile is tracing the caller (torch < 2.3 has it under torch._dynamo only)
_compiling = getattr(torch.compiler, "is_compiling", None) or torch._dynamo.is_compiling


def built_from_parameters(module: nn.Module, build: Callable[[], Any], *extra: Any) -> Any:
    """``build()``, kept on ``module`` and built again only when one of its parameters has changed since (in
    place, as an optimiser step or a load changes it, or by a new tensor, device or dtype) or ``extra``
    differs: tables regrouped from the parameters, built once rather than at every step. The module's
    submodules are listed at the first call (a model's layers are fixed once it is built; walking them
    again at every step would cost more than the tables save); a parameter replaced in one of them counts
    as a change. While ``torch.compile`` traces the caller, ``build()`` runs in the graph instead of the
    cache being read (a compiled graph reads the parameters themselves at every call)."""
    if _compiling():
        return build()
    owners = module.__dict__.get("_parameter_owners")
    if owners is None:
        owners = module.__dict__["_parameter_owners"] = [m._parameters for m in module.modules()]
    params = (t for held in owners for t in held.values() if t is not None)
    key = (*((id(t), t._version, t.data_ptr(), t.device, t.dtype) for t in params), *extra)
    kept = module.__dict__.get("_built_from_parameters")
    if kept is None or kept[0] != key:
        kept = module.__dict__["_built_from_parameters"] = (key, build())
    return kept[1]


_scratch = threading.local()
MAX_SCRATCH_VIEWS = 256  # views of the buffers kept per thread, one per name and shape asked for


def scratch(name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor | None:
    """A buffer of ``shape`` that the ``out=`` of a product can fill, kept for the next call of this thread
    that asks for ``name``, or None (a fresh tensor, then) on a GPU, while autograd records, under CPU
    autocast or while ``torch.compile`` traces (a graph keeps no buffers between calls).

    On a CPU every large new tensor is memory the C library may have just handed back to the system, and
    writing into it faults every page in again; at batch 4,096 those faults are a large share of an imagined
    step. The few largest intermediates of a step are therefore written into buffers kept per thread (each
    the size of the largest request so far; ``ImaginedSimulator`` slices batches on a CPU, which bounds it).
    A buffer holds intermediates only, never what a call returns: the next call with ``name`` overwrites it.
    The same view object is handed out again for the same ``name`` and ``shape`` (making it costs as much as
    the checks), so a caller fills it in place and never changes its shape or strides (an ``out=`` of another
    shape would resize it for every later call).
    """
    if (
        like.device.type != "cpu"
        or torch.is_grad_enabled()
        or _cpu_autocast()  # an out= product is not autocast: it would mix dtypes
        or _compiling()
        or getattr(_scratch, "off", False)
    ):
        return None
    views = _scratch.__dict__.setdefault("views", {})
    key = (name, like.dtype, torch.is_inference_mode_enabled())
    view = views.get((key, shape))
    if view is not None:  # the view handed out before (slicing one again costs as much as the checks above)
        return view
    pool = _scratch.__dict__.setdefault("pool", {})
    n = math.prod(shape)
    buf = pool.get(key)
    if buf is None or buf.numel() < n:  # a larger buffer: the views of the old one go with it
        buf = pool[key] = torch.empty(n, dtype=like.dtype)
        for old in [k for k in views if k[0] == key]:
            del views[old]
    if len(views) >= MAX_SCRATCH_VIEWS:  # batches of many sizes: start the record again
        views.clear()
    view = views[key, shape] = buf[:n].view(shape)
    return view


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4 takes no device type
        return torch.is_autocast_cpu_enabled()


@contextlib.contextmanager
def fresh_tensors() -> Iterator[None]:
    """Within it, this thread's steps allocate fresh tensors instead of :func:`scratch` buffers (the same
    numbers; ``benchmarks/imagined_throughput.py`` times both)."""
    before = getattr(_scratch, "off", False)
    _scratch.off = True
    try:
        yield
    finally:
        _scratch.off = before


def max_per_cell(observations: np.ndarray) -> tuple[int, ...]:
    """(5,) the most objects any one cell holds in each channel of ``observations`` (M, 5, h, w), at least 1:
    the counts a :class:`MixtureDecoder` built from this data can express (observation values, not rules)."""
    obs = np.asarray(observations)
    if obs.ndim != 4 or obs.shape[1] != N_CHANNELS:
        raise ValueError(f"observations must have shape (M, 5, h, w), got {obs.shape}")
    if len(obs) == 0:
        return (1,) * N_CHANNELS
    most = np.rint(obs.max(axis=(0, 2, 3))).astype(int)
    return tuple(max(1, int(m)) for m in most)


class MLPTrunk(nn.Module):
    """(B, 5, h, w) observation x (B, n_agents) joint action -> (B, width) transition features.

    Two layers over the flattened observation, ``hidden`` then ``width`` units with ReLUs. The one-hot
    joint action (own action first) enters the first layer by concatenation (``concat``) or as a scale
    and shift of its units (``film``: multiplicative, so a unit can respond to a cell under one action
    only). Without a joint action (the autoencoder diagnostic) the action inputs are 0.
    """

    def __init__(
        self, obs_shape: tuple[int, int, int], n_agents: int, hidden: int, width: int, fusion: str
    ) -> None:
        super().__init__()
        self.fusion = fusion
        n_obs, n_act = int(np.prod(obs_shape)), N_ACTIONS * n_agents
        self.first = nn.Linear(n_obs + (n_act if fusion == "concat" else 0), hidden)
        if fusion == "film":
            self.film = nn.Linear(n_act, 2 * hidden)
            self.register_buffer("unit_scale", torch.cat([torch.ones(hidden), torch.zeros(hidden)]), False)
            if N_ACTIONS**n_agents <= MAX_FILM_TABLE:  # every joint action, as its one-hot rows
                codes = torch.cartesian_prod(*[torch.arange(N_ACTIONS)] * n_agents).reshape(-1, n_agents)
                self.register_buffer("joint_one_hots", F.one_hot(codes, N_ACTIONS).flatten(1).float(), False)
                self.register_buffer("joint_digits", N_ACTIONS ** torch.arange(n_agents - 1, -1, -1), False)
        self.second = nn.Linear(hidden, width)

    def forward(self, obs: torch.Tensor, joint: torch.Tensor | None) -> torch.Tensor:
        flat = obs.flatten(1)
        if joint is None:
            actions = flat.new_zeros(flat.shape[0], self.first.in_features - flat.shape[1])
            x = self.first(flat if self.fusion == "film" else torch.cat([flat, actions], dim=1))
        elif self.fusion == "concat":
            x = self.first(torch.cat([flat, F.one_hot(joint, N_ACTIONS).flatten(1).to(flat.dtype)], dim=1))
        else:
            scale, shift = self._film(joint, flat.dtype).chunk(2, dim=1)
            buf = scratch("hidden", (flat.shape[0], self.first.out_features), flat)
            if buf is not None:  # the first layer into a reused buffer, then scaled, shifted, rectified there
                x = torch.addmm(self.first.bias, flat, self.first.weight.t(), out=buf)
                return F.relu(self.second(torch.addcmul(shift, x, scale, out=x).relu_()))
            x = torch.addcmul(shift, self.first(flat), scale)
        return F.relu(self.second(F.relu(x)))

    def _film(self, joint: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(B, 2 * hidden) each joint action's FiLM scale (plus 1) and shift. With few joint actions the
        layer runs once on every joint action and each game looks its row up: the same numbers without a
        matrix product per game."""
        if not hasattr(self, "joint_one_hots"):
            out = self.film(F.one_hot(joint, N_ACTIONS).flatten(1).to(dtype))
            return out + self.unit_scale

        def build() -> torch.Tensor:
            return self.film(self.joint_one_hots.to(dtype)) + self.unit_scale

        # training: the table is part of the graph; otherwise built once per change of the layer's parameters
        table = build() if torch.is_grad_enabled() else built_from_parameters(self.film, build, dtype)
        rows = (joint * self.joint_digits).sum(1)
        return torch.index_select(table, 0, rows, out=scratch("film", (len(rows), table.shape[1]), table))

    def with_cells(self, obs: torch.Tensor, joint: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The features and (B, V, 5) per-cell inputs of a cell scorer: the observation's counts there."""
        return self(obs, joint), obs.flatten(2).transpose(1, 2)


class LocalTrunk(nn.Module):
    """(B, 5, h, w) observation x (B, n_agents) joint action -> (B, width) transition features.

    A 3x3 convolution to ``channels`` per cell (the joint action fused as in :class:`SpatialTrunk`:
    one-hot input planes for ``concat``, a per-channel scale and shift for ``film``), a 1x1 convolution,
    then the flattened cells through one linear layer. The same local weights at every cell, as in the
    convolutional trunk, but one 3x3 layer of few channels and no wide per-cell output: a fraction of its
    cost.
    """

    def __init__(
        self, obs_shape: tuple[int, int, int], n_agents: int, channels: int, width: int, fusion: str
    ) -> None:
        super().__init__()
        self.fusion = fusion
        n_act = N_ACTIONS * n_agents
        self.n_extra = n_act if fusion == "concat" else 0
        self.local = nn.Conv2d(obs_shape[0] + self.n_extra, channels, 3, padding=1)
        if fusion == "film":
            self.film = nn.Linear(n_act, 2 * channels)
        self.mix = nn.Conv2d(channels, channels, 1)
        self.out = nn.Linear(channels * obs_shape[1] * obs_shape[2], width)

    def forward(self, obs: torch.Tensor, joint: torch.Tensor | None) -> torch.Tensor:
        return F.relu(self.out(self._units(obs, joint).flatten(1)))

    def with_cells(self, obs: torch.Tensor, joint: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The features and (B, V, 5 + channels) per-cell inputs of a cell scorer: each cell's counts and
        its units before the last layer (what its neighbourhood and the joint action make of it)."""
        x = self._units(obs, joint)
        cells = torch.cat([obs, x], dim=1).flatten(2).transpose(1, 2)
        return F.relu(self.out(x.flatten(1))), cells

    def _units(self, obs: torch.Tensor, joint: torch.Tensor | None) -> torch.Tensor:
        """(B, channels, h, w) every cell's units before the last layer."""
        B, _, h, w = obs.shape
        actions = None if joint is None else F.one_hot(joint, N_ACTIONS).flatten(1).to(obs.dtype)
        if self.n_extra:
            planes = obs.new_zeros(B, self.n_extra, h, w) if actions is None else actions[:, :, None, None]
            obs = torch.cat([obs, planes.expand(B, self.n_extra, h, w)], dim=1)
        x = self.local(obs)
        if self.fusion == "film" and actions is not None:
            scale, shift = self.film(actions)[:, :, None, None].chunk(2, dim=1)
            x = x * (1 + scale) + shift
        return F.relu(self.mix(F.relu(x)))


def build_trunk(cfg) -> nn.Module:
    """The ``mlp`` or ``local`` trunk a ``WorldModelConfig`` asks for; its features are ``d_model`` wide."""
    if cfg.trunk == "mlp":
        return MLPTrunk(cfg.obs_shape, cfg.n_agents, cfg.trunk_hidden or 256, cfg.d_model, cfg.fusion)
    return LocalTrunk(cfg.obs_shape, cfg.n_agents, cfg.trunk_hidden or 32, cfg.d_model, cfg.fusion)


def _initial_offsets(components: int, cells: int, levels: int, lift: float = 16.0) -> torch.Tensor:
    """(K, V, L) starting offsets: component k < V raises the logits of counts >= 1 at cell k by ``lift``,
    the rest start at 0, plus a little noise. Components that start alike stay alike (their gradients
    match), and the mixture then settles on one product of independent cells, which cannot place one
    object at one of several cells; starting each component on its own cell breaks that symmetry. This is a
    starting point only: every offset is learned, and nothing says when a component is used."""
    offset = torch.randn(components, cells, levels) * 0.1
    k = torch.arange(min(components, cells))
    offset[k, k, 1:] += lift
    return offset


class MixtureDecoder(nn.Module):
    """Next observations as five channel planes, each a mixture of products of per-cell categoricals.

    Args:
        in_features: size of the flattened transition features it reads.
        obs_shape: (5, h, w).
        max_per_cell: (5,) most objects one cell can hold per channel (counts above it get probability 0).
        components: K, mixture components per channel whose logits come from the features.
        hidden: width of each channel's hidden layer.
        scorer: width of the cell scorer's hidden layer (0: no cell scorer). One set of weights, shared by
            every cell, reads a cell's inputs (``cell_inputs`` of them per cell: the current observation's
            counts there, and any per-cell features of the trunk), the counts already decoded there in the
            channels before, and the channel's context, and gives the cell a score. With a scorer there are
            V more components per channel, one starting on each cell, whose logits are the cells' scores
            alone; the features' components that start on a cell get that cell's score added. Cells that
            look alike then get the same logit, so one object spread evenly over the cells that look alike
            needs no per-cell tuning (as a convolution's shared weights need none for moves), while moves
            still come from the features.
    """

    def __init__(
        self,
        in_features: int,
        obs_shape: tuple[int, int, int],
        max_per_cell: tuple[int, ...],
        components: int,
        hidden: int,
        scorer: int = 0,
        cell_inputs: int = N_CHANNELS,
    ) -> None:
        super().__init__()
        self.shape = tuple(obs_shape)
        self.n_cells = V = obs_shape[1] * obs_shape[2]
        self.levels = tuple(m + 1 for m in max_per_cell)  # count classes 0 .. m per cell
        self.hidden, self.n_mixture, self.scorer = hidden, components, scorer
        self.n_scored = min(components, V) if scorer else 0  # feature components that get a cell's score
        self.components = components + (V if scorer else 0)  # the cells' own components come first
        # the features' part of every channel's hidden layer and mixture logits, one product
        self.width = hidden + components
        self.context = nn.Linear(in_features, N_CHANNELS * self.width)
        # what channel c's plane adds to the channels after it (hidden layers and mixture logits), one product
        self.previous = nn.ModuleList(
            nn.Linear(V, (N_CHANNELS - 1 - c) * self.width, bias=False) for c in range(N_CHANNELS - 1)
        )
        self.mixture = nn.ModuleList(nn.Linear(hidden, components) for _ in range(N_CHANNELS))
        self.base = nn.ModuleList(nn.Linear(hidden, V * L) for L in self.levels)
        # each component's learned per-cell shift of the base logits (see _initial_offsets)
        # (stored divided by OFFSET_GAIN: the offsets are large, and Adam moves every parameter at about the
        # same rate, so this lets them move as fast as the logits they shift)
        own = V if scorer else 0
        self.offset = nn.ParameterList(
            nn.Parameter(
                torch.cat([_initial_offsets(own, V, L), _initial_offsets(components, V, L)]) / OFFSET_GAIN
            )
            for L in self.levels
        )
        self.register_buffer("top", torch.tensor([L - 1 for L in self.levels]), persistent=False)
        self.cell_inputs = cell_inputs
        if scorer:
            # channel c's scorer reads a cell's inputs and the counts of channels 0 .. c - 1 there
            self.score_in = nn.ModuleList(nn.Linear(cell_inputs + c, scorer) for c in range(N_CHANNELS))
            self.score_ctx = nn.ModuleList(nn.Linear(hidden, scorer) for _ in range(N_CHANNELS))
            self.score_out = nn.ModuleList(nn.Linear(scorer, 1) for _ in range(N_CHANNELS))

    def _context(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, 5, hidden + K) the features' part of every channel's hidden layer and mixture logits."""
        return self.context(feats.flatten(1)).view(feats.shape[0], N_CHANNELS, self.width)

    def _after(self, rest: torch.Tensor, c: int, plane: torch.Tensor) -> torch.Tensor:
        """The inputs (B, 4 - c, width) of channels c + 1 .. 4, given those before channel c's plane
        ``rest`` (B, 5 - c, width) and the plane (B, V)."""
        return rest[:, 1:] + self.previous[c](plane).view(rest.shape[0], -1, self.width)

    def _mixture_logits(
        self, c: int, rest: torch.Tensor, g: torch.Tensor, cells: torch.Tensor | None
    ) -> torch.Tensor:
        """(B, components) channel c's mixture logits. ``rest`` (B, 5 - c, width) is the channels' context,
        ``g`` (B, hidden) channel c's hidden layer, ``cells`` (B, V, cell_inputs + c) the scorer's per-cell
        inputs with the planes decoded so far (None without a scorer)."""
        h, K = self.hidden, self.n_mixture
        mix = self.mixture[c](g) + rest[:, 0, h : h + K]
        if not self.scorer:
            return mix
        self._check_cells(cells)
        # units = relu(score_in(cells) + score_ctx(g)), the context added inside one batched product
        score_in = self.score_in[c]
        ctx = F.linear(g, self.score_ctx[c].weight, self.score_ctx[c].bias + score_in.bias)
        w_in = score_in.weight.t().expand(cells.shape[0], -1, -1)
        return self._with_scores(c, mix, torch.baddbmm(ctx[:, None, :], cells, w_in).relu_())

    def _check_cells(self, cells: torch.Tensor | None) -> None:
        if cells is None:
            raise ValueError(
                "this mixture decoder scores cells: pass their inputs, cells=(B, V, cell_inputs)"
            )

    def _with_scores(self, c: int, mix: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
        """(B, components) channel c's mixture logits from the features' ``mix`` (B, K) and the scorer's
        hidden units (B, V, scorer): the cells' own components (their scores) first, then the features'
        components, those that start on a cell with its score added."""
        score = torch.matmul(units, self.score_out[c].weight[0]) + self.score_out[c].bias  # (B, V)
        return self._with_score(mix, score)

    def _with_score(self, mix: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """(B, components) the mixture logits from the features' ``mix`` (B, K) and the cells' scores
        ``score`` (B, V) (see :meth:`_with_scores`)."""
        n = self.n_scored
        return torch.cat([score, mix[:, :n] + score[:, :n], mix[:, n:]], dim=1)

    @property
    def uniform_draws(self) -> int:
        """How many uniform numbers :meth:`sample` uses per game: one component pick and one draw per cell,
        in every channel."""
        return N_CHANNELS * (1 + self.n_cells)

    def counts(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 5, V) long counts of ``obs`` (B, 5, h, w) and (B,) whether the decoder can express it (whole
        counts within every channel's range)."""
        B = obs.shape[0]
        flat = obs.reshape(B, N_CHANNELS, self.n_cells)
        counts = flat.round()
        ok = ((counts == flat) & (counts >= 0) & (counts <= self.top[:, None])).flatten(1).all(1)
        return counts.long(), ok

    def log_probs(
        self, feats: torch.Tensor, target: torch.Tensor, cells: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B,) :meth:`log_prob`, and (B,) the log-probability of ``target`` under the features' components
        alone (their mixture weights renormalised; None without a cell scorer), from one pass. Training adds
        the second for its first steps (``LossWeights.features_alone``): the cells' own components learn
        faster, and without it they can take a channel over before the features' components have learned
        the moves that only they can express, which then get no gradient."""
        parts = self._channel_terms(feats, target, cells, alone=bool(self.scorer))
        return parts[0].sum(1), (parts[1].sum(1) if self.scorer else None)

    def log_prob(
        self, feats: torch.Tensor, target: torch.Tensor, cells: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B,) exact log-probability of ``target`` (B, 5, h, w) given features ``feats`` (B, ...) and, with a
        cell scorer, the cells' inputs ``cells`` (B, V, cell_inputs); -inf where a count is out of range or
        not whole."""
        return self.channel_log_probs(feats, target, cells).sum(1)

    def channel_log_probs(
        self, feats: torch.Tensor, target: torch.Tensor, cells: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, 5) log P(channel c's plane | features, the planes before it) of ``target`` (B, 5, h, w); they
        sum to :meth:`log_prob` (all -inf where a count is out of range or not whole)."""
        return self._channel_terms(feats, target, cells, alone=False)[0]

    def _channel_terms(
        self, feats: torch.Tensor, target: torch.Tensor, cells: torch.Tensor | None, alone: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, 5) channel log-probabilities, and with ``alone`` the same under the features' components
        alone."""
        counts, ok = self.counts(target)
        rest = self._context(feats)
        B, V, K = feats.shape[0], self.n_cells, self.components
        if self.scorer and cells is not None:  # every cell's inputs followed by its target counts
            cells = torch.cat([cells, counts.transpose(1, 2).to(cells.dtype)], dim=2)
        terms, alone_terms = [], []
        own = K - self.n_mixture  # the cells' own components come first
        for c, L in enumerate(self.levels):
            g = F.relu(rest[:, 0, : self.hidden])
            sub = None if cells is None else cells[..., : self.cell_inputs + c]
            mix = self._mixture_logits(c, rest, g, sub)  # (B, K)
            log_mix = mix.log_softmax(-1)
            if L == 2:  # log P(count) = -softplus(+-(l1 - l0)): no (B, K, V, 2) tensor and no log_softmax
                # over pairs (a slow kernel on a CPU: most of a training step's time)
                base, offset = self.base[c](g).view(B, V, 2), self.offset[c] * OFFSET_GAIN
                diff = (base[..., 1] - base[..., 0])[:, None] + (offset[..., 1] - offset[..., 0])  # (B, K, V)
                sign = 1 - 2 * counts[:, c].clamp(0, 1)[:, None].to(diff.dtype)  # +1 for count 0, -1 for 1
                per_cell = -F.softplus(sign * diff).sum(-1)  # (B, K)
            else:
                logits = self.base[c](g).view(B, 1, V, L) + self.offset[c] * OFFSET_GAIN  # (B, K, V, L)
                y = counts[:, c].clamp(0, L - 1)[:, None, :, None].expand(B, K, V, 1)
                per_cell = logits.log_softmax(-1).gather(3, y).squeeze(3).sum(-1)  # (B, K)
            terms.append(torch.logsumexp(log_mix + per_cell, dim=-1))
            if alone:
                alone_terms.append(torch.logsumexp(mix[:, own:].log_softmax(-1) + per_cell[:, own:], dim=-1))
            if c < N_CHANNELS - 1:
                rest = self._after(rest, c, counts[:, c].to(rest.dtype))
        out = []
        for t in (terms, alone_terms) if alone else (terms,):
            total = torch.stack(t, dim=1)
            out.append(torch.where(ok[:, None], total, torch.full_like(total, -float("inf"))))
        return out[0], (out[1] if alone else None)

    def _sampling_tables(self) -> dict[str, Any]:
        """The parameters regrouped for :meth:`sample`, built once and again only after a parameter changes
        (an optimiser step, a load, a move to another device):

        - ``incoming[c]`` (c * V, width): what the planes of channels 0 .. c - 1 add to channel c's inputs
          (the rows of ``previous`` that feed channel c, so channel c's inputs are one product);
        - ``head_w[c]``, ``head_b[c]``: channel c's mixture logits, scorer context (its input bias folded in)
          and per-cell logits from its hidden layer, one product; with two count classes the logits are
          their difference (P(count 1) = sigmoid of it);
        - ``offset[c]``: each component's shift of those logits, times ``OFFSET_GAIN``;
        - ``score_in[c]`` (scorer, cell_inputs + c), ``score_out[c]`` (1, scorer), ``score_bias[c]``: the
          cell scorer's own weights, which take the cells as columns as they are (one product over every
          cell of every game, its output a row per unit, which a compiled step reduces without shuffles);
        - ``context_w``, ``context_b``: the context layer with its outputs padded to a multiple of 16 (on a
          CPU a product whose width is a multiple of the vector width runs faster)."""
        return built_from_parameters(self, self._build_sampling_tables)

    def _build_sampling_tables(self) -> dict[str, Any]:
        w = self.width
        tables: dict[str, Any] = {
            "incoming": [], "head_w": [], "head_b": [], "offset": [], "score_in": [], "score_out": [],
            "score_bias": [],
        }  # fmt: skip
        with torch.no_grad():
            for c, L in enumerate(self.levels):
                blocks = [self.previous[s].weight[(c - s - 1) * w : (c - s) * w] for s in range(c)]
                tables["incoming"].append(torch.cat(blocks, dim=1).t().contiguous() if c else None)
                base_w, base_b = self.base[c].weight, self.base[c].bias
                offset = self.offset[c] * OFFSET_GAIN
                if L == 2:  # count 1's logit minus count 0's
                    base_w = (base_w[1::2] - base_w[0::2]).contiguous()
                    base_b = base_b[1::2] - base_b[0::2]
                    offset = offset[..., 1] - offset[..., 0]
                rows_w, rows_b = [self.mixture[c].weight], [self.mixture[c].bias]
                if self.scorer:
                    rows_w.append(self.score_ctx[c].weight)
                    rows_b.append(self.score_ctx[c].bias + self.score_in[c].bias)
                    tables["score_in"].append(self.score_in[c].weight)
                    tables["score_out"].append(self.score_out[c].weight)
                    tables["score_bias"].append(self.score_out[c].bias)
                tables["head_w"].append(torch.cat([*rows_w, base_w]).t().contiguous())
                tables["head_b"].append(torch.cat([*rows_b, base_b]))
                tables["offset"].append(offset.contiguous())
            n = self.context.out_features
            pad = -n % 16
            tables["context_w"] = F.pad(self.context.weight, (0, 0, 0, pad)).t().contiguous()
            tables["context_b"] = F.pad(self.context.bias, (0, pad))
        return tables

    @torch.no_grad()
    def sample(
        self,
        feats: torch.Tensor,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        cells: torch.Tensor | None = None,
        uniforms: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, 5, h, w) float32 next observations drawn channel by channel (``cells`` (B, V, cell_inputs):
        the cells' inputs, with a cell scorer). ``temperature`` scales every logit; 0 takes the most likely
        component, then the most likely count of every cell.

        A sample uses :attr:`uniform_draws` uniform numbers per game, channel c's component pick then its
        cells: drawn in one block from ``generator``, or given as ``uniforms`` (B, uniform_draws) in [0, 1)
        (a sample is then a function of its inputs, which ``torch.compile`` can trace)."""
        B, V, h, K, S = feats.shape[0], self.n_cells, self.hidden, self.n_mixture, self.scorer
        if temperature != 0 and uniforms is None:
            uniforms = torch.rand((B, self.uniform_draws), generator=generator, device=feats.device)
        elif uniforms is not None and tuple(uniforms.shape) != (B, self.uniform_draws):
            raise ValueError(
                f"uniforms must have shape {(B, self.uniform_draws)}, got {tuple(uniforms.shape)}"
            )
        tables = self._sampling_tables()
        width = tables["context_w"].shape[1]
        ctx = torch.addmm(
            tables["context_b"],
            feats.flatten(1),
            tables["context_w"],
            out=scratch("context", (B, width), feats),
        )
        ctx = ctx[:, : N_CHANNELS * self.width].view(B, N_CHANNELS, self.width)  # (B, 5, width)
        if S:
            self._check_cells(cells)
            C = self.cell_inputs
            if tuple(cells.shape) != (B, V, C):
                raise ValueError(
                    f"cells must have shape (B, V, cell_inputs) = {(B, V, C)}, got {tuple(cells.shape)}"
                )
            # every cell's inputs as rows (C, B, V), followed by the planes as they are decoded
            rows = scratch("cells", (C + N_CHANNELS - 1, B, V), cells)
            rows = cells.new_empty(C + N_CHANNELS - 1, B, V) if rows is None else rows
            rows[:C] = cells.permute(2, 0, 1)
        planes = ctx.new_empty(B, N_CHANNELS, V)
        # a count of 1 (two count classes) has probability sigmoid(l1 - l0): drawn where logit(u) < l1 - l0,
        # every draw's logit taken here at once; a sigmoid per channel would take an exp per cell, which a
        # CPU computes slowly where the logits leave exp's normal range
        cut = None
        if temperature != 0 and 2 in self.levels:
            cut = torch.logit(uniforms, out=scratch("cut", tuple(uniforms.shape), uniforms))
        for c, L in enumerate(self.levels):
            # channel c's inputs: the features' part and what the planes before it add (eager, added in
            # place: a product into the context's strided rows copies nothing first; not where a compiled
            # graph would copy them to keep the context as it was, nor where the context's dtype is not the
            # tables' (autocast casts only out-of-place products))
            x, incoming = ctx[:, c], tables["incoming"][c]
            if c and (_compiling() or x.dtype != incoming.dtype):
                x = torch.addmm(x, planes[:, :c].flatten(1), incoming)
            elif c:
                x.addmm_(planes[:, :c].flatten(1), incoming)
            # the hidden layer rectified where it lies, eagerly (nothing reads that part of the context again)
            hidden = x[:, :h].relu() if _compiling() else x[:, :h].relu_()
            out = torch.addmm(tables["head_b"][c], hidden, tables["head_w"][c])
            if S:
                # units = relu(score_in(cell) + score_ctx(hidden layer)), (S, B, V): one product over every
                # cell of every game, then the context added in place; the scores, one more product
                n = C + c
                units = torch.mm(
                    tables["score_in"][c], rows[:n].view(n, B * V), out=scratch("scorer", (S, B * V), rows)
                ).view(S, B, V)
                units = units.add_(out[:, K : K + S].t()[:, :, None]).relu_()
                score = torch.mm(tables["score_out"][c], units.view(S, B * V)).view(B, V)
                mix = scratch("mixture", (B, V + K), score)
                if mix is None:
                    mix = self._with_score(out[:, :K] + x[:, h : h + K], score + tables["score_bias"][c])
                else:  # the same logits written into a reused buffer: the scores, then the features' part
                    n = self.n_scored
                    torch.add(score, tables["score_bias"][c], out=mix[:, :V])
                    torch.add(out[:, :K], x[:, h : h + K], out=mix[:, V:])
                    mix[:, V : V + n] += mix[:, :n]
            else:
                mix = out[:, :K] + x[:, h : h + K]
            logits, offset = out[:, K + S :], tables["offset"][c]
            if temperature == 0:
                k = mix.argmax(-1)
                if L == 2:  # count 1 where its logit is the larger (ties to 0, as argmax does)
                    planes[:, c] = (logits + offset[k]) > 0
                else:
                    planes[:, c] = (logits.view(B, V, L) + offset[k]).argmax(-1)
            else:
                if temperature != 1:
                    mix, logits, offset = mix / temperature, logits / temperature, offset / temperature
                # one uniform draw per component pick and per cell, then inverse CDFs (cheaper than
                # torch.multinomial, which draws exponentials)
                at = c * (V + 1)
                k = categorical(weights(mix, in_place=True), uniform=uniforms[:, at])
                if L == 2:  # P(count 1) = sigmoid(l1 - l0): where the draw's logit is below l1 - l0
                    shift = torch.index_select(offset, 0, k, out=scratch("shift", (B, V), offset))
                    shift = shift.add_(logits)
                    if _compiling():  # a graph takes no out= into a strided view
                        planes[:, c] = cut[:, at + 1 : at + 1 + V] < shift
                    else:  # written as 0 and 1 where they go (a bool tensor and its copy take 3-4 times as long)
                        torch.lt(cut[:, at + 1 : at + 1 + V], shift, out=planes[:, c])
                else:  # inverse CDF per cell, never a p = 0 count
                    u = uniforms[:, at + 1 : at + 1 + V]  # categorical keeps the draw in float32 at least
                    planes[:, c] = categorical(weights(logits.view(B, V, L) + offset[k]), uniform=u)
            if S and c < N_CHANNELS - 1:
                rows[C + c] = planes[:, c]
        return planes.view(B, *self.shape).float()


DECODERS = ("pointer", "mixture")
TRUNKS = ("conv", "mlp", "local")


def check_config(cfg) -> None:
    """Refuse, with a ``ValueError`` naming the field, a ``WorldModelConfig`` whose decoder/trunk settings
    do not fit together."""
    if cfg.decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {list(DECODERS)}, got {cfg.decoder!r}")
    if cfg.trunk not in TRUNKS:
        raise ValueError(f"trunk must be one of {list(TRUNKS)}, got {cfg.trunk!r}")
    if cfg.trunk != "conv" and (cfg.decoder != "mixture" or cfg.variant != "direct"):
        raise ValueError(
            f"trunk={cfg.trunk!r} makes one feature vector, not per-cell features: it needs decoder='mixture' "
            f"and variant='direct', got decoder={cfg.decoder!r}, variant={cfg.variant!r}"
        )
    counts = tuple(cfg.max_per_cell)
    if len(counts) != N_CHANNELS or not all(isinstance(m, int) and m >= 1 for m in counts):
        raise ValueError(
            f"max_per_cell needs one int >= 1 per channel ({N_CHANNELS}), got {cfg.max_per_cell!r}"
        )
    if not (isinstance(cfg.mixture_components, int) and cfg.mixture_components >= 0):
        raise ValueError(
            f"mixture_components must be an int >= 0 (0: cells + 1), got {cfg.mixture_components!r}"
        )
    if not (isinstance(cfg.trunk_hidden, int) and cfg.trunk_hidden >= 0):
        raise ValueError(
            f"trunk_hidden must be an int >= 0 (0: the trunk's default), got {cfg.trunk_hidden!r}"
        )
    if not (isinstance(cfg.d_model, int) and not isinstance(cfg.d_model, bool) and cfg.d_model >= 1):
        raise ValueError(f"d_model must be an int >= 1, got {cfg.d_model!r}")
    if not (isinstance(cfg.mixture_hidden, int) and cfg.mixture_hidden >= 1):
        raise ValueError(f"mixture_hidden must be an int >= 1, got {cfg.mixture_hidden!r}")
    if not (isinstance(cfg.mixture_scorer, int) and cfg.mixture_scorer >= 0):
        raise ValueError(
            f"mixture_scorer must be an int >= 0 (0: no cell scorer), got {cfg.mixture_scorer!r}"
        )


def cell_inputs(cfg) -> int:
    """How many inputs per cell a ``WorldModelConfig``'s cell scorer reads: the observation's counts, and the
    ``local`` trunk's per-cell units where it has them."""
    if cfg.trunk == "local" and cfg.variant == "direct":
        return N_CHANNELS + (cfg.trunk_hidden or 32)
    return N_CHANNELS


def build_mixture_decoder(cfg, in_features: int) -> MixtureDecoder:
    """The :class:`MixtureDecoder` a ``WorldModelConfig`` asks for, reading ``in_features`` features."""
    h, w = cfg.obs_shape[1:]
    return MixtureDecoder(
        in_features, tuple(cfg.obs_shape), tuple(cfg.max_per_cell),
        cfg.mixture_components or h * w + 1, cfg.mixture_hidden, cfg.mixture_scorer,
        cell_inputs(cfg),
    )  # fmt: skip

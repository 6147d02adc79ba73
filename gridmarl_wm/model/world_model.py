"""The world model: P(o_i^{t+1} | o_i^t, a_i^t, a_{-i}^t), reward, value and the others' actions.

Parts, each its own module, composed by :class:`WorldModel`:

- :class:`Encoder`: the notes' conv encoder ``Conv2d(5,32,3,p=1)-ReLU-Conv2d(32,64,3,p=1)-ReLU-Flatten-
  Linear(64*h*w, latent)``, for the variants with a vector latent.
- :class:`SpatialTrunk`: convolutions over the observation with the joint action fused in, by
  concatenation (one-hot action planes) or by FiLM (a hypernetwork turning the joint action into a
  per-channel scale and shift): a feature vector per cell.
- :class:`Quantiser` (``vq``): discrete latent codes, straight-through gradients, code usage, dead-code
  restarts.
- :class:`PointerDecoder`: emits the next observation's token sequence (:mod:`gridmarl_wm.model.tokens`) one
  token at a time; each token is a pointer to a cell (scored against that cell's features) or EOS. So
  ``log_prob`` is exact and a sample is one whole observation, coin respawns included (a per-cell
  independent distribution cannot place exactly one coin uniformly).
- heads: reward (a categorical over the reward values seen in data: predictions are exact values),
  value (V(o), trained toward r + gamma * V(o')), and the others' actions (an opponent model).

Variants (``WorldModelConfig.variant``): ``direct`` decodes from the action-fused cell features;
``latent`` encodes z_t, predicts z_{t+1} = dynamics(z_t, a) and decodes from it (with a consistency loss
toward encode(o_{t+1})); ``vq`` does the same with quantised latents; ``autoencoder`` decodes o_t from
encode(o_t), a diagnostic. Nothing game-specific is built in: the token format only needs the
observation's shape and how many objects a channel can hold (set from data), and the only constraints the
decoder may apply are those the training data showed (:class:`LearnedStructure`, stored in the config,
switchable off: :meth:`WorldModel.constraints`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gridmarl_wm.model.mixture_decoder import build_mixture_decoder, build_trunk, check_config
from gridmarl_wm.model.sampling import categorical, weights
from gridmarl_wm.model.tokens import N_CHANNELS, LearnedStructure, TokenLayout

N_ACTIONS = 5
VARIANTS = ("direct", "latent", "vq", "autoencoder")
FUSIONS = ("concat", "film")


@dataclass(frozen=True)
class WorldModelConfig:
    """Shape and architecture of a world model.

    Attributes:
        obs_shape: (5, h, w) of the observations.
        n_agents: players in the game (the model takes n_agents - 1 others' actions).
        max_count: how many objects each channel can hold in the token sequence (see :class:`TokenLayout`;
            set from data with a margin, so it is not itself a constraint).
        variant: ``direct``, ``latent``, ``vq`` or ``autoencoder``.
        fusion: how the joint action enters: ``concat`` or ``film``.
        features: channels of the per-cell features.
        latent: size of the vector latent (``latent``, ``vq``, ``autoencoder``).
        d_model: width of the decoder's recurrent state and the heads.
        vq_codes, vq_groups: codebook size and codes per latent (``vq``).
        reward_values: the reward classes, sorted (set from data).
        structure: what the training data showed about observations (see :class:`LearnedStructure` and
            ``training.trainer.model_config_for``); None: nothing learned, so nothing to enforce.
        constraints: apply ``structure`` when decoding (training and use); a loaded model can be switched
            either way with :meth:`WorldModel.constraints`.
        agent_id: give the opponent head the observer's player index.
        gamma: discount of the value head's target.
        decoder: ``pointer`` (token by token) or ``mixture`` (channel by channel, see
            :mod:`gridmarl_wm.model.mixture_decoder`).
        trunk: ``conv`` (:class:`SpatialTrunk`, per-cell features), ``mlp`` or ``local`` (``MLPTrunk``,
            ``LocalTrunk`` of :mod:`gridmarl_wm.model.mixture_decoder`: a ``d_model`` vector; ``direct`` variant
            with the ``mixture`` decoder only).
        max_per_cell: most objects one cell holds per channel, that the ``mixture`` decoder can express
            (set from data, see ``mixture_decoder.max_per_cell``).
        mixture_components: components per channel of the ``mixture`` decoder (0: cells + 1).
        mixture_hidden: width of its per-channel hidden layers.
        mixture_scorer: width of its cell scorer's hidden layer, one set of weights shared by every cell (0:
            no cell scorer; a checkpoint saved before the scorer existed loads with 0; see ``MixtureDecoder``).
        trunk_hidden: units of the ``mlp`` trunk's first layer, channels of the ``local`` trunk's cells
            (0: 256 and 32).
    """

    obs_shape: tuple[int, int, int] = (5, 4, 4)
    n_agents: int = 2
    max_count: tuple[int, ...] = (2, 2, 2, 2, 1)
    variant: str = "direct"
    fusion: str = "concat"
    features: int = 64
    latent: int = 256
    d_model: int = 128
    vq_codes: int = 256
    vq_groups: int = 16
    reward_values: tuple[float, ...] = (-2.0, -1.0, 0.0, 1.0)
    structure: LearnedStructure | None = None
    constraints: bool = True
    agent_id: bool = False
    gamma: float = 0.9
    decoder: str = "pointer"
    trunk: str = "conv"
    max_per_cell: tuple[int, ...] = (1, 1, 1, 1, 1)
    mixture_components: int = 0
    mixture_hidden: int = 64
    mixture_scorer: int = 16
    trunk_hidden: int = 0

    def __post_init__(self) -> None:
        check_config(self)
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {list(VARIANTS)}, got {self.variant!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {list(FUSIONS)}, got {self.fusion!r}")
        if self.variant == "vq" and self.latent % self.vq_groups:
            raise ValueError(f"latent={self.latent} must be divisible by vq_groups={self.vq_groups}")
        if len(self.max_count) != N_CHANNELS:
            raise ValueError(f"max_count needs one entry per channel ({N_CHANNELS}), got {self.max_count!r}")
        if self.structure is not None:
            if not isinstance(self.structure, LearnedStructure):
                raise TypeError(f"structure must be a LearnedStructure or None, got {type(self.structure)}")
            short = [c for c in range(N_CHANNELS) if self.max_count[c] < self.structure.max_count[c]]
            if short:
                raise ValueError(
                    f"max_count={self.max_count!r} cannot hold the objects the data showed "
                    f"({self.structure.max_count!r}) in channels {short}"
                )

    @property
    def layout(self) -> TokenLayout:
        return TokenLayout(self.obs_shape[1] * self.obs_shape[2], tuple(self.max_count))


def _one_hot_actions(joint: torch.Tensor) -> torch.Tensor:
    return F.one_hot(joint, N_ACTIONS).flatten(1).float()  # (B, n_agents * 5)


class Encoder(nn.Module):
    """(B, 5, h, w) -> (B, latent): the notes' conv encoder."""

    def __init__(self, obs_shape: tuple[int, int, int], latent: int) -> None:
        super().__init__()
        _, h, w = obs_shape
        self.net = nn.Sequential(
            nn.Conv2d(N_CHANNELS, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * h * w, latent),
        )  # fmt: skip

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


class SpatialTrunk(nn.Module):
    """(B, c_in, h, w) x joint action -> (B, features, h, w) cell features.

    ``concat``: the one-hot joint action enters as constant input planes. ``film``: a small hypernetwork
    maps it to a scale and shift of every feature channel after each convolution.
    """

    def __init__(self, c_in: int, features: int, n_agents: int, fusion: str, layers: int = 3) -> None:
        super().__init__()
        self.fusion = fusion
        n_act = N_ACTIONS * n_agents
        extra = n_act if fusion == "concat" else 0
        self.convs = nn.ModuleList(
            nn.Conv2d((c_in + extra) if i == 0 else features, features, 3, padding=1) for i in range(layers)
        )
        if fusion == "film":
            self.film = nn.Sequential(nn.Linear(n_act, 128), nn.ReLU(), nn.Linear(128, 2 * features * layers))

    def forward(self, x: torch.Tensor, joint: torch.Tensor | None) -> torch.Tensor:
        B, _, h, w = x.shape
        if joint is not None and self.fusion == "concat":
            planes = _one_hot_actions(joint)[:, :, None, None].expand(B, -1, h, w)
            x = torch.cat([x, planes], dim=1)
        elif joint is None and self.fusion == "concat":
            x = torch.cat([x, x.new_zeros(B, self.convs[0].in_channels - x.shape[1], h, w)], dim=1)
        film = None
        if joint is not None and self.fusion == "film":
            film = self.film(_one_hot_actions(joint)).reshape(B, len(self.convs), 2, -1, 1, 1)
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if film is not None:
                x = x * (1 + film[:, i, 0]) + film[:, i, 1]
            x = F.relu(x)
        return x


class Quantiser(nn.Module):
    """Splits a latent into ``groups`` vectors and snaps each to the nearest of ``codes`` codebook entries.

    Straight-through gradients; the loss holds the codebook and commitment terms. ``usage`` counts the
    codes chosen since the last :meth:`restart_dead`, which moves unused codes onto recent inputs.
    """

    def __init__(self, latent: int, codes: int, groups: int, beta: float = 0.25) -> None:
        super().__init__()
        self.groups, self.dim, self.beta = groups, latent // groups, beta
        self.codebook = nn.Parameter(torch.randn(codes, self.dim) * 0.1)
        self.register_buffer("usage", torch.zeros(codes))
        self._recent: torch.Tensor | None = None

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B = z.shape[0]
        flat = z.reshape(B * self.groups, self.dim)
        idx = torch.cdist(flat, self.codebook).argmin(1)
        q = self.codebook[idx]
        loss = F.mse_loss(q, flat.detach()) + self.beta * F.mse_loss(flat, q.detach())
        if self.training:
            self.usage += torch.bincount(idx, minlength=len(self.codebook)).float()
            self._recent = flat.detach()
        q = flat + (q - flat).detach()
        return q.reshape(B, -1), loss, idx.reshape(B, self.groups)

    def code_usage(self) -> dict[str, float]:
        """Fraction of codes used and the perplexity of their use since the last restart."""
        total = self.usage.sum()
        if total == 0:
            return {"codes_used": 0.0, "perplexity": 0.0}
        p = self.usage[self.usage > 0] / total
        return {
            "codes_used": float((self.usage > 0).float().mean()),
            "perplexity": float((-(p * p.log()).sum()).exp()),
        }

    @torch.no_grad()
    def restart_dead(self, generator: torch.Generator | None = None) -> int:
        """Move codes unused since the last call onto random recent inputs; returns how many moved."""
        dead = torch.nonzero(self.usage == 0).flatten()
        if len(dead) and self._recent is not None:
            pick = torch.randint(len(self._recent), (len(dead),), generator=generator)
            self.codebook[dead] = self._recent[pick.to(self._recent.device)]
        self.usage.zero_()
        return len(dead)


class PointerDecoder(nn.Module):
    """Autoregressive decoder of an observation's token sequence from cell features.

    A GRU runs over the sequence; at each position its state makes a query that is scored against every
    cell's features (a pointer over cells) and an EOS score. Its input is the previous token of the same
    channel, as an embedding plus the features of the cell it names. Tokens the format does not allow
    (:meth:`TokenLayout.allowed`) are masked out of every softmax, so probability is spread over
    well-formed sequences only; so are tokens that break ``structure`` (the learned constraints; None: off,
    set by :meth:`WorldModel.constraints`).
    """

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.layout = cfg.layout
        self.structure = cfg.structure if cfg.constraints else None
        self.shape = cfg.obs_shape[1:]
        d, f = cfg.d_model, cfg.features
        h, w = self.shape
        self.context = nn.Sequential(nn.Flatten(), nn.Linear(f * h * w, d), nn.ReLU())
        self.tok = nn.Embedding(self.layout.vocab, d)
        self.pos = nn.Parameter(torch.randn(self.layout.length, d) * 0.02)
        self.cell_in = nn.Linear(f, d)
        self.rnn = nn.GRU(d, d, batch_first=True)
        self.query = nn.Linear(d, f)
        self.eos = nn.Linear(d, 1)

    def cell_tables(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What every position reads from the transition features, made once per batch: the cells'
        features (B, V, f) that queries are scored against, and the input projection of every token's cell
        (B, V + 2, d; EOS and BOS name no cell, so theirs is the projection of zeros)."""
        B, f = feats.shape[:2]
        cells = feats.flatten(2).transpose(1, 2)  # (B, V, f)
        padded = torch.cat([cells, cells.new_zeros(B, 2, f)], dim=1)
        return cells, self.cell_in(padded)

    def logits(
        self,
        feats: torch.Tensor,
        prev: torch.Tensor,
        h0: torch.Tensor | None = None,
        start: int = 0,
        tables: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Unmasked logits (B, P, V + 1) for positions ``start .. start + P - 1`` whose previous tokens are
        ``prev`` (B, P), and the GRU state after them. ``feats`` (B, f, h, w); ``h0`` continues an earlier
        call that ended at position ``start``; ``tables``: :meth:`cell_tables` of ``feats``, when a caller
        steps through the positions one by one (made here otherwise)."""
        cells, cell_emb = self.cell_tables(feats) if tables is None else tables
        P = prev.shape[1]
        x = (
            self.tok(prev)
            + self.pos[start : start + P]
            + cell_emb.gather(1, prev[..., None].expand(-1, -1, cell_emb.shape[-1]))
        )
        if h0 is None:
            h0 = self.context(feats)[None]
        y, h = self.rnn(x, h0.contiguous())
        scores = torch.bmm(self.query(y), cells.transpose(1, 2))
        return torch.cat([scores, self.eos(y)], dim=-1), h

    @staticmethod
    def _masked(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        return logits.masked_fill(~allowed, float("-inf")).log_softmax(-1)

    def log_prob(
        self, feats: torch.Tensor, tokens: torch.Tensor, current: torch.Tensor | None
    ) -> torch.Tensor:
        """(B,) exact log-probability of the token sequences ``tokens`` (B, L)."""
        prev = self.layout.previous(tokens)
        allowed = self.layout.allowed(prev, tokens=tokens, current=current, structure=self.structure)
        logp = self._masked(self.logits(feats, prev)[0], allowed)
        return logp.gather(2, tokens[..., None]).squeeze(2).sum(1)

    def log_probs(
        self, feats: torch.Tensor, tokens: torch.Tensor, current: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B,) :meth:`log_prob` as set, and (B,) the same without the learned constraints (None when they
        are off): one pass of the network, two normalisations. Training on both keeps the model right when
        its constraints are switched off."""
        prev = self.layout.previous(tokens)
        logits = self.logits(feats, prev)[0]
        free = self._masked(logits, self.layout.allowed(prev, tokens=tokens, current=current))
        lp_free = free.gather(2, tokens[..., None]).squeeze(2).sum(1)
        if self.structure is None:
            return lp_free, None
        allowed = self.layout.allowed(prev, tokens=tokens, current=current, structure=self.structure)
        lp = self._masked(logits, allowed).gather(2, tokens[..., None]).squeeze(2).sum(1)
        return lp, lp_free

    @torch.no_grad()
    def sample(
        self,
        feats: torch.Tensor,
        current: torch.Tensor | None,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled token sequences (B, L) and their log-probabilities (B,); ``temperature`` 0 is argmax."""
        layout = self.layout
        B, L = feats.shape[0], layout.length
        device = feats.device
        tokens = torch.full((B, L), layout.eos, dtype=torch.long, device=device)
        logp_total = torch.zeros(B, device=device)
        slot = [j for m in layout.max_count for j in range(m + 1)]  # slot_of() without a tensor
        prepared = None if self.structure is None else layout.prepare(self.structure, current, device)
        tables = self.cell_tables(feats)
        bos = torch.full((B,), layout.bos, device=device)
        h = None
        for p in range(L):
            prev = tokens[:, p - 1] if slot[p] > 0 else bos
            logits, h = self.logits(feats, prev[:, None], h, start=p, tables=tables)
            allowed = layout.allowed(prev, p, tokens, current, self.structure, prepared)
            logp = self._masked(logits[:, 0], allowed)
            if temperature == 0:
                choice = logp.argmax(-1)
            else:
                choice = categorical((logp / temperature).softmax(-1), generator)
            tokens[:, p] = choice
            logp_total += logp.gather(1, choice[:, None]).squeeze(1)
        return tokens, logp_total


@dataclass
class Prediction:
    """What one forward pass gives for a batch of B transitions."""

    feats: torch.Tensor  # (B, f, h, w) what the decoder reads
    reward_logits: torch.Tensor  # (B, K) over cfg.reward_values
    value: torch.Tensor | None  # (B,) V(o_t); None when forward skipped the observation heads
    opponent_logits: torch.Tensor | None  # (B, n_agents - 1, 5) the others' actions at o_t
    aux_loss: torch.Tensor  # () latent consistency and VQ terms (0 for direct)
    codes: torch.Tensor | None = None  # (B, groups) chosen codes (vq)
    cells: torch.Tensor | None = None  # (B, V, F) per-cell inputs of a mixture decoder's cell scorer


class WorldModel(nn.Module):
    """The learned transition model.

    Public calls take ``obs`` (B, 5, h, w) float, ``self_action`` (B,) int and ``other_actions``
    (B, n_agents - 1) int in player order (self skipped), as numpy arrays or tensors.
    """

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        _, h, w = cfg.obs_shape
        f, d = cfg.features, cfg.d_model
        if cfg.variant == "direct" and cfg.trunk != "conv":
            self.trunk = build_trunk(cfg)
        elif cfg.variant == "direct":
            self.trunk = SpatialTrunk(N_CHANNELS, f, cfg.n_agents, cfg.fusion)
        else:
            self.encoder = Encoder(cfg.obs_shape, cfg.latent)
            n_act = N_ACTIONS * cfg.n_agents
            dyn_in = cfg.latent + (n_act if cfg.fusion == "concat" else 0)
            self.dynamics = nn.Sequential(
                nn.Linear(dyn_in, cfg.latent), nn.ReLU(), nn.Linear(cfg.latent, cfg.latent)
            )
            if cfg.fusion == "film":
                self.fuse = nn.Linear(n_act, 2 * cfg.latent)
            self.unflatten = nn.Sequential(
                nn.Linear(cfg.latent, f * h * w), nn.Unflatten(1, (f, h, w)), nn.ReLU()
            )
            self.quantiser = (
                Quantiser(cfg.latent, cfg.vq_codes, cfg.vq_groups) if cfg.variant == "vq" else None
            )
        mlp = cfg.trunk != "conv"  # features are one d-vector, and the heads read flat observations
        n_feats = d if mlp else f * h * w
        if cfg.decoder == "mixture":
            self.decoder = build_mixture_decoder(cfg, n_feats)
        else:
            self.decoder = PointerDecoder(cfg)
        self.summary = nn.Sequential(nn.Flatten(), nn.Linear(n_feats, d), nn.ReLU())
        self.obs_summary = nn.Sequential(
            nn.Conv2d(N_CHANNELS, 32, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * h * w, d),
            nn.ReLU(),
        )
        if mlp:
            self.summary = nn.Identity()
            self.obs_summary = nn.Sequential(nn.Flatten(), nn.Linear(N_CHANNELS * h * w, d), nn.ReLU())
        self.reward_head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, len(cfg.reward_values)))
        self.value_head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 1))
        opp_in = d + (cfg.n_agents if cfg.agent_id else 0)
        self.opponent_head = nn.Sequential(
            nn.Linear(opp_in, d), nn.ReLU(), nn.Linear(d, (cfg.n_agents - 1) * N_ACTIONS)
        )
        self.register_buffer("reward_table", torch.tensor(cfg.reward_values, dtype=torch.float32))

    @classmethod
    def load(cls, path, game=None, map_location="cpu") -> WorldModel:
        """Load a checkpoint written by training (``weights_only``: a file cannot run code). Refuses, with a
        clear ``ValueError``, a damaged file, another format version, or (with ``game``) another game."""
        from gridmarl_wm.model.checkpoint import load_world_model

        return load_world_model(path, game, map_location)

    # ------------------------------------------------------------------ learned constraints
    @property
    def can_constrain(self) -> bool:
        """Whether this model has learned structure and a decoder that applies it (one that reads its
        ``structure`` attribute, None meaning off)."""
        return self.cfg.structure is not None and hasattr(self.decoder, "structure")

    @property
    def constraints_on(self) -> bool:
        """Whether decoding applies the learned structure now."""
        return getattr(self.decoder, "structure", None) is not None

    def set_constraints(self, on: bool) -> WorldModel:
        """Apply the learned structure (``cfg.structure``) when decoding, or not. Returns the model."""
        if not isinstance(on, bool):
            raise TypeError(f"on must be a bool, got {on!r}")
        if on and not self.can_constrain:
            raise ValueError(
                "this model has no learned structure to apply (cfg.structure is None, or its decoder "
                "applies none)"
            )
        if hasattr(self.decoder, "structure"):
            self.decoder.structure = self.cfg.structure if on else None
        return self

    @contextlib.contextmanager
    def constraints(self, on: bool) -> Iterator[WorldModel]:
        """``with model.constraints(False): ...`` decodes without (or with) the learned structure inside
        the block, then restores the previous setting."""
        before = self.constraints_on
        self.set_constraints(on)
        try:
            yield self
        finally:
            self.set_constraints(before)

    # ------------------------------------------------------------------ plumbing
    @property
    def device(self) -> torch.device:
        return self.reward_table.device

    def _tensor(self, x, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(x, device=self.device).to(dtype)

    def joint(self, self_action, other_actions) -> torch.Tensor:
        """(B, n_agents) joint action, own action first."""
        a = self._tensor(self_action, torch.long).reshape(-1, 1)
        o = self._tensor(other_actions, torch.long).reshape(a.shape[0], self.cfg.n_agents - 1)
        return torch.cat([a, o], dim=1)

    def _encode(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        z = self.encoder(obs)
        if self.quantiser is None:
            return z, z.new_zeros(()), None
        return self.quantiser(z)

    def forward(
        self,
        obs: torch.Tensor,
        joint: torch.Tensor,
        next_obs: torch.Tensor | None = None,
        agent: torch.Tensor | None = None,
        heads: bool = True,
    ) -> Prediction:
        """Features for the decoder and every head. ``joint`` (B, n_agents): own action first. Without
        ``heads`` the heads that read ``obs`` only are skipped (``value``, ``opponent_logits`` None)."""
        cfg = self.cfg
        aux = obs.new_zeros(())
        codes = None
        cells = None
        scored = cfg.decoder == "mixture" and cfg.mixture_scorer > 0
        if scored and hasattr(getattr(self, "trunk", None), "with_cells"):
            feats, cells = self.trunk.with_cells(obs, joint)
        elif cfg.variant == "direct":
            feats = self.trunk(obs, joint)
        else:
            z, aux, codes = self._encode(obs)
            if cfg.variant == "autoencoder":
                z_next = z
            else:
                actions = _one_hot_actions(joint)
                if cfg.fusion == "concat":
                    z_next = z + self.dynamics(torch.cat([z, actions], dim=1))
                else:
                    scale, shift = self.fuse(actions).chunk(2, dim=1)
                    z_next = z + self.dynamics(z * (1 + scale) + shift)
                if next_obs is not None:
                    target, aux_next, _ = self._encode(next_obs)
                    aux = aux + aux_next + F.mse_loss(z_next, target.detach())
            feats = self.unflatten(z_next)
        if scored and cells is None:  # the cell scorer reads the observation's counts at each cell
            cells = obs.flatten(2).transpose(1, 2)
        value, opponent_logits = self.observation_heads(obs, agent) if heads else (None, None)
        return Prediction(
            feats=feats,
            reward_logits=self.reward_head(self.summary(feats)),
            value=value,
            opponent_logits=opponent_logits,
            aux_loss=aux,
            codes=codes,
            cells=cells,
        )

    def observation_heads(
        self, obs: torch.Tensor, agent: torch.Tensor | None = None, value: bool = True
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The heads that read the current observation only: V(o) (B,) (None without ``value``) and the
        others' action logits (B, n_agents - 1, 5). Cheaper than :meth:`forward`: no transition features."""
        cfg = self.cfg
        o = self.obs_summary(obs)
        if cfg.agent_id:
            ident = (
                o.new_zeros(o.shape[0], cfg.n_agents)
                if agent is None
                else F.one_hot(agent, cfg.n_agents).float()
            )
            o_opp = torch.cat([o, ident], 1)
        else:
            o_opp = o
        logits = self.opponent_head(o_opp).reshape(-1, cfg.n_agents - 1, N_ACTIONS)
        return (self.value_head(o).squeeze(1) if value else None), logits

    def decode_log_prob(self, pred: Prediction, obs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B,) log-probability of ``target`` observations under the decoder, given a forward pass."""
        if self.cfg.decoder == "mixture":
            return self.decoder.log_prob(pred.feats, target, pred.cells)
        tokens = self.cfg.layout.encode(target)
        return self.decoder.log_prob(pred.feats, tokens, obs)

    def decode_log_probs(
        self, pred: Prediction, obs: torch.Tensor, target: torch.Tensor, features_alone: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B,) :meth:`decode_log_prob`, and (B,) a second log-probability from the same pass where the decoder
        gives one (else None): the pointer decoder's without the learned constraints (while they are on);
        with ``features_alone``, a mixture decoder's under its features' components alone (with a cell
        scorer, see ``MixtureDecoder.log_probs``)."""
        if self.cfg.decoder == "mixture":
            if features_alone and self.cfg.mixture_scorer:
                return self.decoder.log_probs(pred.feats, target, pred.cells)
            return self.decoder.log_prob(pred.feats, target, pred.cells), None
        return self.decoder.log_probs(pred.feats, self.cfg.layout.encode(target), obs)

    # ------------------------------------------------------------------ public calls
    def _candidates(self, obs, self_action, other_actions, next_obs, source):
        """The decoder's inputs for scoring candidates: features and current observations, one row per
        candidate, and the candidates themselves (``obs`` in the autoencoder diagnostic)."""
        obs = self._tensor(obs, torch.float32)
        pred = self(obs, self.joint(self_action, other_actions), heads=False)
        feats, cells = pred.feats, pred.cells
        if source is not None:
            src = self._tensor(source, torch.long)
            feats, obs = feats[src], obs[src]
            cells = None if cells is None else cells[src]
        target = obs if self.cfg.variant == "autoencoder" else self._tensor(next_obs, torch.float32)
        return feats, obs, target, cells

    def _tokens(self, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``target``'s token sequences and whether they write it exactly (a channel over its capacity
        does not: the model gives it probability 0)."""
        layout = self.cfg.layout
        tokens = layout.encode(target)
        return tokens, (layout.decode(tokens, self.cfg.obs_shape[1:]) == target).flatten(1).all(1)

    @torch.no_grad()
    def log_prob(self, obs, self_action, other_actions, next_obs, source=None) -> torch.Tensor:
        """Exact log-probability the model gives ``next_obs`` (``obs`` itself in the autoencoder
        diagnostic); -inf for an observation the model cannot produce.

        Without ``source``: one next observation per transition, (B,). With ``source`` (M,) ints: ``next_obs``
        holds M candidates, candidate m of transition ``source[m]`` (the model runs once per transition).
        """
        feats, obs, target, cells = self._candidates(obs, self_action, other_actions, next_obs, source)
        if self.cfg.decoder == "mixture":  # -inf already for what it cannot express
            return self.decoder.log_prob(feats, target, cells)
        tokens, representable = self._tokens(target)
        lp = self.decoder.log_prob(feats, tokens, obs)
        return torch.where(representable, lp, torch.full_like(lp, -math.inf))

    @torch.no_grad()
    def log_prob_both_ways(
        self, obs, self_action, other_actions, next_obs, source=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`log_prob` with the learned constraints applied and without them, from one forward and
        one decoder pass (two normalisations of the same logits), whatever the model is set to."""
        if not self.can_constrain:
            raise ValueError("this model has no learned constraints to switch")
        feats, obs, target, _ = self._candidates(obs, self_action, other_actions, next_obs, source)
        tokens, representable = self._tokens(target)
        with self.constraints(True):
            lp_on, lp_off = self.decoder.log_probs(feats, tokens, obs)
        return tuple(torch.where(representable, lp, torch.full_like(lp, -math.inf)) for lp in (lp_on, lp_off))

    @torch.no_grad()
    def sample(
        self,
        obs,
        self_action,
        other_actions,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        uniforms: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A sampled next observation (B, 5, h, w) and reward (B,). At ``temperature`` 0 both are the most
        likely ones (the observation token by token).

        With a mixture decoder the draws can be given instead of ``generator``: ``uniforms`` (B,
        :attr:`uniform_draws`) in [0, 1), the reward's first, then the decoder's (the sample is then a
        function of its inputs, which ``torch.compile`` can trace)."""
        obs = self._tensor(obs, torch.float32)
        if uniforms is not None:
            if self.uniform_draws is None:
                raise ValueError(
                    f"uniforms= needs a model with a mixture decoder; this one has decoder="
                    f"{self.cfg.decoder!r}, which draws its own: pass generator= instead"
                )
            if tuple(uniforms.shape) != (obs.shape[0], self.uniform_draws):
                raise ValueError(
                    f"uniforms must have shape {(obs.shape[0], self.uniform_draws)} (games, uniform_draws), "
                    f"got {tuple(uniforms.shape)}"
                )
        pred = self(obs, self.joint(self_action, other_actions), heads=False)
        if self.cfg.decoder == "mixture":
            drawn = None if uniforms is None else uniforms[:, 1:]
            nxt = self.decoder.sample(pred.feats, generator, temperature, pred.cells, drawn)
        else:
            tokens, _ = self.decoder.sample(pred.feats, obs, generator, temperature)
            nxt = self.cfg.layout.decode(tokens, self.cfg.obs_shape[1:])
        if temperature == 0:
            r_idx = pred.reward_logits.argmax(-1)
        else:
            r_idx = categorical(
                weights(pred.reward_logits / temperature),
                generator,
                None if uniforms is None else uniforms[:, 0],
            )
        return nxt, self.reward_table[r_idx]

    @property
    def uniform_draws(self) -> int | None:
        """How many uniform numbers :meth:`sample` uses per game when they are given (``uniforms=``): the
        reward's draw and the mixture decoder's; None for the pointer decoder, which draws its own."""
        if self.cfg.decoder != "mixture":
            return None
        return 1 + self.decoder.uniform_draws

    @torch.no_grad()
    def reward(self, obs, self_action, other_actions) -> torch.Tensor:
        """(B,) the most likely reward."""
        pred = self(self._tensor(obs, torch.float32), self.joint(self_action, other_actions), heads=False)
        return self.reward_table[pred.reward_logits.argmax(-1)]

    @torch.no_grad()
    def opponent_probs(self, obs, agent=None) -> torch.Tensor:
        """(B, n_agents - 1, 5) the others' action distribution at ``obs``."""
        return self.opponent_logits(obs, agent).softmax(-1)

    @torch.no_grad()
    def opponent_logits(self, obs, agent=None) -> torch.Tensor:
        """(B, n_agents - 1, 5) the logits of :meth:`opponent_probs` (what a sampler draws from)."""
        if self.cfg.agent_id and agent is None:
            raise ValueError("this model's opponent head takes the observer's player index: pass agent=")
        obs = self._tensor(obs, torch.float32)
        a = None if agent is None else self._tensor(agent, torch.long)
        return self.observation_heads(obs, a, value=False)[1]

    @torch.no_grad()
    def value(self, obs) -> torch.Tensor:
        """(B,) V(o)."""
        return self.observation_heads(self._tensor(obs, torch.float32))[0]

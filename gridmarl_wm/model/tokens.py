"""Observations as short token sequences, so that a model can give them exact probabilities.

Every channel of an observation is a multiset of cells (a cell may hold a count). It is written as its cells
in non-decreasing order (a cell repeated as often as its count), followed by ``EOS``: the sorted list is
unique, so the probability of the sequence is the probability of the observation. Channel c gets
``max_count[c] + 1`` positions; positions after its ``EOS`` are padding.

A model emits the sequence left to right over all channels. :class:`TokenLayout` says, for any prefix, which
next tokens the *format* allows (cells in non-decreasing order, ``EOS`` once the channel is full): that is
all a model knows unless it applies a :class:`LearnedStructure`, facts about observations and their changes
that the training data showed (:func:`learn_structure`), which it may then enforce. Nothing about the game
is written here: the layout's sizes and every constraint come from data.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

N_CHANNELS = 5
#: What each observation channel shows (for listings only; nothing depends on it).
CHANNEL_NAMES = ("self", "other players", "own coins", "others' coins", "walls")


@dataclass(frozen=True)
class TokenLayout:
    """Where each channel's tokens sit in the sequence.

    Attributes:
        n_cells: cells per observation plane (h * w); token ``n_cells`` is ``EOS``.
        max_count: how many objects each channel can hold in the sequence (its capacity). Set from data:
            the most the data showed plus a margin (see ``training.trainer.model_config_for``). An
            observation with more objects in a channel cannot be written and gets log-probability -inf.
    """

    n_cells: int
    max_count: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.max_count) != N_CHANNELS or any(int(m) < 0 for m in self.max_count):
            raise ValueError(
                f"max_count needs one int >= 0 per channel ({N_CHANNELS}), got {self.max_count!r}"
            )

    @property
    def eos(self) -> int:
        return self.n_cells

    @property
    def vocab(self) -> int:
        """Cells, EOS and BOS (the 'previous token' of a channel's first position)."""
        return self.n_cells + 2

    @property
    def bos(self) -> int:
        return self.n_cells + 1

    @property
    def length(self) -> int:
        return sum(m + 1 for m in self.max_count)

    def on(self, device: torch.device | str) -> _DeviceTables:
        """This layout's constant index tensors on ``device``, made once: a step that samples or scores
        observations copies nothing from the host (no synchronisation on a GPU)."""
        return _device_tables(self, torch.device(device))

    def channel_of(self) -> torch.Tensor:
        """(L,) channel of every position."""
        return torch.cat([torch.full((m + 1,), c, dtype=torch.long) for c, m in enumerate(self.max_count)])

    def slot_of(self) -> torch.Tensor:
        """(L,) index of every position within its channel."""
        return torch.cat([torch.arange(m + 1) for m in self.max_count])

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, 5, h, w) observations -> (B, L) tokens (EOS after each channel's cells, then EOS padding).
        A channel with more objects than its capacity keeps its first ``max_count[c]`` (no EOS)."""
        B = obs.shape[0]
        counts = obs.reshape(B, N_CHANNELS, self.n_cells).round().long()
        cum = counts.cumsum(-1)  # (B, 5, V)
        out = []
        for c, m in enumerate(self.max_count):
            j = torch.arange(m + 1, device=obs.device)
            # the j-th object of the channel lies on the first cell whose running count exceeds j
            out.append((cum[:, c, None, :] <= j[None, :, None]).sum(-1))  # (B, m + 1); n_cells means EOS
        return torch.cat(out, dim=1)

    def decode(self, tokens: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """(B, L) tokens -> (B, 5, h, w) float32 observations."""
        B = tokens.shape[0]
        chan = self.on(tokens.device).chan
        planes = torch.zeros(B, N_CHANNELS, self.n_cells + 1, device=tokens.device)
        index = tokens.clamp(max=self.n_cells)
        planes.view(B, -1).scatter_add_(
            1, chan[None, :] * (self.n_cells + 1) + index, torch.ones_like(index, dtype=planes.dtype)
        )
        return planes[:, :, : self.n_cells].reshape(B, N_CHANNELS, *shape)

    def previous(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L): the token before each position within its channel, BOS at a channel's start."""
        prev = torch.roll(tokens, 1, dims=1)
        return torch.where(self.on(tokens.device).slot[None, :] == 0, self.bos, prev)

    def allowed(
        self,
        prev: torch.Tensor,
        position: int | None = None,
        tokens: torch.Tensor | None = None,
        current: torch.Tensor | None = None,
        structure: LearnedStructure | None = None,
        prepared: PreparedConstraints | None = None,
    ) -> torch.Tensor:
        """Which tokens may come next, (B, L, V + 1) bool, or (B, V + 1) at one ``position``.

        Args:
            prev: the previous token of the same channel (BOS at its start), (B, L), or (B,) with
                ``position``.
            position: score one position of a sequence being sampled (None: every position at once).
            tokens: (B, L) the sequence so far (positions from ``position`` on may hold anything).
            current: (B, 5, h, w) the observation the step starts from.
            structure: learned constraints to apply (None: the token format only).
            prepared: :meth:`prepare` of ``structure`` and ``current``, made once for every position of a
                sequence being sampled (else it is made here).

        The format alone: after EOS only EOS (padding); cells in non-decreasing order; the position after
        ``max_count`` objects is EOS. With ``structure`` (see :class:`LearnedStructure`), also: cells
        strictly increase in channels never seen stacked; no more objects than the data showed; no cell a
        channel never held; no cell of a channel it never shares a cell with (earlier channels of the
        sequence, and static channels of ``current``); with ``current``, channels whose number of objects
        never changed keep it, and static channels repeat ``current``. Where the constraints leave no token
        at all (a prefix the data never showed), the format's tokens are allowed instead, so every prefix
        has a next token and the probabilities still sum to one.
        """
        device = prev.device
        tables = self.on(device)
        chan, slot = tables.chan, tables.slot
        if position is not None:
            chan, slot, prev = chan[position : position + 1], slot[position : position + 1], prev[:, None]
        V = self.n_cells
        cells = tables.cells  # (V + 1,) with EOS last
        is_eos = cells == V
        p = torch.where(prev != self.bos, prev, torch.full_like(prev, -1))
        done = prev == self.eos
        fmt = cells[None, None, :] >= p[..., None]
        fmt[..., V] = True  # EOS is always possible...
        fmt = torch.where(done[..., None], is_eos, fmt)  # ...and the only token after EOS
        full = slot == tables.max_count[chan]
        fmt = torch.where(full[None, :, None], is_eos, fmt)
        if structure is None:
            return fmt[:, 0] if position is not None else fmt
        if prepared is None:
            prepared = self.prepare(structure, current, device)
        st = structure.on(self, device)
        at = slice(None) if position is None else slice(position, position + 1)
        if (
            position is not None
            and prepared.forced is not None
            and st.static_channels[tables.host_chan[position]]
        ):
            return prepared.forced[:, position]  # a static channel repeats the current observation
        ok = fmt & (st.stacks[chan][None, :, None] | (cells[None, None, :] != p[..., None]) | is_eos)
        ok = ok & prepared.fixed[:, at]
        forbid = self._excluded(tokens, position, st)  # (B, 5, V) or None
        if forbid is not None:
            ok[..., :V] &= ~forbid[:, chan]
        if prepared.static_forbid is not None:
            forbid = prepared.static_forbid if forbid is None else forbid | prepared.static_forbid
        lookahead_here = position is None or st.lookahead_channels[tables.host_chan[position]]
        if prepared.n_obj is not None and st.any_lookahead and lookahead_here:
            # in a kept channel that does not stack, leave enough usable cells after this one for the
            # objects still to come (else the sampler would walk into a dead end)
            usable = ~st.empty[chan][None]  # (1, P, V)
            if forbid is not None:
                usable = usable & ~forbid[:, chan]
            usable = usable.long()
            free_after = usable.flip(-1).cumsum(-1).flip(-1) - usable  # usable cells with a higher index
            enough = free_after >= (prepared.n_obj[:, at] - slot[None, :] - 1)[..., None]
            ok[..., :V] &= enough | ~st.lookahead[chan][None, :, None]
        if position is None and prepared.forced is not None:
            ok = torch.where(st.static[chan][None, :, None], prepared.forced, ok)
        dead = ~ok.any(-1, keepdim=True)
        ok = torch.where(dead, fmt, ok)
        return ok[:, 0] if position is not None else ok

    def prepare(
        self,
        structure: LearnedStructure,
        current: torch.Tensor | None,
        device: torch.device | str | None = None,
    ) -> PreparedConstraints:
        """What ``structure`` allows at every position whatever the tokens before it, given ``current``
        (B, 5, h, w) (or nothing: then on ``device``), for :meth:`allowed`."""
        device = current.device if current is not None else torch.device(device or "cpu")
        tables = self.on(device)
        st = structure.on(self, device)
        chan, slot, cells = tables.chan, tables.slot, tables.cells
        V = self.n_cells
        is_eos = cells == V
        fixed = ~((slot >= st.max_seen[chan])[:, None] & ~is_eos[None, :])  # (L, V + 1)
        fixed[:, :V] &= ~st.empty[chan]
        fixed = fixed[None]
        if current is None:
            return PreparedConstraints(fixed, None, None, None)
        B = current.shape[0]
        counts = current.reshape(B, N_CHANNELS, V).round().long()
        n_obj = counts.sum(-1)[:, chan]  # (B, L)
        kept = st.counts_kept[chan][None, :]
        need_more = slot[None, :] < n_obj
        fixed = fixed.expand(B, -1, -1).clone()
        fixed[..., V] &= ~(kept & need_more)  # no EOS before a kept channel has all its objects
        fixed[..., :V] &= ~(kept & ~need_more)[..., None]  # and no object after
        static_forbid = None
        if st.any_static_exclusive:
            held = (counts > 0).float()
            static_forbid = torch.einsum("ac,bav->bcv", st.excludes_from_static, held) > 0  # (B, 5, V)
            fixed[..., :V] &= ~static_forbid[:, chan]
        forced = None
        if any(structure.static):
            forced = cells[None, None, :] == self.encode(current)[..., None]  # (B, L, V + 1)
        return PreparedConstraints(fixed, n_obj, static_forbid, forced)

    def _excluded(
        self, tokens: torch.Tensor | None, position: int | None, st: _StructureTables
    ) -> torch.Tensor | None:
        """(B, 5, V): for each channel, the cells it may not use because an earlier channel of ``tokens`` that
        it never shares a cell with holds them (only what has been emitted before ``position`` counts).
        None: no such pair."""
        if tokens is None or not st.any_exclusive:
            return None
        V = self.n_cells
        B, device = tokens.shape[0], tokens.device
        tables = self.on(device)
        chan = tables.chan
        if position is not None:
            tokens = torch.where(tables.positions < position, tokens, self.eos)
        occupied = torch.zeros(B, N_CHANNELS * (V + 1), device=device)
        occupied.scatter_(1, chan[None, :] * (V + 1) + tokens.clamp(max=V), 1.0)
        occupied = occupied.view(B, N_CHANNELS, V + 1)[..., :V]
        return torch.einsum("ac,bav->bcv", st.excludes_later, occupied) > 0


@dataclass(frozen=True)
class PreparedConstraints:
    """What learned constraints allow at every position of a sequence whatever the tokens before it, given
    the observation a step starts from (:meth:`TokenLayout.prepare`).

    Attributes:
        fixed: (B or 1, L, V + 1) bool, tokens allowed so far.
        n_obj: (B, L) objects of each position's channel in the current observation (None without one).
        static_forbid: (B, 5, V) cells each channel may not use because a static channel it never shares a
            cell with holds them now (None: no such pair, or no current observation).
        forced: (B, L, V + 1) the current observation's own tokens, which static channels repeat (None: no
            static channel, or no current observation).
    """

    fixed: torch.Tensor
    n_obj: torch.Tensor | None
    static_forbid: torch.Tensor | None
    forced: torch.Tensor | None


@dataclass(frozen=True)
class LearnedStructure:
    """What the training data showed about observations and how they change, as constraints a decoder can
    enforce (:meth:`allowed`). Learned by :func:`learn_structure`; stored in the model config.

    Every field is a fact about the data, per observation channel (index 0..4):

    Attributes:
        max_count: the most objects the channel held in any observation.
        stacks: the channel held a count > 1 on one cell somewhere.
        counts_kept: no transition changed the channel's number of objects.
        static: no transition changed the channel at all.
        exclusive: channel pairs (a, b), a < b, that never held the same cell in a next observation.
        empty_cells: per channel, the cells it never held in a next observation.
        transitions: how many transitions these facts come from.
    """

    max_count: tuple[int, ...]
    stacks: tuple[bool, ...]
    counts_kept: tuple[bool, ...]
    static: tuple[bool, ...]
    exclusive: tuple[tuple[int, int], ...]
    empty_cells: tuple[tuple[int, ...], ...]
    transitions: int = 0

    def __post_init__(self) -> None:
        for name in ("max_count", "stacks", "counts_kept", "static", "empty_cells"):
            if len(getattr(self, name)) != N_CHANNELS:
                raise ValueError(f"LearnedStructure.{name} needs one entry per channel ({N_CHANNELS})")
        for a, b in self.exclusive:
            if not 0 <= a < b < N_CHANNELS:
                raise ValueError(
                    f"LearnedStructure.exclusive pairs must be (a, b) with 0 <= a < b < 5, got {(a, b)}"
                )

    @staticmethod
    def from_dict(d: dict[str, Any]) -> LearnedStructure:
        """Rebuild from :func:`dataclasses.asdict` output (lists where tuples were, as a checkpoint holds it)."""
        return LearnedStructure(
            max_count=tuple(int(m) for m in d["max_count"]),
            stacks=tuple(bool(s) for s in d["stacks"]),
            counts_kept=tuple(bool(s) for s in d["counts_kept"]),
            static=tuple(bool(s) for s in d["static"]),
            exclusive=tuple((int(a), int(b)) for a, b in d["exclusive"]),
            empty_cells=tuple(tuple(int(v) for v in cells) for cells in d["empty_cells"]),
            transitions=int(d.get("transitions", 0)),
        )

    def describe(self) -> dict[str, Any]:
        """The learned facts by channel name, for listings (``gridmarl-wm eval``)."""

        def names(flags: Sequence[bool]) -> list[str]:
            return [CHANNEL_NAMES[c] for c, on in enumerate(flags) if on]

        return {
            "from_transitions": self.transitions,
            "max_objects": dict(zip(CHANNEL_NAMES, self.max_count, strict=True)),
            "may_stack": names(self.stacks),
            "counts_kept": names(self.counts_kept),
            "static": names(self.static),
            "never_share_a_cell": [f"{CHANNEL_NAMES[a]} / {CHANNEL_NAMES[b]}" for a, b in self.exclusive],
            "cells_never_held": {
                CHANNEL_NAMES[c]: list(cells) for c, cells in enumerate(self.empty_cells) if cells
            },
        }

    def on(self, layout: TokenLayout, device: torch.device | str) -> _StructureTables:
        """These constraints as tensors on ``device`` for ``layout``, made once per device."""
        return _structure_tables(self, layout, torch.device(device))

    def allowed(
        self,
        layout: TokenLayout,
        prev: torch.Tensor,
        position: int | None = None,
        tokens: torch.Tensor | None = None,
        current: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The token mask with these constraints applied: :meth:`TokenLayout.allowed` with ``structure``."""
        return layout.allowed(prev, position, tokens, current, structure=self)

    def prepare(self, layout: TokenLayout, current: torch.Tensor | None) -> PreparedConstraints:
        """:meth:`TokenLayout.prepare` with these constraints: made once per sampled sequence."""
        return layout.prepare(self, current)

    def admits(self, obs: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        """(M,) bool: which transitions (``obs``, ``next_obs``), (M, 5, h, w) each, keep every learned
        fact (a check, independent of any token layout)."""
        o = np.rint(np.asarray(obs)).reshape(len(obs), N_CHANNELS, -1).astype(np.int64)
        n = np.rint(np.asarray(next_obs)).reshape(len(next_obs), N_CHANNELS, -1).astype(np.int64)
        ok = np.ones(len(n), dtype=bool)
        for c in range(N_CHANNELS):
            ok &= n[:, c].sum(1) <= self.max_count[c]
            if not self.stacks[c]:
                ok &= n[:, c].max(1) <= 1
            if self.counts_kept[c]:
                ok &= n[:, c].sum(1) == o[:, c].sum(1)
            if self.static[c]:
                ok &= (n[:, c] == o[:, c]).all(1)
            if self.empty_cells[c]:
                ok &= n[:, c][:, list(self.empty_cells[c])].sum(1) == 0
        for a, b in self.exclusive:
            ok &= ~((n[:, a] > 0) & (n[:, b] > 0)).any(1)
        return ok


def learn_structure(obs: np.ndarray, next_obs: np.ndarray, chunk: int = 1 << 16) -> LearnedStructure:
    """The :class:`LearnedStructure` that transitions (``obs`` -> ``next_obs``), (M, 5, h, w) each, show."""
    obs, next_obs = np.asarray(obs), np.asarray(next_obs)
    if obs.shape != next_obs.shape or obs.ndim != 4 or obs.shape[1] != N_CHANNELS or len(obs) == 0:
        raise ValueError(
            f"obs and next_obs must both have shape (M, 5, h, w) with M >= 1, got {obs.shape} and {next_obs.shape}"
        )
    M, V = len(obs), obs.shape[2] * obs.shape[3]
    most = np.zeros(N_CHANNELS, dtype=np.int64)
    stacks = np.zeros(N_CHANNELS, dtype=bool)
    changed_count = np.zeros(N_CHANNELS, dtype=bool)
    changed = np.zeros(N_CHANNELS, dtype=bool)
    shared = np.zeros((N_CHANNELS, N_CHANNELS), dtype=bool)
    held = np.zeros((N_CHANNELS, V), dtype=bool)
    for start in range(0, M, chunk):
        o = np.rint(obs[start : start + chunk]).reshape(-1, N_CHANNELS, V).astype(np.int64)
        n = np.rint(next_obs[start : start + chunk]).reshape(-1, N_CHANNELS, V).astype(np.int64)
        n_o, n_n = o.sum(-1), n.sum(-1)  # (m, 5)
        most = np.maximum(most, np.maximum(n_o.max(0), n_n.max(0)))
        stacks |= (o.max(-1) > 1).any(0) | (n.max(-1) > 1).any(0)
        changed_count |= (n_o != n_n).any(0)
        changed |= (o != n).any(-1).any(0)
        present = n > 0  # (m, 5, V)
        shared |= np.einsum("mav,mbv->ab", present, present, dtype=np.int64) > 0
        held |= present.any(0)
    return LearnedStructure(
        max_count=tuple(int(m) for m in most),
        stacks=tuple(bool(s) for s in stacks),
        counts_kept=tuple(bool(not c) for c in changed_count),
        static=tuple(bool(not c) for c in changed),
        exclusive=tuple(
            (a, b) for a in range(N_CHANNELS) for b in range(a + 1, N_CHANNELS) if not shared[a, b]
        ),
        empty_cells=tuple(tuple(int(v) for v in np.flatnonzero(~held[c])) for c in range(N_CHANNELS)),
        transitions=int(M),
    )


@dataclass(frozen=True)
class _DeviceTables:
    chan: torch.Tensor  # (L,) channel of every position
    slot: torch.Tensor  # (L,) index within its channel
    positions: torch.Tensor  # (L,) 0 .. L - 1
    cells: torch.Tensor  # (V + 1,) token values, EOS last
    max_count: torch.Tensor  # (5,) capacity of every channel
    host_chan: tuple[int, ...]  # (L,) channel of every position, on the host (for Python-level choices)


@functools.lru_cache(maxsize=64)
def _device_tables(layout: TokenLayout, device: torch.device) -> _DeviceTables:
    return _DeviceTables(
        chan=layout.channel_of().to(device),
        slot=layout.slot_of().to(device),
        positions=torch.arange(layout.length, device=device),
        cells=torch.arange(layout.n_cells + 1, device=device),
        max_count=torch.tensor(layout.max_count, device=device),
        host_chan=tuple(layout.channel_of().tolist()),
    )


@dataclass(frozen=True)
class _StructureTables:
    max_seen: torch.Tensor  # (5,) most objects seen per channel
    stacks: torch.Tensor  # (5,) bool
    counts_kept: torch.Tensor  # (5,) bool
    static: torch.Tensor  # (5,) bool
    empty: torch.Tensor  # (5, V) bool: cells a channel never held
    excludes_later: torch.Tensor  # (5, 5) float: [a, c] = 1 when a < c never share a cell
    excludes_from_static: torch.Tensor  # (5, 5) float: [a, c] = 1 when static a and c never share a cell
    lookahead: torch.Tensor  # (5,) bool: kept counts in a channel that does not stack
    any_exclusive: bool
    any_static_exclusive: bool
    any_lookahead: bool
    static_channels: tuple[bool, ...]
    lookahead_channels: tuple[bool, ...]


@functools.lru_cache(maxsize=64)
def _structure_tables(
    structure: LearnedStructure, layout: TokenLayout, device: torch.device
) -> _StructureTables:
    V = layout.n_cells
    empty = torch.zeros(N_CHANNELS, V, dtype=torch.bool)
    for c, cells in enumerate(structure.empty_cells):
        empty[c, [v for v in cells if v < V]] = True
    later = torch.zeros(N_CHANNELS, N_CHANNELS)
    from_static = torch.zeros(N_CHANNELS, N_CHANNELS)
    for a, b in structure.exclusive:
        later[a, b] = 1.0
        if structure.static[a]:
            from_static[a, b] = 1.0
        if structure.static[b]:
            from_static[b, a] = 1.0
    lookahead = tuple(k and not m for k, m in zip(structure.counts_kept, structure.stacks, strict=True))
    return _StructureTables(
        max_seen=torch.tensor(structure.max_count, device=device),
        stacks=torch.tensor(structure.stacks, device=device),
        counts_kept=torch.tensor(structure.counts_kept, device=device),
        static=torch.tensor(structure.static, device=device),
        empty=empty.to(device),
        excludes_later=later.to(device),
        excludes_from_static=from_static.to(device),
        lookahead=torch.tensor(lookahead, device=device),
        any_exclusive=bool(structure.exclusive),
        any_static_exclusive=bool(from_static.any()),
        any_lookahead=any(lookahead),
        static_channels=tuple(structure.static),
        lookahead_channels=lookahead,
    )

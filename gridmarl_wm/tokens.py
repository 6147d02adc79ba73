"""Observations as short token sequences, so that a model can give them exact probabilities.

Every channel of an observation is a multiset of cells (channel 1 counts players, the others are 0/1).
It is written as its cells in increasing order (repeats allowed where counts are), followed by ``EOS``:
the sorted list is unique, so the probability of the sequence is the probability of the observation.
Channel c gets ``max_count[c] + 1`` positions; positions after its ``EOS`` are padding.

A model emits the sequence left to right over all channels. :class:`TokenLayout` supplies, for any prefix,
which next tokens are structurally possible (cells in increasing order, ``EOS`` once the channel is full)
and, optionally in a full view, the *observation invariants*: every channel has as many objects as in the
current observation and nothing lies on a wall cell of it. These describe what a full-view observation is,
not how the game moves.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from gridmarl import GridConfig

N_CHANNELS = 5
COUNT_CHANNELS = (1,)  # channels whose cells may repeat (several other players on one cell)


@dataclass(frozen=True)
class TokenLayout:
    """Where each channel's tokens sit in the sequence.

    Attributes:
        n_cells: cells per observation plane (h * w); token ``n_cells`` is ``EOS``.
        max_count: most objects per channel.
        exclusive: channel pairs (a, b), a < b, that never share a cell (learned from data, see
            :func:`exclusive_channels`): channel b may not use a cell that channel a holds.
    """

    n_cells: int
    max_count: tuple[int, ...]
    exclusive: tuple[tuple[int, int], ...] = ()

    @staticmethod
    def for_game(cfg: GridConfig) -> TokenLayout:
        """The layout for a game's observations (shape information only)."""
        h, w = cfg.obs_shape[1:]
        others = cfg.n_agents - 1
        walls = len(cfg.walls) if cfg.view_size is None else h * w
        return TokenLayout(h * w, (1, others, cfg.coins_per_agent, others * cfg.coins_per_agent, walls))

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
        """(B, 5, h, w) observations -> (B, L) tokens (EOS after each channel's cells, then EOS padding)."""
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

    def invariants(self, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What a full-view step keeps from ``current`` (B, 5, h, w): objects per channel (B, 5), wall
        cells (B, V) and the wall channel's tokens (B, L) (only its positions matter)."""
        B = current.shape[0]
        counts = current.reshape(B, N_CHANNELS, self.n_cells).round().long()
        return counts.sum(-1), counts[:, 4] > 0, self.encode(current)

    def allowed(
        self,
        prev: torch.Tensor,
        position: int | None = None,
        invariants: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
        tokens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Which tokens may come next, (B, L, V + 1) bool, or (B, V + 1) at one ``position``.

        ``prev`` holds the previous token of the same channel (BOS at its start), (B, L) or (B,) with
        ``position``. Structural rules: after EOS only EOS (padding); cells strictly increase
        (non-decreasing in count channels); the position after ``max_count`` objects must be EOS. With
        ``tokens`` (the sequence so far; later positions may hold anything) and ``exclusive`` pairs: no cell
        of a channel that excludes an earlier one. With ``invariants`` (:meth:`invariants` of the
        observation the step starts from, in a full view): every channel keeps its number of objects,
        nothing lies on a wall, and the walls stay.
        """
        device = prev.device
        tables = self.on(device)
        chan, slot = tables.chan, tables.slot
        if position is not None:
            chan, slot, prev = chan[position : position + 1], slot[position : position + 1], prev[:, None]
        V = self.n_cells
        cells = tables.cells  # (V + 1,) with EOS last
        is_count = tables.is_count
        p = torch.where(prev != self.bos, prev, torch.full_like(prev, -1))
        ok = torch.where(
            is_count[chan][None, :, None],
            cells[None, None, :] >= p[..., None],
            cells[None, None, :] > p[..., None],
        )
        ok[..., V] = True  # EOS is always structurally possible...
        done = prev == self.eos
        ok = torch.where(done[..., None], cells == V, ok)  # ...and the only token after EOS
        full = slot == tables.max_count[chan]
        ok = torch.where(full[None, :, None], cells == V, ok)
        forbid = self._excluded(tokens, position)[:, chan] if self.exclusive and tokens is not None else None
        if forbid is not None:
            ok[..., :V] &= ~forbid
        if invariants is not None:
            n_obj, wall, wall_tokens = invariants
            B = n_obj.shape[0]
            need_more = slot[None, :] < n_obj[:, chan]  # (B, P)
            ok[..., V] &= ~need_more  # no EOS before the channel has all its objects
            ok[..., :V] &= need_more[..., None]  # and no object after
            on_wall = torch.cat([wall, torch.zeros(B, 1, dtype=torch.bool, device=device)], 1)[:, None, :]
            ok &= ~(on_wall & (chan != 4)[None, :, None])
            # in a 0/1 channel, leave enough usable cells after this one for the objects still to come
            usable = ~wall[:, None, :] if forbid is None else ~wall[:, None, :] & ~forbid  # (B, 1 or P, V)
            usable = usable.long()
            free_after = usable.flip(-1).cumsum(-1).flip(-1) - usable  # usable cells with a higher index
            still_to_come = n_obj[:, chan] - slot[None, :] - 1  # (B, P)
            enough = free_after >= still_to_come[..., None]
            ok[..., :V] &= enough | is_count[chan][None, :, None]
            if position is not None:
                wall_tokens = wall_tokens[:, position : position + 1]
            ok = torch.where((chan == 4)[None, :, None], cells[None, None, :] == wall_tokens[..., None], ok)
        ok |= done[..., None] & (cells == V)  # padding stays possible whatever else is imposed
        return ok[:, 0] if position is not None else ok

    def _excluded(self, tokens: torch.Tensor, position: int | None) -> torch.Tensor:
        """(B, 5, V): for each channel, the cells that earlier channels it excludes already hold."""
        B, device = tokens.shape[0], tokens.device
        tables = self.on(device)
        chan = tables.chan
        if position is not None:  # only what has been emitted so far counts
            tokens = torch.where(tables.positions < position, tokens, self.eos)
        occupied = torch.zeros(B, N_CHANNELS * (self.n_cells + 1), device=device)
        occupied.scatter_(1, chan[None, :] * (self.n_cells + 1) + tokens.clamp(max=self.n_cells), 1.0)
        occupied = occupied.view(B, N_CHANNELS, self.n_cells + 1)[..., : self.n_cells]
        return torch.einsum("ac,bav->bcv", tables.excludes, occupied) > 0


def exclusive_channels(observations: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Channel pairs (a, b), a < b, that share no cell in any of ``observations`` (M, 5, h, w): what the
    data says can never happen (a coin under a player, two coins on one cell, anything on a wall)."""
    present = np.asarray(observations).reshape(len(observations), N_CHANNELS, -1) > 0
    pairs = []
    for a in range(N_CHANNELS):
        for b in range(a + 1, N_CHANNELS):
            if not (present[:, a] & present[:, b]).any():
                pairs.append((a, b))
    return tuple(pairs)


@dataclass(frozen=True)
class _DeviceTables:
    chan: torch.Tensor  # (L,) channel of every position
    slot: torch.Tensor  # (L,) index within its channel
    positions: torch.Tensor  # (L,) 0 .. L - 1
    cells: torch.Tensor  # (V + 1,) token values, EOS last
    is_count: torch.Tensor  # (5,) bool: channels whose cells may repeat
    max_count: torch.Tensor  # (5,) most objects per channel
    excludes: torch.Tensor  # (5, 5) float: channel a excludes channel b


@functools.lru_cache(maxsize=64)
def _device_tables(layout: TokenLayout, device: torch.device) -> _DeviceTables:
    is_count = torch.zeros(N_CHANNELS, dtype=torch.bool)
    is_count[list(COUNT_CHANNELS)] = True
    excludes = torch.zeros(N_CHANNELS, N_CHANNELS)
    for a, b in layout.exclusive:
        excludes[a, b] = 1.0
    return _DeviceTables(
        chan=layout.channel_of().to(device),
        slot=layout.slot_of().to(device),
        positions=torch.arange(layout.length, device=device),
        cells=torch.arange(layout.n_cells + 1, device=device),
        is_count=is_count.to(device),
        max_count=torch.tensor(layout.max_count, device=device),
        excludes=excludes.to(device),
    )

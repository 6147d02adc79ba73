"""Watch a world model imagine the game next to the real one.

:class:`SideBySide` composes one RGB frame (pure numpy, text drawn with ``pygame.font`` off screen):

- left, the real game (:func:`gridmarl.render.render_rgb`; in a partial view the ego's window is outlined);
- middle, the imagined game: the state its observation shows, drawn the same way, where an observation is
  the whole state (two players, full view); otherwise the observation's channels on the ego's window;
- right, for channels 0..3 (self, others, own coins, others' coins) a heat map of the model's probability
  that the next observation has something on each cell, estimated from ``samples`` draws of
  ``model.sample`` for the previous observation and the joint action played; a dark ring marks the cells
  where it actually was;
- below, a text strip: t, the ego's and the others' actions, the real and the imagined reward.

:class:`Viewer` plays a real :class:`~gridmarl.gym_env.GridMARLEnv` and an
:class:`~gridmarl_wm.simulation.imagine.ImaginedEnv` in lockstep, from the same start and with the same joint actions
(the imagined game is given the real opponents' actions), and keeps every step so that it can go back
and save the episode as a GIF. Nothing opens a window until :meth:`Viewer.run`.

Command line::

    python -m gridmarl_wm.viewing.viewer --model runs/wm/checkpoint.pt [--opponent greedy] [--planner mcts]
    python -m gridmarl_wm.viewing.viewer --exact --steps 20 --gif out.gif     # headless: no window
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gridmarl import GridConfig, GridCore, ResetNeeded, State
from gridmarl.animation import save_animation
from gridmarl.config import ACTION_NAMES, CHANNEL_NAMES, N_ACTIONS, check_action
from gridmarl.ego import state_from_snapshot
from gridmarl.gym_env import GridMARLEnv
from gridmarl.render import (
    FLOOR_COLOUR,
    GRID_COLOUR,
    OUTLINE_COLOUR,
    WALL_COLOUR,
    HumanWindow,
    draw_cell_items,
    grid_background,
    player_colour,
    render_rgb,
)
from gridmarl_wm.simulation.allocator import RETAIN_HELP
from gridmarl_wm.simulation.imagine import ImaginedEnv, game_of, state_from_observation

__all__ = ["BACKGROUND", "OTHERS_COLOUR", "SideBySide", "Viewer", "main_view", "next_obs_probs"]

RGB = tuple[int, int, int]

BACKGROUND: RGB = (255, 255, 255)
TEXT_COLOUR: RGB = OUTLINE_COLOUR
#: Colour of "other players" when an observation does not say which player they are (more than 2 players).
OTHERS_COLOUR: RGB = (150, 150, 150)

PAD = 8  # margin around the frame and above the text strip
GAP = 16  # between panels
HEADER_H, HEADER_FONT = 18, 20  # panel titles
MAP_LABEL_H, MAP_LABEL_FONT = 14, 16  # heat-map titles
MAP_GAP = 8  # between heat maps
LINE_H, LINE_FONT = 17, 20  # text strip
N_LINES = 3
HEAT_LEVELS = 32  # probabilities are shown in steps of 1/32, which keeps GIF palettes exact
MIN_HEAT_PX = 6

KEYS_HELP = "keys: arrows/space act, p play, [ back, r resync, s save, n new, q quit"
TEXT_SHADES = 4  # antialiased text is reduced to this many blends of ink and paper (small GIF palettes)


# ---------------------------------------------------------------------------------------------- text
@lru_cache(maxsize=8)
def _font(size: int) -> Any:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    if not pygame.font.get_init():
        pygame.font.init()
    return pygame.font.Font(None, size)


@lru_cache(maxsize=256)
def text_image(text: str, size: int, height: int, width: int, colour: RGB = TEXT_COLOUR) -> np.ndarray:
    """``text`` in pygame's default font on :data:`BACKGROUND`, cut or padded to (height, width, 3) uint8;
    antialiasing is kept to :data:`TEXT_SHADES` levels. Read-only (cached)."""
    out = np.empty((height, width, 3), dtype=np.uint8)
    out[:] = BACKGROUND
    if text:
        import pygame

        surface = _font(size).render(text, True, (255, 255, 255), (0, 0, 0))
        ink = pygame.surfarray.array3d(surface)[:, :, 0].T / 255.0  # surfarray indexes (x, y)
        ink = np.round(ink * (TEXT_SHADES - 1)) / (TEXT_SHADES - 1)
        paper, pen = np.array(BACKGROUND, dtype=np.float64), np.array(colour, dtype=np.float64)
        h, w = min(height, ink.shape[0]), min(width, ink.shape[1])
        out[:h, :w] = np.rint(paper + ink[:h, :w, None] * (pen - paper)).astype(np.uint8)
    out.flags.writeable = False
    return out


# ---------------------------------------------------------------------------------------------- drawing
def draw_observation(obs: np.ndarray, cell_px: int, self_colour: RGB, others_colour: RGB) -> np.ndarray:
    """An observation (5, h, w) drawn cell by cell in render_rgb's style: walls (channel 4, off-grid cells
    included), then per cell the observer, the others (one agent per count), own coins, others' coins."""
    obs = np.asarray(obs)
    _, h, w = obs.shape
    P = cell_px
    counts = np.rint(obs).astype(np.int64).clip(0, None)
    walls = tuple((int(r), int(c)) for r, c in zip(*np.nonzero(counts[4]), strict=True))
    img = grid_background(h, w, walls, P)[0].copy()
    for r in range(h):
        for c in range(w):
            items = (
                [("agent", self_colour)] * counts[0, r, c]
                + [("agent", others_colour)] * counts[1, r, c]
                + [("coin", self_colour)] * counts[2, r, c]
                + [("coin", others_colour)] * counts[3, r, c]
            )
            if items:
                draw_cell_items(img, r, c, P, items)
    return img


@torch.no_grad()
def next_obs_probs(
    model: Any,
    obs: np.ndarray,
    self_action: int,
    other_actions: Sequence[int] | np.ndarray,
    samples: int = 64,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
) -> np.ndarray:
    """Per channel 0..3 and cell, the fraction of ``samples`` next observations drawn by
    ``model.sample(obs, self_action, other_actions)`` with something there: float64 (4, h, w)."""
    dev = torch.device(model.device)
    o = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=dev)[None].expand(samples, -1, -1, -1)
    a = torch.full((samples,), int(self_action), dtype=torch.long, device=dev)
    others = torch.as_tensor(np.asarray(other_actions, dtype=np.int64), device=dev).reshape(1, -1)
    nxt, _ = model.sample(
        o.contiguous(),
        a,
        others.expand(samples, -1).contiguous(),
        generator=generator,
        temperature=temperature,
    )
    return (torch.as_tensor(nxt)[:, :4] > 0).double().mean(0).cpu().numpy()


@dataclass(frozen=True)
class Box:
    """A rectangle of the frame: top-left pixel (y, x) and size (h, w)."""

    y: int
    x: int
    h: int
    w: int

    def crop(self, frame: np.ndarray) -> np.ndarray:
        return frame[self.y : self.y + self.h, self.x : self.x + self.w]


class SideBySide:
    """Composes the viewer's frame from a real state, an imagined observation and the model's heat maps.

    Layout (every size fixed by the game and ``cell_px``, so frames of one game share one shape): a title
    row, then the panels ``boxes["real"]`` (exactly ``render_rgb(core, state, highlight=ego, cell_px)``),
    ``boxes["imagined"]`` and the heat maps ``boxes["heat0"]`` .. ``boxes["heat3"]`` (a 2 x 2 grid, each
    (h * heat_px, w * heat_px) for observations (5, h, w); cell (r, c) is filled with the blend of
    :data:`~gridmarl.render.FLOOR_COLOUR` toward the channel's colour by the probability, its centre at
    :meth:`heat_centre`), then :data:`N_LINES` lines of text.
    """

    def __init__(self, game: GridConfig, ego: int = 0, cell_px: int = 48) -> None:
        self.core = GridCore(game)
        self.game = self.core.config
        self.ego = int(ego)
        self.cell_px = P = int(cell_px)
        H, W = self.game.height, self.game.width
        _, h, w = self.game.obs_shape
        self.whole_state = self.game.n_agents == 2 and self.game.view_size is None
        if self.game.n_agents == 2:
            self.others_colour = player_colour(1 - self.ego)
        else:
            self.others_colour = OTHERS_COLOUR
        self.self_colour = player_colour(self.ego)
        # The imagined panel: the grid's cells when the observation covers it, else the window scaled up.
        self.obs_px = P if (h, w) == (H, W) else max(4, min(H * P // h, W * P // w))
        hp = (H * P - 2 * MAP_LABEL_H - MAP_GAP) // (2 * h)
        self.heat_px = max(MIN_HEAT_PX, hp)
        heat_h = 2 * (MAP_LABEL_H + h * self.heat_px) + MAP_GAP
        body_h = max(H * P, h * self.obs_px, heat_h)
        top = PAD + HEADER_H
        x_imag = PAD + W * P + GAP
        x_heat = x_imag + w * self.obs_px + GAP
        map_w = w * self.heat_px
        self.boxes: dict[str, Box] = {
            "real": Box(top, PAD, H * P, W * P),
            "imagined": Box(top, x_imag, h * self.obs_px, w * self.obs_px),
        }
        for k in range(4):
            i, j = divmod(k, 2)
            y = top + i * (MAP_LABEL_H + h * self.heat_px + MAP_GAP) + MAP_LABEL_H
            self.boxes[f"heat{k}"] = Box(y, x_heat + j * (map_w + MAP_GAP), h * self.heat_px, map_w)
        width = x_heat + 2 * map_w + MAP_GAP + PAD
        text_top = top + body_h + PAD
        self.boxes["text"] = Box(text_top, PAD, N_LINES * LINE_H, width - 2 * PAD)
        self.shape = (text_top + N_LINES * LINE_H + PAD, width, 3)

    # ------------------------------------------------------------------ geometry
    def crop(self, frame: np.ndarray, name: str) -> np.ndarray:
        """The part of ``frame`` holding ``boxes[name]`` (``"real"``, ``"imagined"``, ``"heat0"``...)."""
        return self.boxes[name].crop(frame)

    def heat_centre(self, channel: int, r: int, c: int) -> tuple[int, int]:
        """Frame pixel (y, x) at the centre of cell (r, c) of channel ``channel``'s heat map."""
        box = self.boxes[f"heat{channel}"]
        return box.y + r * self.heat_px + self.heat_px // 2, box.x + c * self.heat_px + self.heat_px // 2

    def channel_colour(self, channel: int) -> RGB:
        """Colour of a heat map: the ego's for channels 0 and 2, the others' for 1 and 3."""
        return self.self_colour if channel in (0, 2) else self.others_colour

    # ------------------------------------------------------------------ panels
    def imagined_panel(self, obs: np.ndarray) -> np.ndarray:
        """The imagined observation drawn as the state it shows (when it is one), else channel by channel."""
        obs = np.asarray(obs, dtype=np.float32)
        if self.whole_state:
            state = state_from_observation(self.game, obs[None])
            if self.ego != 0:
                state.agents[:, [0, 1]] = state.agents[:, [1, 0]]
                k = self.game.coins_per_agent
                state.coins[:] = np.concatenate([state.coins[:, k:], state.coins[:, :k]], 1)
            if np.array_equal(self.core.observe(state, (self.ego,))[0, 0], obs):
                return render_rgb(self.core, state, highlight=self.ego, cell_px=self.cell_px)
        return draw_observation(obs, self.obs_px, self.self_colour, self.others_colour)

    def heat_map(self, channel: int, probs: np.ndarray | None, truth: np.ndarray | None) -> np.ndarray:
        """One heat map (h * heat_px, w * heat_px, 3): probability as a blend of floor toward the channel's
        colour (steps of 1/HEAT_LEVELS), walls of ``truth`` (where the probability is 0) in the wall colour,
        and a dark ring on the cells where ``truth`` has something in ``channel``."""
        _, h, w = self.game.obs_shape
        Q = self.heat_px
        img = grid_background(h, w, (), Q)[0].copy()
        cells = np.zeros((h, w, 3), dtype=np.float64)
        cells[:] = FLOOR_COLOUR
        if probs is not None:
            q = np.round(np.asarray(probs, dtype=np.float64) * HEAT_LEVELS) / HEAT_LEVELS
            target = np.asarray(self.channel_colour(channel), dtype=np.float64)
            cells = cells + q[..., None] * (target - cells)
        if truth is not None:
            cells[(np.asarray(truth[4]) > 0) & (cells == FLOOR_COLOUR).all(-1)] = WALL_COLOUR
        fill = np.rint(cells).astype(np.uint8)
        for r in range(h):
            for c in range(w):
                img[r * Q + 1 : (r + 1) * Q, c * Q + 1 : (c + 1) * Q] = fill[r, c]
        img[-1, :] = GRID_COLOUR
        img[:, -1] = GRID_COLOUR
        if truth is not None and Q >= 8:
            t = max(1, Q // 12)
            for r, c in zip(*np.nonzero(np.asarray(truth[channel]) > 0), strict=True):
                y0, x0, y1, x1 = r * Q + 2, c * Q + 2, (r + 1) * Q - 1, (c + 1) * Q - 1
                img[y0 : y0 + t, x0:x1] = OUTLINE_COLOUR
                img[y1 - t : y1, x0:x1] = OUTLINE_COLOUR
                img[y0:y1, x0 : x0 + t] = OUTLINE_COLOUR
                img[y0:y1, x1 - t : x1] = OUTLINE_COLOUR
        return img

    def draw(
        self,
        real_state: State,
        imagined_obs: np.ndarray,
        probs: np.ndarray | None = None,
        truth: np.ndarray | None = None,
        lines: Sequence[str] = (),
    ) -> np.ndarray:
        """The frame, uint8 ``self.shape``.

        Args:
            real_state: a batch-1 state of the real game.
            imagined_obs: the ego's imagined observation (5, h, w).
            probs: (4, h, w) probabilities for the heat maps; None leaves them blank (no step yet).
            truth: the observation (5, h, w) the heat maps predicted, ringed on them; None for none.
            lines: up to :data:`N_LINES` lines for the text strip.
        """
        frame = np.empty(self.shape, dtype=np.uint8)
        frame[:] = BACKGROUND
        b = self.boxes
        b["real"].crop(frame)[:] = render_rgb(self.core, real_state, highlight=self.ego, cell_px=self.cell_px)
        b["imagined"].crop(frame)[:] = self.imagined_panel(imagined_obs)
        titles = (("real", "real game"), ("imagined", "imagined (model)"))
        for name, title in titles:
            box = b[name]
            frame[PAD : PAD + HEADER_H, box.x : box.x + box.w] = text_image(
                title, HEADER_FONT, HEADER_H, box.w
            )
        heat_x = b["heat0"].x
        frame[PAD : PAD + HEADER_H, heat_x : self.shape[1] - PAD] = text_image(
            "model P(next obs)", HEADER_FONT, HEADER_H, self.shape[1] - PAD - heat_x
        )
        for k in range(4):
            box = b[f"heat{k}"]
            label = CHANNEL_NAMES[k].replace("_", " ")
            frame[box.y - MAP_LABEL_H : box.y, box.x : box.x + box.w] = text_image(
                label, MAP_LABEL_FONT, MAP_LABEL_H, box.w
            )
            box.crop(frame)[:] = self.heat_map(k, None if probs is None else probs[k], truth)
        text = b["text"]
        for i, line in enumerate(list(lines)[:N_LINES]):
            y = text.y + i * LINE_H
            frame[y : y + LINE_H, text.x : text.x + text.w] = text_image(line, LINE_FONT, LINE_H, text.w)
        return frame


# ---------------------------------------------------------------------------------------------- viewer
@dataclass
class Entry:
    """One point of the history: both games after ``t`` steps, the step that led there, and its frame."""

    t: int
    real_snapshot: dict[str, Any]
    real_rng: dict[str, Any]
    real_obs: np.ndarray
    imagined_obs: np.ndarray
    imagined_t: int
    imagined_rng: dict[str, Any]
    imagined_gen: torch.Tensor
    done: bool
    action: int | None = None
    others: np.ndarray | None = None
    real_reward: float | None = None
    imagined_reward: float | None = None
    chosen_by: str = ""
    probs: np.ndarray | None = None
    resynced: bool = False
    frame: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 3), dtype=np.uint8), repr=False)


def _reward_text(r: float | None) -> str:
    return "-" if r is None else f"{r:+g}"


class Viewer:
    """The real game and the model's imagination of it, side by side, step by step.

    Args:
        model: a :class:`~gridmarl_wm.WorldModel` or :class:`~gridmarl_wm.simulation.exact_model.ExactModel` (with
            ``game`` set, or give ``env``).
        env: the real env (a :class:`~gridmarl.gym_env.GridMARLEnv`); by default one of the model's game
            with ``opponent`` and ``ego``.
        opponent: the real opponents, when ``env`` is not given (also the exact planning simulator's).
        ego: the player the viewer controls, when ``env`` is not given.
        policy: ``policy(obs) -> action`` choosing the ego's action when :meth:`step` gets none.
        planner: instead of ``policy``, a planner (``act(sim, roots, steps_left)``) planning in ``simulator``
            (by default the model as a :class:`~gridmarl_wm.planning.LearnedSimulator`, or the exact rules
            for a model without an opponent head). Without either, actions are uniformly random.
        samples: next observations drawn per step for the heat maps.
        temperature: of the imagined game's samples (the heat maps sample at 1).
        predict_from: the heat maps predict the next observation from the ``"real"`` previous observation
            (a one-step check of the model) or from the ``"imagined"`` one (the distribution the imagined
            game drew from); the rings mark that game's actual next observation.
        cell_px: pixels per grid cell.
        seed: of the first :meth:`reset`, the random actions and the heat-map draws.

    The imagined game starts from the real observation and is given the real opponents' actions, so
    any difference comes from the model. :meth:`back` restores the games and their generators, so stepping
    again with the same action replays the same step.
    """

    def __init__(
        self,
        model: Any,
        env: Any = None,
        *,
        opponent: Any = "random",
        ego: int = 0,
        policy: Callable[[np.ndarray], Any] | None = None,
        planner: Any = None,
        simulator: Any = None,
        samples: int = 64,
        temperature: float = 1.0,
        predict_from: str = "real",
        cell_px: int = 48,
        seed: int = 0,
    ) -> None:
        if predict_from not in ("real", "imagined"):
            raise ValueError(f"predict_from must be 'real' or 'imagined', got {predict_from!r}")
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
        if policy is not None and planner is not None:
            raise ValueError("give a policy or a planner, not both")
        self.model = model
        if env is None:
            env = GridMARLEnv(opponent=opponent, ego=ego, **game_of(model).as_kwargs())
        self.env = env
        self._base = env.unwrapped
        game = self._base.config
        model_game = getattr(model, "game", None)
        if model_game is not None and model_game != game:
            raise ValueError(f"the model simulates another game: {model_game} (the env plays {game})")
        self.game = game
        self.ego = int(self._base.ego)
        self.imagined = ImaginedEnv(model, opponent="model", temperature=temperature, game=game, ego=self.ego)
        self._others: np.ndarray | None = None
        self.imagined.sim.opponent = self._real_others  # the imagined game replays the real opponents
        self.policy = policy
        self.planner = planner
        if planner is not None and simulator is None:
            from gridmarl_wm.simulation.simulators import ExactSimulator, LearnedSimulator

            if hasattr(model, "opponent_probs"):
                simulator = LearnedSimulator(model, seed=seed)
            else:
                simulator = ExactSimulator(game, opponent=opponent, seed=seed, ego=self.ego)
        self.simulator = simulator
        self.samples = samples
        self.predict_from = predict_from
        self.seed = seed
        self.drawer = SideBySide(game, self.ego, cell_px)
        self.history: list[Entry] = []
        self.playing = False
        self.episodes = 0
        self._rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------ state
    @property
    def controller(self) -> str:
        """Who picks the ego's action when :meth:`step` gets none."""
        if self.policy is not None:
            return getattr(self.policy, "__name__", "policy")
        if self.planner is not None:
            return type(self.planner).__name__
        return "random"

    @property
    def current(self) -> Entry:
        if not self.history:
            raise ResetNeeded("call reset() first")
        return self.history[-1]

    @property
    def done(self) -> bool:
        """Whether the real episode has ended (after max_steps)."""
        return self.current.done

    @property
    def in_sync(self) -> bool:
        """Whether the imagined observation equals the real one."""
        e = self.current
        return bool(np.array_equal(e.real_obs, e.imagined_obs))

    @property
    def probs(self) -> np.ndarray | None:
        """The current heat maps' probabilities (4, h, w), None before the first step."""
        return self.current.probs

    def real_state(self) -> State:
        """The real game's current state (batch of 1)."""
        return state_from_snapshot(self._base.core, self.current.real_snapshot)

    def _real_others(self, obs: torch.Tensor) -> np.ndarray:
        return np.repeat(self._others, obs.shape[0], axis=0)

    def _capture(
        self, real_obs: np.ndarray, imagined_obs: np.ndarray, imagined_t: int, done: bool, **step: Any
    ) -> Entry:
        snap = self._base.get_state()
        return Entry(
            t=int(snap["t"]),
            real_snapshot=snap,
            real_rng=self._base.np_random.bit_generator.state,
            real_obs=np.array(real_obs, dtype=np.float32),
            imagined_obs=np.array(imagined_obs, dtype=np.float32),
            imagined_t=int(imagined_t),
            imagined_rng=self.imagined.np_random.bit_generator.state,
            imagined_gen=self.imagined.generator.get_state(),
            done=done,
            **step,
        )

    def _lines(self, e: Entry) -> list[str]:
        if e.action is None:
            first = f"t={e.t}  start of episode {self.episodes} (seed {self.seed + self.episodes})"
        else:
            others = ", ".join(ACTION_NAMES[int(a)] for a in np.asarray(e.others).reshape(-1))
            first = (
                f"t={e.t}  ego: {ACTION_NAMES[e.action]} ({e.chosen_by})  others: {others}  "
                f"reward real {_reward_text(e.real_reward)}  imagined {_reward_text(e.imagined_reward)}"
            )
        same = np.array_equal(e.real_obs, e.imagined_obs)
        second = f"imagined obs {'==' if same else '!='} real obs" + ("  (resynced)" if e.resynced else "")
        if e.probs is not None:
            second += f"   heat: {self.samples} samples from {self.predict_from} obs, rings: actual"
        if e.done:
            second += "   episode over"
        return [first, second, KEYS_HELP]

    def _draw(self, e: Entry) -> None:
        truth = None
        if e.probs is not None:
            truth = e.real_obs if self.predict_from == "real" else e.imagined_obs
        real = state_from_snapshot(self._base.core, e.real_snapshot)
        e.frame = self.drawer.draw(real, e.imagined_obs, e.probs, truth, self._lines(e))

    # ------------------------------------------------------------------ actions
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start a new episode of both games from the same real observation; returns the frame."""
        if seed is None:
            seed = self.seed + self.episodes
        else:
            self.seed, self.episodes = seed, 0
        obs, _ = self.env.reset(seed=seed)
        t = int(self._base.get_state()["t"])
        imagined_obs, _ = self.imagined.reset(seed=seed, options={"obs": obs, "t": t})
        entry = self._capture(obs, imagined_obs, t, done=False)
        self.history = [entry]
        self._draw(entry)
        return self.frame()

    def choose_action(self) -> int:
        """The ego's action from the policy, the planner, or at random."""
        e = self.current
        if self.policy is not None:
            return check_action(self.policy(e.real_obs), "the policy's action")
        if self.planner is not None:
            roots = self.simulator.roots([self.env], e.real_obs[None])
            actions = self.planner.act(self.simulator, roots, steps_left=self.game.max_steps - e.t)
            return check_action(int(np.asarray(actions).reshape(-1)[0]), "the planner's action")
        return int(self._rng.integers(N_ACTIONS))

    def step(self, action: int | None = None) -> np.ndarray:
        """One step of both games with the ego's ``action`` (by default :meth:`choose_action`'s) and the
        real opponents' actions; returns the new frame."""
        prev = self.current
        if prev.done:
            raise ResetNeeded("the episode has ended: call reset() (key n) or back()")
        chosen_by = "keyboard" if action is not None else self.controller
        a = check_action(action) if action is not None else self.choose_action()
        obs, reward, _, truncated, info = self.env.step(a)
        others = np.asarray(info["opponent_actions"], dtype=np.int64).reshape(1, -1)
        self._others = others
        imagined_obs, imagined_reward, _, _, imagined_info = self.imagined.step(a)
        source = prev.real_obs if self.predict_from == "real" else prev.imagined_obs
        generator = torch.Generator(device=torch.device(self.model.device))
        generator.manual_seed(((self.seed + self.episodes) * 1_000_003 + prev.t) % 2**63)
        probs = next_obs_probs(self.model, source, a, others[0], self.samples, generator)
        entry = self._capture(
            obs,
            imagined_obs,
            imagined_info["t"],
            bool(truncated),
            action=a,
            others=others[0].copy(),
            real_reward=float(reward),
            imagined_reward=float(imagined_reward),
            chosen_by=chosen_by,
            probs=probs,
        )
        self.history.append(entry)
        self._draw(entry)
        return self.frame()

    def _restore(self, e: Entry) -> None:
        self._base.set_state(e.real_snapshot)
        self._base.np_random.bit_generator.state = e.real_rng
        self.imagined.reset(options={"obs": e.imagined_obs, "t": e.imagined_t})
        self.imagined.np_random.bit_generator.state = e.imagined_rng
        self.imagined.generator.set_state(e.imagined_gen)

    def back(self) -> bool:
        """Undo the last step (both games and their generators); False when at the episode's start."""
        if len(self.history) < 2:
            return False
        self.history.pop()
        self._restore(self.history[-1])
        return True

    def resync(self) -> np.ndarray:
        """Set the imagined game to the real observation (the current history entry is redrawn)."""
        e = self.current
        self.imagined.reset(options={"obs": e.real_obs, "t": e.t})
        e.imagined_obs = e.real_obs.copy()
        e.imagined_t = e.t
        e.imagined_rng = self.imagined.np_random.bit_generator.state
        e.imagined_gen = self.imagined.generator.get_state()
        e.resynced = True
        self._draw(e)
        return self.frame()

    def frame(self) -> np.ndarray:
        """A copy of the current frame, uint8 (H, W, 3)."""
        return self.current.frame.copy()

    def frames(self) -> list[np.ndarray]:
        """The frames of the history: the start, then one per step."""
        return [e.frame for e in self.history]

    def save(self, path: str | os.PathLike[str], fps: float = 4) -> Path:
        """Write the history's frames as a GIF or MP4 (by the suffix of ``path``)."""
        return save_animation(self.frames(), path, fps)

    # ------------------------------------------------------------------ window
    def status(self) -> str:
        """A one-line status for the window's caption."""
        mode = f"playing ({self.controller})" if self.playing else "paused"
        end = "  episode over: n new, [ back" if self.done else ""
        return f"gridmarl viewer  t={self.current.t}  {mode}{end}"

    def handle_key(self, key: int, gif_path: str | os.PathLike[str] = "viewer.gif") -> bool:
        """Act on a pygame key code; False means quit."""
        import pygame

        moves = {pygame.K_SPACE: 0, pygame.K_UP: 1, pygame.K_DOWN: 2, pygame.K_LEFT: 3, pygame.K_RIGHT: 4}
        if key in (pygame.K_q, pygame.K_ESCAPE):
            return False
        if key in moves:
            if not self.done:
                self.step(moves[key])
        elif key == pygame.K_p:
            self.playing = not self.playing and not self.done
        elif key in (pygame.K_LEFTBRACKET, pygame.K_BACKSPACE):
            self.playing = False
            self.back()
        elif key == pygame.K_r:
            self.resync()
        elif key == pygame.K_s:
            print(f"saved {self.save(gif_path)}")
        elif key == pygame.K_n:
            self.episodes += 1
            self.playing = False
            self.reset()
        return True

    def run(
        self, fps: float = 4, gif_path: str | os.PathLike[str] = "viewer.gif", max_loops: int | None = None
    ) -> None:
        """Show the viewer in a pygame window until q, Esc or the window is closed.

        Keys: arrows move and space stays (one step), p plays/pauses ``fps`` steps a second with the policy or
        planner, [ or backspace steps back, r resyncs the imagined game, s saves the history to
        ``gif_path``, n starts a new episode. ``max_loops`` bounds the loop (for tests).
        """
        if not self.history:
            self.reset(self.seed)
        import pygame

        window = HumanWindow("gridmarl viewer")
        last = time.monotonic()
        loops = 0
        try:
            while window.show(self.frame(), fps=30):
                pygame.display.set_caption(self.status())
                for event in pygame.event.get():
                    if event.type == pygame.QUIT:
                        return
                    if event.type == pygame.KEYDOWN and not self.handle_key(event.key, gif_path):
                        return
                if self.playing and time.monotonic() - last >= 1.0 / fps:
                    self.step()
                    last = time.monotonic()
                    self.playing = not self.done
                loops += 1
                if max_loops is not None and loops >= max_loops:
                    return
        finally:
            window.close()


# ---------------------------------------------------------------------------------------------- command line
def _planner(name: str, game: GridConfig, seed: int) -> Any:
    from gridmarl_wm.planning import CEM, MCTS, RandomShooting

    if name == "shooting":
        return RandomShooting(seed=seed)
    if name == "cem":
        return CEM(seed=seed)
    if name == "mcts":
        return MCTS(seed=seed, n_others=game.n_agents - 1)
    return None


def main_view(argv: Sequence[str] | None = None) -> int:
    """``python -m gridmarl_wm.viewing.viewer``: the viewer in a window, or headless with ``--steps`` and ``--gif``."""
    from gridmarl.opponents import OPPONENT_CHOICES

    p = argparse.ArgumentParser(
        prog="python -m gridmarl_wm.viewing.viewer",
        description="The real game, the model's imagined game and its predictions, side by side. "
        f"In the window, {KEYS_HELP}.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", metavar="PATH", help="a world model checkpoint (WorldModel.load)")
    src.add_argument("--exact", action="store_true", help="the exact rules as the model (default game)")
    p.add_argument("--opponent", default="random", choices=OPPONENT_CHOICES, help="the real opponents")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--planner", default="none", choices=["none", "shooting", "cem", "mcts"])
    p.add_argument("--policy", metavar="PATH", help="a trained policy (gridmarl-wm learn) plays the ego")
    p.add_argument("--samples", type=int, default=64, help="samples per step for the heat maps")
    p.add_argument("--temperature", type=float, default=1.0, help="of the imagined game")
    p.add_argument("--predict-from", default="real", choices=["real", "imagined"])
    p.add_argument("--cell-px", type=int, default=48)
    p.add_argument("--fps", type=float, default=4, help="steps per second when playing, and of the GIF")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, help="run headless for this many steps (needs --gif)")
    p.add_argument("--gif", metavar="PATH", help="where to save the animation (.gif or .mp4)")
    p.add_argument("--retain-memory", action="store_true", help=RETAIN_HELP)
    args = p.parse_args(argv)
    if args.steps is not None and (args.gif is None or args.steps < 0):
        p.error("--steps N (N >= 0) runs headless and needs --gif PATH")
    if args.retain_memory:
        from gridmarl_wm.simulation import allocator

        try:
            allocator.require_retained_memory()
        except ValueError as err:
            p.error(str(err))
    if args.exact:
        from gridmarl_wm.simulation.exact_model import ExactModel

        model = ExactModel()
    else:
        from gridmarl_wm.model import WorldModel

        model = WorldModel.load(args.model, map_location=args.device)
    policy = None
    if args.policy is not None:
        if args.planner != "none":
            p.error("give --policy or --planner, not both")
        from gridmarl_wm.agents.checkpoint import load_policy

        policy = load_policy(args.policy, game=game_of(model), seed=args.seed)
    viewer = Viewer(
        model,
        opponent=args.opponent,
        policy=policy,
        planner=_planner(args.planner, game_of(model), args.seed),
        samples=args.samples,
        temperature=args.temperature,
        predict_from=args.predict_from,
        cell_px=args.cell_px,
        seed=args.seed,
    )
    viewer.reset(args.seed)
    if args.steps is None:
        viewer.run(fps=args.fps, gif_path=args.gif or "viewer.gif")
        return 0
    for _ in range(args.steps):
        if viewer.done:
            break
        viewer.step()
    path = viewer.save(args.gif, fps=args.fps)
    print(f"{len(viewer.history)} frames -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main_view())

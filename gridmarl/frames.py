"""Render-mode dispatch shared by every env: one place that turns a state into what ``render()`` returns."""

from __future__ import annotations

from gridmarl.core import GridCore, State

RENDER_MODES = ("human", "rgb_array", "ansi")
RENDER_FPS = 4


def check_render_mode(render_mode: str | None, allowed: tuple[str, ...] = RENDER_MODES) -> str | None:
    if render_mode is not None and render_mode not in allowed:
        raise ValueError(f"render_mode must be None or one of {list(allowed)}, got {render_mode!r}")
    return render_mode


class FrameRenderer:
    """Draws a game for ``render_mode``: an RGB array, ANSI text, or a pygame window (``human``)."""

    def __init__(self, render_mode: str | None, fps: int = RENDER_FPS) -> None:
        self.render_mode = check_render_mode(render_mode)
        self.fps = fps
        self._window = None

    def render(self, core: GridCore, state: State, row: int = 0, highlight: int | None = None):
        from gridmarl import render

        if self.render_mode is None:
            return None
        if self.render_mode == "ansi":
            return render.render_ansi(core, state, row)
        frame = render.render_rgb(core, state, row, highlight=highlight)
        if self.render_mode == "rgb_array":
            return frame
        if self._window is None:
            self._window = render.HumanWindow()
        self._window.show(frame, self.fps)
        return None

    def close(self) -> None:
        if self._window is not None:
            self._window.close()
            self._window = None

    def __getstate__(self) -> dict:
        # A pygame window cannot be pickled; a copy opens its own.
        return {**self.__dict__, "_window": None}

"""Episodes as animations: :func:`record_episode` collects RGB frames, :func:`save_animation` writes them
as an animated GIF (Pillow) or an MP4 video (imageio with imageio-ffmpeg).

Neither Pillow nor imageio is imported until a file of its kind is written.

A GIF keeps every frame, identical neighbours included, so the GIF of ``record_episode``'s frames holds one
image per step plus the first. Frames with at most 256 distinct colours in all (every
:func:`gridmarl.render.render_rgb` frame) are stored exactly: each frame reads back with the same RGB values.
Frames with more colours share one median-cut palette, without dithering, and read back approximately.
MP4 is always lossy, and imageio resizes frames whose sides are not multiples of 16 (with a warning); the
frames of ``render_rgb`` at its default ``cell_px=48`` need no resizing.

Example::

    env = gym.make("GridMARL-v0", render_mode="rgb_array")
    save_animation(record_episode(env, seed=0), "episode.gif", fps=4)
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from gridmarl.files import atomic_path

__all__ = ["ANIMATION_SUFFIXES", "record_episode", "save_animation"]

#: File suffixes :func:`save_animation` understands.
ANIMATION_SUFFIXES = (".gif", ".mp4")

_GIF_COLOURS = 256
_SAMPLE_FRAMES = 16  # frames that build the shared palette of a GIF with more than 256 colours


def _check_frames(frames: np.ndarray | Iterable[np.ndarray]) -> list[np.ndarray]:
    """The frames as a list of uint8 (H, W, 3) arrays of one shape; ValueError naming ``frames`` otherwise."""
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be an array of shape (T, H, W, 3), got shape {frames.shape}")
        items = list(frames)
    elif isinstance(frames, str | bytes) or not isinstance(frames, Iterable):
        raise ValueError(f"frames must be a list of RGB arrays or an array (T, H, W, 3), got {type(frames)}")
    else:
        items = [np.asarray(f) for f in frames]
    if not items:
        raise ValueError("frames must hold at least one frame, got none")
    first = items[0].shape
    for i, f in enumerate(items):
        if f.ndim != 3 or f.shape[2] != 3 or f.shape[0] < 1 or f.shape[1] < 1:
            raise ValueError(f"frames[{i}] must have shape (H, W, 3), got {f.shape}")
        if f.shape != first:
            raise ValueError(f"frames[{i}] has shape {f.shape} but frames[0] has shape {first}")
        if f.dtype != np.uint8:
            raise ValueError(f"frames[{i}] must have dtype uint8, got {f.dtype}")
    return items


def _check_fps(fps: Any) -> float:
    if isinstance(fps, bool) or not isinstance(fps, int | float | np.integer | np.floating):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    return float(fps)


def _suffix(path: str | os.PathLike[str]) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in ANIMATION_SUFFIXES:
        raise ValueError(
            f"path must end in one of {', '.join(ANIMATION_SUFFIXES)} (it chooses the format), got {str(path)!r}"
        )
    return suffix


def _import_pillow() -> Any:
    try:
        from PIL import GifImagePlugin, Image
    except ImportError as e:
        raise ImportError("saving a GIF needs Pillow: pip install pillow") from e
    return Image, GifImagePlugin


def _import_imageio() -> Any:
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (the FFMPEG backend imageio writes MP4 with)
    except ImportError as e:
        raise ImportError(
            "saving an MP4 needs imageio and its ffmpeg backend: pip install imageio imageio-ffmpeg"
        ) from e
    return imageio


def _palette_frames(frames: list[np.ndarray], Image: Any) -> list[Any]:
    """The frames as Pillow "P" images sharing one palette: exact for <= 256 colours, median cut otherwise."""
    codes = [
        (f[..., 0].astype(np.uint32) << 16) | (f[..., 1].astype(np.uint32) << 8) | f[..., 2] for f in frames
    ]
    colours = np.unique(np.concatenate([np.unique(c) for c in codes]))
    h, w = frames[0].shape[:2]
    if len(colours) <= _GIF_COLOURS:
        rgb = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=1).astype(np.uint8)
        images = []
        for c in codes:
            im = Image.frombytes("P", (w, h), np.searchsorted(colours, c).astype(np.uint8).tobytes())
            im.putpalette(rgb.tobytes())
            images.append(im)
        return images
    # Too many colours for one GIF palette: a median-cut palette of a sample of frames, no dithering.
    picks = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), _SAMPLE_FRAMES)).round().astype(int))
    sample = Image.fromarray(np.concatenate([frames[i] for i in picks], axis=0))
    palette = sample.quantize(colors=_GIF_COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    return [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]


def _write_gif(frames: list[np.ndarray], fp: BinaryIO, fps: float) -> None:
    # Pillow's save(save_all=True) merges identical consecutive frames; writing the header and each frame
    # with its GIF helpers keeps one image per frame. GIF delays are whole 1/100 s, and browsers play delays
    # under 2/100 s slowly, so the delay is at least 2/100 s.
    Image, GifImagePlugin = _import_pillow()
    images = _palette_frames(frames, Image)
    delay_ms = 10 * max(2, round(100 / fps))
    header, _ = GifImagePlugin.getheader(images[0], info={"loop": 0, "duration": delay_ms})
    for block in header:
        fp.write(block)
    for im in images:
        for block in GifImagePlugin.getdata(im, duration=delay_ms):
            fp.write(block)
    fp.write(b";")  # trailer


def _write_mp4(frames: list[np.ndarray], path: str, fps: float) -> None:
    imageio = _import_imageio()
    with imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps) as writer:
        for f in frames:
            writer.append_data(f)


def save_animation(
    frames: np.ndarray | Iterable[np.ndarray], path: str | os.PathLike[str], fps: float = 4
) -> Path:
    """Write RGB frames as an animated GIF or an MP4 video, chosen by the suffix of ``path``.

    Args:
        frames: uint8 frames of one shape (H, W, 3), as a list or an array (T, H, W, 3).
        path: the file to write, ending in ``.gif`` (needs Pillow) or ``.mp4`` (needs imageio and
            imageio-ffmpeg). It is written to a temporary file in the same folder and then moved into
            place, so it is never left half written.
        fps: frames per second. A GIF stores each frame's delay in whole hundredths of a second, at least
            two: it plays at ``100 / max(2, round(100 / fps))`` frames per second.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: for another suffix, no frames, frames of the wrong dtype or shape, or a bad ``fps``.
        ImportError: when the library the format needs is not installed.
    """
    suffix = _suffix(path)
    fps = _check_fps(fps)
    items = _check_frames(frames)
    if suffix == ".gif":
        _import_pillow()
    else:
        _import_imageio()
    path = Path(path)
    with atomic_path(path, suffix=f".tmp{suffix}") as tmp:
        if suffix == ".gif":
            with open(tmp, "wb") as fp:
                _write_gif(items, fp, fps)
        else:
            _write_mp4(items, str(tmp), fps)
    return path


def record_episode(
    env: Any,
    policy: Callable[[Any], Any] | None = None,
    steps: int | None = None,
    seed: int | None = None,
) -> list[np.ndarray]:
    """Reset ``env`` and play one episode, returning its RGB frames (the reset's first, then one per step).

    Args:
        env: a Gymnasium env made with ``render_mode="rgb_array"``, e.g.
            ``gym.make("GridMARL-v0", render_mode="rgb_array")``.
        policy: ``policy(obs) -> action``; by default random actions from ``env.action_space``, seeded
            with ``seed``.
        steps: stop after this many steps even if the episode goes on; ``None`` plays until it terminates
            or is truncated.
        seed: passed to ``env.reset``.

    Returns:
        ``1 + number of steps played`` uint8 arrays (H, W, 3).
    """
    if env.render_mode != "rgb_array":
        raise ValueError(
            f"env must be made with render_mode='rgb_array', got render_mode={env.render_mode!r}"
        )
    if steps is not None and (
        isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 0
    ):
        raise ValueError(f"steps must be None or an integer >= 0, got {steps!r}")
    obs, _ = env.reset(seed=seed)
    if policy is None:
        env.action_space.seed(seed)

        def policy(_obs: Any) -> Any:
            return env.action_space.sample()

    frames = [np.array(env.render())]
    while steps is None or len(frames) <= steps:
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        frames.append(np.array(env.render()))
        if terminated or truncated:
            break
    return frames

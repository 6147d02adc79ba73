"""Checkpoints: written atomically, with a format version, the game and every config; loaded safely.

A checkpoint is a ``torch.save`` of plain containers and tensors only, so it loads with
``weights_only=True``: a file from elsewhere cannot run code.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from gridmarl import GridConfig, make_config
from gridmarl_wm.io import atomic_write
from gridmarl_wm.model import WorldModel, WorldModelConfig
from gridmarl_wm.model.tokens import LearnedStructure

# 2: the decoder's constraints are learned from data (the config holds a LearnedStructure)
CHECKPOINT_FORMAT = "gridmarl-wm-checkpoint/2"


def game_to_dict(game: GridConfig) -> dict[str, Any]:
    d = asdict(game)
    d["walls"] = [list(w) for w in game.walls]
    return d


def game_from_dict(d: dict[str, Any]) -> GridConfig:
    return make_config(**{**d, "walls": [tuple(w) for w in d.get("walls", [])]})


def model_config_from_dict(d: dict[str, Any]) -> WorldModelConfig:
    known = {f.name for f in fields(WorldModelConfig)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"checkpoint model config has unknown fields {sorted(unknown)}")
    d = dict(d)
    for key in ("obs_shape", "max_count", "reward_values"):
        if key in d:
            d[key] = tuple(d[key])
    if d.get("structure") is not None:
        d["structure"] = LearnedStructure.from_dict(d["structure"])
    d.setdefault("mixture_scorer", 0)  # saved before the mixture decoder had a cell scorer
    return WorldModelConfig(**d)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (with ``format`` added) to ``path`` atomically: a crash leaves the old file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save({"format": CHECKPOINT_FORMAT, **payload}, f))


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is damaged, not a gridmarl world-model checkpoint, or of another format version.
    """
    return read_versioned(
        path, CHECKPOINT_FORMAT, ("game", "model_config", "model"), "world-model", "checkpoint", map_location
    )


def read_versioned(
    path: str | Path,
    fmt: str,
    required: tuple[str, ...],
    kind: str,
    missing_name: str,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Load a ``weights_only`` file and check that it is a complete gridmarl ``kind`` checkpoint of format
    ``fmt`` holding ``required``; ``missing_name`` names it when the file does not exist.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is damaged, not such a checkpoint, or of another format version.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no {missing_name} at {path}")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for damaged or unsafe files
        raise ValueError(
            f"{path} is not a readable gridmarl {kind} checkpoint ({type(err).__name__}: {err})"
        ) from None
    if not isinstance(data, dict) or "format" not in data:
        raise ValueError(f"{path} is not a gridmarl {kind} checkpoint (no format field)")
    if data["format"] != fmt:
        raise ValueError(f"{path} has checkpoint format {data['format']!r}; this version reads {fmt!r}")
    for key in required:
        if key not in data:
            raise ValueError(f"{path} is missing {key!r}: not a complete {kind} checkpoint")
    return data


def load_world_model(
    path: str | Path, game: GridConfig | dict | None = None, map_location: str | torch.device = "cpu"
) -> WorldModel:
    """The :class:`WorldModel` saved at ``path``, in eval mode. With ``game``, refuse a model of another game."""
    data = read_checkpoint(path, map_location)
    stored = game_from_dict(data["game"])
    if game is not None and make_config(game) != stored:
        raise ValueError(f"{path} holds a model of another game: {stored} (expected {make_config(game)})")
    model = WorldModel(model_config_from_dict(data["model_config"]))
    try:
        model.load_state_dict(data["model"])
    except RuntimeError as err:
        raise ValueError(f"{path}: the weights do not fit the saved model config: {err}") from None
    model.game = stored
    if "start_obs" in data:  # the first observations of the training data's episodes (ImaginedEnv's starts)
        model.start_obs = data["start_obs"].cpu().numpy()
        model.start_agent = data["start_agent"].cpu().numpy()
    return model.eval().to(map_location)

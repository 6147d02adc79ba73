"""Training: a seeded loop with atomic checkpoints, exact resume, JSON-lines metrics and a NaN stop.

Multi-process data-parallel training runs under ``torchrun`` (DDP; gloo on CPU, NCCL on CUDA): every
process draws the same global batch from the same seeded generator and takes its own slice, so gradients
averaged over processes equal one process's gradient on the whole batch.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from gridmarl import GridConfig
from gridmarl_wm.data import Transitions
from gridmarl_wm.io import atomic_write, atomic_write_text, plain
from gridmarl_wm.model import WorldModel, WorldModelConfig
from gridmarl_wm.model.checkpoint import game_to_dict, read_checkpoint, save_checkpoint
from gridmarl_wm.model.mixture_decoder import max_per_cell
from gridmarl_wm.model.tokens import learn_structure
from gridmarl_wm.training.distributed import rank_and_world
from gridmarl_wm.training.losses import Batch, LossWeights, world_model_losses


class TrainingDiverged(RuntimeError):
    """The loss stopped being finite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        steps: optimiser steps (the learning rate follows a cosine from ``lr`` to ``lr_final`` over them).
        batch_size: global batch (split across processes under torchrun).
        lr, lr_final, warmup: learning-rate schedule.
        grad_clip: gradient-norm clip.
        weights: loss weights of the heads.
        log_every: steps between metric lines.
        checkpoint_every: steps between checkpoints (one is always written at the end).
        vq_restart_every: steps between dead-code restarts (``vq``).
        time_budget: stop after this many seconds even if steps remain (None: no limit). Resuming a run
            that stopped on time continues the same schedule.
        seed: seeds the model's initialisation and the batch sampler.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
    """

    steps: int = 10_000
    batch_size: int = 512
    lr: float = 2e-3
    lr_final: float = 2e-5
    warmup: int = 200
    grad_clip: float = 1.0
    weights: LossWeights = field(default_factory=LossWeights)
    log_every: int = 100
    checkpoint_every: int = 1000
    vq_restart_every: int = 500
    time_budget: float | None = None
    seed: int = 0
    device: str = "cpu"


def architecture_defaults(
    variant: str = "direct", decoder: str | None = None, trunk: str | None = None, fusion: str | None = None
) -> dict[str, str]:
    """The decoder, trunk and fusion that ``gridmarl-wm train`` and learning in imagination use where they are
    not given: the main job's model (the mixture decoder on an MLP trunk with FiLM) for the direct variant,
    the pointer decoder on the convolutional trunk for the others, whose encoders need per-cell features."""
    if decoder is None:
        decoder = "mixture" if variant == "direct" and trunk in (None, "mlp", "local") else "pointer"
    if trunk is None:
        trunk = "mlp" if decoder == "mixture" and variant == "direct" else "conv"
    if fusion is None:
        fusion = "film" if trunk == "mlp" else "concat"
    return {"decoder": decoder, "trunk": trunk, "fusion": fusion}


def with_architecture_defaults(overrides: dict[str, Any] | None) -> dict[str, Any]:
    """``overrides`` (:class:`WorldModelConfig` fields) with the decoder, trunk and fusion it leaves out (or
    gives as None) filled in by :func:`architecture_defaults`."""
    given = dict(overrides or {})
    return given | architecture_defaults(
        given.get("variant", "direct"), *map(given.get, ("decoder", "trunk", "fusion"))
    )


def model_config_for(
    game: GridConfig,
    data: Transitions,
    constraints: bool = True,
    count_margin: int = 1,
    **overrides: Any,
) -> WorldModelConfig:
    """A model config for ``data``: the observation's shape (and the number of players, the shape of the
    joint action) from ``game``; everything else the decoder knows from the data: the reward classes seen,
    the :class:`LearnedStructure` the transitions show (applied when ``constraints``) and how many objects
    a channel can hold in the token sequence: the most seen plus ``count_margin``, so that with the
    constraints off the model can still give more objects than the data showed some probability."""
    if not isinstance(count_margin, int) or count_margin < 0:
        raise ValueError(f"count_margin must be an int >= 0, got {count_margin!r}")
    structure = learn_structure(data.obs, data.next_obs)
    rewards = tuple(float(r) for r in np.unique(data.reward))
    settings = {
        "max_count": tuple(m + count_margin for m in structure.max_count),
        "structure": structure,
        "constraints": constraints,
        # the mixture decoder's range of counts per cell: as seen, or with the margin when unconstrained
        "max_per_cell": tuple(m + (0 if constraints else count_margin) for m in max_per_cell(data.next_obs)),
        **overrides,
    }
    return WorldModelConfig(
        obs_shape=game.obs_shape, n_agents=game.n_agents, reward_values=rewards, **settings
    )


class Trainer:
    """Trains ``model`` on ``data``; writes ``out_dir/checkpoint.pt``, ``metrics.jsonl``, ``config.json``."""

    def __init__(
        self,
        model: WorldModel,
        data: Transitions,
        game: GridConfig,
        cfg: TrainConfig,
        out_dir: str | Path,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.game = game
        self.out_dir = Path(out_dir)
        self.rank, self.world = rank_and_world()
        if cfg.batch_size % self.world:
            raise ValueError(f"batch_size={cfg.batch_size} must be divisible by the {self.world} processes")
        self.device = torch.device(cfg.device)
        self.model = model.to(self.device)
        self.net: torch.nn.Module = model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        self.extra_config = extra_config or {}
        values = torch.tensor(model.cfg.reward_values)
        unknown = set(np.unique(data.reward).tolist()) - set(values.tolist())
        if unknown:
            raise ValueError(f"data holds rewards {sorted(unknown)} the model has no class for")
        dev = self.device
        self.obs = torch.as_tensor(data.obs, device=dev)
        self.next_obs = torch.as_tensor(data.next_obs, device=dev)
        self.joint = torch.as_tensor(np.concatenate([data.action[:, None], data.others], axis=1), device=dev)
        self.reward = torch.as_tensor(data.reward, device=dev)
        self.reward_class = torch.searchsorted(values.to(dev), self.reward)
        self.agent = torch.as_tensor(data.agent, device=dev)
        # the episodes' first observations travel with the model: ImaginedEnv starts its games from them
        model.start_obs, model.start_agent = data.start_observations(seed=cfg.seed)

    # ------------------------------------------------------------------ schedule and batches
    def lr_at(self, step: int) -> float:
        cfg = self.cfg
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
        return cfg.lr_final + 0.5 * (cfg.lr - cfg.lr_final) * (1 + math.cos(math.pi * progress))

    def next_batch(self) -> Batch:
        """The next global batch (drawn identically in every process), sliced to this process's share."""
        idx = torch.randint(len(self.obs), (self.cfg.batch_size,), generator=self.generator)
        share = self.cfg.batch_size // self.world
        idx = idx[self.rank * share : (self.rank + 1) * share].to(self.device)
        return Batch(
            obs=self.obs[idx].float(), next_obs=self.next_obs[idx].float(), joint=self.joint[idx],
            reward_class=self.reward_class[idx], reward=self.reward[idx], agent=self.agent[idx],
        )  # fmt: skip

    # ------------------------------------------------------------------ checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def save(self) -> None:
        if self.rank != 0:
            return
        save_checkpoint(self.checkpoint_path, {
            "game": game_to_dict(self.game),
            "model_config": asdict(self.model.cfg),
            "train_config": plain(asdict(self.cfg)),
            "extra_config": plain(self.extra_config),
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "generator": self.generator.get_state(),
            "step": self.step,
            "start_obs": torch.as_tensor(self.model.start_obs),
            "start_agent": torch.as_tensor(self.model.start_agent),
        })  # fmt: skip

    def resume(self, path: str | Path | None = None) -> None:
        """Continue from a checkpoint of this run: model, optimiser, batch generator and step."""
        data = read_checkpoint(path or self.checkpoint_path, self.device)
        if data["model_config"] != asdict(self.model.cfg):
            raise ValueError("the checkpoint's model config differs from this run's; refusing to resume")
        self.model.load_state_dict(data["model"])
        self.opt.load_state_dict(data["optimizer"])
        self.generator.set_state(data["generator"])
        self.step = int(data["step"])

    # ------------------------------------------------------------------ the loop
    def run(self, progress: bool = True, stop_at: int | None = None) -> dict[str, float]:
        """Train until ``cfg.steps`` (or the time budget, or step ``stop_at``: a pause that a later
        :meth:`resume` continues exactly); returns the last logged metrics."""
        cfg = self.cfg
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            atomic_write_text(self.out_dir / "config.json", json.dumps(plain({
                "game": game_to_dict(self.game), "model": asdict(self.model.cfg), "train": asdict(cfg),
                **self.extra_config,
            }), indent=2))  # fmt: skip
        bar = None
        if progress and self.rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True)
        start = time.perf_counter()
        sums: dict[str, float] = {}
        count, last = 0, {}
        vq: dict[str, float] = {}
        t_log = time.perf_counter()
        self.model.train()
        while self.step < min(cfg.steps, stop_at or cfg.steps):
            if cfg.time_budget is not None and time.perf_counter() - start > cfg.time_budget:
                break
            for group in self.opt.param_groups:
                group["lr"] = self.lr_at(self.step)
            # forward passes go through the DDP wrapper (when there is one) so gradients are averaged
            terms = world_model_losses(
                self.model, self.next_batch(), cfg.weights, forward=self.net, progress=self.step / cfg.steps
            )
            loss = terms["total"]
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"loss became {loss.item()} at step {self.step}; stopped without saving. The last good "
                    f"checkpoint is {self.checkpoint_path} (if one was written)"
                )
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            if not torch.isfinite(grad_norm):  # a finite loss can still give NaN/inf gradients
                raise TrainingDiverged(
                    f"gradients became non-finite (norm {grad_norm.item()}) at step {self.step}; stopped "
                    f"before the update, without saving. The last good checkpoint is {self.checkpoint_path} "
                    "(if one was written)"
                )
            self.opt.step()
            self.step += 1
            for k, v in terms.items():  # summed on the device: no host sync per term and step
                sums[k] = sums.get(k, 0.0) + v.detach()
            count += 1
            if self.model.cfg.variant == "vq" and self.step % cfg.vq_restart_every == 0:
                quantiser = self.model.quantiser
                vq = {
                    "vq_codes_used": quantiser.code_usage()["codes_used"],
                    "vq_restarted": quantiser.restart_dead(self.generator),
                }
                if self.world > 1:  # every process restarts from its own inputs: keep rank 0's codebook
                    dist.broadcast(quantiser.codebook.data, 0)
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                now = time.perf_counter()
                last = {k: float(v) / count for k, v in sums.items()}
                last.update(vq)
                last.update(
                    step=self.step,
                    lr=self.lr_at(self.step - 1),
                    elapsed=now - start,
                    samples_per_s=count * cfg.batch_size / (now - t_log),
                )
                if self.rank == 0:
                    with open(self.out_dir / "metrics.jsonl", "a") as f:
                        f.write(json.dumps(last) + "\n")
                    if bar is not None:
                        bar.set_postfix(nll=f"{last['obs_nll']:.4f}", reward=f"{last['reward']:.4f}")
                sums, count, t_log = {}, 0, now
            if bar is not None:
                bar.update(1)
            if self.step % cfg.checkpoint_every == 0:
                self.save()
        self.save()
        if bar is not None:
            bar.close()
        self.model.eval()
        return last


def plot_losses(metrics_path: str | Path, out_png: str | Path) -> None:
    """Every loss term of a run against step, on a log scale (small losses stay readable)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{metrics_path} holds no metrics")
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for key in ("total", "obs_nll", "reward", "value", "opponent", "aux"):
        values = [r.get(key, float("nan")) for r in rows]
        if any(v > 0 for v in values):
            ax.plot(steps, [v if v > 0 else float("nan") for v in values], label=key)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (log scale)")
    ax.set_title("World-model training losses")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(frameon=False, ncol=3)
    fig.tight_layout()
    atomic_write(out_png, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)


def env_threads() -> None:
    """Use every core this process may run on (torch defaults can leave some idle)."""
    if hasattr(os, "sched_getaffinity"):
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))

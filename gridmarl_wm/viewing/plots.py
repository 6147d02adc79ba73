"""Pictures of a world model: real vs predicted next observations, open-loop curves, the TV histogram."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gridmarl.config import CHANNEL_NAMES
from gridmarl_wm.io import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, out_png: str | Path) -> None:
    """Write ``fig`` as a PNG atomically (a crash leaves the old picture, never half of one), then close it."""
    try:
        atomic_write(out_png, lambda f: fig.savefig(f, format="png"))
    finally:
        plt.close(fig)


@torch.no_grad()
def plot_predictions(
    model, data, out_png: str | Path, rows: np.ndarray, samples: int = 400, seed: int = 0
) -> None:
    """For each transition in ``rows`` of ``data``: the real next observation's channels 0-3 and, beside
    them, the model's probability that each cell holds something in that channel (from ``samples`` samples).
    """
    plt = _pyplot()
    g = torch.Generator().manual_seed(seed)
    fig, axes = plt.subplots(len(rows), 8, figsize=(13, 1.75 * len(rows) + 0.6), dpi=110, squeeze=False)
    for i, r in enumerate(rows):
        obs = np.repeat(data.obs[r : r + 1].astype(np.float32), samples, axis=0)
        a = np.repeat(data.action[r : r + 1], samples)
        o = np.repeat(data.others[r : r + 1], samples, axis=0)
        nxt, _ = model.sample(obs, a, o, generator=g)
        marginal = (nxt > 0).float().mean(0).cpu().numpy()  # (5, h, w)
        real = data.next_obs[r]
        for c in range(4):
            for k, (img, kind) in enumerate((((real[c] > 0).astype(float), "real"), (marginal[c], "model"))):
                ax = axes[i, 2 * c + k]
                ax.imshow(img, vmin=0, vmax=1, cmap="magma" if kind == "model" else "Greys")
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_title(f"{CHANNEL_NAMES[c]}\n{kind}", fontsize=8)
                if kind == "model":
                    for (y, x), p in np.ndenumerate(img):
                        if p > 0.005:
                            ax.text(
                                x,
                                y,
                                f"{p:.2f}",
                                ha="center",
                                va="center",
                                fontsize=6,
                                color="black" if p > 0.5 else "white",
                            )
        axes[i, 0].set_ylabel(f"a={data.action[r]}, others={data.others[r].tolist()}", fontsize=7)
    fig.suptitle("Real next observation vs the model's per-cell probability, by channel", fontsize=10)
    fig.tight_layout()
    _save(plt, fig, out_png)


def plot_open_loop(open_loop: dict[str, dict[str, list[float]]], out_png: str | Path) -> None:
    """Position match and cumulative-reward error against the horizon, per opponent-action source."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=120)
    for name, curves in open_loop.items():
        h = np.arange(1, len(curves["position_match"]) + 1)
        label = name.replace("_", " ")
        left.plot(h, curves["position_match"], marker="o", ms=3, label=label)
        right.plot(h, curves["reward_error"], marker="o", ms=3, label=label)
    left.set(
        xlabel="horizon h", ylabel="players' positions exact", ylim=(0, 1.02), title="Open-loop positions"
    )
    right.set(xlabel="horizon h", ylabel="|cumulative reward error|", title="Open-loop reward")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    _save(plt, fig, out_png)


def plot_tv_histogram(tv: np.ndarray, out_png: str | Path) -> None:
    """Histogram of per-transition TV on a log count scale."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4), dpi=120)
    ax.hist(tv, bins=np.linspace(0, 1, 51), color="#0072b2")
    ax.set_yscale("log")
    ax.set(
        xlabel="TV(model, exact) per transition",
        ylabel="transitions (log scale)",
        title=f"TV over {len(tv):,} transitions: mean {tv.mean():.4f}, p99 {np.quantile(tv, 0.99):.4f}",
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(plt, fig, out_png)


def plot_switch_recovery(curves: dict[str, list[float]], out_png: str | Path, metric: str = "TV") -> None:
    """Opponent-model error against steps since the opponent switched policy, one line per model."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=120)
    for label, values in curves.items():
        ax.plot(np.arange(len(values)), values, marker="o", ms=3, lw=1.4, label=label)
    ax.set(
        xlabel="steps since the opponent switched policy",
        ylabel=f"{metric} to the true action distribution",
        title="Opponent models after a policy switch",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(plt, fig, out_png)

"""Learning curves of a PPO run: episode return against real env steps and against wall-clock time."""

from __future__ import annotations

import json
from pathlib import Path


def plot_learning(metrics_path: str | Path, out_png: str | Path, title: str = "PPO learning curve") -> None:
    """Two panels from ``metrics.jsonl``: return per episode against env steps and against seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "episode_return" in r]
    if not rows:
        raise ValueError(f"{metrics_path} holds no finished episodes to plot")
    ret = [r["episode_return"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=120, sharey=True)
    axes[0].plot([r["env_steps"] for r in rows], ret)
    axes[0].set_xlabel("real env steps (game steps)")
    axes[1].plot([r["elapsed"] for r in rows], ret)
    axes[1].set_xlabel("wall-clock seconds of training")
    axes[0].set_ylabel("return per episode")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)

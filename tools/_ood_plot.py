"""eval_ood's scatter plots: per checkpoint each uncertainty score against each quality
change, ID and OOD files in two colours (matplotlib, Agg backend)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np


def plot_name(name: str, multi: bool) -> str:
    """The plot's file name: ``uncertainty_vs_quality.png``, with several checkpoints
    ``uncertainty_vs_quality_<NAME>.png`` (NAME reduced to ``[A-Za-z0-9_.+-]``)."""
    if not multi:
        return "uncertainty_vs_quality.png"
    return f"uncertainty_vs_quality_{re.sub(r'[^A-Za-z0-9_.+-]+', '-', name).strip('-') or 'ckpt'}.png"


def scatter(path: Path, per_file: list[dict[str, Any]], unc: dict[str, list[float]],
          quality: dict[str, list[float]], title: str | None = None) -> None:
    """One panel per (quality, uncertainty) pair: x the score, y the quality change, a line at 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    path.parent.mkdir(exist_ok=True)
    sets = np.array([r["set"] for r in per_file])
    fig, axes = plt.subplots(len(quality), len(unc), figsize=(4.6 * len(unc), 3.6 * len(quality)), squeeze=False)
    for j, (un, uv) in enumerate(unc.items()):
        for i, (qn, qv) in enumerate(quality.items()):
            ax = axes[i][j]
            for s, color in (("ID", "C0"), ("OOD", "C3")):
                m = sets == s
                if m.any():
                    ax.scatter(np.asarray(uv)[m], np.asarray(qv)[m], s=14, c=color, label=s, alpha=0.8)
            ax.set(xlabel=un, ylabel=qn)
            ax.xaxis.set_major_locator(MaxNLocator(4))  # readable ticks on narrow ranges
            ax.axhline(0.0, color="0.6", lw=0.8)
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

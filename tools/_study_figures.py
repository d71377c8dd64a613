"""The figures of a study's report.html (not a public API), each a PNG written with matplotlib's
Agg backend (None where the study has nothing to draw):

* :func:`bars` -- ablation bars, mean ± 95 % CI over seeds per metric;
* :func:`spectrograms` -- one test utterance across models (noisy, each output, clean);
* :func:`loss_curves` -- overlaid training / validation losses (each row's first ``log.csv``);
* :func:`bsdt_analysis` -- BSDT rows' fusion weights per band and inter-band graphs, side by
  side (from the ``analysis.json`` the run wrote from its checkpoint);
* :func:`aa_band_bars` / :func:`aa_tradeoff` -- anti-aliasing studies (``METRIC@BAND``
  columns): per-band NMR-S / HESR-T / ASR with the targets, and ESR-T against NMR-S over λ;
* :func:`ood_plots` -- eval_ood's own uncertainty-vs-quality scatter plots, copied.
"""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from _study_job import read_json
from _study_rows import slug
from _study_schema import Study
from _study_table import AA_BANDS, AA_TARGETS_DB, LABELS, TableRow


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _measured(rows: list[TableRow]) -> list[TableRow]:
    return [r for r in rows if r.kind != "quoted" and r.runs]


def first_point_dir(r: TableRow) -> Path | None:
    """The evaluation folder of the first run of a model table row (its enhanced/ and analysis)."""
    if r.kind != "model" or not r.runs or not r.runs[0].point_dir:
        return None
    return Path(r.runs[0].point_dir)


def bars(rows: list[TableRow], metrics: list[str], path: Path, baseline: str | None) -> Path | None:
    """One horizontal bar per measured row and metric: mean ± 95 % CI (the baseline red, the noisy input grey)."""
    meas = _measured(rows)
    if not meas:
        return None
    plt = _plt()
    n = len(metrics)
    cols = min(3, n)
    nr = math.ceil(n / cols)
    fig, axes = plt.subplots(nr, cols, figsize=(4.2 * cols, 0.35 * len(meas) * nr + 1.8 * nr), squeeze=False)
    names = [r.name for r in meas]
    for k, m in enumerate(metrics):
        a = axes[k // cols][k % cols]
        mean = [r.cells.get(m, {}).get("mean") for r in meas]
        ci = [r.cells.get(m, {}).get("ci") or 0.0 for r in meas]
        y = np.arange(len(meas))
        colors = ["C3" if r.is_baseline else ("0.6" if r.kind == "noisy" else "C0") for r in meas]
        a.barh(y, [v if v is not None else np.nan for v in mean], xerr=ci, color=colors, capsize=3)
        a.set_yticks(y, names if k % cols == 0 else [""] * len(names), fontsize=8)
        a.invert_yaxis()
        a.set_title(LABELS.get(m, m) + (" (lower is better)" if m in ("lsd",) else ""), fontsize=9)
        finite = [v for v in mean if v is not None]
        if finite:
            lo, hi = min(finite), max(finite)
            pad = 0.15 * (hi - lo or abs(hi) or 1.0)
            a.set_xlim(lo - pad - max(ci), hi + pad + max(ci))
    for k in range(n, nr * cols):
        axes[k // cols][k % cols].axis("off")
    fig.suptitle("mean ± 95 % CI over seeds (red: baseline, grey: noisy input)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def spectrograms(rows: list[TableRow], testset: dict[str, Any], path: Path) -> Path | None:
    """Spectrograms (dB, 16 kHz, 512-point Hann STFT, hop 128) of the first test file: noisy, each
    row's first output, clean; None where no row enhanced the test set."""
    from se_data import load_audio

    if not testset.get("files"):
        return None
    name = testset["files"][0]
    panels: list[tuple[str, Path]] = [("noisy", Path(testset["noisy"]) / name)]
    for r in rows:
        d = first_point_dir(r)
        if d is not None and (d / "enhanced" / name).exists():
            panels.append((r.name, d / "enhanced" / name))
    if len(panels) == 1:
        return None  # no row enhanced the test set (analyze_aa, eval_ood rows)
    panels.append(("clean", Path(testset["clean"]) / name))
    import torch

    plt = _plt()
    cols = min(4, len(panels))
    nr = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nr, cols, figsize=(3.6 * cols, 2.6 * nr), squeeze=False, sharey=True)
    win = torch.hann_window(512)
    for k, (label, f) in enumerate(panels):
        a = axes[k // cols][k % cols]
        x, sr = load_audio(f, 16000, resample=True, mono=True)
        s = torch.stft(x, 512, 128, window=win, return_complex=True).abs()
        db = 20 * torch.log10(s + 1e-8)
        a.imshow(db.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=float(db.max()) - 80,
                 vmax=float(db.max()), extent=(0, x.shape[-1] / sr, 0, sr / 2000))
        a.set_title(label, fontsize=8)
        a.set_xlabel("time (s)", fontsize=7)
    for k in range(len(panels), nr * cols):
        axes[k // cols][k % cols].axis("off")
    axes[0][0].set_ylabel("kHz")
    fig.suptitle(f"test utterance {name}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _log_rows(run_dir: Path) -> list[dict[str, float]]:
    f = run_dir / "train" / "log.csv"
    if not f.exists():
        return []
    with open(f, newline="") as fh:
        out = []
        for r in csv.DictReader(fh):
            try:
                out.append({k: float(v) for k, v in r.items() if v not in ("", None)})
            except ValueError:
                continue
        return out


def loss_curves(rows: list[TableRow], path: Path) -> Path | None:
    """Training and validation loss of the first seed of each model row (its ``train/log.csv``)."""
    curves = []
    seen = set()
    for r in rows:
        if r.kind != "model" or not r.runs or r.runs[0].run_dir in seen:
            continue
        seen.add(r.runs[0].run_dir)
        log = _log_rows(Path(r.runs[0].run_dir))
        if log:
            curves.append((r.name.split(" / ")[0], log))
    if not curves:
        return None
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.6))
    for k, (name, log) in enumerate(curves):
        x = [h.get("step", h.get("epoch", i)) for i, h in enumerate(log)]
        for a, key in zip(ax, ("train_loss", "valid_loss")):
            y = [h.get(key, np.nan) for h in log]
            a.plot(x, y, marker="o", ms=3, label=name, color=f"C{k % 10}")
    for a, t in zip(ax, ("training loss", "validation loss")):
        a.set(xlabel="step", title=t + " (first seed of each row)")
    ax[1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def bsdt_analysis(rows: list[TableRow], path: Path) -> Path | None:
    """Per BSDT row, its fusion weights per band (mean over blocks) above its inter-band graph."""
    items = []
    for r in rows:
        d = first_point_dir(r)
        a = read_json(d / "analysis.json") if d is not None else None
        if a and (a.get("fusion_weights") or a.get("graph")):
            items.append((r.name, a))
    if not items:
        return None
    plt = _plt()
    cols = min(len(items), 5)  # a grid of at most 5 models per line: fusion weights above, graph below
    lines = -(-len(items) // cols)
    fig, axes = plt.subplots(2 * lines, cols, figsize=(3.4 * cols, 6.2 * lines), squeeze=False)
    for ax in axes[2 * ((len(items) - 1) // cols):, len(items) - cols * (lines - 1):].ravel():
        ax.axis("off")  # the unused cells of the last line
    for i, (name, a) in enumerate(items):
        line, k = divmod(i, cols)
        fw = np.asarray(a.get("fusion_weights") or [], dtype=float)
        top = axes[2 * line][k]
        if fw.size:
            w = fw.mean(axis=0)  # [K, S]: mean over blocks
            top.imshow(w.T, aspect="auto", origin="lower", cmap="viridis", vmin=0, vmax=1)
            wins = a.get("windows") or []
            if wins:
                top.set_yticks(range(len(wins)), [f"w={x}" for x in wins], fontsize=7)
            top.set_xlabel("band", fontsize=7)
        else:
            top.text(0.5, 0.5, "no multi-scale fusion", ha="center", va="center", fontsize=8)
            top.axis("off")
        top.set_title(f"{name}\nfusion weight per band", fontsize=8)
        g = np.asarray(a.get("graph") or [], dtype=float)
        bot = axes[2 * line + 1][k]
        if g.size:
            bot.imshow(g.mean(axis=0) if g.ndim == 3 else g, cmap="Blues", origin="lower", vmin=0)
            bot.set_xlabel("band", fontsize=7)
            bot.set_title(f"inter-band graph ({a.get('graph_kind')})", fontsize=8)
        else:
            bot.text(0.5, 0.5, "no inter-band graph", ha="center", va="center", fontsize=8)
            bot.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def aa_band_bars(rows: list[TableRow], metrics: list[str], path: Path) -> Path | None:
    """Per band, one bar per model row (mean ± CI over tones and seeds) for NMR-S, HESR-T and ASR;
    the targets dashed."""
    meas = [r for r in _measured(rows) if r.kind == "model"]
    panels = [m for m in ("nmr_s", "hesr_t", "asr") if any(f"{m}@{b}" in metrics for b in AA_BANDS)]
    if not meas or not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(8.0, 0.9 * len(AA_BANDS) * (1 + len(meas) / 4)),
                                                     3.2 * len(panels)), squeeze=False)
    width = 0.8 / len(meas)
    for ax, m in zip(axes[:, 0], panels):
        bands = [b for b in AA_BANDS if f"{m}@{b}" in metrics]
        x = np.arange(len(bands))
        for k, r in enumerate(meas):
            cells = [r.cells.get(f"{m}@{b}", {}) for b in bands]
            ax.bar(x + (k - (len(meas) - 1) / 2) * width, [c.get("mean") if c.get("mean") is not None else np.nan
                                                           for c in cells],
                   width, yerr=[c.get("ci") or 0.0 for c in cells], capsize=2, label=r.name, color=f"C{k % 10}")
        if m in AA_TARGETS_DB:
            ax.axhline(AA_TARGETS_DB[m], color="k", ls="--", lw=1, label=f"target {AA_TARGETS_DB[m]:g} dB")
        ax.set_xticks(x, [f"{b} Hz" for b in bands])
        ax.set_ylabel(LABELS.get(m, m))
    axes[0, 0].legend(fontsize=6, ncol=2, loc="best")
    fig.suptitle("per band: mean ± 95 % CI over tones and seeds (lower is better)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def aa_tradeoff(rows: list[TableRow], study: Study, path: Path) -> Path | None:
    """ESR-T against NMR-S (broadband means) of every anti-aliasing row; the rows that differ only
    in λ joined in λ order, one line per teacher."""
    pts = []
    for r in _measured(rows):
        try:
            row = study.row(r.name)
        except KeyError:
            continue
        n, e = r.cells.get("nmr_s", {}).get("mean"), r.cells.get("esr_t", {}).get("mean")
        if row.tool != "train_aa" or n is None or e is None:
            continue
        sweep = set(row.flags) <= {"teacher", "lambda"}
        pts.append((r.name, str(row.flags.get("teacher", "builtin")), float(row.flags.get("lambda", 1.0)), sweep, n, e))
    if not pts:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for k, teacher in enumerate(sorted({p[1] for p in pts})):
        line = sorted((p for p in pts if p[1] == teacher and p[3]), key=lambda p: p[2])
        if line:
            ax.plot([p[4] for p in line], [p[5] for p in line], "-o", color=f"C{k}",
                    label=f"λ sweep, {Path(teacher).stem}")
            for p in line:
                ax.annotate(f"λ={p[2]:g}", (p[4], p[5]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        for p in (p for p in pts if p[1] == teacher and not p[3]):
            ax.plot(p[4], p[5], "s", color=f"C{k}", mfc="none")
            ax.annotate(p[0].split(", ", 1)[-1], (p[4], p[5]), fontsize=6, xytext=(3, -8), textcoords="offset points")
    ax.set(xlabel="NMR-S (dB, broadband mean)", ylabel="ESR-T (dB, broadband mean)",
           title="fidelity vs alias audibility over λ (lower-left is better)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def ood_plots(rows: list[TableRow], figdir: Path) -> list[tuple[str, Path]]:
    """eval_ood's uncertainty-vs-quality scatter plots of the first seed of each row, copied."""
    out, seen = [], set()
    for r in rows:
        d = first_point_dir(r)
        if d is None or d in seen or not (d / "metrics" / "plots").is_dir():
            continue
        seen.add(d)
        for png in sorted((d / "metrics" / "plots").glob("*.png")):
            dst = figdir / f"ood_{slug(r.name.split(' / ')[0])}_{d.name}_{png.name}"
            shutil.copyfile(png, dst)
            label = r.name.split(" / ")[0] + (f" ({d.name})" if d.name != "default" else "")
            out.append((f"Uncertainty vs quality: {label}", dst))
    return out

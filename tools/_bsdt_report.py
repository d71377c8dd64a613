"""Final evaluation and plots for tools/train_bsdt.py (not a public API)."""

from __future__ import annotations

import argparse
import functools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import bandsplit
from bandsplit import SpectrogramTransform
from se_data import load_audio, save_audio
import torch.distributed as dist
from se_data import iterate_batches
from se_metrics import DEFAULT_TABLE_METRICS, METRIC_LABELS, format_metric_table, labelled_scores, mean_rows
from se_metrics import pesq as pesq_fn
from se_metrics import submit_pairs

import _bsdt_figures as figs

SAMPLE_RATE = 16000
#: wide-band PESQ of (clean, estimate) rows at SAMPLE_RATE, by reference so that it pickles to pool workers
PESQ_WB = functools.partial(pesq_fn, sample_rate=SAMPLE_RATE, mode="wb")
#: the test table's metric columns (se_metrics.labelled_scores' headings)
COLUMNS = tuple(METRIC_LABELS[m] for m in DEFAULT_TABLE_METRICS)


def format_table(rows: dict[str, dict[str, float]], counts: dict[str, int]) -> str:
    """Mean scores per row (``noisy`` / ``enhanced``) and their file counts as the README shows them."""
    return format_metric_table({k: {**v, "files": counts[k]} for k, v in rows.items()}, COLUMNS + ("files",),
                               width=14, widths={"files": 8})


@torch.no_grad()
def validate(model: nn.Module, stft: SpectrogramTransform, criterion: Any, data: Any,
              args: argparse.Namespace, device: torch.device, info: Any, *,
              pool: Any = None) -> dict[str, float]:
    """Validation loss on fixed crops of the validation split, plus PESQ-WB on whole utterances
    (scored on ``pool`` while the next one is enhanced; None: here, one by one; the same values)."""
    model.eval()
    dtype = next(model.parameters()).dtype
    total, n = 0.0, 0
    for noisy, clean, _ in iterate_batches(data.valid, epoch=0, seed=args.seed, batch_size=args.batch_size,
                                        rank=info.rank, world_size=info.world_size, shuffle=False,
                                        max_batches=args.valid_batches, num_workers=args.num_workers):
        noisy, clean = noisy.to(device, dtype), clean.to(device, dtype)
        loss, _ = criterion(model(stft.stft(noisy)), stft.stft(clean))
        total += float(loss) * noisy.shape[0]
        n += noisy.shape[0]
    stats = torch.tensor([total, float(n)], dtype=torch.float64)
    if info.enabled:
        dist.all_reduce(stats)
    row = {"valid_loss": float(stats[0] / max(stats[1], 1))}
    if args.valid_pesq_files > 0:
        pending = [submit_pairs(PESQ_WB, [clean.numpy()], [bandsplit.enhance(
            model, noisy.to(device, dtype), SAMPLE_RATE).cpu().numpy()], pool)
            for noisy, clean in data.valid_utterances(args.valid_pesq_files)]
        # an utterance without speech has no PESQ (NaN): left out
        scores = [s for p in pending for s in p.result() if not math.isnan(s)]
        row["valid_pesq"] = float(np.mean(scores)) if scores else float("nan")
    model.train()
    return row


@torch.no_grad()
def evaluate_test_set(model: nn.Module, stft: SpectrogramTransform, data: Any, out: Path,
                      args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Enhance the held-out test utterances, write them to ``out/enhanced``, print and return the table."""
    model.eval()
    pairs = data.test_pairs if args.test_files is None else data.test_pairs[: args.test_files]
    enh_dir = out / "enhanced"
    enh_dir.mkdir(exist_ok=True)
    per_file: list[dict[str, Any]] = []
    for name, noisy_path, clean_path in tqdm(pairs, desc="test set", leave=False, dynamic_ncols=True):
        noisy, sr = load_audio(noisy_path, stft.sample_rate, resample=args.resample, mono=True)
        clean, _ = load_audio(clean_path, stft.sample_rate, resample=args.resample, mono=True)
        n = min(len(noisy), len(clean))
        noisy, clean = noisy[:n], clean[:n]
        enh = bandsplit.enhance_waveform(model, noisy.to(device), sr, stft, chunk_seconds=60.0).cpu()
        target = enh_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        save_audio(target, enh.clamp(-1, 1), sr, overwrite=False)
        c, x, e = clean.numpy(), noisy.numpy(), enh.numpy()
        per_file.append({"file": name, "noisy": labelled_scores(c, x, sr), "enhanced": labelled_scores(c, e, sr)})
    rows = mean_rows({cond: [f[cond] for f in per_file] for cond in ("noisy", "enhanced")}, COLUMNS)
    table = format_table(rows, {cond: len(per_file) for cond in rows})
    print(f"\nHeld-out test set ({len(per_file)} utterances, {data.describe()['kind']}):\n{table}\n", flush=True)
    (out / "test_table.txt").write_text(table + "\n")
    (out / "test_per_file.json").write_text(json.dumps(per_file, indent=1))
    return {"mean": rows, "count": len(per_file)}


#: the ``return_analysis="full"`` figures use at most this much of the test file: BSDT's temporal
#: maps hold ``L·K·T²`` values (31 bands, 4 s: 0.25 M per band and block)
ANALYSIS_SECONDS = 4.0


def write_plots(model: nn.Module, stft: SpectrogramTransform, data: Any, out: Path,
                history: list[dict[str, float]], device: torch.device) -> list[str]:
    """Write ``out/plots/*.png``; returns the file names written.

    Always ``loss_curves.png`` (with a history) and ``spectrograms.png`` (noisy / enhanced / clean
    of the first test file). For models with ``supports_analysis``, from ``return_analysis=True`` on
    the whole file: BSDT ``fusion_weights.png``, ``interband_graph.png``,
    ``fusion_vs_frequency.png``; ERB-UNet ``erb_lambda.png``, ``erb_masks.png`` and with
    ``attention="adaptive"`` ``erb_alpha.png``, ``erb_scale_weights.png``. From
    ``return_analysis="full"`` on the first :data:`ANALYSIS_SECONDS` s: BSDT
    ``temporal_attention.png``, ``interband_attention.png``, ``band_embeddings.png`` (adaptive
    fusion); ERB-UNet ``erb_attention.png``. ``_bsdt_figures.plot_analysis`` says what each shows.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    # loss curves
    if history:
        ep = [h["epoch"] + 1 for h in history]
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
        ax[0].plot(ep, [h.get("train_loss", np.nan) for h in history], label="train")
        ax[0].plot(ep, [h["valid_loss"] for h in history], label="valid")
        ax[0].set(xlabel="epoch", ylabel="loss", title="loss")
        ax[0].legend()
        ax[1].plot(ep, [h.get("valid_pesq", np.nan) for h in history], color="C2")
        ax[1].set(xlabel="epoch", ylabel="PESQ-WB", title="validation PESQ")
        fig.tight_layout()
        fig.savefig(plots / "loss_curves.png", dpi=figs.DPI)
        plt.close(fig)
    if not data.test_pairs:
        return _written(plots)
    name, noisy_path, clean_path = data.test_pairs[0]
    noisy, sr = load_audio(noisy_path, stft.sample_rate, resample=True, mono=True)
    clean, _ = load_audio(clean_path, stft.sample_rate, resample=True, mono=True)
    model.eval()
    with torch.no_grad():
        spec = stft.stft(noisy.unsqueeze(0).to(device))
        analysis = None
        if getattr(model, "supports_analysis", False):
            est, analysis = model(spec, return_analysis=True)
        else:
            est = model(spec)
    specs = {"noisy": spec[0], "enhanced": est[0], "clean": stft.stft(clean.unsqueeze(0).to(device))[0]}
    fig, ax = plt.subplots(1, 3, figsize=(14, 3.8), sharey=True)
    for a, (k, s) in zip(ax, specs.items()):
        db = 20 * torch.log10(s.abs().cpu() + 1e-8)
        im = a.imshow(db.numpy(), origin="lower", aspect="auto", vmin=float(db.max()) - 80, vmax=float(db.max()),
                      extent=(0, db.shape[1] * stft.hop / sr, 0, sr / 2000), cmap="magma")
        a.set(title=f"{k}: {name}", xlabel="time (s)")
    ax[0].set_ylabel("frequency (kHz)")
    fig.colorbar(im, ax=ax, label="dB")
    fig.savefig(plots / "spectrograms.png", dpi=figs.DPI)
    plt.close(fig)
    if analysis:
        full = None
        frames = max(1, int(ANALYSIS_SECONDS * sr / stft.hop_length) + 1)
        try:
            with torch.no_grad():
                _, full = model(spec[..., :frames], return_analysis="full")
        except (TypeError, ValueError) as e:  # a model with only the cheap analysis level
            print(f"plots: no full analysis ({type(model).__name__}: {e})", flush=True)
        centres = full.get("band_centres_hz") if full else None
        if centres is None and hasattr(model, "band_centres_hz"):
            centres = model.band_centres_hz()
        figs.plot_analysis(analysis, plots, plt, centres_hz=centres, frame_s=stft.hop_length / sr)
        if full:
            figs.plot_full_analysis(full, plots, plt, frame_s=stft.hop_length / sr)
    return _written(plots)


def _written(plots: Path) -> list[str]:
    return sorted(p.name for p in plots.glob("*.png"))

#!/usr/bin/env python
"""In-distribution vs out-of-distribution evaluation of static and adaptive guidance.

    uv run tools/make_ood_testset.py --clean CLEAN --noise ESC50 --out runs/ood
    uv run tools/eval_ood.py --ckpt runs/train_sgmse-.../model.pt --id runs/demo-corpus/test --ood runs/ood

Enhances every utterance of an in-distribution set (ID: a folder with clean/ and noisy/,
e.g. the demo corpus' test split, or a VoiceBank-DEMAND root's test set) and of an OOD set
built by tools/make_ood_testset.py (clean/, noisy/, manifest.csv) under each guidance
condition (default: unconditional, conditional, static w = 2, and the adaptive NC / k-NN /
mixed scales), with the same sampler noise per file in every condition, and prints a table
of PESQ-WB / ESTOI / SI-SDR per set and condition (plus the mean guidance scale). Then the
per-utterance uncertainty (1 - NC certainty, k-NN distance to the training bank) is
correlated (Pearson, Spearman) with the quality of the reference condition (SI-SDR and PESQ
improvement over the noisy input) and with the gain of conditioning (conditional minus
unconditional), and plotted as scatter plots (OUT/plots/uncertainty_vs_quality.png).
Outputs: OUT/table.txt, OUT/per_file.csv, OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _argtypes as T  # noqa: E402
import _cli  # noqa: E402
from _outdir import check_no_overlap  # noqa: E402
import _sgmse_common as common  # noqa: E402

from se_data import save_audio  # noqa: E402
from se_metrics import format_metric_table, labelled_scores, mean_rows  # noqa: E402
from sgmse_cfg import NoiseCondScoreModel  # noqa: E402

DEFAULT_CONDITIONS = ["uncond", "cond", "static:2", "nc", "knn", "mix"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eval_ood.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, help="model.pt (or best.pt / last.pt) from tools/train_sgmse.py")
    p.add_argument("--weights", choices=["ema", "live"], default="ema", help="EMA or live weights (default ema)")
    p.add_argument("--id", required=True, metavar="DIR", dest="id_dir",
                   help="in-distribution set: a folder with clean/ and noisy/ (same names), or a VoiceBank-DEMAND "
                        "root (its clean_testset_wav / noisy_testset_wav)")
    p.add_argument("--ood", required=True, metavar="DIR", dest="ood_dir",
                   help="OOD set from tools/make_ood_testset.py (clean/, noisy/, manifest.csv)")
    p.add_argument("--conditions", nargs="+", default=DEFAULT_CONDITIONS, metavar="COND",
                   help="guidance conditions: uncond, cond, static:W, and nc[:W] / knn[:W] / mix[:W] (adaptive, W = "
                        f"the maximum scale, default 1; {T.GUIDANCE_SCALE.bounds_text()}) (default: %(default)s)")
    p.add_argument("--reference", default="cond",
                   help="condition whose quality is correlated with the uncertainty (default cond; else the first)")
    p.add_argument("--files", type=T.optional(T.positive_int()), default=None,
                   help="at most this many utterances per set (default, or none: all)")
    p.add_argument("--resample", action="store_true", help="resample audio at another rate to the model's rate")
    p.add_argument("--save-audio", action="store_true", help="also write every enhanced file to OUT/audio/")
    p.add_argument("--threads", type=T.THREADS, default=None, help=_cli.THREADS_HELP)
    common.add_sampler_args(p)
    _cli.add_common_args(p)
    return T.annotate_help(p)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    common.check_sampler_args(p, args)
    try:
        args.parsed_conditions = [parse_condition(c) for c in args.conditions]
    except ValueError as e:
        p.error(f"argument --conditions: {e}")
    return args


def parse_condition(c: str) -> tuple[str, str, float]:
    """``"static:2"`` -> ``(label, mode, w)``."""
    mode, _, w = c.partition(":")
    if mode not in ("uncond", "cond", "static", "nc", "knn", "mix"):
        raise ValueError(f"unknown condition {c!r}: use uncond, cond, static:W, nc[:W], knn[:W], mix[:W]")
    if mode == "static" and not w:
        raise ValueError("static needs a scale, e.g. static:2")
    if mode in ("uncond", "cond") and w:
        raise ValueError(f"{mode} takes no scale")
    try:
        val = T.GUIDANCE_SCALE(w) if w else 1.0
    except argparse.ArgumentTypeError as e:
        raise ValueError(f"condition {c!r}: the scale W: {e}") from None
    label = mode if mode in ("uncond", "cond") else f"{mode} w={val:g}" if mode == "static" else \
        (f"{mode}" if val == 1.0 else f"{mode} max {val:g}")
    return label, mode, val


def set_pairs(root: Path, limit: int | None) -> list[tuple[str, Path, Path]]:
    if (root / "clean").is_dir() and (root / "noisy").is_dir():
        cdir, ndir = root / "clean", root / "noisy"
    elif (root / "clean_testset_wav").is_dir():
        cdir, ndir = root / "clean_testset_wav", root / "noisy_testset_wav"
    else:
        raise SystemExit(f"error: {root} has neither clean/ + noisy/ nor a VoiceBank-DEMAND test set")
    noisy = {p.relative_to(ndir).as_posix(): p for p in common.list_wavs(ndir)}
    pairs = []
    for rel, n in sorted(noisy.items()):
        c = cdir / rel
        if not c.is_file():
            raise SystemExit(f"error: {n} has no clean reference {c}")
        pairs.append((rel, n, c))
    if not pairs:
        raise SystemExit(f"error: no audio files in {ndir}")
    return pairs[:limit]


def _corr(x: list[float], y: list[float]) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr

    a, b = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return {"pearson": float("nan"), "spearman": float("nan"), "n": int(ok.sum())}
    return {"pearson": float(pearsonr(a[ok], b[ok])[0]), "spearman": float(spearmanr(a[ok], b[ok])[0]),
            "n": int(ok.sum())}


@_cli.phrased(resample="--resample")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = _cli.resolve_device(args.device)
    model, _ = common.load_model(args.ckpt, args.weights)  # sgmse_cfg.load_model, tool-style errors
    model.to(device)
    conds = args.parsed_conditions
    if not isinstance(model, NoiseCondScoreModel) and any(m != "cond" for _, m, _ in conds):
        raise SystemExit("error: this checkpoint has no noise encoder: only the 'cond' condition applies")
    sr = model.sample_rate
    sets = {"ID": set_pairs(Path(args.id_dir), args.files), "OOD": set_pairs(Path(args.ood_dir), args.files)}
    if args.out is not None:
        check_no_overlap(Path(args.out), "--out", **{"--id": args.id_dir, "--ood": args.ood_dir})
    out = _cli.prepare_out_dir(args.out, "eval_ood")
    base = common.options_from_args(args, model)
    per_file: list[dict[str, Any]] = []
    total = sum(len(v) for v in sets.values()) * len(conds)
    bar = tqdm(total=total, desc="enhancing", dynamic_ncols=True)
    for set_name, pairs in sets.items():
        for i, (rel, noisy_p, clean_p) in enumerate(pairs):
            noisy, clean = common.load_pair(noisy_p, clean_p, sr, args.resample)
            c_np = clean.numpy()
            row: dict[str, Any] = {"set": set_name, "file": rel, "seconds": len(noisy) / sr}
            row.update({f"noisy|{k}": v for k, v in labelled_scores(c_np, noisy.numpy(), sr).items()})
            for label, mode, w in conds:
                opts = common.EnhanceOptions(**{**base.__dict__, "guidance": mode, "w": w})
                enh, info = common.enhance_wave(model, noisy, sr, opts, seed=args.seed + 7919 * i)
                row.update({f"{label}|{k}": v for k, v in labelled_scores(c_np, enh.numpy(), sr).items()})
                row[f"{label}|w"] = info.get("w", 1.0)
                row[f"{label}|rtf"] = info["rtf"]
                for k in ("nc_certainty", "knn_distance", "knn_reliability", "nc_class_name"):
                    if k in info:
                        row[k] = info[k]
                if args.save_audio:
                    target = out / "audio" / set_name / label.replace(" ", "_").replace("=", "") / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    save_audio(target, enh.clamp(-1, 1), sr)
                bar.update(1)
            per_file.append(row)
    bar.close()

    # ---- table: per set and condition the mean over its files (NaN skipped)
    labels = ["noisy"] + [c[0] for c in conds]
    groups = {f"{s} {label}": [{**{c: r[f"{label}|{c}"] for c in common.COLUMNS},
                                "mean w": r.get(f"{label}|w", math.nan)} for r in per_file if r["set"] == s]
              for s in sets for label in labels}
    summary: dict[str, Any] = mean_rows(groups, common.COLUMNS + ("mean w",))
    for name, vals in summary.items():
        if name.split(" ", 1)[1] == "noisy":
            del vals["mean w"]  # the input: no guidance scale
        vals["files"] = len(groups[name])
    table = format_metric_table(summary, common.COLUMNS + ("mean w", "files"), width=common.WIDTH)
    print(f"\n{model.__class__.__name__} from {args.ckpt}; sampler {base.sampler}, N={base.N}\n{table}")

    # ---- uncertainty vs quality
    ref = args.reference if args.reference in labels else conds[0][0]
    unc: dict[str, list[float]] = {}
    if any("nc_certainty" in r for r in per_file):
        unc["1 - NC certainty"] = [1.0 - r.get("nc_certainty", math.nan) for r in per_file]
    if any("knn_distance" in r for r in per_file):
        unc["k-NN distance"] = [r.get("knn_distance", math.nan) for r in per_file]
    quality = {
        f"dSI-SDR ({ref} - noisy)": [r[f"{ref}|SI-SDR (dB)"] - r["noisy|SI-SDR (dB)"] for r in per_file],
        f"dPESQ ({ref} - noisy)": [r[f"{ref}|PESQ-WB"] - r["noisy|PESQ-WB"] for r in per_file],
    }
    if "uncond" in labels and ref != "uncond":
        quality[f"dSI-SDR ({ref} - uncond)"] = [r[f"{ref}|SI-SDR (dB)"] - r["uncond|SI-SDR (dB)"] for r in per_file]
    corr = {f"{u} vs {q}": _corr(uv, qv) for u, uv in unc.items() for q, qv in quality.items()}
    if corr:
        print("\nuncertainty vs quality (all utterances, ID + OOD):")
        w0 = max(len(k) for k in corr)
        print(f"  {'':{w0}s} {'pearson':>9s} {'spearman':>9s} {'n':>4s}")
        for k, v in corr.items():
            print(f"  {k:{w0}s} {v['pearson']:9.3f} {v['spearman']:9.3f} {v['n']:4d}")
        _scatter(out, per_file, unc, quality)
    else:
        print("\n(no uncertainty measures: the model has neither an NC head nor a fitted k-NN bank)")

    (out / "table.txt").write_text(table + "\n")
    common.write_rows_csv(out / "per_file.csv", per_file)
    (out / "results.json").write_text(json.dumps(
        {"ckpt": str(args.ckpt), "conditions": [c[0] for c in conds], "reference": ref, "sampler": base.sampler,
         "N": base.N, "table": summary, "correlations": corr,
         "sets": {k: {"dir": str(getattr(args, f"{k.lower()}_dir")), "files": len(v)} for k, v in sets.items()}},
        indent=2))
    print(f"\nwritten: {out / 'table.txt'}, per_file.csv, results.json" + (", plots/" if corr else ""))
    return 0


def _scatter(out: Path, per_file: list[dict[str, Any]], unc: dict[str, list[float]],
             quality: dict[str, list[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    (out / "plots").mkdir(exist_ok=True)
    sets = np.array([r["set"] for r in per_file])
    fig, axes = plt.subplots(len(quality), len(unc), figsize=(4.6 * len(unc), 3.6 * len(quality)), squeeze=False)
    for j, (un, uv) in enumerate(unc.items()):
        for i, (qn, qv) in enumerate(quality.items()):
            ax = axes[i][j]
            for s, color in (("ID", "C0"), ("OOD", "C3")):
                m = sets == s
                ax.scatter(np.asarray(uv)[m], np.asarray(qv)[m], s=14, c=color, label=s, alpha=0.8)
            ax.set(xlabel=un, ylabel=qn)
            ax.xaxis.set_major_locator(MaxNLocator(4))  # readable ticks on narrow ranges
            ax.axhline(0.0, color="0.6", lw=0.8)
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "plots" / "uncertainty_vs_quality.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())

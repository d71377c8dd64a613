#!/usr/bin/env python
"""In-distribution vs out-of-distribution evaluation of static and adaptive guidance.

    uv run tools/make_ood_testset.py --clean CLEAN --noise ESC50 --out runs/ood
    uv run tools/eval_ood.py --ckpt runs/train_sgmse-.../model.pt --id runs/demo-corpus/test --ood runs/ood
    uv run tools/eval_ood.py --ckpt nase=runs/a/model.pt cfg=runs/b/model.pt --id ID --ood OOD --tau 0.3
    uv run tools/eval_ood.py --ckpt runs/a/model.pt --id ID            # in-distribution only

Enhances every utterance of an in-distribution set (ID: a folder with clean/ and noisy/,
e.g. the demo corpus' test split, or a VoiceBank-DEMAND root's test set) and, if given, of an
OOD set built by tools/make_ood_testset.py (clean/, noisy/, manifest.csv) with each checkpoint
under each guidance condition (default: unconditional, conditional, static w = 2, and the
adaptive NC / raw-NC / k-NN / mixed scales; conditions a checkpoint cannot run are left out),
with the same sampler noise per file in every condition and checkpoint, and prints a table of
PESQ-WB / ESTOI / SI-SDR per checkpoint, set and condition (plus the mean guidance scale).

Uncertainty: per utterance the NC certainty (the 'nc' rule's u = (max softmax - 1/C) /
(1 - 1/C)), the raw NC confidence (max softmax, the 'nc_raw' rule w = confidence), the NC
entropy, the k-NN distance d to the training bank and its reliability 1 / (1 + d / tau).
--tau replaces every checkpoint's fitted tau (the distance at which the k-NN reliability,
and so the knn guidance scale, is 1/2). Each OOD score (1 - NC certainty, 1 - NC confidence,
NC entropy, k-NN distance, 1 - mix reliability) gets the AUROC of ID vs OOD (Mann-Whitney
form, ties counted half; also per OOD SNR and noise class) and is correlated (Pearson,
Spearman) with the quality of the reference condition (SI-SDR and PESQ improvement over the
noisy input) and with the gain of conditioning (reference minus unconditional), with a
scatter plot per checkpoint.

Breakdowns: per SNR and per noise class from a manifest CSV of each set: OOD_DIR/manifest.csv
(or --ood-manifest FILE; likewise ID_DIR/manifest.csv, or a VoiceBank-DEMAND root's
log_testset.txt, or --id-manifest). A manifest's columns 'file' (or 'name': the path under
noisy/, the file name or its stem), 'snr_db' and/or 'noise_class' are read, others ignored.

Outputs in OUT: table.txt, table.md, per_file.csv (one row per checkpoint, set and file;
'<condition>|<metric>' and '<condition>|w' columns, the uncertainty measures, 'score_<key>'
OOD scores, an 'error' column for failed files), breakdown.csv (checkpoint x set x condition
x {all, snr_db, noise_class} -> files and mean metrics), auroc.json (with an OOD set),
results.json, plots/uncertainty_vs_quality[_NAME].png. OUT/.lock is held while running.
Exit status: 0 ok; 1 a file failed (unless --allow-failures) or the inputs cannot be used;
2 a bad command line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _argtypes as T  # noqa: E402
import _cli  # noqa: E402
from _outdir import check_no_overlap  # noqa: E402
import _sgmse_common as common  # noqa: E402
from _ood_plot import plot_name, scatter  # noqa: E402

from se_data import save_audio  # noqa: E402
from se_metrics import auroc_by_group, correlation, format_metric_table, labelled_scores  # noqa: E402
from se_metrics import condition_breakdown, condition_markdown, condition_means, condition_tags  # noqa: E402
from se_metrics import set_file_pairs, write_dict_rows  # noqa: E402
from sgmse_cfg import OOD_SCORES, NoiseCondScoreModel, ScoreModel, guidance_unavailable, ood_scores  # noqa: E402
from sgmse_cfg import checkpoint_labels as checkpoint_names, parse_guidance_condition  # noqa: E402, F401

DEFAULT_CONDITIONS = ["uncond", "cond", "static:2", "nc", "nc_raw", "knn", "mix"]
#: the per-utterance uncertainty measures copied from sgmse_cfg.enhance's diagnostics
MEASURES = ("nc_certainty", "nc_confidence", "nc_entropy", "knn_distance", "knn_reliability", "nc_class_name")
#: manifest fields a breakdown groups by
BREAKDOWN_BY = ("snr_db", "noise_class")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eval_ood.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, action="extend", nargs="+", metavar="[NAME=]CKPT",
                   help="model.pt (or best.pt / last.pt) from tools/train_sgmse.py; several (--ckpt A B or --ckpt A "
                        "--ckpt B) give one row group each, labelled NAME or the checkpoint's run folder name")
    p.add_argument("--weights", choices=["ema", "live"], default="ema", help="EMA or live weights (default ema)")
    p.add_argument("--id", required=True, metavar="DIR", dest="id_dir",
                   help="in-distribution set: a folder with clean/ and noisy/ (same names), or a VoiceBank-DEMAND "
                        "root (its clean_testset_wav / noisy_testset_wav)")
    p.add_argument("--ood", default=None, metavar="DIR", dest="ood_dir",
                   help="OOD set from tools/make_ood_testset.py (clean/, noisy/, manifest.csv); default: none, an "
                        "in-distribution-only run (no AUROC)")
    p.add_argument("--id-manifest", default=None, metavar="CSV",
                   help="SNR / noise class of each ID file (columns file or name, snr_db, noise_class); default "
                        "ID_DIR/manifest.csv or a VoiceBank-DEMAND root's log_testset.txt if present; none: no "
                        "ID breakdown")
    p.add_argument("--ood-manifest", default=None, metavar="CSV",
                   help="the same for the OOD set (default OOD_DIR/manifest.csv if present; none: no breakdown)")
    p.add_argument("--conditions", nargs="+", default=None, metavar="COND",
                   help="guidance conditions: uncond, cond, static:W, and nc[:W] / nc_raw[:W] / knn[:W] / mix[:W] "
                        f"(adaptive, W = the maximum scale, default 1; {T.GUIDANCE_SCALE.bounds_text()}); nc_raw is "
                        f"w = W x max softmax, nc its rescaling to [0, 1] (default: {' '.join(DEFAULT_CONDITIONS)}, "
                        f"leaving out those a checkpoint cannot run; named ones it cannot run are an error)")
    p.add_argument("--tau", type=T.float_range(0.0, None, low_open=True, noun="a k-NN distance scale"), default=None,
                   help="k-NN reliability 1 / (1 + d / tau) with this tau for every checkpoint (knn and mix "
                        "guidance, their scores) instead of each checkpoint's fitted one (default: the fitted tau)")
    p.add_argument("--reference", default="cond",
                   help="condition whose quality is correlated with the uncertainty (default cond; else the first)")
    p.add_argument("--files", type=T.optional(T.positive_int()), default=None,
                   help="at most this many utterances per set (default, or none: all)")
    p.add_argument("--resample", action="store_true", help="resample audio at another rate to the model's rate")
    p.add_argument("--save-audio", action="store_true", help="also write every enhanced file to OUT/audio/")
    p.add_argument("--threads", type=T.THREADS, default=None, help=_cli.THREADS_HELP)
    _cli.add_allow_failures(p)
    common.add_sampler_args(p)
    _cli.add_common_args(p)
    return T.annotate_help(p)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    common.check_sampler_args(p, args)
    args.explicit_conditions = args.conditions is not None
    if args.conditions is None:
        args.conditions = list(DEFAULT_CONDITIONS)
    try:
        args.parsed_conditions = [parse_condition(c) for c in args.conditions]
    except ValueError as e:
        p.error(f"argument --conditions: {e}")
    labels = [c[0] for c in args.parsed_conditions]
    if len(set(labels)) != len(labels):
        p.error(f"argument --conditions: a condition is given twice ({' '.join(args.conditions)})")
    try:
        args.checkpoints = checkpoint_names(args.ckpt)
    except ValueError as e:
        p.error(f"argument --ckpt: {e}")
    return args


def parse_condition(c: str) -> tuple[str, str, float]:
    """``"static:2"`` -> ``(label, mode, w)`` (sgmse_cfg.parse_guidance_condition)."""
    return parse_guidance_condition(c)


def _num(v: Any) -> float:
    return math.nan if v is None or v == "" else float(v)


@_cli.phrased(resample="--resample")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = _cli.resolve_device(args.device)
    multi = len(args.checkpoints) > 1

    # ---- checkpoints and the conditions each can run (all checked before anything is written)
    models: list[tuple[str, str, ScoreModel]] = []
    conds: dict[str, list[tuple[str, str, float]]] = {}
    skipped: dict[str, dict[str, str]] = {}
    taus: dict[str, dict[str, float | None]] = {}
    for name, path in args.checkpoints:
        model, _ = common.load_model(path, args.weights)  # sgmse_cfg.load_model, tool-style errors
        run, skip = [], {}
        for c in args.parsed_conditions:
            why = guidance_unavailable(model, c[1])
            if why is None:
                run.append(c)
            elif args.explicit_conditions:
                raise SystemExit(f"error: --conditions {c[0]}: {why} ({name}: {path})")
            else:
                skip[c[0]] = why
        if not run:
            raise SystemExit(f"error: {name} ({path}) can run none of the conditions")
        if isinstance(model, NoiseCondScoreModel) and model.bank.is_fitted:
            fitted = float(model.bank.tau)
            if args.tau is not None:
                model.bank.set_tau(args.tau)
            taus[name] = {"tau": float(model.bank.tau), "tau_fitted": fitted}
        else:
            taus[name] = {"tau": None, "tau_fitted": None}
        models.append((name, path, model))
        conds[name], skipped[name] = run, skip
        for label, why in skip.items():
            print(f"note: {name}: condition {label} left out: {why}", file=sys.stderr)

    dirs = {"ID": args.id_dir, "OOD": args.ood_dir}
    tags, tag_sources = {}, {}
    try:  # se_metrics.condition_tags reads the manifests (see the module docstring)
        sets = {s: set_file_pairs(Path(d), args.files) for s, d in dirs.items() if d is not None}
        for s, flag, given in (("ID", "--id-manifest", args.id_manifest), ("OOD", "--ood-manifest", args.ood_manifest)):
            if s in sets:
                files = [rel for rel, _, _ in sets[s]]
                tags[s], tag_sources[s], notes = condition_tags(Path(dirs[s]), files, given, flag=flag)
                print("".join(f"note: {n}\n" for n in notes), end="", file=sys.stderr)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from e
    if args.out is not None:
        check_no_overlap(Path(args.out), "--out", **{"--id": args.id_dir, "--ood": args.ood_dir})
    out = _cli.prepare_out_dir(args.out, "eval_ood")

    # ---- enhance and score every file with every checkpoint and condition
    per_file: list[dict[str, Any]] = []
    failed: list[tuple[str, str, str]] = []
    total = sum(len(v) for v in sets.values()) * sum(len(c) for c in conds.values())
    bar = tqdm(total=total, desc="enhancing", dynamic_ncols=True)
    opts_by_ckpt = {}
    for name, path, model in models:
        model.to(device)
        sr = model.sample_rate
        base = opts_by_ckpt[name] = common.options_from_args(args, model)
        for set_name, pairs in sets.items():
            for i, (rel, noisy_p, clean_p) in enumerate(pairs):
                head: dict[str, Any] = {"checkpoint": name, "set": set_name, "file": rel,
                                        **{k: tags[set_name][rel][k] for k in BREAKDOWN_BY if rel in tags[set_name]}}
                row = dict(head)
                done = 0
                try:
                    noisy, clean = common.load_pair(noisy_p, clean_p, sr, args.resample)
                    c_np = clean.numpy()
                    row["seconds"] = len(noisy) / sr
                    row.update({f"noisy|{k}": v for k, v in labelled_scores(c_np, noisy.numpy(), sr).items()})
                    for label, mode, w in conds[name]:
                        opts = common.EnhanceOptions(**{**base.__dict__, "guidance": mode, "w": w})
                        enh, info = common.enhance_wave(model, noisy, sr, opts, seed=args.seed + 7919 * i)
                        row.update({f"{label}|{k}": v for k, v in labelled_scores(c_np, enh.numpy(), sr).items()})
                        row[f"{label}|w"] = info.get("w", 1.0)
                        row[f"{label}|rtf"] = info["rtf"]
                        row.update({k: info[k] for k in MEASURES if k in info})
                        if args.save_audio:
                            folder = out / "audio" / (name if multi else "") / set_name
                            target = folder / label.replace(" ", "_").replace("=", "") / rel
                            target.parent.mkdir(parents=True, exist_ok=True)
                            save_audio(target, enh.clamp(-1, 1), sr)
                        done += 1
                        bar.update(1)
                    row.update({f"score_{k}": v for k, v in ood_scores(row, alpha=args.alpha).items()})
                except (ValueError, RuntimeError, OSError) as e:  # bad audio, rates, metrics, out of memory
                    row = {**head, "error": f"{type(e).__name__}: {e}"}
                    failed.append((name, f"{set_name}/{rel}", row["error"]))
                    tqdm.write(f"failed: {name} {set_name}/{rel}: {row['error']}")
                    bar.update(len(conds[name]) - done)
                per_file.append(row)
        model.to("cpu")
    bar.close()
    ok_rows = [r for r in per_file if "error" not in r]

    # ---- table: per checkpoint, set and condition the mean over its files (NaN skipped)
    def prefix(name: str) -> str:
        return f"{name} " if multi else ""

    labels = {name: ["noisy"] + [c[0] for c in conds[name]] for name, _, _ in models}
    summary, group_keys = condition_means(ok_rows, labels, list(sets), common.COLUMNS, prefix=multi)
    table = format_metric_table(summary, common.COLUMNS + ("mean w", "files"), width=common.WIDTH)
    samplers = sorted({(o.sampler, o.N) for o in opts_by_ckpt.values()})
    sampler_text = ", ".join(f"{s} N={n}" for s, n in samplers)
    ckpt_text = "; ".join(f"{name}: {type(m).__name__} from {path}" for name, path, m in models)
    print(f"\n{ckpt_text}; sampler {sampler_text}\n{table}")

    # ---- breakdown: checkpoint x set x condition x {all, snr_db, noise_class}
    bd_rows = condition_breakdown(ok_rows, labels, common.COLUMNS, BREAKDOWN_BY, list(group_keys.values()))

    # ---- uncertainty vs quality and AUROC, per checkpoint
    per_ckpt: dict[str, dict[str, Any]] = {}
    auroc_out: dict[str, Any] = {}
    plots: list[str] = []
    for name, path, model in models:
        rows = [r for r in ok_rows if r["checkpoint"] == name]
        ref = args.reference if args.reference in labels[name] else conds[name][0][0]
        scores = [k for k in OOD_SCORES if any(f"score_{k}" in r for r in rows)]
        unc = {OOD_SCORES[k]: [_num(r.get(f"score_{k}")) for r in rows] for k in scores}
        quality = {
            f"dSI-SDR ({ref} - noisy)": [r[f"{ref}|SI-SDR (dB)"] - r["noisy|SI-SDR (dB)"] for r in rows],
            f"dPESQ ({ref} - noisy)": [r[f"{ref}|PESQ-WB"] - r["noisy|PESQ-WB"] for r in rows],
        }
        if "uncond" in labels[name] and ref != "uncond":
            quality[f"dSI-SDR ({ref} - uncond)"] = [r[f"{ref}|SI-SDR (dB)"] - r["uncond|SI-SDR (dB)"] for r in rows]
        corr = {f"{u} vs {q}": correlation(uv, qv) for u, uv in unc.items() for q, qv in quality.items()} if rows else {}
        if corr:
            print(f"\nuncertainty vs quality ({prefix(name)}all utterances, {' + '.join(sets)}):")
            w0 = max(len(k) for k in corr)
            print(f"  {'':{w0}s} {'pearson':>9s} {'spearman':>9s} {'n':>4s}")
            for k, v in corr.items():
                print(f"  {k:{w0}s} {v['pearson']:9.3f} {v['spearman']:9.3f} {v['n']:4d}")
            png = plot_name(name, multi)
            scatter(out / "plots" / png, rows, unc, quality, title=name if multi else None)
            plots.append(png)
        elif not rows:
            print(f"\n({prefix(name)}no file was scored: no uncertainty vs quality)")
        else:
            print(f"\n({prefix(name)}no uncertainty measures: the model has neither an NC head nor a fitted "
                  f"k-NN bank)")
        per_ckpt[name] = {"ckpt": str(path), "model": type(model).__name__, "sampler": opts_by_ckpt[name].sampler,
                          "N": opts_by_ckpt[name].N, "conditions": [c[0] for c in conds[name]],
                          "skipped_conditions": skipped[name], "reference": ref, **taus[name],
                          "correlations": corr}
        if "OOD" in sets and scores:
            auroc_out[name] = {k[len("score_"):]: v for k, v in auroc_by_group(
                rows, {f"score_{k}": OOD_SCORES[k] for k in scores}, by=BREAKDOWN_BY).items()}
            per_ckpt[name]["auroc"] = {k: v["auroc"] for k, v in auroc_out[name].items()}
    if auroc_out:
        arows = {OOD_SCORES[k]: {n: auroc_out[n][k]["auroc"] if k in auroc_out[n] else None for n in auroc_out}
                 for k in OOD_SCORES if any(k in v for v in auroc_out.values())}
        atable = format_metric_table(arows, list(auroc_out), width=max(10, *(len(n) + 2 for n in auroc_out)))
        print(f"\nAUROC of ID vs OOD per uncertainty score (1: every OOD score above every ID one, 0.5: chance):"
              f"\n{atable}")

    # ---- files
    (out / "table.txt").write_text(table + "\n")
    write_dict_rows(out / "per_file.csv", per_file, front=("checkpoint", "set", "file") + BREAKDOWN_BY + ("seconds",))
    write_dict_rows(out / "breakdown.csv", bd_rows)
    if auroc_out:
        (out / "auroc.json").write_text(json.dumps(
            {"positive": "OOD", "orientation": "higher score = more likely OOD; ties count one half",
             "alpha": args.alpha, "checkpoints": auroc_out}, indent=2))
    corr_all = {f"{prefix(n)}{k}": v for n, d in per_ckpt.items() for k, v in d["correlations"].items()}
    first = per_ckpt[models[0][0]]
    (out / "results.json").write_text(json.dumps(
        {"ckpt": str(models[0][1]) if not multi else [str(p) for _, p, _ in models],
         "conditions": first["conditions"] if not multi else list(dict.fromkeys(
             c for n in conds for c in (x[0] for x in conds[n]))),
         "reference": first["reference"], "sampler": first["sampler"], "N": first["N"], "tau_flag": args.tau,
         "table": summary, "correlations": corr_all, "checkpoints": per_ckpt,
         "failures": [{"checkpoint": n, "file": f, "error": e} for n, f, e in failed],
         "sets": {k: {"dir": str(dirs[k]), "files": len(v), "manifest": tag_sources.get(k),
                      "tagged_files": len(tags.get(k, {}))} for k, v in sets.items()}},
        indent=2, default=str))
    (out / "table.md").write_text(condition_markdown(
        summary, group_keys, bd_rows, common.COLUMNS, by=BREAKDOWN_BY, auroc=auroc_out, score_labels=OOD_SCORES,
        correlations={n: d["correlations"] for n, d in per_ckpt.items()}))
    written = ["table.txt", "table.md", "per_file.csv", "breakdown.csv", "results.json"]
    written += ["auroc.json"] if auroc_out else []
    print(f"\nwritten to {out}: {', '.join(written)}" + (f", plots/ ({len(plots)})" if plots else ""))
    if failed:
        print(f"  {len(failed)} failures (first: {failed[0][0]} {failed[0][1]}: {failed[0][2]})")
    return _cli.failure_status(len(failed), len(per_file), args, "file(s)")


if __name__ == "__main__":
    sys.exit(main())

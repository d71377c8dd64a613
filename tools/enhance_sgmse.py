#!/usr/bin/env python
"""Enhance a folder of noisy wav files with a model from tools/train_sgmse.py.

    uv run tools/enhance_sgmse.py --ckpt runs/train_sgmse-.../model.pt NOISY_DIR --out OUT
    uv run tools/enhance_sgmse.py --ckpt model.pt NOISY_DIR --sampler ode --N 20 --guidance knn --w 1.5

Any sampler (PC, probability-flow ODE, Schroedinger-bridge ODE/SDE), any N, any guidance
(conditional, unconditional, static CFG with --w, or per-utterance adaptive w from NC
confidence / k-NN distance / their mix). The noise embedding is computed once per file.
Long files are enhanced in overlapping chunks (--max-chunk-seconds) so memory stays bounded.
The folder layout is kept under OUT/enhanced; OUT/enhance.csv lists per file the guidance
scale, the uncertainty diagnostics, NFE, wall time and real-time factor. With --clean DIR
(matching names) a PESQ / ESTOI / SI-SDR table of noisy vs enhanced is printed too.
Audio at another rate than the model's is an error unless --resample; nothing is overwritten.
"""

from __future__ import annotations

import argparse
import json
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

from se_data import AudioFileError, SampleRateError, load_audio, save_audio  # noqa: E402
from se_metrics import format_metric_table, labelled_scores, mean_rows  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="enhance_sgmse.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("in_dir", metavar="NOISY_DIR", help="folder with noisy .wav/.flac files (searched recursively)")
    p.add_argument("--ckpt", required=True, help="model.pt (or best.pt / last.pt) from tools/train_sgmse.py")
    p.add_argument("--weights", choices=["ema", "live"], default="ema",
                   help="EMA weights (SGMSE+'s choice for inference) or the live ones (best.pt/last.pt only) (default ema)")
    p.add_argument("--clean", default=None, metavar="DIR",
                   help="clean references with the same relative names: also print PESQ / ESTOI / SI-SDR")
    p.add_argument("--noise-ref", default=None, metavar="DIR",
                   help="separate noise-only recordings with the same relative names as the noisy files: the noise "
                        "encoder reads these instead of the noisy input (a file without one is reported as a failure)")
    p.add_argument("--resample", action="store_true",
                   help="resample files at another rate to the model's rate (output at the model's rate); without "
                        "it they are reported as failures naming the fix")
    p.add_argument("--downmix", action="store_true",
                   help="average the channels of multi-channel files (mean downmix); without it such a file is "
                        "reported as a failure naming it")
    p.add_argument("--limit", type=T.optional(T.positive_int()), default=None,
                   help="enhance only the first N files (sorted by name; default, or none: all)")
    _cli.add_allow_failures(p)
    p.add_argument("--threads", type=T.THREADS, default=None, help=_cli.THREADS_HELP)
    common.add_sampler_args(p)
    _cli.add_common_args(p)
    return T.annotate_help(p)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    common.check_sampler_args(p, args)
    return args


@_cli.phrased(resample="--resample", mono="--downmix")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = _cli.resolve_device(args.device)
    in_dir = Path(args.in_dir)
    if not in_dir.is_dir():
        sys.exit(f"error: {in_dir} is not a folder")
    if args.out is not None:
        check_no_overlap(Path(args.out), "--out", NOISY_DIR=in_dir, **{"--clean": args.clean, "--noise-ref": args.noise_ref})
    files = common.list_wavs(in_dir)[: args.limit]
    if not files:
        sys.exit(f"error: no .wav/.flac files under {in_dir}")
    model, meta = common.load_model(args.ckpt, args.weights)  # sgmse_cfg.load_model; meta = model.info
    model.to(device)
    sr = model.sample_rate
    opts = common.options_from_args(args, model)
    out = _cli.prepare_out_dir(args.out, "enhance_sgmse")
    (out / "settings.json").write_text(json.dumps({"args": vars(args), "model_config": meta["model_config"],
                                                   "class_names": meta.get("class_names")}, indent=2, default=str))
    rows: list[dict[str, Any]] = []
    failed: list[tuple[str, str]] = []
    metric_rows: dict[str, list[dict[str, float]]] = {"noisy": [], "enhanced": []}
    for i, f in enumerate(tqdm(files, desc="enhancing", dynamic_ncols=True)):
        rel = f.relative_to(in_dir)
        target = (out / "enhanced" / rel).with_suffix(".wav")
        try:
            noisy, _ = load_audio(f, sr, resample=args.resample, mono=args.downmix)
            ref = None
            if args.noise_ref:
                ref_p = Path(args.noise_ref) / rel
                if not ref_p.is_file():
                    raise AudioFileError(f"no noise reference {ref_p} for {rel} (--noise-ref needs one per file)")
                ref, _ = load_audio(ref_p, sr, resample=args.resample, mono=args.downmix)
            enh, info = common.enhance_wave(model, noisy, sr, opts, seed=args.seed + i, noise_ref=ref)
            peak = float(enh.abs().max())
            if peak > 1.0:  # scale instead of clipping, and say so
                tqdm.write(f"note: {rel}: output peak {peak:.2f} > 1, scaled by {1 / peak:.3f}")
                enh = enh / peak
            target.parent.mkdir(parents=True, exist_ok=True)
            save_audio(target, enh, sr)
            row = {"file": rel.as_posix(), **info}
            if args.clean:
                clean_p = Path(args.clean) / rel
                clean, _ = load_audio(clean_p, sr, resample=args.resample, mono=args.downmix)
                n = min(len(clean), len(noisy))
                sn = labelled_scores(clean[:n].numpy(), noisy[:n].numpy(), sr)
                se = labelled_scores(clean[:n].numpy(), enh[:n].numpy(), sr)
                metric_rows["noisy"].append(sn)
                metric_rows["enhanced"].append(se)
                row.update({f"noisy_{k}": v for k, v in sn.items()})
                row.update({f"enhanced_{k}": v for k, v in se.items()})
            rows.append(row)
        except (SampleRateError, AudioFileError, ValueError, RuntimeError) as e:
            failed.append((rel.as_posix(), str(e)))
            tqdm.write(f"failed: {rel}: {e}")
    if rows:
        common.write_rows_csv(out / "enhance.csv", rows)
    audio_s = sum(r["seconds"] for r in rows)
    wall_s = sum(r["wall_s"] for r in rows)
    print(f"\nenhanced {len(rows)} of {len(files)} files ({audio_s:.1f} s of audio) into {out / 'enhanced'}")
    print(f"  sampler {opts.sampler}, N={opts.N}, guidance {opts.guidance} (w={opts.w}), device {device}")
    if rows:
        ws = [r["w"] for r in rows if "w" in r]
        print(f"  wall {wall_s:.1f} s, real-time factor {wall_s / max(audio_s, 1e-9):.3f}"
              + (f", mean guidance scale {sum(ws) / len(ws):.3f}" if ws else ""))
    if args.clean and metric_rows["enhanced"]:
        print(format_metric_table(mean_rows(metric_rows, common.COLUMNS), common.COLUMNS, width=common.WIDTH))
    if failed:
        print(f"  {len(failed)} failures (first: {failed[0][0]}: {failed[0][1]})")
    return _cli.failure_status(len(failed), len(files), args, "file(s)")


if __name__ == "__main__":
    sys.exit(main())

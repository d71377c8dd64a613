#!/usr/bin/env python
"""Enhance a folder of noisy wav files with a model from tools/train_sgmse.py or an official
SGMSE+ checkpoint.

    uv run tools/enhance_sgmse.py --ckpt runs/train_sgmse-.../model.pt NOISY_DIR --out OUT
    uv run tools/enhance_sgmse.py --ckpt model.pt NOISY_DIR --sampler ode --N 20 --guidance knn --w 1.5
    uv run tools/enhance_sgmse.py --ckpt sgmse_vb.ckpt NOISY_DIR --out OUT [--sgmse-compat]

An SGMSE+ Lightning checkpoint (.ckpt, saved by the sgmse package) is read safely (its
pickled data-module class is never unpickled), with its EMA weights unless --weights live, and
its hyper-parameters give the backbone, SDE, spectrogram, t_eps and sgmse's sampler defaults.
--sgmse-compat reproduces sgmse's enhancement.py instead of this toolkit's path: the global
random stream after torch.manual_seed(--seed), files in its order, no chunking, and the
inverse STFT over all padded frames before trimming (its padded frames leak into the last
~12 ms of each file; the default path trims the spectrogram first).

Any sampler (PC, probability-flow ODE, Schroedinger-bridge ODE/SDE), any N, any guidance
(conditional, unconditional, static CFG with --w, or per-utterance adaptive w from NC
confidence / k-NN distance / their mix). The noise embedding is computed once per file.
Long files are enhanced in overlapping chunks (--max-chunk-seconds) so memory stays bounded.
The folder layout is kept under OUT/enhanced; OUT/enhance.csv lists per file the guidance
scale, the uncertainty diagnostics, NFE, wall time and real-time factor. With --clean DIR
(matching names) a PESQ / ESTOI / SI-SDR table of noisy vs enhanced is printed too.
Audio at another rate than the model's is an error unless --resample; nothing is overwritten.
--batch-size N enhances up to N files per sampler run: files whose spectrograms pad to the same
frame count (a multiple of 64 for NCSN++) go together, each with its own noise stream (seed
--seed + its index in the sorted file list, as one at a time) and, for a noise-conditioned model,
its own condition and guidance scale, so each output equals the one-at-a-time output to float
rounding.
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
from _buckets import equal_key_buckets  # noqa: E402
from _outdir import check_no_overlap  # noqa: E402
import _sgmse_common as common  # noqa: E402

import sgmse_cfg  # noqa: E402
from se_data import AudioFileError, SampleRateError, audio_info, load_audio, save_audio  # noqa: E402
from se_metrics import format_metric_table, labelled_scores, mean_rows  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="enhance_sgmse.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("in_dir", metavar="NOISY_DIR", help="folder with noisy .wav/.flac files (searched recursively)")
    p.add_argument("--ckpt", required=True,
                   help="model.pt (or best.pt / last.pt) from tools/train_sgmse.py, or an official SGMSE+ Lightning "
                        "checkpoint (.ckpt; backbones ncsnpp, ncsnpp_v2, ncsnpp_48k; SDEs ouve, sbve)")
    p.add_argument("--weights", choices=["ema", "live"], default="ema",
                   help="EMA weights (SGMSE+'s choice for inference) or the live ones (best.pt / last.pt / .ckpt "
                        "only) (default ema)")
    p.add_argument("--sgmse-compat", action="store_true",
                   help="reproduce sgmse's enhancement.py: the global random stream after torch.manual_seed(--seed) "
                        "(files in its order: top-level then one folder deep, wav before flac), no chunking, "
                        "frames padded to a multiple of 64, the inverse STFT over all padded frames before "
                        "trimming, its bridge sampler; output equal to sgmse's to float32 precision for files at "
                        "the model's rate. PC or bridge samplers only, conditional score only")
    p.add_argument("--t-eps", type=T.float_range(0.0, 1.0, low_open=True, high_open=True, noun="a time in (0, 1)"),
                   default=None,
                   help="last time of the PC / ODE sampler grid (default: the checkpoint's t_eps; with "
                        "--sgmse-compat enhancement.py's --t_eps default 0.03)")
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
    p.add_argument("--batch-size", type=T.INFERENCE_BATCH, default=1,
                   help="files per sampler run: files whose spectrograms pad to the same number of frames are "
                        "enhanced together, each with its own noise stream (seed --seed + its index in the sorted "
                        "file list, as one at a time), so outputs equal the one-at-a-time outputs to float "
                        "rounding (a noise-conditioned model's files each keep their own condition, --noise-ref and "
                        "guidance scale); wall_s in enhance.csv is then the batch's time shared out evenly. Chunked "
                        "files and --chunk-seconds run one at a time; --sgmse-compat refuses it (default 1)")
    _cli.add_allow_failures(p)
    p.add_argument("--threads", type=T.THREADS, default=None, help=_cli.THREADS_HELP)
    common.add_sampler_args(p)
    _cli.add_common_args(p)
    return T.annotate_help(p)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    common.check_sampler_args(p, args)
    if args.sgmse_compat:
        clash = [flag for flag, used in (("--noise-ref", args.noise_ref), ("--amp", args.amp),
                                         ("--chunk-seconds", args.chunk_seconds is not None),
                                         ("--guidance " + str(args.guidance), args.guidance != "cond"),
                                         ("--predictor " + str(args.predictor),
                                          args.predictor != "reverse_diffusion")) if used]
        if clash:
            p.error(f"--sgmse-compat reproduces sgmse's enhancement.py, which has no {', '.join(clash)}: leave "
                    f"{'it' if len(clash) == 1 else 'them'} out (or drop --sgmse-compat)")
        if args.batch_size > 1:
            p.error("--sgmse-compat draws every file from one global random stream in enhancement.py's order: "
                    "leave --batch-size out (or drop --sgmse-compat)")
        if args.sampler == "ode":
            p.error("--sgmse-compat does not reproduce sgmse's probability-flow ODE sampler (scipy RK45): use "
                    "--sampler pc, or drop --sgmse-compat for this toolkit's ODE sampler")
    return args


def apply_checkpoint_defaults(args: argparse.Namespace, model: Any) -> dict[str, Any]:
    """An SGMSE+ checkpoint's sampler defaults (``model.info["sampler_defaults"]``) for the
    flags left out; returns the extra sampler keywords (the padding sgmse uses). With
    --sgmse-compat the sampler is enhancement.py's (PC, or the bridge ODE), whatever the
    checkpoint's ``sampler_type``."""
    defaults = model.info.get("sampler_defaults") or {}
    if args.sampler is None and defaults.get("sampler") and not args.sgmse_compat:
        args.sampler = defaults["sampler"]
    if args.N is None and defaults.get("N"):
        args.N = defaults["N"]
    return {"pad_mode": defaults["pad_mode"]} if defaults.get("pad_mode") else {}


def _why_one_at_a_time(args: argparse.Namespace, model: Any, opts: common.EnhanceOptions) -> str:
    """Why --batch-size cannot batch these files (empty when it can)."""
    return "--chunk-seconds chunks every file" if opts.chunk_seconds is not None else ""


def _padded_key(model: Any, num_samples: int, sr: int, opts: common.EnhanceOptions) -> int | None:
    """The padded frame count a file of ``num_samples`` is sampled at, or None when it is chunked
    (longer than --max-chunk-seconds: enhanced alone)."""
    return None if model.is_chunked(num_samples, opts.max_chunk_seconds) else model.padded_frames(num_samples)


def _batch_key(model: Any, f: Path, i: int, sr: int, opts: common.EnhanceOptions,
               args: argparse.Namespace) -> Any:
    """Bucket of file ``f`` from its header: its padded frame count at the model's rate (unique
    when it is chunked or unreadable, so it runs alone)."""
    try:
        info = audio_info(f)
    except AudioFileError:
        return ("alone", i)
    if info.sample_rate != sr and not args.resample:
        return ("alone", i)  # loading reports the rate
    n = info.frames if info.sample_rate == sr else round(info.frames * sr / info.sample_rate)
    return _padded_key(model, n, sr, opts) or ("alone", i)


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
    files = (sgmse_cfg.sgmse_file_order(in_dir) if args.sgmse_compat else common.list_wavs(in_dir))[: args.limit]
    if not files:
        sys.exit(f"error: no .wav/.flac files under {in_dir}")
    model, meta = common.load_model(args.ckpt, args.weights)  # sgmse_cfg.load_model; meta = model.info
    model.to(device)
    sr = model.sample_rate
    extra_kw = apply_checkpoint_defaults(args, model)
    opts = common.options_from_args(args, model)
    opts.sampler_kwargs.update(extra_kw)
    if args.t_eps is not None and opts.sampler in ("pc", "ode"):
        opts.sampler_kwargs["eps"] = args.t_eps
    if args.sgmse_compat:
        if isinstance(model, sgmse_cfg.NoiseCondScoreModel):
            sys.exit("error: --sgmse-compat reproduces sgmse's enhancement.py, which has no noise encoder; this "
                     "checkpoint is noise-conditioned: drop --sgmse-compat")
        torch.manual_seed(args.seed)  # enhancement.py draws from the global stream, file after file
    out = _cli.prepare_out_dir(args.out, "enhance_sgmse")
    (out / "settings.json").write_text(json.dumps({"args": vars(args), "model_config": meta["model_config"],
                                                   "class_names": meta.get("class_names")}, indent=2, default=str))
    found: dict[int, dict[str, Any]] = {}  # file index -> its enhance.csv row
    failed: list[tuple[str, str]] = []
    metric_rows: dict[str, list[dict[str, float]]] = {"noisy": [], "enhanced": []}
    progress = tqdm(total=len(files), desc="enhancing", dynamic_ncols=True)

    def load(f: Path) -> torch.Tensor:
        return load_audio(f, sr, resample=args.resample, mono=args.downmix)[0]

    def finish(i: int, noisy: torch.Tensor, enh: torch.Tensor, info: dict[str, Any]) -> None:
        """Save file ``i``'s output, score it against --clean, keep its row."""
        rel = files[i].relative_to(in_dir)
        target = (out / "enhanced" / rel).with_suffix(".wav")
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
        found[i] = row

    def fail(i: int, e: Exception) -> None:
        rel = files[i].relative_to(in_dir)
        failed.append((rel.as_posix(), str(e)))
        tqdm.write(f"failed: {rel}: {e}")

    def load_ref(i: int) -> torch.Tensor | None:
        """File ``i``'s --noise-ref recording (None without --noise-ref)."""
        if not args.noise_ref:
            return None
        rel = files[i].relative_to(in_dir)
        ref_p = Path(args.noise_ref) / rel
        if not ref_p.is_file():
            raise AudioFileError(f"no noise reference {ref_p} for {rel} (--noise-ref needs one per file)")
        return load_audio(ref_p, sr, resample=args.resample, mono=args.downmix)[0]

    def one(i: int, noisy: torch.Tensor | None = None) -> None:
        """File ``i`` alone (seed --seed + i), as without --batch-size."""
        f = files[i]
        rel = f.relative_to(in_dir)
        try:
            if noisy is None:
                noisy = load(f)
            ref = load_ref(i)
            if args.sgmse_compat:
                enh, info = common.enhance_wave_like_sgmse(model, noisy, sr, opts, args.t_eps)
            else:
                enh, info = common.enhance_wave(model, noisy, sr, opts, seed=args.seed + i, noise_ref=ref)
            finish(i, noisy, enh, info)
        except (SampleRateError, AudioFileError, ValueError, RuntimeError) as e:
            fail(i, e)
        progress.update(1)

    def batched(idx: list[int], waves: list[torch.Tensor]) -> None:
        """Files ``idx`` (one padded frame count) in one sampler run, file i's noise from seed --seed + i
        and its condition from its own --noise-ref (or itself)."""
        try:
            enhs = common.enhance_waves(model, waves, sr, opts, [args.seed + i for i in idx], [load_ref(i) for i in idx])
        except (SampleRateError, AudioFileError, ValueError, RuntimeError):  # one bad file fails only itself
            for i, w in zip(idx, waves):
                one(i, w)
            return
        for i, w, (enh, info) in zip(idx, waves, enhs):
            try:
                finish(i, w, enh, info)
            except (SampleRateError, AudioFileError, ValueError, RuntimeError) as e:
                fail(i, e)
            progress.update(1)

    why_alone = _why_one_at_a_time(args, model, opts)
    if args.batch_size > 1 and why_alone:
        print(f"note: enhancing one file at a time: {why_alone}")
    if args.batch_size == 1 or why_alone:
        for i in range(len(files)):
            one(i)
    else:
        for batch in equal_key_buckets([_batch_key(model, f, i, sr, opts, args) for i, f in enumerate(files)],
                                       args.batch_size):
            waves: dict[int, torch.Tensor] = {}
            for i in batch:
                try:
                    waves[i] = load(files[i])
                except (SampleRateError, AudioFileError, ValueError, RuntimeError) as e:
                    fail(i, e)
                    progress.update(1)
            # the header's length is an estimate after --resample: group by the loaded lengths
            groups: dict[Any, list[int]] = {}
            for i, w in waves.items():
                groups.setdefault(_padded_key(model, w.shape[-1], sr, opts) or ("alone", i), []).append(i)
            for idx in groups.values():
                if len(idx) == 1:
                    one(idx[0], waves[idx[0]])
                else:
                    batched(idx, [waves[i] for i in idx])
    progress.close()
    rows = [found[i] for i in sorted(found)]
    if rows:
        common.write_rows_csv(out / "enhance.csv", rows)
    audio_s = sum(r["seconds"] for r in rows)
    wall_s = sum(r["wall_s"] for r in rows)
    print(f"\nenhanced {len(rows)} of {len(files)} files ({audio_s:.1f} s of audio) into {out / 'enhanced'}")
    print(f"  sampler {opts.sampler}, N={opts.N}, guidance {opts.guidance} (w={opts.w}), device {device}"
          + (", as sgmse's enhancement.py (--sgmse-compat)" if args.sgmse_compat else ""))
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

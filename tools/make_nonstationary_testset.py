"""Build a non-stationary noise test set: clean speech + changing noise types, sudden events and a
time-varying SNR.

    uv run tools/make_nonstationary_testset.py --clean CLEAN_DIR --noise NOISE_DIR --out OUT
    uv run tools/make_nonstationary_testset.py --clean CLEAN_DIR --noise synthetic --out OUT
    uv run tools/make_nonstationary_testset.py --from-manifest OUT/manifest.json --out OUT_REBUILT

Each clean file is mixed with segments of --noises-per-file noises of different classes (joined
with equal-power crossfades), plus synthetic knocks, beeps and clicks, along an SNR curve
(--trajectory) inside --snr-range. NOISE_DIR is an ESC-50 root, an UrbanSound8K root or a folder
of noise files (class = first sub-folder, else the file name); `synthetic` uses seeded white,
pink, brown and babble noises and needs no data.

Writes OUT/noisy/NAME.wav and OUT/clean/NAME.wav (the same names, so eval_dir.py and eval_ood.py
pair them), OUT/manifest.csv (one line per mixture) and OUT/manifest.json (seed, settings,
SHA-256 and native rate of every source, per mixture the noises, segments, events, SNR curve
and the realised SNR per window, SHA-256 of every output, library versions). Sources at another
rate are resampled and recorded. Rebuilding from the manifest gives byte-identical wav files and
refuses when a source changed. An existing non-empty OUT is never overwritten.

Exit status: 0 done, 1 when a mixture failed (listed; --allow-failures exits 0) or a rebuild
differs from the manifest, 2 for a bad command line or a refused --out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _argtypes as T
import _cli
from _outdir import check_no_overlap

TOOL = "make_nonstationary_testset"
TRAJECTORIES = ("random_walk", "linear", "steps", "sine")  # se_data.nonstationary_set.TRAJECTORY_KINDS
SYNTHETIC = ("white", "pink", "brown", "babble")  # se_data.nonstationary_set.SYNTHETIC_KINDS
LEVEL_DB = T.float_range(-40.0, 40.0, noun="a level in dB", unit="dB")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="make_nonstationary_testset.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clean", metavar="DIR", help="folder of clean speech files (searched recursively)")
    p.add_argument("--noise", metavar="DIR",
                   help="noise source: an ESC-50 root, an UrbanSound8K root, any folder of noise files (class = "
                        "first sub-folder), or the word 'synthetic' (seeded white/pink/brown/babble, no data needed)")
    p.add_argument("--sr", type=T.SAMPLE_RATE_HZ, default=16000,
                   help="output sample rate in Hz; sources at other rates are resampled (default 16000)")
    g = p.add_argument_group("SNR trajectory")
    g.add_argument("--trajectory", choices=TRAJECTORIES, default="random_walk",
                   help="random_walk: a clipped Gaussian walk between knots, cosine-interpolated; linear: a ramp; "
                        "steps: a constant per knot interval (sudden changes); sine: a 1-4 s period sinusoid over "
                        "the whole range (default random_walk)")
    g.add_argument("--snr-range", type=T.SNR_DB, nargs=2, default=[-5.0, 15.0], metavar=("LO", "HI"),
                   help="the SNR curve stays in [LO, HI] dB (default -5 15)")
    g.add_argument("--knot-seconds", type=T.seconds(60.0), default=0.5,
                   help="spacing of the trajectory's knots in seconds (default 0.5)")
    g.add_argument("--window-seconds", type=T.seconds(60.0), default=0.25,
                   help="window of the per-window SNR the manifest records (default 0.25)")
    g = p.add_argument_group("noise")
    g.add_argument("--noises-per-file", type=T.positive_int(64), default=3,
                   help="noises of distinct classes offered to each mixture's segments (fewer when the noise "
                        "set has fewer classes; default 3)")
    g.add_argument("--crossfade-seconds", type=T.seconds(10.0, low=0.0, low_open=False), default=0.1,
                   help="equal-power crossfade between noise segments in seconds (default 0.1)")
    g.add_argument("--segment-level-db", type=LEVEL_DB, nargs=2, default=[-3.0, 3.0], metavar=("LO", "HI"),
                   help="each segment's level, uniform in [LO, HI] dB around RMS 1 (default -3 3; 0 0 for none)")
    g.add_argument("--event-rate", type=T.float_range(0.0, 50.0, noun="a rate in events per second", unit="Hz"),
                   default=0.5, help="mean number of sudden events (knock, beep, click) per second, 0 for none "
                                     "(default 0.5)")
    g.add_argument("--event-level-db", type=LEVEL_DB, nargs=2, default=[0.0, 12.0], metavar=("LO", "HI"),
                   help="event RMS above the background RMS, uniform in [LO, HI] dB (default 0 12)")
    g.add_argument("--variants", type=T.positive_int(1000), default=1,
                   help="mixtures per clean file, named NAME_v0.wav ... when more than 1 (default 1)")
    g.add_argument("--categories", nargs="+", default=None, metavar="NAME",
                   help="ESC-50 categories / UrbanSound8K classes to use (default: all)")
    g.add_argument("--folds", type=T.int_range(1, 10), nargs="+", default=None, metavar="N",
                   help="ESC-50 (1-5) / UrbanSound8K (1-10) folds to use (default: all)")
    g.add_argument("--allow-missing", action="store_true",
                   help="skip (with a warning) metadata rows whose audio file is absent (default: an error)")
    g.add_argument("--keep-silence", action="store_true",
                   help="keep each noise clip's leading/trailing near-silence (default: trimmed; ESC-50 pads "
                        "short clips with zeros)")
    g.add_argument("--synthetic-kinds", nargs="+", choices=SYNTHETIC, default=None, metavar="KIND",
                   help=f"with --noise synthetic: the kinds to use, from {' '.join(SYNTHETIC)} (default: all)")
    g.add_argument("--synthetic-seconds", type=T.seconds(600.0, low=1.0, low_open=False), default=8.0,
                   help="with --noise synthetic: length of each generated noise in seconds (default 8)")
    p.add_argument("--subtype", default="PCM_16", choices=["PCM_16", "PCM_24"], help="wav sample format")
    p.add_argument("--from-manifest", metavar="JSON", default=None,
                   help="rebuild the set described by this manifest.json into --out (byte-identical); "
                        "--clean / --noise then relocate the source roots if they moved")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _cli.add_allow_failures(p)
    _cli.add_common_args(p, device=False)
    return T.annotate_help(p)


def parse_args(argv=None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    if args.from_manifest is None and (args.clean is None or args.noise is None):
        p.error("--clean and --noise are required (or --from-manifest to rebuild a set)")
    for flag, (lo, hi) in (("--snr-range", args.snr_range), ("--segment-level-db", args.segment_level_db),
                           ("--event-level-db", args.event_level_db)):
        T.check_less(p, (f"{flag} LO", lo), (f"{flag} HI", hi), strict=False)
    if args.noise == "synthetic" and (args.categories or args.folds or args.allow_missing):
        p.error("--categories / --folds / --allow-missing apply to ESC-50 / UrbanSound8K roots, not to "
                "--noise synthetic")
    if args.synthetic_kinds is not None:
        if args.noise != "synthetic":
            p.error("--synthetic-kinds applies only with --noise synthetic")
        if len(set(args.synthetic_kinds)) != len(args.synthetic_kinds):
            p.error(f"--synthetic-kinds: the values must be distinct, got {' '.join(args.synthetic_kinds)}")
    return args


def print_summary(s: dict, version: str) -> None:
    print(f"\nnon-stationary test set in {s['out_dir']} ({TOOL} {version})")
    print(f"  {s['n_files']} mixtures from {s['n_clean']} clean files and {s['n_noise']} noises "
          f"({len(s['noise_classes'])} classes); {s['n_segments']} segments, {s['n_events']} events; "
          f"{s['n_limited']} scaled down to avoid clipping")
    lo, hi = s["snr_range_db"]
    print(f"  SNR curve {lo:.1f} .. {hi:.1f} dB; mean clip SNR {s['mean_snr_clip_db']:.2f} dB; median |realised - "
          f"trajectory| per window {s['median_window_deviation_db']:.2f} dB")
    for kind in ("clean", "noise"):
        if s["resampled"].get(kind):
            print(f"  {len(s['resampled'][kind])} {kind} source(s) resampled from another rate (see manifest.json)")
    for f in s["failures"]:
        print(f"  FAILED {f['clean_source']} (variant {f['variant']}): {f['error']}", file=sys.stderr)
    if "mismatched_outputs" in s:
        m = s["mismatched_outputs"]
        print("  rebuild: byte-identical to the manifest's outputs" if not m
              else f"  rebuild: {len(m)} output(s) differ from the manifest: {m[:5]}")


def _refuse(e: SystemExit) -> int:
    """A refused --out (in use, not empty, overlapping an input): exit 2 with the message."""
    if e.code not in (None, 0):
        print(e.code if isinstance(e.code, str) else f"error: --out refused (status {e.code})", file=sys.stderr)
    return 2


@_cli.phrased()  # errors name no API keywords: e.g. how to convert a stereo clean file
def main(argv=None) -> int:
    args = parse_args(argv)
    from se_data.nonstationary_set import (NONSTATIONARY_TOOL_VERSION, build_nonstationary_set,
                                           rebuild_nonstationary_set)  # after parsing: --help stays fast

    synthetic = args.noise == "synthetic"
    try:
        if args.out is not None:
            check_no_overlap(Path(args.out), "--out", **{"--clean": args.clean,
                                                         "--noise": None if synthetic else args.noise})
        out = _cli.prepare_out_dir(args.out, TOOL)  # the lock: a second run into --out stops here
    except SystemExit as e:
        return _refuse(e)
    try:
        if args.from_manifest:
            s = rebuild_nonstationary_set(args.from_manifest, out, clean_dir=args.clean,
                                          noise_dir=None if synthetic else args.noise,
                                          progress=not args.no_progress)
        else:
            filters: dict = {}
            if args.categories:
                us8k = (Path(args.noise) / "metadata" / "UrbanSound8K.csv").is_file()
                filters["classes" if us8k else "categories"] = args.categories
            if args.folds:
                filters["folds"] = args.folds
            if args.allow_missing:
                filters["missing"] = "skip"
            s = build_nonstationary_set(
                args.clean, None if synthetic else args.noise, out, seed=args.seed, sample_rate=args.sr,
                trajectory=args.trajectory, snr_range=tuple(args.snr_range), knot_s=args.knot_seconds,
                n_noises=args.noises_per_file, crossfade_s=args.crossfade_seconds,
                segment_level_db=tuple(args.segment_level_db), event_rate_hz=args.event_rate,
                event_level_db=tuple(args.event_level_db), variants=args.variants, snr_window_s=args.window_seconds,
                noise_filters=filters, trim_silence=not args.keep_silence,
                **({"synthetic_kinds": tuple(args.synthetic_kinds)} if args.synthetic_kinds else {}),
                synthetic_seconds=args.synthetic_seconds, subtype=args.subtype, progress=not args.no_progress)
    except (FileExistsError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_summary(s, NONSTATIONARY_TOOL_VERSION)
    if s.get("mismatched_outputs"):
        return 1
    return _cli.failure_status(s["n_failed"], s["n_failed"] + s["n_files"], args, "mixture(s)")


if __name__ == "__main__":
    sys.exit(main())

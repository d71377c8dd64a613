"""Build an out-of-distribution test set: clean speech + unseen noise at fixed SNRs.

    uv run tools/make_ood_testset.py --clean CLEAN_DIR --noise ESC50_ROOT --out OUT --snrs 0 5 10
    uv run tools/make_ood_testset.py --from-manifest OUT/manifest.json --out OUT_REBUILT

Writes OUT/noisy/NAME.wav, OUT/clean/NAME.wav, OUT/manifest.csv and OUT/manifest.json
(seed, SHA-256 of every source and output, tool version, settings). Rebuilding from the
manifest gives byte-identical wav files and refuses when a source changed. An existing
non-empty OUT is never overwritten.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _argtypes as T
from _cli import add_common_args, default_out_dir, phrased
from _outdir import LOCK_NAME, acquire_out_lock, check_no_overlap

TOOL_NAME = "make_ood_testset"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="make_ood_testset.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clean", metavar="DIR", help="folder of clean speech files (searched recursively)")
    p.add_argument("--noise", metavar="DIR",
                   help="noise source: an ESC-50 root (meta/esc50.csv), an UrbanSound8K root "
                        "(metadata/UrbanSound8K.csv) or any folder of noise files")
    p.add_argument("--snrs", type=T.SNR_DB, nargs="+", default=[0.0, 5.0, 10.0], metavar="DB",
                   help="SNRs in dB, distinct; every clean file is mixed once at each (default: 0 5 10)")
    p.add_argument("--sr", type=T.SAMPLE_RATE_HZ, default=16000, help="output sample rate in Hz; sources at other rates "
                                                         "are resampled (default 16000)")
    p.add_argument("--categories", nargs="+", default=None, metavar="NAME",
                   help="ESC-50 categories / UrbanSound8K classes to use (default: all)")
    p.add_argument("--folds", type=T.int_range(1, 10), nargs="+", default=None, metavar="N",
                   help="ESC-50 (1-5) / UrbanSound8K (1-10) folds to use (default: all)")
    p.add_argument("--allow-missing", action="store_true",
                   help="skip (with a warning) metadata rows whose audio file is absent, e.g. a partial "
                        "ESC-50 download (default: such rows are an error)")
    p.add_argument("--keep-silence", action="store_true",
                   help="keep each noise clip's leading/trailing near-silence (default: trimmed, since ESC-50 "
                        "pads short clips with zeros to 5 s)")
    p.add_argument("--subtype", default="PCM_16", choices=["PCM_16", "PCM_24"], help="wav sample format")
    p.add_argument("--from-manifest", metavar="JSON", default=None,
                   help="rebuild the set described by this manifest.json into --out (byte-identical); "
                        "--clean / --noise then relocate the source roots if they moved")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_common_args(p, device=False)
    return T.annotate_help(p)


def parse_args(argv=None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    T.check_distinct(p, "--snrs", args.snrs)
    if args.from_manifest is None and (args.clean is None or args.noise is None):
        p.error("--clean and --noise are required (or --from-manifest to rebuild a set)")
    return args


def print_summary(s: dict, version: str) -> None:
    print(f"\nOOD test set in {s['out_dir']} ({TOOL_NAME} {version})")
    print(f"  {s['n_files']} mixtures from {s['n_clean']} clean files and {s['n_noise']} noise files "
          f"({len(s['noise_classes'])} classes); {s['n_limited']} scaled down to avoid clipping")
    print(f"  {'SNR (dB)':>9} | {'files':>5} | {'mean SI-SDR (dB)':>16}")
    print(f"  {'-' * 9}-+-{'-' * 5}-+-{'-' * 16}")
    for snr, v in s["per_snr"].items():
        print(f"  {snr:>9g} | {v['count']:>5d} | {v['mean_si_sdr_db']:>16.3f}")
    if "mismatched_outputs" in s:
        m = s["mismatched_outputs"]
        print("  rebuild: byte-identical to the manifest's outputs" if not m
              else f"  rebuild: {len(m)} output(s) differ from the manifest: {m[:5]}")


@phrased()  # errors name no API keywords: e.g. how to convert a stereo file
def main(argv=None) -> int:
    args = parse_args(argv)
    from se_data.ood import OOD_TOOL_VERSION, build_ood_set, rebuild_ood_set  # after parsing: --help stays fast

    out = args.out if args.out is not None else default_out_dir(TOOL_NAME)
    check_no_overlap(Path(out), "--out", **{"--clean": args.clean, "--noise": args.noise})
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(p.name != LOCK_NAME for p in out.iterdir())):
        print(f"error: --out {out} already exists and is not empty; nothing is overwritten. Choose a new --out",
              file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    acquire_out_lock(out, TOOL_NAME, resumable=False)  # a second run into --out stops here, naming this one
    try:
        if args.from_manifest:
            s = rebuild_ood_set(args.from_manifest, out, clean_dir=args.clean, noise_dir=args.noise,
                                progress=not args.no_progress)
        else:
            filters = {}
            if args.categories:
                filters["categories"] = args.categories  # ESC-50 name; mapped below for UrbanSound8K
            if args.folds:
                filters["folds"] = args.folds
            if args.allow_missing:
                filters["missing"] = "skip"
            if "categories" in filters and (Path(args.noise) / "metadata" / "UrbanSound8K.csv").is_file():
                filters["classes"] = filters.pop("categories")
            s = build_ood_set(args.clean, args.noise, out, snrs=args.snrs, seed=args.seed, sample_rate=args.sr,
                              noise_filters=filters, trim_silence=not args.keep_silence, subtype=args.subtype, progress=not args.no_progress)
    except (FileExistsError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_summary(s, OOD_TOOL_VERSION)
    return 1 if s.get("mismatched_outputs") else 0


if __name__ == "__main__":
    sys.exit(main())

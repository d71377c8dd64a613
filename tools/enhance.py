#!/usr/bin/env python
"""Enhance a folder of wav files with a checkpoint written by tools/train_bsdt.py, or with a
checkpoint of the widely used BSRNN reimplementation (its plain state dict; size from the shapes).

Works for every model the trainer builds (BSRNN, BSDT v1/v2, ERB-UNet and its 257-bin
version) and for files of any length: utterances up to ``--chunk-seconds`` are enhanced in
one pass; longer ones in overlapping chunks cross-faded over ``--overlap-seconds``, so memory
stays bounded. The folder layout of IN_DIR is kept in OUT_DIR. OUT_DIR/.enhance_manifest.jsonl
records what each output was made from (the input's and the checkpoint's size and SHA-256, and
the settings that change the output); a rerun skips outputs that are up to date, re-enhances
those whose input, checkpoint or settings changed (replacing each atomically; how many and why
is printed), and never overwrites a file it has no record of. Audio at another rate than the
model's is an error unless ``--resample``. ``--batch-size N`` enhances up to N files of similar
length per forward pass (sorted by length, each padded batch masked so every file gets what it
gets alone, to float rounding; faster on a GPU and on many short files).

The model is loaded and run with the bandsplit package alone (``bandsplit.load_model`` and
``bandsplit.enhance``), as any script of yours can do it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _argtypes as T  # noqa: E402
import _cli  # noqa: E402
from _buckets import length_buckets  # noqa: E402
from _outdir import acquire_out_lock, check_no_overlap  # noqa: E402
from _output_manifest import OutputManifest  # noqa: E402

import bandsplit  # noqa: E402
from se_data import AudioFileError, audio_info, file_fingerprint, load_audio, save_audio  # noqa: E402

#: OUT_DIR's record of what each enhanced file was made from
MANIFEST = ".enhance_manifest.jsonl"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="enhance.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True,
                   help="checkpoint from tools/train_bsdt.py (best.pt or last.pt), or the plain state dict of the "
                        "widely used BSRNN reimplementation (sungwon23/BSRNN's saved_model/gene_epoch_* files; its "
                        "size, e.g. N=64 L=5, is read from the tensor shapes; 16 kHz, STFT 512/128)")
    p.add_argument("in_dir", metavar="IN_DIR", help="folder with noisy .wav files (searched recursively)")
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder for the enhanced files (same relative paths)")
    p.add_argument("--resample", action="store_true",
                   help="resample files at another rate to the model's rate (and write at the model's rate); "
                        "without it such files are reported as failures")
    p.add_argument("--chunk-seconds", type=T.seconds(), default=30.0,
                   help="files longer than this are enhanced in overlapping chunks (default 30)")
    p.add_argument("--overlap-seconds", type=T.seconds(), default=1.0,
                   help="chunk cross-fade length (default 1; less than --chunk-seconds; at most half a chunk is used)")
    p.add_argument("--batch-size", type=T.INFERENCE_BATCH, default=1,
                   help="files per forward pass: files are sorted by length and enhanced N at a time of similar "
                        "length (each padded batch masked, so every file's output equals the one-at-a-time output "
                        "to float rounding; the manifest treats both alike). Every model train_bsdt.py builds "
                        "masks a padded batch (any other runs one at a time, with a note) (default 1)")
    _cli.add_allow_failures(p)
    p.add_argument("--weights", choices=["ema", "live"], default="ema",
                   help="ema: the checkpoint's EMA weights where it has them, else its trained weights "
                        "(train_bsdt.py keeps no EMA, so both are the same for its checkpoints); live: the "
                        "trained weights (default ema)")
    p.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1 ... (default auto)")
    return T.annotate_help(p)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    T.check_less(p, ("--overlap-seconds", args.overlap_seconds), ("--chunk-seconds", args.chunk_seconds),
                 why="chunks must advance")
    return args


def _duration(path: Path) -> float:
    """Seconds of audio in ``path`` from its header (0 when unreadable: loading reports why)."""
    try:
        return audio_info(path).duration
    except AudioFileError:
        return 0.0


@_cli.phrased(resample="--resample")  # multi-channel files are enhanced per channel
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_no_overlap(Path(args.out_dir), "OUT_DIR", IN_DIR=Path(args.in_dir))
    if not Path(args.in_dir).is_dir():
        sys.exit(f"error: IN_DIR {args.in_dir} is not a folder")
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    # a second enhance into OUT_DIR stops here; a dead run's lock is taken over (reruns resume)
    acquire_out_lock(Path(args.out_dir), "enhance", resume=True)
    device = _cli.resolve_device(args.device)
    try:
        ckpt_fp = file_fingerprint(args.ckpt)  # before loading: a checkpoint replaced meanwhile counts as changed
        model = bandsplit.load_model(args.ckpt, weights=args.weights, map_location=device)
    except (OSError, ValueError) as e:
        sys.exit(f"error: --ckpt: {e}")
    sr = model.sample_rate
    dtype = next(model.parameters()).dtype
    in_dir, out_dir = Path(args.in_dir), Path(args.out_dir)
    files = sorted(p for p in in_dir.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())
    if not files:
        sys.exit(f"error: no .wav files under {in_dir}")
    # what changes an output besides its input and the checkpoint's bytes (the device only moves last bits)
    settings = {"weights": args.weights, "resample": args.resample, "chunk_seconds": args.chunk_seconds,
                "overlap_seconds": args.overlap_seconds}
    manifest = OutputManifest(out_dir, MANIFEST, Path(args.ckpt), ckpt_fp, settings)
    done, skipped, unrecorded, failed = 0, [], [], []
    redone: dict[str, list[str]] = {}
    seconds = 0.0
    t0 = time.time()
    batch_size = args.batch_size
    if batch_size > 1 and not bandsplit.supports_lengths(model):
        print(f"note: {type(model).__name__} cannot mask a padded batch; enhancing one file at a time")
        batch_size = 1
    todo: list[tuple[Path, Path, Any]] = []  # (relative path, input, input fingerprint)
    for f in files:
        rel = f.relative_to(in_dir)
        target = out_dir / rel
        try:
            input_fp = file_fingerprint(f)  # before reading, so a change meanwhile is seen next run
        except OSError as e:
            failed.append((str(rel), f"cannot read {f}: {e}"))
            tqdm.write(f"failed: {rel}: {failed[-1][1]}")
            continue
        if target.exists():
            why = manifest.stale_reasons(rel.as_posix(), f, input_fp)
            if why is None:  # not made by this tool (or by a version without the manifest): never overwritten
                unrecorded.append(str(rel))
                continue
            if not why:
                skipped.append(str(rel))
                continue
            redone[str(rel)] = why
        todo.append((rel, f, input_fp))

    def fail(rel: Path, e: Exception) -> None:
        why = str(e)  # library errors name this tool's flags (_cli.phrased)
        redone.pop(str(rel), None)  # its old output (if any) stays, and is retried next run
        failed.append((str(rel), why))
        tqdm.write(f"failed: {rel}: {why}")

    def enhance_batch(audios: list[torch.Tensor]) -> list[torch.Tensor]:
        kw = {"chunk_seconds": args.chunk_seconds, "overlap_seconds": args.overlap_seconds}
        if len(audios) == 1:
            return [bandsplit.enhance(model, audios[0].to(device, dtype), sr, **kw)]
        return bandsplit.enhance(model, [a.to(device, dtype) for a in audios], sr, **kw)

    durations = [_duration(f) for _, f, _ in todo] if batch_size > 1 else [0.0] * len(todo)
    progress = tqdm(total=len(todo), desc="enhancing", dynamic_ncols=True)
    for batch in length_buckets(durations, batch_size):
        loaded: list[tuple[Path, Any, torch.Tensor]] = []
        for j in batch:
            rel, f, input_fp = todo[j]
            try:
                loaded.append((rel, input_fp, load_audio(f, sr, resample=args.resample, mono=False)[0]))
            except Exception as e:  # noqa: BLE001 - one bad file never stops the batch
                fail(rel, e)
                progress.update(1)
        try:
            outs: list[torch.Tensor | Exception] = list(enhance_batch([a for _, _, a in loaded])) if loaded else []
        except Exception:  # noqa: BLE001 - one bad file (NaN samples, too short) fails only itself
            outs = []
            for _, _, a in loaded:
                try:
                    outs.append(enhance_batch([a])[0])
                except Exception as e:  # noqa: BLE001
                    outs.append(e)
        for (rel, input_fp, _), enh in zip(loaded, outs):
            progress.update(1)
            try:
                if isinstance(enh, Exception):
                    raise enh
                enh = enh.to("cpu", torch.float32)
                peak = float(enh.abs().max())
                if peak > 1.0:  # keep the waveform's shape: scale instead of clipping, and say so
                    tqdm.write(f"note: {rel}: output peak {peak:.2f} > 1, scaled by {1 / peak:.3f} to avoid clipping")
                    enh = enh / peak
                target = out_dir / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                save_audio(target, enh, sr, overwrite=str(rel) in redone)  # atomic: temp file + rename
                manifest.record(rel.as_posix(), input_fp)
                done += 1
                seconds += enh.shape[-1] / sr
            except Exception as e:  # noqa: BLE001 - one bad file never stops the batch
                fail(rel, e)
    progress.close()
    manifest.compact()
    wall = time.time() - t0
    print(f"\n{'enhanced':>10s} {done:6d} files, {seconds:.1f} s of audio in {wall:.1f} s "
          f"(real-time factor {wall / max(seconds, 1e-9):.3f})")
    if redone:
        kinds = Counter(r.split(": ", 1)[0] for why in redone.values() for r in why)
        print(f"{'redone':>10s} {len(redone):6d} of them, replacing outputs made from another input, checkpoint or "
              f"settings: " + ", ".join(f"{k} ({n})" for k, n in sorted(kinds.items())))
        for rel, why in redone.items():
            print(f"  {rel}: {'; '.join(why)}")
    print(f"{'skipped':>10s} {len(skipped):6d} (already in {out_dir} and up to date: same input, checkpoint "
          f"and settings)")
    if unrecorded:
        print(f"{'kept':>10s} {len(unrecorded):6d} existing file(s) in {out_dir} without a record in {MANIFEST} "
              f"(made by another tool or an older version): never overwritten; delete them to re-enhance")
    print(f"{'failed':>10s} {len(failed):6d}")
    for rel, why in failed:
        print(f"  {rel}: {why}")
    return _cli.failure_status(len(failed), len(files), args, "file(s)")


if __name__ == "__main__":
    sys.exit(main())

"""train_aa's outputs on disk: the cached teacher targets (OUT/targets.pt) and the exported
student (OUT/student.nam)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

import _aa_common
import _train
from aa_distill import (NamWaveNet, SineToneDataset, ToneDataSpec, ToneParams, distillation_metadata, midi_to_hz,
                        save_nam)


def cached_targets(args: argparse.Namespace, teacher: _aa_common.Teacher, spec: ToneDataSpec,
               params: tuple[ToneParams, ToneParams], out: Path, device: torch.device,
               info: _train.DistInfo) -> tuple[SineToneDataset, SineToneDataset]:
    """Training and validation tones with cached bandlimited float64 teacher targets.

    Rank 0 computes them once (unless OUT/targets.pt exists) and saves them atomically; the other
    ranks then load the file, and every rank refuses a file whose fingerprint differs."""
    fp, cache, data = spec.fingerprint(teacher.record), out / "targets.pt", None
    if info.is_main and not cache.exists():
        data = {"fingerprint": fp}
        for name, p in zip(("train", "valid"), params):
            with tqdm(total=len(p), desc=f"teacher targets ({name})", unit="tone", leave=False,
                      disable=args.no_progress, dynamic_ncols=True) as bar:
                data[name] = SineToneDataset.from_teacher(teacher.module, p, batch_size=args.batch_size,
                                                          device=device, store_dtype=spec.store_dtype,
                                                          progress=bar.update).to_dict()
        _train.save_checkpoint(cache, data)
    if info.enabled:
        dist.barrier()
    data = data or _train.load_checkpoint(cache)
    if data["fingerprint"] != fp:
        raise SystemExit(f"error: {cache} holds targets for other settings ({data['fingerprint']}); use a new --out")
    return SineToneDataset.from_dict(data["train"]), SineToneDataset.from_dict(data["valid"])


def export_student(out: Path, teacher: _aa_common.Teacher, student: NamWaveNet, args: argparse.Namespace,
                   log: Any, *, tool: str) -> Path:
    """Load the best checkpoint's weights into ``student`` and write it as OUT/student.nam with its teacher
    record."""
    if not (out / "best.pt").exists():
        raise SystemExit(f"error: no finite validation loss in any epoch: {out}/best.pt was never written, "
                         f"nothing to export")
    ck = _train.load_checkpoint(out / "best.pt")
    student.load_state_dict(ck["model"])
    meta = distillation_metadata(
        teacher.record, tool=tool, epoch=ck["epoch"], valid_loss=ck["best"]["value"],
        lam=None if args.curriculum else args.lam, curriculum=args.curriculum_range if args.curriculum else None,
        harmonic_weight=args.harmonic_weight, lowpass_hz=None if args.no_lowpass else args.lowpass_hz,
        num_tones=args.num_tones, seed=args.seed, f0_sampling=args.f0_sampling,
        f0_range_hz=args.f0_range_hz if args.f0_sampling == "linear_hz"
        else [float(midi_to_hz(m)) for m in args.midi_range])
    path = out / "student.nam"
    existed = path.exists()
    save_nam(student, path, metadata=meta, overwrite=True)
    log(f"{'re-exported' if existed else 'exported'} the best student (epoch {ck['epoch'] + 1}) to {path}")
    return path

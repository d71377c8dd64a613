"""Resample a whole tree of audio files (e.g. VoiceBank-DEMAND 48 kHz -> 16 kHz) into a new
tree with the same relative layout: parallel, resumable, atomic per file.

* Audio files (``.wav``, ``.flac``) are resampled with :func:`se_data.resample` and written
  with the source's subtype (PCM_16 stays PCM_16) and channel count; files already at the
  target rate are copied byte for byte.
* Every other file (e.g. VoiceBank-DEMAND's ``log_trainset_28spk.txt``) is copied, and so
  are hidden audio files such as macOS ``._p226_001.wav`` resource forks (not audio).
* Resumable, and never stale: ``DST/.resample_manifest.json`` records for every file
  written the fingerprint of the source it was made from (:func:`se_data.file_fingerprint`:
  size, mtime in ns, SHA-256; ``{"format": 1, "sample_rate": Hz, "files": {rel: {"source":
  fingerprint}}}``, written atomically every few seconds and at the end, never read as a
  source). A destination file is skipped only when it is valid (for audio: target rate,
  same channels, the expected ``ceil(T * new / orig)`` frames; for other files: same size)
  *and* its source still matches the recorded fingerprint (same size and content hash).
  A valid destination file whose source changed since, or that has no record of its source
  (made by an interrupted run's last seconds or by a version without the manifest), is
  redone and listed in ``report.stale`` with the reason; a destination file that is not
  valid is redone too. Both count as ``replaced``. Each file is written to a hidden
  ``.NAME.*.partial`` file and renamed, so an interrupted run never leaves a half file;
  stale ``.partial`` files are removed on resume.
* Nothing is lost silently: a PCM file whose resampled peak exceeds full scale is clipped
  and listed in ``report.clipped``; unreadable sources are listed in ``report.failed``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import shutil
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from .audio_io import audio_info, partial_path, write_atomic
from .fingerprint import file_fingerprint, fingerprint_change, write_json_atomic
from .resample import resample, resampled_length

__all__ = ["AUDIO_EXTENSIONS", "MANIFEST_NAME", "ResampleReport", "resample_tree"]

#: the file in DST recording each written file's source fingerprint (never treated as a source)
MANIFEST_NAME = ".resample_manifest.json"
_MANIFEST_TMP_RE = re.compile(r"^\.\.resample_manifest\.json\..+\.tmp$")
#: seconds between manifest checkpoints while files are written (an interruption loses at most these)
_MANIFEST_EVERY_S = 10.0

#: file extensions treated as audio (lower case); everything else is copied unchanged
AUDIO_EXTENSIONS = (".wav", ".flac")
_PARTIAL_RE = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.partial$")
_PCM = {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32"}


@dataclass
class ResampleReport:
    """What :func:`resample_tree` did; every list holds paths relative to ``src``."""

    src: Path
    dst: Path
    sample_rate: int
    resampled: list[str] = field(default_factory=list)
    copied_audio: list[str] = field(default_factory=list)  # already at the target rate
    skipped: list[str] = field(default_factory=list)  # valid in dst from an earlier run
    replaced: list[str] = field(default_factory=list)  # existed in dst but invalid/stale: redone
    stale: dict[str, str] = field(default_factory=dict)  # valid in dst, but its source changed (or unrecorded): why
    clipped: list[str] = field(default_factory=list)  # resampled peak > full scale, clipped
    other_copied: list[str] = field(default_factory=list)
    other_skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # path -> error message
    rates_seen: Counter = field(default_factory=Counter)  # source rate (Hz) -> number of files
    stale_partials_removed: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary_rows(self) -> list[tuple[str, str]]:
        rates = ", ".join(f"{r} Hz: {n}" for r, n in sorted(self.rates_seen.items())) or "-"
        return [
            ("audio resampled", str(len(self.resampled))),
            (f"audio copied (already {self.sample_rate} Hz)", str(len(self.copied_audio))),
            ("audio skipped (already done)", str(len(self.skipped))),
            ("replaced (invalid in DST)", str(len(self.replaced) - len(self.stale))),
            ("redone (source changed)", str(len(self.stale))),
            ("clipped after resampling", str(len(self.clipped))),
            ("other files copied", str(len(self.other_copied))),
            ("other files skipped", str(len(self.other_skipped))),
            ("failed", str(len(self.failed))),
            ("stale .partial files removed", str(self.stale_partials_removed)),
            ("source rates seen", rates),
        ]

    def to_dict(self) -> dict:
        return {"src": str(self.src), "dst": str(self.dst), "sample_rate": self.sample_rate,
                "resampled": len(self.resampled), "copied_audio": len(self.copied_audio),
                "skipped": len(self.skipped), "replaced": self.replaced, "stale": self.stale,
                "clipped": self.clipped,
                "other_copied": len(self.other_copied), "other_skipped": len(self.other_skipped),
                "failed": self.failed, "rates_seen": {str(k): v for k, v in sorted(self.rates_seen.items())},
                "stale_partials_removed": self.stale_partials_removed}


def _dst_audio_valid(dst: Path, sr: int, frames: int, channels: int) -> bool:
    try:
        d = sf.info(str(dst))
    except Exception:
        return False
    return d.samplerate == sr and d.frames == frames and d.channels == channels


def _copy_atomic(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(dst)
    try:
        shutil.copy2(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def _stale_reason(recorded: dict | None, src: Path, current: dict) -> str | None:
    """Why a valid destination file cannot be trusted: its source changed since it was made,
    or no source was recorded for it; None when the source matches the record."""
    if recorded is None:
        return f"no record of its source in {MANIFEST_NAME}"
    change = fingerprint_change(recorded, src, current)
    return None if change is None else f"source changed: {change}"


_Job = tuple[str, str, str, int, "dict | None"]


def _do_audio(job: _Job) -> tuple[str, str, int | None, bool, str, dict | None, str | None]:
    """Worker: returns (rel, status, source_rate, replaced, message, source fingerprint, why
    a valid destination file was redone). The source is fingerprinted before it is read."""
    rel, src_s, dst_s, sr, recorded = job
    src, dst = Path(src_s), Path(dst_s)
    try:
        fp = file_fingerprint(src)
        info = audio_info(src)
        expected = resampled_length(info.frames, info.sample_rate, sr)
        existed = dst.exists()
        stale = None
        if existed and _dst_audio_valid(dst, sr, expected, info.channels):
            stale = _stale_reason(recorded, src, fp)
            if stale is None:
                return rel, "skipped", info.sample_rate, False, "", fp, None
        if info.sample_rate == sr:
            _copy_atomic(src, dst)
            return rel, "copied", info.sample_rate, existed, "", fp, stale
        data, _ = sf.read(str(src), dtype="float32", always_2d=True)  # [T, C]
        if data.shape[0] == 0:
            raise ValueError("empty audio file (0 samples)")
        if not np.isfinite(data).all():
            raise ValueError("holds NaN/Inf samples")
        y = resample(torch.from_numpy(np.ascontiguousarray(data.T)), info.sample_rate, sr).T.numpy()
        subtype = info.subtype if info.subtype in sf.available_subtypes(dst.suffix.lstrip(".").upper()) \
            else "PCM_16"
        clipped = False
        if subtype in _PCM and np.abs(y).max() > 1.0:
            y = np.clip(y, -1.0, 1.0)
            clipped = True
        write_atomic(dst, y if y.shape[1] > 1 else y[:, 0], sr, subtype)
        return rel, "clipped" if clipped else "resampled", info.sample_rate, existed, "", fp, stale
    except Exception as e:  # recorded per file; one bad file never stops the tree
        return rel, "failed", None, False, f"{type(e).__name__}: {e}", None, None


def _do_other(src: Path, dst: Path, recorded: dict | None) -> tuple[str, bool, dict, str | None]:
    """Copy a non-audio file unless DST holds it from the same source: (status, existed,
    source fingerprint, why a same-size destination file was redone)."""
    fp = file_fingerprint(src)
    stale = None
    if dst.exists() and dst.is_file() and dst.stat().st_size == src.stat().st_size:
        stale = _stale_reason(recorded, src, fp)
        if stale is None:
            return "skipped", False, fp, None
    existed = dst.exists()
    _copy_atomic(src, dst)
    return "copied", existed, fp, stale


def _read_manifest(dst: Path) -> dict[str, dict]:
    """``{rel: source fingerprint}`` from DST's manifest; empty when there is none or it
    cannot be read (then every existing file counts as unrecorded and is redone)."""
    try:
        data = json.loads((dst / MANIFEST_NAME).read_text())
        return {rel: e["source"] for rel, e in data["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _write_manifest(dst: Path, sample_rate: int, sources: dict[str, dict]) -> None:
    if not dst.is_dir():
        return
    write_json_atomic(dst / MANIFEST_NAME, {"format": 1, "sample_rate": sample_rate,
                                            "files": {rel: {"source": sources[rel]} for rel in sorted(sources)}})


def _worker_init() -> None:
    torch.set_num_threads(1)


def _is_within(a: Path, b: Path) -> bool:
    try:
        a.relative_to(b)
        return True
    except ValueError:
        return False


def resample_tree(src: str | os.PathLike, dst: str | os.PathLike, sample_rate: int = 16000, *,
                  workers: int = 1, progress: bool = True) -> ResampleReport:
    """Resample every audio file under ``src`` to ``sample_rate`` Hz into ``dst`` (same
    relative layout), copying every other file. See the module docstring for the resume,
    atomicity and clipping rules. ``workers`` > 1 uses a process pool (one torch thread per
    worker). Returns a :class:`ResampleReport`; per-file failures are recorded there,
    never raised. Raises ``ValueError`` if ``src`` is missing or the trees overlap."""
    src_p, dst_p = Path(src).resolve(), Path(dst).resolve()
    if not src_p.is_dir():
        raise ValueError(f"{src}: source folder does not exist")
    if _is_within(dst_p, src_p) or _is_within(src_p, dst_p):
        raise ValueError(f"source {src_p} and destination {dst_p} overlap; choose a DST outside SRC")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
    report = ResampleReport(src_p, dst_p, sample_rate)

    if dst_p.is_dir():  # leftovers of an interrupted run (ours by their name pattern)
        for f in dst_p.rglob("*.partial"):
            if _PARTIAL_RE.match(f.name):
                f.unlink()
                report.stale_partials_removed += 1
        for f in dst_p.glob(".*.tmp"):
            if _MANIFEST_TMP_RE.match(f.name):
                f.unlink()
    recorded = _read_manifest(dst_p)

    audio_jobs: list[_Job] = []
    others: list[str] = []
    for f in sorted(p for p in src_p.rglob("*") if p.is_file()):
        # a half-written file of some earlier run, or the manifest of a tree that was itself
        # resampled: never a source
        if _PARTIAL_RE.match(f.name) or _MANIFEST_TMP_RE.match(f.name) or \
                (f.name == MANIFEST_NAME and f.parent == src_p):
            continue
        rel = f.relative_to(src_p).as_posix()
        if f.suffix.lower() in AUDIO_EXTENSIONS and not f.name.startswith("."):  # "._x.wav": macOS junk
            audio_jobs.append((rel, str(f), str(dst_p / rel), sample_rate, recorded.get(rel)))
        else:
            others.append(rel)

    # what DST holds from SRC as it is now: entries of files gone from SRC are dropped
    in_src = {j[0] for j in audio_jobs} | set(others)
    sources = {rel: fp for rel, fp in recorded.items() if rel in in_src}

    def done(rel: str, status: str, existed: bool, fp: dict | None, stale: str | None) -> None:
        if status == "failed" or fp is None:
            sources.pop(rel, None)  # what DST holds for it is unknown: redone next time
            return
        sources[rel] = fp
        if existed:
            report.replaced.append(rel)
        if stale is not None:
            report.stale[rel] = stale

    for rel in others:
        try:
            status, existed, fp, stale = _do_other(src_p / rel, dst_p / rel, recorded.get(rel))
        except OSError as e:
            report.failed[rel] = f"{type(e).__name__}: {e}"
            done(rel, "failed", False, None, None)
            continue
        (report.other_copied if status == "copied" else report.other_skipped).append(rel)
        done(rel, status, existed, fp, stale)

    from tqdm.auto import tqdm

    bar = tqdm(total=len(audio_jobs), desc=f"resample -> {sample_rate} Hz", unit="file",
               disable=not progress)
    if workers <= 1 or len(audio_jobs) <= 1:
        results = map(_do_audio, audio_jobs)
        pool = None
    else:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                   initializer=_worker_init)
        results = pool.map(_do_audio, audio_jobs, chunksize=max(1, min(32, len(audio_jobs) // (4 * workers))))
    last_save = time.monotonic()
    try:
        for rel, status, rate, existed, msg, fp, stale in results:
            bar.update(1)
            done(rel, status, existed, fp, stale)
            if time.monotonic() - last_save > _MANIFEST_EVERY_S:
                _write_manifest(dst_p, sample_rate, sources)
                last_save = time.monotonic()
            if status == "failed":
                report.failed[rel] = msg
                continue
            report.rates_seen[rate] += 1
            if status == "skipped":
                report.skipped.append(rel)
            elif status == "copied":
                report.copied_audio.append(rel)
            else:
                report.resampled.append(rel)
                if status == "clipped":
                    report.clipped.append(rel)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        _write_manifest(dst_p, sample_rate, sources)
    return report

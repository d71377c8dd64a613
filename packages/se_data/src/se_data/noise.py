"""Noise collections: ESC-50, UrbanSound8K and any folder of noise files.

Each collection is a lazy sequence of :class:`NoiseItem`: only the metadata is read at
construction; ``collection[i]`` loads one file, downmixes it (mean over channels) and
resamples it to the collection's ``sample_rate`` (Hz, always explicit). 8-, 16-, 24-bit
and float files all load (soundfile), so UrbanSound8K's mixed formats need no preparation.

Layouts (see ``metrics_data_notes.md`` §5):

* ESC-50: ``ROOT/audio/*.wav`` and ``ROOT/meta/esc50.csv`` with columns
  ``filename,fold,target,category,esc10,src_file,take``; label = ``category``.
* UrbanSound8K: ``ROOT/audio/foldN/*.wav`` and ``ROOT/metadata/UrbanSound8K.csv`` with
  columns ``slice_file_name,fsID,start,end,salience,fold,classID,class``; label = ``class``.
* Folder: every audio file below ``ROOT``; label = the first sub-folder under ROOT (class
  folders), or the file stem for files directly in ROOT.

A metadata row whose file is absent is an error (nothing is dropped silently) unless
``missing="skip"``, which skips it with a warning that counts the skipped rows.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ._rng import check_sample_rate
from .audio_io import load_audio

ESC50_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
US8K_COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif")


@dataclass(frozen=True)
class NoiseEntry:
    """One noise file before loading: ``path``, class ``label`` and metadata (fold, ids...)."""

    path: Path
    label: str
    meta: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class NoiseItem:
    """One loaded noise: ``audio`` [T] float32 at ``sample_rate`` Hz (mono), its class
    ``label``, the ``source`` file, and the metadata of its entry."""

    audio: torch.Tensor
    sample_rate: int
    label: str
    source: Path
    meta: dict = field(default_factory=dict, compare=False)


class NoiseSet(Sequence):
    """A lazy, indexable collection of noise files delivered at one ``sample_rate`` (Hz).

    ``len(s)``, ``s[i] -> NoiseItem``, ``s.entries`` (metadata only), ``s.labels`` (sorted
    distinct labels), ``s.root`` and ``s.layout`` (``"esc50"``, ``"urbansound8k"``,
    ``"folder"``). ``s.relpath(i)`` is the entry's path relative to the root (POSIX).
    ``trim_silence=True`` strips leading and trailing near-silence (see :func:`load_noise`),
    e.g. the zero padding of short ESC-50 clips.
    """

    layout = "list"

    def __init__(self, entries: Iterable[NoiseEntry], sample_rate: int, root: str | os.PathLike | None = None, *,
                 trim_silence: bool = False):
        self.sample_rate = check_sample_rate("sample_rate", sample_rate)
        self.trim_silence = bool(trim_silence)
        self.entries: list[NoiseEntry] = list(entries)
        self.root = Path(root) if root is not None else None
        if not self.entries:
            raise ValueError(f"no noise files selected{f' under {self.root}' if self.root else ''}; "
                             f"check the path and the filters")

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        e = self.entries[i]
        audio = load_noise(e.path, self.sample_rate, trim_silence=self.trim_silence)
        sr = self.sample_rate
        return NoiseItem(audio=audio, sample_rate=sr, label=e.label, source=e.path, meta=dict(e.meta))

    @property
    def labels(self) -> list[str]:
        return sorted({e.label for e in self.entries})

    def relpath(self, i: int) -> str:
        p = self.entries[i].path
        if self.root is None:
            return p.as_posix()
        return p.relative_to(self.root).as_posix()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} files, {len(self.labels)} labels, "
                f"{self.sample_rate} Hz, root={self.root})")


def _read_csv(path: Path, columns: Sequence[str]) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: metadata file not found; expected the dataset's own CSV there")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; expected {list(columns)} "
                             f"(found {reader.fieldnames})")
        return list(reader)


def _check_filter(name: str, wanted: Iterable | None, available: set, path: Path) -> set | None:
    if wanted is None:
        return None
    wanted = set(wanted)
    unknown = wanted - available
    if unknown:
        raise ValueError(f"{path}: unknown {name} {sorted(map(str, unknown))}; available: "
                         f"{sorted(map(str, available))}")
    return wanted


def _read_filtered_csv(root: Path, path: Path, columns: Sequence[str], label_name: str,
                       label_column: str, labels: Iterable[str] | None, folds: Iterable[int] | None
                       ) -> tuple[list[dict], set | None, set | None]:
    """Read a dataset's metadata CSV and check the label and fold filters against its rows.

    Returns ``(rows, wanted labels, wanted folds)``; a filter left as ``None`` stays ``None``.
    """
    rows = _read_csv(path, columns)
    wanted_labels = _check_filter(label_name, labels, {r[label_column] for r in rows}, root)
    wanted_folds = _check_filter("folds", None if folds is None else [int(x) for x in folds],
                                 {int(r["fold"]) for r in rows}, root)
    return rows, wanted_labels, wanted_folds


def _resolve_missing(entries: list[NoiseEntry], missing: str, what: str) -> list[NoiseEntry]:
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    absent = [e for e in entries if not e.path.is_file()]
    if absent:
        if missing == "error":
            raise FileNotFoundError(
                f"{what}: {len(absent)} of {len(entries)} files listed in the metadata are missing "
                f"(first: {absent[0].path}); complete the download, or pass missing='skip' to use the "
                f"{len(entries) - len(absent)} present files")
        warnings.warn(f"{what}: skipping {len(absent)} of {len(entries)} listed files that are missing "
                      f"(first: {absent[0].path})", stacklevel=3)
    return [e for e in entries if e.path.is_file()]


class ESC50(NoiseSet):
    """ESC-50 clips (5 s, 44.1 kHz) delivered at ``sample_rate`` Hz.

    Filters: ``categories`` (names as in the CSV, e.g. ``"dog"``), ``folds`` (1–5),
    ``esc10_only``. Label = category; meta = fold, target, esc10, src_file, take.
    """

    layout = "esc50"

    def __init__(self, root: str | os.PathLike, sample_rate: int, *, categories: Iterable[str] | None = None,
                 folds: Iterable[int] | None = None, esc10_only: bool = False, missing: str = "error",
                 trim_silence: bool = False):
        root = Path(root)
        rows, cats, fl = _read_filtered_csv(root, root / "meta" / "esc50.csv", ESC50_COLUMNS,
                                            "categories", "category", categories, folds)
        entries = [NoiseEntry(root / "audio" / r["filename"], r["category"],
                              {"fold": int(r["fold"]), "target": int(r["target"]),
                               "esc10": r["esc10"].strip().lower() == "true", "src_file": r["src_file"],
                               "take": r["take"]})
                   for r in rows
                   if (cats is None or r["category"] in cats) and (fl is None or int(r["fold"]) in fl)
                   and (not esc10_only or r["esc10"].strip().lower() == "true")]
        super().__init__(_resolve_missing(entries, missing, f"ESC-50 at {root}"), sample_rate, root,
                         trim_silence=trim_silence)


class UrbanSound8K(NoiseSet):
    """UrbanSound8K slices (≤ 4 s; rate, channels and bit depth vary) at ``sample_rate`` Hz.

    Filters: ``classes`` (names, e.g. ``"siren"``), ``folds`` (1–10), ``salience`` (1 =
    foreground, 2 = background). Label = class; meta = fold, classID, salience, fsID,
    start, end.
    """

    layout = "urbansound8k"

    def __init__(self, root: str | os.PathLike, sample_rate: int, *, classes: Iterable[str] | None = None,
                 folds: Iterable[int] | None = None, salience: int | None = None, missing: str = "error",
                 trim_silence: bool = False):
        root = Path(root)
        rows, cls, fl = _read_filtered_csv(root, root / "metadata" / "UrbanSound8K.csv", US8K_COLUMNS,
                                           "classes", "class", classes, folds)
        if salience not in (None, 1, 2):
            raise ValueError(f"salience must be 1 (foreground), 2 (background) or None, got {salience!r}")
        entries = [NoiseEntry(root / "audio" / f"fold{int(r['fold'])}" / r["slice_file_name"], r["class"],
                              {"fold": int(r["fold"]), "classID": int(r["classID"]),
                               "salience": int(r["salience"]), "fsID": r["fsID"],
                               "start": float(r["start"]), "end": float(r["end"])})
                   for r in rows
                   if (cls is None or r["class"] in cls) and (fl is None or int(r["fold"]) in fl)
                   and (salience is None or int(r["salience"]) == salience)]
        super().__init__(_resolve_missing(entries, missing, f"UrbanSound8K at {root}"), sample_rate, root,
                         trim_silence=trim_silence)


class NoiseFolder(NoiseSet):
    """Every audio file below ``root`` (extensions :data:`AUDIO_EXTENSIONS`, sorted by path),
    delivered at ``sample_rate`` Hz. Label = first sub-folder under ``root``, or the file
    stem for files directly in ``root``. Hidden files are ignored."""

    layout = "folder"

    def __init__(self, root: str | os.PathLike, sample_rate: int, *, recursive: bool = True,
                 extensions: Sequence[str] = AUDIO_EXTENSIONS, trim_silence: bool = False):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: noise folder not found")
        exts = {x.lower() for x in extensions}
        files = sorted(p for p in (root.rglob("*") if recursive else root.glob("*"))
                       if p.is_file() and p.suffix.lower() in exts
                       and not any(part.startswith(".") for part in p.relative_to(root).parts))
        entries = [NoiseEntry(p, p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else p.stem,
                              {}) for p in files]
        if not entries:
            raise ValueError(f"{root}: no audio files ({', '.join(sorted(exts))}) found")
        super().__init__(entries, sample_rate, root, trim_silence=trim_silence)


def open_noise_set(path: str | os.PathLike, sample_rate: int, **filters) -> NoiseSet:
    """Open ``path`` as the right collection: ESC-50 if ``meta/esc50.csv`` exists,
    UrbanSound8K if ``metadata/UrbanSound8K.csv`` exists, else a :class:`NoiseFolder`.
    ``filters`` go to the chosen class (e.g. ``categories=``, ``folds=``, ``missing=``)."""
    p = Path(path)
    if (p / "meta" / "esc50.csv").is_file():
        return ESC50(p, sample_rate, **filters)
    if (p / "metadata" / "UrbanSound8K.csv").is_file():
        return UrbanSound8K(p, sample_rate, **filters)
    filters.pop("missing", None)  # a plain folder has no metadata rows that could be missing
    trim = bool(filters.pop("trim_silence", False))
    if filters:
        raise ValueError(f"{p}: filters {sorted(filters)} only apply to ESC-50 / UrbanSound8K roots, "
                         f"and this is a plain folder")
    return NoiseFolder(p, sample_rate, trim_silence=trim)


#: near-silence threshold of :func:`load_noise`'s trimming, in dB below the clip's peak
TRIM_THRESHOLD_DB = 60.0


def load_noise(path: str | os.PathLike, sample_rate: int, *, trim_silence: bool = False) -> torch.Tensor:
    """One noise file as mono float32 [T] at ``sample_rate`` Hz (mean downmix, resampled).

    ``trim_silence=True`` removes the leading and trailing samples quieter than
    :data:`TRIM_THRESHOLD_DB` (60 dB) below the clip's peak, such as ESC-50's zero padding
    to 5 s. A clip that is entirely silent raises ``ValueError`` naming the file.
    """
    x, _ = load_audio(path, sample_rate, resample=True, mono=True)
    peak = float(x.abs().max())
    if peak == 0.0:
        raise ValueError(f"{path}: the noise file is silent (all zeros); remove it from the noise set")
    if trim_silence:
        loud = torch.nonzero(x.abs() > peak * 10 ** (-TRIM_THRESHOLD_DB / 20)).flatten()
        x = x[int(loud[0]):int(loud[-1]) + 1].clone()
    return x

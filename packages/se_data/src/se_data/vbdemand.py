"""VoiceBank-DEMAND (Valentini-Botinhao et al. 2017): layout, speaker split and noise labels.

Layout under ``root`` (the names of the official zips)::

    clean_trainset_28spk_wav/  noisy_trainset_28spk_wav/   11,572 pairs, 28 speakers
    clean_testset_wav/         noisy_testset_wav/          824 pairs, speakers p232 p257
    log_trainset_28spk.txt     (or logfiles/ or noise_labels/): "p236_002 babble 15" per line
    log_testset.txt            (optional, same format, the 5 unseen test noises)

The files are 48 kHz; models here use 16 kHz. Resample the tree once with
``uv run tools/resample_dataset.py VB VB16k --sr 16000`` and point ``root`` at ``VB16k``
(fast), or pass ``resample=True`` to resample every file on load (slow).

The validation split is taken *by speaker from the training set* (default p226 and p287,
the speakers SGMSE+/NASE hold out), never from the test set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Sequence

from .datasets import PairEntry, PairedAudioDataset, _listing, match_pairs

__all__ = [
    "VBDEMAND_TEST_NOISE_CLASSES", "VBDEMAND_TEST_SPEAKERS", "VBDEMAND_TRAIN_NOISE_CLASSES",
    "VBDEMAND_TRAIN_SPEAKERS", "VBDEMAND_VALID_SPEAKERS", "VoiceBankDEMAND",
    "find_vbdemand_log", "read_vbdemand_log",
]

#: the 10 training noise types, in the order of their class index (the distinct names in the
#: official ``log_trainset_28spk.txt``: 8 DEMAND noises plus babble and speech-shaped noise;
#: same order as NASE's ``noise2id``)
VBDEMAND_TRAIN_NOISE_CLASSES: tuple[str, ...] = (
    "babble", "cafeteria", "car", "kitchen", "meeting", "metro", "restaurant", "ssn", "station", "traffic",
)
#: the 5 test noise types (``log_testset.txt``), all unseen in training
VBDEMAND_TEST_NOISE_CLASSES: tuple[str, ...] = ("bus", "cafe", "living", "office", "psquare")
#: the 28 training speakers of ``*_trainset_28spk_wav``
VBDEMAND_TRAIN_SPEAKERS: tuple[str, ...] = (
    "p226", "p227", "p228", "p230", "p231", "p233", "p236", "p239", "p243", "p244", "p250", "p254",
    "p256", "p258", "p259", "p267", "p268", "p269", "p270", "p273", "p274", "p276", "p277", "p278",
    "p279", "p282", "p286", "p287",
)
#: the 2 test speakers of ``*_testset_wav``
VBDEMAND_TEST_SPEAKERS: tuple[str, ...] = ("p232", "p257")
#: default validation speakers, held out of the training set (as SGMSE+/NASE do)
VBDEMAND_VALID_SPEAKERS: tuple[str, ...] = ("p226", "p287")

_FOLDERS = {
    "train": ("clean_trainset_28spk_wav", "noisy_trainset_28spk_wav"),
    "test": ("clean_testset_wav", "noisy_testset_wav"),
}
_LOGS = {"train": "log_trainset_28spk.txt", "test": "log_testset.txt"}
_LOG_DIRS = (".", "logfiles", "noise_labels")


def read_vbdemand_log(path: str | os.PathLike) -> dict[str, tuple[str, float]]:
    """Parse a VoiceBank-DEMAND log file (``log_trainset_28spk.txt``, ``log_testset.txt``).

    Each non-blank line is ``<utterance> <noise type> <SNR dB>``, e.g. ``p236_002 babble 15``
    or ``p257_001 bus 1.750000e+01``. Returns ``{utterance: (noise_type, snr_db)}``.
    Raises ``ValueError`` naming the file and line for a malformed or duplicated line.
    """
    p = Path(path)
    out: dict[str, tuple[str, float]] = {}
    with open(p, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) != 3:
                raise ValueError(f"{p}:{lineno}: expected '<utterance> <noise type> <snr_db>', got {line.strip()!r}")
            name, noise, snr = parts
            name = name[:-4] if name.lower().endswith(".wav") else name
            try:
                snr_db = float(snr)
            except ValueError:
                raise ValueError(f"{p}:{lineno}: SNR {snr!r} is not a number") from None
            if name in out:
                raise ValueError(f"{p}:{lineno}: utterance {name!r} appears twice")
            out[name] = (noise, snr_db)
    if not out:
        raise ValueError(f"{p}: log file holds no entries")
    return out


def find_vbdemand_log(root: str | os.PathLike, part: Literal["train", "test"] = "train") -> Path | None:
    """The log file of ``part`` in ``root``, ``root/logfiles`` or ``root/noise_labels``, or None."""
    for d in _LOG_DIRS:
        p = Path(root) / d / _LOGS[part]
        if p.is_file():
            return p
    return None


def _speaker(name: str) -> str:
    return name.split("/")[-1].split("_")[0]


class VoiceBankDEMAND(PairedAudioDataset):
    """VoiceBank-DEMAND pairs of one split, at ``sample_rate`` Hz, with noise-class labels.

    Args:
        root: folder holding the ``{clean,noisy}_{trainset_28spk,testset}_wav`` folders.
        split: ``"train"`` (training speakers minus ``valid_speakers``), ``"valid"`` (only
            ``valid_speakers``, from the *training* folders) or ``"test"`` (p232, p257).
        sample_rate: rate in Hz of the returned audio (default 16000). The official files
            are 48 kHz: with them this raises :class:`SampleRateError` unless
            ``resample=True``. Resampling on load is slow; pre-resampling once with
            ``uv run tools/resample_dataset.py`` is faster.
        segment: crop length in seconds, or None for full utterances.
        valid_speakers: training speakers held out for validation (default p226, p287).
            They must be present in the training folder and may never be test speakers.
        labels: ``"auto"`` attaches labels when the log file is found, ``True`` requires it,
            ``False`` skips labels. Train/valid items get ``noise_class`` = index into
            :data:`VBDEMAND_TRAIN_NOISE_CLASSES`; test items get ``noise_class = -1`` (their
            5 noise types are unseen). Both get ``noise_name`` and ``snr_db``.
        log_path: explicit log file (default: found by :func:`find_vbdemand_log`).
        pad, resample, mono, seed: see :class:`se_data.PairedAudioDataset`.
    """

    def __init__(self, root: str | os.PathLike, split: Literal["train", "valid", "test"] = "train",
                 sample_rate: int = 16000, segment: float | None = None, *, pad: str = "zero",
                 resample: bool = False, valid_speakers: Sequence[str] = VBDEMAND_VALID_SPEAKERS,
                 labels: bool | Literal["auto"] = "auto", log_path: str | os.PathLike | None = None,
                 mono: bool = False, seed: int = 0) -> None:
        if split not in ("train", "valid", "test"):
            raise ValueError(f"split must be 'train', 'valid' or 'test', got {split!r}")
        if labels not in (True, False, "auto"):
            raise ValueError(f"labels must be True, False or 'auto', got {labels!r}")
        self.root = Path(root)
        self.split = split
        self.valid_speakers = tuple(sorted(set(valid_speakers)))
        part = "test" if split == "test" else "train"

        bad = sorted(set(self.valid_speakers) & set(VBDEMAND_TEST_SPEAKERS))
        if bad:
            raise ValueError(f"valid_speakers {bad} are test speakers: the validation split must never "
                             f"be the test set; choose training speakers from {VBDEMAND_TRAIN_SPEAKERS}")
        if split == "valid" and not self.valid_speakers:
            raise ValueError("split='valid' needs at least one speaker in valid_speakers")

        pairs = match_pairs(*self._folders(part))
        speakers = sorted({_speaker(n) for n, _, _ in pairs})
        if part == "train":
            leaked = sorted(set(speakers) & set(VBDEMAND_TEST_SPEAKERS))
            if leaked:
                raise ValueError(f"{self._folders('train')[0]}: holds test speakers {leaked}; the training "
                                 f"and validation splits must never contain the test set")
            missing = sorted(set(self.valid_speakers) - set(speakers))
            if missing:
                raise ValueError(f"valid_speakers {missing} not found in {self._folders('train')[0]} "
                                 f"(speakers there: {', '.join(speakers)})")
            keep_valid = split == "valid"
            pairs = [t for t in pairs if (_speaker(t[0]) in self.valid_speakers) == keep_valid]
        else:
            overlap = sorted(set(speakers) & set(self.valid_speakers))
            if overlap:
                raise ValueError(f"{self._folders('test')[0]}: test speakers {overlap} are also "
                                 f"valid_speakers; validation must never use the test set")
            train_dir = self._folders("train")[0]
            if train_dir.is_dir():  # the two official sets share no speaker; check the copy on disk
                train_spk = {_speaker(p.stem) for p in train_dir.rglob("*") if p.suffix.lower() == ".wav"}
                both = sorted(train_spk & set(speakers))
                if both:
                    raise ValueError(f"speakers {both} appear in both {train_dir} and the test folder")
        if not pairs:
            raise ValueError(f"VoiceBankDEMAND({self.root}, split={split!r}): no utterances left "
                             f"(valid_speakers={list(self.valid_speakers)})")
        self.speakers = tuple(sorted({_speaker(n) for n, _, _ in pairs}))

        self.log_path: Path | None = None
        entries = [PairEntry(n, c, y) for n, c, y in pairs]
        if labels is not False:
            self.log_path = Path(log_path) if log_path is not None else find_vbdemand_log(self.root, part)
            if self.log_path is None and labels is True:
                raise FileNotFoundError(f"labels=True but {_LOGS[part]} was not found in {self.root}, "
                                        f"{self.root / 'logfiles'} or {self.root / 'noise_labels'}; pass "
                                        f"log_path=... or labels=False")
            if self.log_path is not None:
                entries = self._labelled(entries, read_vbdemand_log(self.log_path), part)
        super().__init__(entries, sample_rate, segment=segment, pad=pad, resample=resample, mono=mono,
                         seed=seed, description=f"VoiceBankDEMAND({self.root}, split={split!r})")

    def _folders(self, part: str) -> tuple[Path, Path]:
        clean, noisy = (self.root / d for d in _FOLDERS[part])
        for d in (clean, noisy):
            if not d.is_dir():
                present = sorted(p.name for p in self.root.iterdir()) if self.root.is_dir() else []
                raise FileNotFoundError(f"{d}: VoiceBank-DEMAND folder not found (expected "
                                        f"{' and '.join(_FOLDERS[part])} under {self.root}; found: "
                                        f"{_listing(present) or 'nothing'})")
        return clean, noisy

    def _labelled(self, entries: list[PairEntry], log: dict[str, tuple[str, float]], part: str) -> list[PairEntry]:
        missing = [e.name for e in entries if e.name.split("/")[-1] not in log]
        if missing:
            raise ValueError(f"{self.log_path}: no noise label for {len(missing)} file(s): {_listing(missing)}; "
                             f"pass labels=False to load without labels")
        out = []
        for e in entries:
            noise, snr = log[e.name.split("/")[-1]]
            if part == "train":
                if noise not in VBDEMAND_TRAIN_NOISE_CLASSES:
                    raise ValueError(f"{self.log_path}: {e.name} has noise type {noise!r}, not one of the "
                                     f"10 training classes {VBDEMAND_TRAIN_NOISE_CLASSES}")
                cls = VBDEMAND_TRAIN_NOISE_CLASSES.index(noise)
            else:
                cls = -1
            out.append(PairEntry(e.name, e.clean, e.noisy, cls, noise, snr))
        return out

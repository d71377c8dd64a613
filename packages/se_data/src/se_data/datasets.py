"""Paired clean/noisy datasets with checked sample rates and seeded, DDP-safe crops.

:class:`PairedAudioDataset` is the common base (a list of pairs, a sample rate, a crop
policy); :class:`PairedFolders` builds it from two folders matched by relative path, and
:class:`se_data.VoiceBankDEMAND` from the VoiceBank-DEMAND layout.

Every file's header is read when the dataset is built: a file at another rate than
``sample_rate`` raises :class:`SampleRateError` (saying how to resample) unless
``resample=True``, which resamples on load. A dataset never trains on the wrong rate.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from torch.utils.data import Dataset

from .audio_io import AudioInfo, audio_info, load_audio
from .crop import PAD_POLICIES, crop_pair, crop_start, item_generator
from .errors import AudioFileError, SampleRateError, fix_text, resample_hint
from .resample import resampled_length
from .resample_tree import AUDIO_EXTENSIONS
from .segment_io import load_segment

__all__ = ["PairEntry", "PairedAudioDataset", "PairedFolders", "match_pairs"]

_MAX_LISTED = 10


@dataclass(frozen=True)
class PairEntry:
    """One clean/noisy pair. ``name`` is the relative path without extension (posix);
    ``noise_class`` (index, -1 = unseen class), ``noise_name`` and ``snr_db`` are optional labels."""

    name: str
    clean: Path
    noisy: Path
    noise_class: int | None = None
    noise_name: str | None = None
    snr_db: float | None = None


def _listing(items: Sequence[str], limit: int = _MAX_LISTED) -> str:
    shown = ", ".join(str(x) for x in items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def list_audio(folder: Path) -> dict[str, Path]:
    """Audio files under ``folder`` (recursive) keyed by relative posix path without extension."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder does not exist")
    out: dict[str, Path] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith("."):
            key = p.relative_to(folder).with_suffix("").as_posix()
            if key in out:
                raise AudioFileError(f"{folder}: two audio files share the name {key!r} "
                                     f"({out[key].name}, {p.name}); keep one")
            out[key] = p
    return out


def match_pairs(clean_dir: str | os.PathLike, noisy_dir: str | os.PathLike) -> list[tuple[str, Path, Path]]:
    """Pair the audio files of two folders by relative path (extension ignored).

    Returns ``[(name, clean_path, noisy_path)]`` sorted by name. A file without a partner,
    in either folder, is an :class:`AudioFileError` listing the unmatched files; so is an
    empty folder.
    """
    cd, nd = Path(clean_dir), Path(noisy_dir)
    clean, noisy = list_audio(cd), list_audio(nd)
    only_c = sorted(set(clean) - set(noisy))
    only_n = sorted(set(noisy) - set(clean))
    if only_c or only_n:
        parts = []
        if only_c:
            parts.append(f"{len(only_c)} clean file(s) with no noisy partner in {nd}: {_listing(only_c)}")
        if only_n:
            parts.append(f"{len(only_n)} noisy file(s) with no clean partner in {cd}: {_listing(only_n)}")
        raise AudioFileError("unmatched pairs (clean and noisy are matched by relative path): "
                             + "; ".join(parts))
    if not clean:
        raise AudioFileError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in {cd} and {nd}")
    return [(k, clean[k], noisy[k]) for k in sorted(clean)]


class PairedAudioDataset(Dataset):
    """Clean/noisy pairs at one sample rate, full utterances or seeded random crops.

    Args:
        entries: the pairs (see :class:`PairEntry`).
        sample_rate: rate in Hz of the returned audio; recorded as ``self.sample_rate``.
        segment: crop length in seconds (``None``: full utterances, batch them with
            :func:`se_data.pad_collate`).
        pad: policy for utterances shorter than the segment: ``"zero"`` / ``"reflect"`` pad
            at the end, ``"drop"`` removes them when the dataset is built (listed in
            ``self.dropped``, with a warning).
        resample: resample files at another rate on load instead of raising
            :class:`SampleRateError` (pre-resampling with ``tools/resample_dataset.py`` is faster).
        mono: average multi-channel files instead of raising.
        seed: crop seed; the crop of item ``i`` depends only on ``(seed, epoch, i)``.

    Items are dicts: ``clean`` [T] and ``noisy`` [T] float32 at ``sample_rate``, ``name``
    (str), ``length`` (int, real samples before padding) and, when labelled,
    ``noise_class`` (int), ``noise_name`` (str), ``snr_db`` (float).
    """

    def __init__(self, entries: Sequence[PairEntry], sample_rate: int, *, segment: float | None = None,
                 pad: str = "zero", resample: bool = False, mono: bool = False, seed: int = 0,
                 description: str = "dataset") -> None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
        if pad not in PAD_POLICIES:
            raise ValueError(f"pad must be one of {PAD_POLICIES}, got {pad!r}")
        if segment is not None and not segment > 0:
            raise ValueError(f"segment must be a positive number of seconds or None, got {segment!r}")
        if not entries:
            raise ValueError(f"{description}: no pairs")
        self.sample_rate = sample_rate
        self.segment = segment
        self.segment_samples = None if segment is None else int(round(segment * sample_rate))
        self.pad = pad
        self.resample = resample
        self.mono = mono
        self.seed = int(seed)
        self.epoch = 0
        self.description = description
        lengths, infos = self._check_files(entries)
        self.dropped: list[str] = []
        if self.segment_samples is not None and pad == "drop":
            keep = [i for i, n in enumerate(lengths) if n >= self.segment_samples]
            self.dropped = [entries[i].name for i in range(len(entries)) if lengths[i] < self.segment_samples]
            if self.dropped:
                warnings.warn(f"{description}: pad='drop' removed {len(self.dropped)} of {len(entries)} "
                              f"utterances shorter than {segment} s: {_listing(self.dropped)}", stacklevel=2)
            if not keep:
                raise ValueError(f"{description}: every utterance is shorter than segment={segment} s; "
                                 f"use a shorter segment or pad='zero'/'reflect'")
            entries = [entries[i] for i in keep]
            lengths = [lengths[i] for i in keep]
            infos = [infos[i] for i in keep]
        self.entries: list[PairEntry] = list(entries)
        #: length of each item's full utterance in samples at ``sample_rate``
        self.lengths: list[int] = lengths
        #: each item's (clean, noisy) headers, read once when the dataset is built
        self.infos: list[tuple[AudioInfo, AudioInfo]] = infos

    # -- building ------------------------------------------------------------------------
    def _check_files(self, entries: Sequence[PairEntry]) -> tuple[list[int], list[tuple[AudioInfo, AudioInfo]]]:
        """Read every header; raise one error that lists every problem found. Returns each pair's
        length at ``sample_rate`` and its two headers."""
        wrong_rate: list[str] = []
        channels: list[str] = []
        mismatch: list[str] = []
        lengths: list[int] = []
        infos: list[tuple[AudioInfo, AudioInfo]] = []
        for e in entries:
            ci, ni = audio_info(e.clean), audio_info(e.noisy)  # raises for missing/corrupt/empty
            infos.append((ci, ni))
            for info in (ci, ni):
                if info.sample_rate != self.sample_rate:
                    wrong_rate.append(f"{info.path} ({info.sample_rate} Hz)")
                if info.channels > 1 and not self.mono:
                    channels.append(f"{info.path} ({info.channels} channels)")
            if ci.sample_rate != ni.sample_rate or ci.frames != ni.frames:
                mismatch.append(f"{e.name}: clean {_desc(ci)} vs noisy {_desc(ni)}")
            lengths.append(resampled_length(ci.frames, ci.sample_rate, self.sample_rate))
        if mismatch:
            raise AudioFileError(f"{self.description}: {len(mismatch)} clean/noisy pair(s) differ in "
                                 f"sample rate or length: {_listing(mismatch)}")
        if channels:
            raise AudioFileError(f"{self.description}: {len(channels)} multi-channel file(s) where mono "
                                 f"audio is expected: {_listing(channels)}; "
                                 + fix_text("mono", "pass mono=True to average the channels",
                                            does="to average the channels (mean downmix)"))
        if wrong_rate and not self.resample:
            raise SampleRateError(f"{self.description}: {len(wrong_rate)} of {2 * len(entries)} files are "
                                  f"not at {self.sample_rate} Hz: {_listing(wrong_rate)}; "
                                  + resample_hint(self.sample_rate))
        return lengths, infos

    # -- epoch / indexing -----------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the crops of ``epoch`` (call it at the start of every epoch, as with
        ``DistributedSampler.set_epoch``)."""
        if int(epoch) < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index = index % len(self)
        e = self.entries[index]
        seg = self.segment_samples
        if seg is not None and self.lengths[index] >= seg:
            # read only the crop (and the resampling filter's support): the start is crop_pair's draw
            start = crop_start(self.lengths[index], seg, item_generator(self.seed, self.epoch, index))
            ci, ni = self.infos[index]
            kw = dict(resample=self.resample, mono=self.mono)
            clean = load_segment(e.clean, start, seg, self.sample_rate, info=ci, **kw)
            noisy = load_segment(e.noisy, start, seg, self.sample_rate, info=ni, **kw)
            return self._item(e, clean, noisy, seg)
        clean, _ = load_audio(e.clean, self.sample_rate, resample=self.resample, mono=self.mono)
        noisy, _ = load_audio(e.noisy, self.sample_rate, resample=self.resample, mono=self.mono)
        if clean.shape != noisy.shape:
            raise AudioFileError(f"{e.clean} and {e.noisy}: lengths differ after loading "
                                 f"({clean.shape[0]} vs {noisy.shape[0]} samples)")
        length = clean.shape[0]
        if self.segment_samples is not None:
            g = item_generator(self.seed, self.epoch, index)
            clean, noisy, length = crop_pair(clean, noisy, self.segment_samples, pad=self.pad, generator=g)
        return self._item(e, clean, noisy, length)

    def _item(self, e: PairEntry, clean: Any, noisy: Any, length: int) -> dict[str, Any]:
        item: dict[str, Any] = {"clean": clean, "noisy": noisy, "name": e.name, "length": int(length)}
        if e.noise_class is not None:
            item["noise_class"] = e.noise_class
        if e.noise_name is not None:
            item["noise_name"] = e.noise_name
        if e.snr_db is not None:
            item["snr_db"] = e.snr_db
        return item

    def __repr__(self) -> str:
        seg = "full utterances" if self.segment is None else f"segment={self.segment} s, pad={self.pad!r}"
        return (f"{type(self).__name__}({self.description}: {len(self)} pairs at {self.sample_rate} Hz, "
                f"{seg}, resample={self.resample}, seed={self.seed})")


def _desc(info: AudioInfo) -> str:
    return f"{info.frames} samples at {info.sample_rate} Hz"


class PairedFolders(PairedAudioDataset):
    """Clean and noisy audio in two folders, paired by relative path (extension ignored).

    ``PairedFolders(clean_dir, noisy_dir, sample_rate=16000, segment=2.0)``. A file without
    a partner in the other folder is an :class:`AudioFileError` listing the unmatched
    files. See :class:`PairedAudioDataset` for the other arguments, the rate check and items.
    """

    def __init__(self, clean_dir: str | os.PathLike, noisy_dir: str | os.PathLike, sample_rate: int,
                 segment: float | None = None, *, pad: str = "zero", resample: bool = False,
                 mono: bool = False, seed: int = 0) -> None:
        self.clean_dir, self.noisy_dir = Path(clean_dir), Path(noisy_dir)
        pairs = match_pairs(self.clean_dir, self.noisy_dir)
        entries = [PairEntry(name, c, n) for name, c, n in pairs]
        super().__init__(entries, sample_rate, segment=segment, pad=pad, resample=resample, mono=mono,
                         seed=seed, description=f"PairedFolders({self.clean_dir}, {self.noisy_dir})")

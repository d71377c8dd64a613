"""Training mixtures synthesised on the fly from a DNS-Challenge-style tree (Reddy et al., "The
INTERSPEECH 2020 Deep Noise Suppression Challenge", and its ``noisyspeech_synthesizer``): clean
speech, noise and optional room impulse responses in separate folders, mixed per item.

Layout (``root``): ``clean/``, ``noise/`` and, optionally, ``impulse_responses/`` (the DNS
Challenge's folder names; any nesting below them), or the three folders given explicitly.

Per item ``i`` of epoch ``e``, everything random is drawn from one NumPy generator seeded by
``(seed, e, i)`` alone, in this order: the crop of clean file ``i mod n_clean`` (its start), the
noise file, its offset, the SNR (uniform in ``snr_range`` dB), whether to reverberate (probability
``rir_p``), the impulse response, and (with ``level_range``) the target level. So an item is the
same in any DataLoader worker, DDP rank, resumed run or iteration order.

The mixture, as the DNS synthesiser makes it: the clean crop is convolved with the impulse
response (``"full"`` convolution cut to the crop, float64 FFT) when one is drawn, and the target
is that reverberant speech; the noise is scaled so that
``10 log10(sum target^2 / sum (g noise)^2)`` equals the drawn SNR exactly (float64,
:func:`se_data.mix_at_snr`); with ``level_range`` both are then scaled so that the target's RMS
is the drawn level in dBFS; a mixture whose peak would exceed 0.99 is scaled down with its target
(the SNR is unchanged). Crops read only their samples (:func:`se_data.load_segment`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .audio_io import AudioInfo, audio_info, load_audio
from .datasets import list_audio
from .errors import AudioFileError, SampleRateError, fix_text, resample_hint
from .mixing import SILENT_RMS, mix_at_snr
from .resample import resampled_length
from .segment_io import load_segment

__all__ = ["DNSChallengeDataset"]

#: fixed word that separates this module's random stream from the other datasets' (any constant)
_STREAM = 0x646E73  # "dns"
#: crops drawn again (from the same item generator) when the first is silent, before giving up
_SILENT_TRIES = 10
#: a mixture's largest allowed peak (the DNS synthesiser's clipping guard)
_PEAK = 0.99


class DNSChallengeDataset(Dataset):
    """Noisy/clean training pairs mixed on the fly from clean, noise and impulse-response folders.

    Args:
        root: a DNS-Challenge-style tree with ``clean/``, ``noise/`` and optionally
            ``impulse_responses/``; or None with ``clean_dir`` / ``noise_dir`` / ``rir_dir``.
        sample_rate: rate in Hz of the items (and of the files, unless ``resample``).
        segment: crop length in seconds (clean files shorter than it are zero-padded at the end;
            ``length`` says how many samples are real).
        snr_range: ``(lo, hi)`` dB, the SNR drawn uniformly per item.
        rir_p: probability that an item's speech is reverberated (needs impulse responses).
        level_range: ``(lo, hi)`` dBFS: the target's RMS drawn uniformly per item (the DNS
            synthesiser's -35..-15); None keeps the files' level.
        seed: the item seed (see the module docstring).
        num_items: items per epoch (default: one per clean file).
        resample: resample files at another rate on load instead of raising
            :class:`SampleRateError`; mono: mean-downmix multi-channel files instead of raising.

    Items are dicts: ``clean`` [T] (the target: reverberant speech when an impulse response was
    applied) and ``noisy`` [T] float32 at ``sample_rate``, ``name`` (clean file's relative name and
    the item index), ``length``, ``snr_db`` (drawn = realised), ``noise_name``, ``clean_offset`` /
    ``noise_offset`` (samples at ``sample_rate``), ``rir_name`` (``""`` without reverberation) and
    ``gain`` (the level / peak scaling applied to both signals). Every item has every key, so
    ``DataLoader``'s default collate batches them.
    """

    def __init__(self, root: str | os.PathLike | None = None, *, sample_rate: int, segment: float,
                 snr_range: tuple[float, float] = (-5.0, 20.0), rir_p: float = 0.0,
                 level_range: tuple[float, float] | None = None, seed: int = 0, num_items: int | None = None,
                 clean_dir: str | os.PathLike | None = None, noise_dir: str | os.PathLike | None = None,
                 rir_dir: str | os.PathLike | None = None, resample: bool = False, mono: bool = False) -> None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
        if not (isinstance(segment, (int, float)) and segment > 0 and math.isfinite(segment)):
            raise ValueError(f"segment must be a positive number of seconds, got {segment!r}")
        lo, hi = (float(v) for v in snr_range)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(f"snr_range must be finite (lo, hi) dB with lo <= hi, got {snr_range!r}")
        if not 0.0 <= rir_p <= 1.0:
            raise ValueError(f"rir_p must be a probability in [0, 1], got {rir_p!r}")
        if level_range is not None and not (-120.0 <= level_range[0] <= level_range[1] <= 0.0):
            raise ValueError(f"level_range must be (lo, hi) dBFS with -120 <= lo <= hi <= 0, got {level_range!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        if root is not None:
            root = Path(root)
            clean_dir = clean_dir or root / "clean"
            noise_dir = noise_dir or root / "noise"
            if rir_dir is None and (root / "impulse_responses").is_dir():
                rir_dir = root / "impulse_responses"
        if clean_dir is None or noise_dir is None:
            raise ValueError("pass root (a tree with clean/ and noise/) or both clean_dir and noise_dir")
        self.sample_rate, self.segment = sample_rate, float(segment)
        self.segment_samples = int(round(segment * sample_rate))
        self.snr_range, self.rir_p = (lo, hi), float(rir_p)
        self.level_range = None if level_range is None else (float(level_range[0]), float(level_range[1]))
        self.seed, self.epoch, self.resample, self.mono = int(seed), 0, bool(resample), bool(mono)
        self.clean_dir, self.noise_dir = Path(clean_dir), Path(noise_dir)
        self.rir_dir = None if rir_dir is None else Path(rir_dir)
        if self.rir_p > 0 and self.rir_dir is None:
            raise ValueError(f"rir_p={rir_p} needs impulse responses: pass rir_dir or put them in root/impulse_responses")
        self.clean = self._folder(self.clean_dir, "clean speech")
        self.noise = self._folder(self.noise_dir, "noise")
        self.rirs = [] if self.rir_dir is None else self._folder(self.rir_dir, "impulse responses")
        self.num_items = len(self.clean) if num_items is None else int(num_items)
        if self.num_items < 1:
            raise ValueError(f"num_items must be >= 1, got {num_items!r}")
        self._rir_cache: dict[int, np.ndarray] = {}

    # -- building ----------------------------------------------------------------------------
    def _folder(self, folder: Path, what: str) -> list[tuple[str, AudioInfo]]:
        """``(name, header)`` of every audio file under ``folder``, each checked for rate and channels."""
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: the {what} folder does not exist")
        files = list_audio(folder)
        if not files:
            raise AudioFileError(f"{folder}: no audio files in the {what} folder")
        out, wrong, multi = [], [], []
        for name, path in files.items():
            info = audio_info(path)
            if info.sample_rate != self.sample_rate:
                wrong.append(f"{path} ({info.sample_rate} Hz)")
            if info.channels > 1:
                multi.append(f"{path} ({info.channels} channels)")
            out.append((name, info))
        if wrong and not self.resample:
            raise SampleRateError(f"{folder}: {len(wrong)} {what} file(s) not at {self.sample_rate} Hz: "
                                  f"{', '.join(wrong[:10])}{' ...' if len(wrong) > 10 else ''}; "
                                  + resample_hint(self.sample_rate))
        if multi and not self.mono:
            raise AudioFileError(f"{folder}: {len(multi)} multi-channel {what} file(s): {', '.join(multi[:10])}"
                                 f"{' ...' if len(multi) > 10 else ''}; "
                                 + fix_text("mono", "pass mono=True to average the channels",
                                            does="to average the channels (mean downmix)"))
        return out

    # -- epoch / indexing ----------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select epoch ``epoch``'s mixtures (as ``DistributedSampler.set_epoch``)."""
        if isinstance(epoch, bool) or int(epoch) < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_items

    def generator(self, index: int, epoch: int | None = None) -> np.random.Generator:
        """Item ``index``'s generator in ``epoch`` (default: the current one)."""
        e = self.epoch if epoch is None else int(epoch)
        return np.random.default_rng(np.random.SeedSequence([self.seed, e, int(index), _STREAM]))

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        index %= n
        rng = self.generator(index)
        seg = self.segment_samples
        cname, cinfo = self.clean[index % len(self.clean)]
        clean, start, length = self._clean_crop(cinfo, rng)
        k = int(rng.integers(len(self.noise)))
        nname, ninfo = self.noise[k]
        noise, noff = self._noise_crop(ninfo, rng)
        snr = float(rng.uniform(*self.snr_range))
        rir_name = ""
        if self.rirs and rng.random() < self.rir_p:
            j = int(rng.integers(len(self.rirs)))
            rir_name = self.rirs[j][0]
            clean = reverberate(clean, self._rir(j))
        if float(np.sum(clean**2)) <= SILENT_RMS**2 * seg:
            raise AudioFileError(f"{cinfo.path}: the crop at {start} is silent after reverberation; check the file")
        noisy, _ = mix_at_snr(clean, noise, snr, offset=0)
        noisy = noisy.numpy()
        gain = 1.0
        if self.level_range is not None:
            level = float(rng.uniform(*self.level_range))
            gain = 10 ** (level / 20) / math.sqrt(float(np.mean(clean**2)))
        peak = gain * float(np.abs(noisy).max())
        if peak > _PEAK:
            gain *= _PEAK / peak
        return {"clean": torch.from_numpy((gain * clean).astype(np.float32)),
                "noisy": torch.from_numpy((gain * noisy).astype(np.float32)),
                "name": f"{cname}#{index}", "length": length, "snr_db": snr, "noise_name": nname,
                "clean_offset": start, "noise_offset": noff, "rir_name": rir_name, "gain": gain}

    # -- pieces --------------------------------------------------------------------------------
    def _length(self, info: AudioInfo) -> int:
        return resampled_length(info.frames, info.sample_rate, self.sample_rate)

    def _read(self, info: AudioInfo, start: int, length: int) -> np.ndarray:
        return load_segment(info.path, start, length, self.sample_rate, resample=self.resample, mono=self.mono,
                            info=info).numpy().astype(np.float64)

    def _clean_crop(self, info: AudioInfo, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
        """A non-silent ``segment`` crop (float64), its start and its real length."""
        total, seg = self._length(info), self.segment_samples
        for _ in range(_SILENT_TRIES):
            start = int(rng.integers(0, total - seg + 1)) if total >= seg else 0
            n = min(seg, total)
            x = np.zeros(seg)
            x[:n] = self._read(info, start, n)
            if float(np.sum(x**2)) > SILENT_RMS**2 * seg:
                return x, start, n
        raise AudioFileError(f"{info.path}: {_SILENT_TRIES} random {self.segment:g} s crops were all silent (RMS "
                             f"below {SILENT_RMS:g}); trim or remove the file")

    def _noise_crop(self, info: AudioInfo, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """A non-silent ``segment`` of noise (float64; looped when the file is shorter) and its offset."""
        total, seg = self._length(info), self.segment_samples
        whole = None
        for _ in range(_SILENT_TRIES):
            if total >= seg:
                off = int(rng.integers(0, total - seg + 1))
                x = self._read(info, off, seg)
            else:
                if whole is None:
                    whole = load_audio(info.path, self.sample_rate, resample=self.resample,
                                       mono=self.mono)[0].numpy().astype(np.float64)
                off = int(rng.integers(0, total))
                x = whole[(off + np.arange(seg)) % total]
            if float(np.sum(x**2)) > SILENT_RMS**2 * seg:
                return x, off
        raise AudioFileError(f"{info.path}: {_SILENT_TRIES} random noise segments were all silent (RMS below "
                             f"{SILENT_RMS:g}); trim or remove the file")

    def _rir(self, j: int) -> np.ndarray:
        if j not in self._rir_cache:
            info = self.rirs[j][1]
            h = load_audio(info.path, self.sample_rate, resample=self.resample,
                           mono=self.mono)[0].numpy().astype(np.float64)
            if not np.any(h):
                raise AudioFileError(f"{info.path}: the impulse response is all zeros; remove it")
            self._rir_cache[j] = h
        return self._rir_cache[j]

    def describe(self) -> dict[str, Any]:
        """Plain data for a run's config."""
        return {"kind": "DNS-Challenge mixtures", "clean_dir": str(self.clean_dir), "noise_dir": str(self.noise_dir),
                "rir_dir": None if self.rir_dir is None else str(self.rir_dir), "clean_files": len(self.clean),
                "noise_files": len(self.noise), "rir_files": len(self.rirs), "items": self.num_items,
                "sample_rate": self.sample_rate, "segment": self.segment, "snr_range_db": list(self.snr_range),
                "rir_p": self.rir_p, "level_range_dbfs": None if self.level_range is None else list(self.level_range),
                "seed": self.seed}

    def __repr__(self) -> str:
        return (f"DNSChallengeDataset({len(self.clean)} clean / {len(self.noise)} noise / {len(self.rirs)} RIR files "
                f"at {self.sample_rate} Hz, segment={self.segment:g} s, snr_range={self.snr_range}, "
                f"rir_p={self.rir_p}, seed={self.seed})")


def reverberate(speech: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``speech`` [T] convolved with ``rir`` [K] ("full" convolution cut to T samples), float64,
    by FFT (a 2 s crop and a 0.5 s response: ~4 ms, where direct convolution takes ~0.3 s)."""
    t = speech.size
    n = 1 << (t + rir.size - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(speech, n) * np.fft.rfft(rir, n), n)[:t]

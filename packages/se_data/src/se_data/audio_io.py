"""Reading and writing audio files through ``soundfile``, with every sample rate checked.

(torchaudio's own ``load``/``save`` need torchcodec and are not used.)

* :func:`load_audio` returns ``(audio [T] float32 in [-1, 1], sample_rate_hz)``. A file at
  another rate than the one asked for is a :class:`SampleRateError` unless ``resample=True``;
  a multi-channel file is an :class:`AudioFileError` unless ``mono=True``; an empty, corrupt
  or non-finite file is an :class:`AudioFileError`. Every message names the file.
* :func:`save_audio` writes atomically (temporary file + rename), never overwrites unless
  ``overwrite=True`` and never clips silently.
* :func:`audio_info` reads only the header (rate, frames, channels, subtype).
"""

from __future__ import annotations

import os
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from .errors import AudioFileError, SampleRateError, fix_text, resample_hint
from .keyword_alias import keyword_alias
from .resample import resample as _resample

__all__ = ["AudioInfo", "audio_info", "load_audio", "save_audio"]

_PCM_SUBTYPES = {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "ALAW", "ULAW"}


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of an audio file: ``sample_rate`` (Hz), ``frames`` (samples per channel),
    ``channels``, ``subtype`` (e.g. ``"PCM_16"``) and ``duration`` (s)."""

    path: Path
    sample_rate: int
    frames: int
    channels: int
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def _wav_declared_frames(p: Path) -> int | None:
    """Frames a RIFF/WAVE file's ``data`` chunk declares (``size / block_align``), or None where
    the file is no plain RIFF/WAVE or declares no usable size (streamed writers leave 0 or 2^32-1)."""
    try:
        with open(p, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block_align = None
            for _ in range(64):  # chunk headers until "data"
                ck = fh.read(8)
                if len(ck) < 8:
                    return None
                cid, size = ck[:4], struct.unpack("<I", ck[4:])[0]
                if cid == b"fmt ":
                    fmt = fh.read(size + (size & 1))
                    block_align = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else None
                elif cid == b"data":
                    if not block_align or size in (0, 0xFFFFFFFF):
                        return None
                    return size // block_align
                else:
                    fh.seek(size + (size & 1), 1)
    except OSError:
        return None
    return None


def audio_info(path: str | os.PathLike, *, allow_truncated: bool = False) -> AudioInfo:
    """Read the header of ``path`` (no samples). Raises :class:`AudioFileError` naming the file
    when it is missing, not a readable audio file, holds no samples, or is a WAV whose data chunk
    is cut short (fewer frames than its header declares; ``allow_truncated=True`` accepts the
    frames present)."""
    p = Path(path)
    if not p.is_file():
        raise AudioFileError(f"{p}: no such audio file")
    try:
        info = sf.info(str(p))
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise AudioFileError(f"{p}: not a readable audio file (corrupt or unsupported format): {e}. "
                             f"Re-create or re-download it.") from e
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioFileError(f"{p}: empty audio file ({info.frames} samples); re-create or remove it")
    declared = _wav_declared_frames(p)
    if declared is not None and declared > info.frames and not allow_truncated:
        keep = fix_text("allow_truncated", "load the frames present with allow_truncated=True",
                        does="to use the frames present")
        raise AudioFileError(f"{p}: truncated: its header declares {declared} frames but the file holds "
                             f"{info.frames}; re-create or re-download it (or {keep})")
    return AudioInfo(p, int(info.samplerate), int(info.frames), int(info.channels), str(info.subtype))


@keyword_alias(sr="sample_rate")
def load_audio(path: str | os.PathLike, sample_rate: int | None = None, *, resample: bool = False,
               mono: bool = False, allow_truncated: bool = False) -> tuple[torch.Tensor, int]:
    """Load a mono audio file as ``(audio [T] float32, sample_rate_hz)``.

    Args:
        path: audio file readable by soundfile (wav, flac, ogg, ...).
        sample_rate: the sample rate (Hz) the caller needs. ``None`` returns the file's own
            rate. A file at another rate raises :class:`SampleRateError` unless ``resample=True``.
        resample: resample to ``sample_rate`` (see :func:`se_data.resample`) instead of raising.
        mono: average the channels of a multi-channel file (mean downmix) instead of raising.
        allow_truncated: load a WAV whose data chunk is cut short (fewer frames than its header
            declares) instead of raising :class:`AudioFileError`.
        sr: the earlier name of ``sample_rate``, still accepted.

    Integer PCM is scaled to [-1, 1). Raises :class:`AudioFileError` for a missing, empty or
    corrupt file, a multi-channel file without ``mono=True``, or NaN/Inf samples.
    """
    sr = sample_rate
    if sr is not None and (isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0):
        raise ValueError(f"sample_rate must be a positive integer in Hz or None, got {sr!r}")
    if resample and sr is None:
        raise ValueError("load_audio(resample=True) needs a target rate: pass sample_rate=...")
    info = audio_info(path, allow_truncated=allow_truncated)
    p = info.path
    if info.channels > 1 and not mono:
        raise AudioFileError(f"{p}: has {info.channels} channels but mono audio is expected; "
                             + fix_text("mono", "pass mono=True to average the channels (mean downmix)",
                                        does="to average the channels (mean downmix)"))
    if sr is not None and info.sample_rate != sr and not resample:
        raise SampleRateError(f"{p}: sample rate is {info.sample_rate} Hz but {sr} Hz is required; "
                              + resample_hint(int(sr)))
    try:
        data, file_sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioFileError(f"{p}: could not read the samples (corrupt or truncated file): {e}. "
                             f"Re-create or re-download it.") from e
    if data.shape[0] == 0:
        raise AudioFileError(f"{p}: empty audio file (0 samples); re-create or remove it")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioFileError(f"{p}: holds {bad} NaN/Inf samples; the file is broken, re-create it")
    # the downmix accumulates in float64: a float32 sum of channels near float32's limit is inf
    x = torch.from_numpy(data.mean(axis=1, dtype=np.float64).astype(np.float32) if data.shape[1] > 1
                         else data[:, 0].copy())
    out_sr = int(file_sr)
    if sr is not None and out_sr != sr:
        x = _resample(x, out_sr, int(sr)).contiguous()
        out_sr = int(sr)
        if not bool(torch.isfinite(x).all()):  # the filter's overshoot on samples near float32's limit
            peak = float(np.abs(data).max())
            raise AudioFileError(f"{p}: resampling overflowed float32: its float samples reach |x| = {peak:.3g}, "
                                 f"far outside [-1, 1]; scale the file into [-1, 1] and re-create it")
    return x, out_sr


def _as_numpy(audio: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu()
        if not audio.is_floating_point():
            raise TypeError(f"save_audio expects floating-point audio in [-1, 1], got {audio.dtype}")
        return audio.to(torch.float32 if audio.dtype != torch.float64 else torch.float64).numpy()
    a = np.asarray(audio)
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"save_audio expects floating-point audio in [-1, 1], got {a.dtype}")
    return a


def save_audio(path: str | os.PathLike, audio: torch.Tensor | np.ndarray, sr: int, *,
               subtype: str = "PCM_16", overwrite: bool = False) -> Path:
    """Write ``audio`` ([T], or [C, T] channels first) at ``sr`` Hz to ``path``.

    The format follows the extension (``.wav``, ``.flac``, ...); ``subtype`` is soundfile's
    (``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``, ...). The file is written to a temporary file
    in the same folder and renamed, so an interrupted write never leaves a half file.
    Parent folders are created.

    Raises ``FileExistsError`` if ``path`` exists and ``overwrite`` is False, ``ValueError``
    for NaN/Inf samples, and ``ValueError`` when an integer-PCM subtype would clip
    (``max |x| > 1``): normalise first or save with ``subtype="FLOAT"``. Returns the path.
    """
    p = Path(path)
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"{p}: sr must be a positive integer in Hz, got {sr!r}")
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p}: already exists; nothing is overwritten (pass overwrite=True "
                              f"to replace it)")
    a = _as_numpy(audio)
    if a.ndim == 2:
        a = a.T  # soundfile wants [T, C]
    elif a.ndim != 1:
        raise ValueError(f"{p}: save_audio expects audio [T] or [C, T], got shape {tuple(a.shape)}")
    if a.shape[0] == 0:
        raise ValueError(f"{p}: refusing to write an empty audio file (0 samples)")
    if not np.isfinite(a).all():
        raise ValueError(f"{p}: audio holds NaN/Inf samples; refusing to write it")
    st = subtype.upper()
    peak = float(np.abs(a).max())
    if st in _PCM_SUBTYPES and peak > 1.0:
        raise ValueError(f"{p}: peak |x| = {peak:.4f} > 1 would clip in {st}; scale the audio "
                         f"into [-1, 1] first, or save with subtype='FLOAT'")
    write_atomic(p, a, int(sr), st)
    return p


def partial_path(path: Path) -> Path:
    """A unique temporary name beside ``path`` (hidden, ending in ``.partial``)."""
    return path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial"


def write_atomic(path: Path, data: np.ndarray, sr: int, subtype: str) -> None:
    """Write ``data`` ([T] or [T, C]) to a temporary file beside ``path``, then rename it over
    ``path``: an interrupted write never leaves a half file under the final name.
    The container format follows ``path``'s extension."""
    fmt = path.suffix.lstrip(".").upper()
    if fmt not in sf.available_formats():
        raise ValueError(f"{path}: unknown audio format {path.suffix!r}; use one of "
                         f"{sorted(k.lower() for k in sf.available_formats())}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        sf.write(str(tmp), data, sr, subtype=subtype, format=fmt)
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise

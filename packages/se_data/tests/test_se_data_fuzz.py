"""Property-based (hypothesis) fuzzing of se_data's readers: ``load_audio`` / ``audio_info`` and
``read_checkpoint``.

Whatever the bytes on disk, a reader either returns what it documents or raises the package's
documented error (:class:`AudioFileError`, :class:`SampleRateError`, :class:`CheckpointError`):
never a raw ``struct.error``, ``KeyError``, unpickling error, ... Examples are derandomized and
few (``SE_FUZZ_EXAMPLES=N`` runs N per test for a deeper local run); hypothesis' caches go
to the temp folder, not a ``.hypothesis`` folder in the checkout.
"""

from __future__ import annotations

import io
import itertools
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from se_data import (
    CHECKPOINT_FORMAT,
    AudioFileError,
    CheckpointError,
    SampleRateError,
    audio_info,
    load_audio,
    read_checkpoint,
)


def _fuzz(default_examples: int) -> settings:
    """Bounded, deterministic settings: ``default_examples`` (or ``$SE_FUZZ_EXAMPLES``) examples."""
    raw = os.environ.get("SE_FUZZ_EXAMPLES", "").strip()
    if raw and (not raw.isdigit() or int(raw) < 1):
        raise pytest.UsageError(f"SE_FUZZ_EXAMPLES must be a positive integer, got {raw!r}")
    if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):  # hypothesis' caches: not in the checkout
        set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "se-toolkit-hypothesis")
    return settings(max_examples=int(raw) if raw else default_examples, derandomize=True, database=None,
                    deadline=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


_names = itertools.count()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory):
    """A folder for the examples' files (function-scoped tmp_path does not mix with @given)."""
    return tmp_path_factory.mktemp("fuzz")


def _write(folder, data: bytes, suffix: str = ".wav"):
    p = folder / f"f{next(_names)}{suffix}"
    p.write_bytes(data)
    return p


# ----------------------------------------------------------------------------- audio
SUBTYPES = ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")
RATES = (1, 7, 8000, 11025, 16000, 22050, 44100, 48000, 96000, 192000)


def _wav_bytes(frames: np.ndarray, sample_rate: int, subtype: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, frames, sample_rate, subtype=subtype, format="WAV")
    return buf.getvalue()


@st.composite
def valid_wavs(draw) -> tuple[bytes, int, int, str]:
    """A WAV written by soundfile: (bytes, sample_rate, channels, subtype); float files may hold
    any finite value (and, drawn on purpose, NaN / Inf)."""
    channels = draw(st.sampled_from((1, 1, 2, 3, 5, 8)))
    n = draw(st.integers(0, 300))
    rate = draw(st.sampled_from(RATES))
    subtype = draw(st.sampled_from(SUBTYPES))
    if subtype in ("FLOAT", "DOUBLE"):
        scale = draw(st.sampled_from((1e-30, 1e-3, 1.0, 1e3, 1e30, 3e38)))
        special = draw(st.sampled_from((None, None, np.nan, np.inf, -np.inf)))
    else:
        scale, special = 0.999, None
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = (rng.uniform(-1.0, 1.0, size=(n, channels)) * scale).astype(np.float32 if subtype != "DOUBLE" else np.float64)
    if special is not None and n:
        x[draw(st.integers(0, n - 1)), draw(st.integers(0, channels - 1))] = special
    return _wav_bytes(x, rate, subtype), rate, channels, subtype


def _chunks(wav: bytes) -> dict[bytes, int]:
    """Offsets of the chunk headers (id, 4-byte size) of a RIFF/WAVE file soundfile wrote."""
    out, pos = {}, 12
    while pos + 8 <= len(wav):
        cid, size = wav[pos:pos + 4], struct.unpack("<I", wav[pos + 4:pos + 8])[0]
        out.setdefault(cid, pos)
        pos += 8 + size + (size & 1)
    return out


@st.composite
def mutated_wavs(draw) -> bytes:
    """A valid WAV with its header fields, data chunk or length damaged."""
    wav = bytearray(draw(valid_wavs())[0])
    ck = _chunks(bytes(wav))
    fmt, data = ck.get(b"fmt "), ck.get(b"data")
    u16 = st.sampled_from((0, 1, 2, 3, 7, 8, 16, 24, 32, 64, 255, 0xFFFF))
    u32 = st.sampled_from((0, 1, 2, 3, 44, 1000, 8000, 48000, 2**31 - 1, 2**31, 2**32 - 1)) | st.integers(0, 2**32 - 1)
    fields = {"riff size": (4, "<I", u32)}
    if fmt is not None:  # fmt body: format, channels, rate, byte rate, block align, bits
        body = fmt + 8
        fields.update({"fmt size": (fmt + 4, "<I", u32), "format tag": (body, "<H", u16),
                       "channels": (body + 2, "<H", u16), "sample rate": (body + 4, "<I", u32),
                       "byte rate": (body + 8, "<I", u32), "block align": (body + 12, "<H", u16),
                       "bits": (body + 14, "<H", u16)})
    if data is not None:
        fields["data size"] = (data + 4, "<I", u32)
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True)):
        off, fmt_code, values = fields[name]
        struct.pack_into(fmt_code, wav, off, draw(values))
    for _ in range(draw(st.integers(0, 4))):  # random byte flips anywhere
        if wav:
            wav[draw(st.integers(0, len(wav) - 1))] = draw(st.integers(0, 255))
    how = draw(st.sampled_from(("keep", "truncate", "append")))
    if how == "truncate":
        wav = wav[:draw(st.integers(0, len(wav)))]
    elif how == "append":
        wav += draw(st.binary(max_size=64))
    return bytes(wav)


def _load_or_documented_error(path, **kw) -> tuple[torch.Tensor, int] | None:
    """``load_audio(path, **kw)``: a finite float32 [T] and a positive int rate, or a documented
    error naming the file; None for the latter."""
    try:
        x, sr = load_audio(path, **kw)
    except (AudioFileError, SampleRateError) as e:
        assert path.name in str(e), f"the error does not name the file: {e}"
        return None
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.ndim == 1 and x.numel() > 0
    assert bool(torch.isfinite(x).all()), f"{path.name}: load_audio({kw}) returned non-finite samples"
    assert type(sr) is int and sr > 0
    return x, sr


def _info_or_documented_error(path):
    try:
        info = audio_info(path)
    except AudioFileError as e:
        assert path.name in str(e), f"the error does not name the file: {e}"
        return None
    assert info.frames > 0 and info.sample_rate > 0 and info.channels > 0
    return info


def _exercise_audio(path) -> None:
    info = _info_or_documented_error(path)
    plain = _load_or_documented_error(path)
    mono = _load_or_documented_error(path, mono=True)
    if info is None:  # a file whose header cannot be read loads under no option
        assert plain is None and mono is None
        return
    if mono is not None:
        assert mono[0].shape == (info.frames,) and mono[1] == info.sample_rate
    _load_or_documented_error(path, sample_rate=16000, mono=True)
    if info.sample_rate in (8000, 22050, 48000):  # resampling: rates whose filters stay small
        _load_or_documented_error(path, sample_rate=16000, mono=True, resample=True)


@_fuzz(60)
@given(data=st.binary(max_size=512))
def test_random_bytes_load_or_raise_audio_file_error(scratch, data: bytes) -> None:
    _exercise_audio(_write(scratch, data))


@_fuzz(60)
@given(prefix=st.sampled_from((b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"FORM", b"")),
       data=st.binary(max_size=256))
def test_magic_prefixed_bytes_load_or_raise(scratch, prefix: bytes, data: bytes) -> None:
    """Bytes after a real container's magic: the parsers go further than on plain noise."""
    head = prefix + (struct.pack("<I", len(data) + 4) + b"WAVE" if prefix in (b"RIFF", b"RF64") else b"")
    _exercise_audio(_write(scratch, head + data))


@_fuzz(60)
@given(wav=valid_wavs())
def test_valid_wavs_of_any_channels_rate_subtype_and_value(scratch, wav) -> None:
    data, rate, channels, subtype = wav
    p = _write(scratch, data)
    _exercise_audio(p)
    sig, _ = sf.read(io.BytesIO(data), dtype="float64", always_2d=True)
    if sig.shape[0] == 0 or not np.isfinite(sig).all():
        with pytest.raises(AudioFileError, match=p.name):
            load_audio(p, mono=True)
        return
    info = audio_info(p)
    assert (info.sample_rate, info.channels, info.subtype, info.frames) == (rate, channels, subtype, sig.shape[0])
    if channels > 1:
        with pytest.raises(AudioFileError, match=f"{p.name}.*{channels} channels"):
            load_audio(p)
    else:
        x, sr = load_audio(p)
        assert sr == rate and x.shape == (sig.shape[0],)


@_fuzz(150)
@given(wav=mutated_wavs())
def test_corrupted_wav_headers_and_data_load_or_raise(scratch, wav: bytes) -> None:
    _exercise_audio(_write(scratch, wav))


def test_empty_and_header_only_files_are_audio_file_errors(tmp_path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    header_only = tmp_path / "header_only.wav"
    header_only.write_bytes(_wav_bytes(np.zeros((0, 1), np.float32), 16000, "PCM_16"))
    for p in (empty, header_only):
        with pytest.raises(AudioFileError, match=p.name):
            audio_info(p)
        with pytest.raises(AudioFileError, match=p.name):
            load_audio(p, mono=True)


# ----------------------------------------------------------------------------- checkpoints
def _checkpoint_bytes() -> bytes:
    """A small checkpoint as the trainers write it (plain data, format tag first)."""
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "tool": "train_bsdt", "model_config": {"name": "bsdt"},
                "model": {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.zeros(3)},
                "sample_rate": 16000, "epoch": 1, "history": [{"loss": 0.5}]}, buf)
    return buf.getvalue()


CHECKPOINT = _checkpoint_bytes()


def _read_or_checkpoint_error(path) -> dict | None:
    try:
        ck = read_checkpoint(path)
    except CheckpointError as e:
        assert path.name in str(e), f"the error does not name the file: {e}"
        return None
    assert isinstance(ck, dict) and ck["format"] == CHECKPOINT_FORMAT
    return ck


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # torch's note on random bytes
@_fuzz(40)
@given(data=st.binary(max_size=512) | st.sampled_from((b"", b"PK\x03\x04", b"\x80\x02}q\x00.", b"\x80\x04N.")))
def test_read_checkpoint_of_random_bytes(scratch, data: bytes) -> None:
    _read_or_checkpoint_error(_write(scratch, data, ".pt"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@_fuzz(60)
@given(cut=st.integers(0, len(CHECKPOINT)),
       flips=st.lists(st.tuples(st.integers(0, len(CHECKPOINT) - 1), st.integers(0, 255)), max_size=4))
def test_read_checkpoint_of_truncated_or_damaged_files(scratch, cut: int, flips) -> None:
    data = bytearray(CHECKPOINT)
    for pos, val in flips:
        data[pos] = val
    _read_or_checkpoint_error(_write(scratch, bytes(data[:cut]), ".pt"))


_plain = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.text(max_size=8)


@_fuzz(40)
@given(payload=st.recursive(_plain, lambda inner: st.lists(inner, max_size=3)
                            | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
       | st.dictionaries(st.sampled_from(("format", "tool", "model")),
                         _plain | st.just(CHECKPOINT_FORMAT), max_size=3))
def test_read_checkpoint_of_other_plain_data(scratch, payload) -> None:
    """Any weights-only-loadable object: returned only as a dict with the right format tag."""
    p = scratch / f"c{next(_names)}.pt"
    torch.save(payload, p)
    ck = _read_or_checkpoint_error(p)
    if ck is not None:
        assert isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT


# ----------------------------------------------------------------------------- regressions found by the fuzzing
def test_mono_downmix_of_float_samples_near_float32_max_stays_finite(tmp_path) -> None:
    """A 5-channel FLOAT WAV of samples near 3e38 (finite): the float32 mean of its channels
    overflowed to -inf and load_audio(mono=True) returned it."""
    x = np.full((4, 5), -3e38, np.float32)
    p = tmp_path / "loud5.wav"
    p.write_bytes(_wav_bytes(x, 16000, "FLOAT"))
    y, sr = load_audio(p, mono=True)
    assert sr == 16000 and bool(torch.isfinite(y).all())
    assert torch.equal(y, torch.full((4,), -3e38, dtype=torch.float32))


def test_resampling_float_samples_near_float32_max_is_an_audio_file_error(tmp_path) -> None:
    """A step to 3.3e38 in a FLOAT WAV: the resampling filter's overshoot was +inf in the output."""
    x = np.zeros(4800, np.float32)
    x[2400:] = 3.3e38
    p = tmp_path / "step.wav"
    p.write_bytes(_wav_bytes(x, 48000, "FLOAT"))
    with pytest.raises(AudioFileError, match=r"step\.wav: resampling overflowed float32.*3\.3e\+38.*\[-1, 1\]"):
        load_audio(p, sample_rate=16000, resample=True)
    assert load_audio(p)[0].shape == (4800,)  # at the file's own rate it loads

"""DNSMOS: non-intrusive speech quality, P.835 (SIG, BAK, OVRL) and P.808 (MOS), 1..5.

The official DNSMOS models (Reddy et al., ICASSP 2022) as the MIT-licensed ``speechmos``
wheel ships them, run with ``onnxruntime``; both come with the ``dnsmos`` extra
(``pip install 'se-metrics[dnsmos]'``). Only the ONNX files are taken from speechmos: the
features, windowing and score mapping are computed here in numpy, as speechmos's
``dnsmos.run(audio, 16000)`` computes them (its code needs librosa; this does not), and its
values equal speechmos's to about 1e-6 (the tests compare them on real speech and noise):

* input: mono audio at 16 kHz (another rate is refused here; the evaluator resamples).
* length: a clip shorter than 9.01 s is doubled (``np.append(x, x)``) until it is at least
  9.01 s; a longer one is scored in 9.01 s windows (144,160 samples) starting every 1 s,
  ``int(floor(len / 16000) - 9.01) + 1`` of them, and the window scores are averaged. As in
  the reference code, a window whose end ``int((i + 9.01) * 16000)`` rounds one sample short
  by float rounding is skipped: i = 7..23 and 119..122 below 4.5 h (so a clip of 17..34 s is
  scored on windows 0..6 only); window 0 is always scored.
* P.835: the non-personalised ``dnsmos_models/sig_bak_ovr.onnx`` on the raw float32 window,
  its three outputs mapped by DNSMOS's quadratic fits (SIG ``-0.08397278 x^2 +
  1.22083953 x + 0.0052439``, BAK ``-0.13166888 x^2 + 1.60915514 x - 0.39604546``, OVRL
  ``-0.06766283 x^2 + 1.11546468 x + 0.04602535``).
* P.808: ``dnsmos_models/model_v8.onnx`` on the window less its last 160 samples as a log
  mel spectrogram: periodic Hann, n_fft 321, hop 160, zero padding of 160 samples at both
  ends (librosa's ``center=True`` with its default ``pad_mode="constant"``), power
  spectrum, 120 Slaney mel bands over 0..8 kHz (librosa >= 0.10's filters: FFT bin ``k`` at
  ``k * 16000 / 321`` Hz), ``10 log10(max(S, 1e-10))`` relative to the window's largest
  value, floored 80 dB below its maximum, then ``(dB + 40) / 40``: 900 frames x 120 bands.
  This is what speechmos computes with librosa >= 0.9 (its stated requirement is 0.9.1);
  librosa 0.8 (bins at ``linspace(0, 8000, 161)``, reflect padding), which the DNS
  Challenge's early ``dnsmos_local.py`` ran on, gives P.808 values up to about 0.2 apart.

A clip without signal (every sample equal, or what varies below RMS 1e-6) raises
:class:`MetricUndefinedError`: P.808's features are relative to the clip's own maximum, so a
near-silent clip would be scored as if it were audible. Samples beyond [-1, 1] are scored
(speechmos refuses them).
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ._validate import SILENCE_RMS, MetricInputError, MetricUndefinedError, as_1d_array, check_sample_rate, \
    sample_rate_alias, wrong_rate

__all__ = ["DNSMOS", "DNSMOS_LABELS", "DNSMOS_METRICS", "DnsmosUnavailableError", "dnsmos", "dnsmos_model_info"]

#: Column names of the four DNSMOS scores, in this order: P.835 signal, background and overall
#: quality (non-personalised model) and P.808 MOS.
DNSMOS_METRICS: tuple[str, ...] = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808")
#: Table headings.
DNSMOS_LABELS: dict[str, str] = {"dnsmos_sig": "DNSMOS SIG", "dnsmos_bak": "DNSMOS BAK",
                                 "dnsmos_ovrl": "DNSMOS OVRL", "dnsmos_p808": "DNSMOS P.808"}

SAMPLE_RATE = 16000
INPUT_LENGTH = 9.01                           # seconds per window, as the reference code
WINDOW = int(INPUT_LENGTH * SAMPLE_RATE)      # 144160 samples
HOP = SAMPLE_RATE                             # 1 s between window starts
N_FFT, MEL_HOP, N_MELS = 321, 160, 120        # P.808 features
P835_FILE, P808_FILE = "dnsmos_models/sig_bak_ovr.onnx", "dnsmos_models/model_v8.onnx"
#: Windows given to one onnxruntime call (bounds memory on long files: 16 x 144160 float32 = 9 MB).
BATCH = 16

#: What to install when onnxruntime or speechmos (which holds the ONNX files) is missing.
INSTALL_HINT = ("install the DNSMOS extra: pip install 'se-metrics[dnsmos]' (it adds onnxruntime and speechmos, "
                "whose wheel holds the official ONNX models); in this repository `uv sync --all-packages` "
                "installs it")

# DNSMOS's quadratic maps of the non-personalised P.835 model's raw outputs (highest power first)
_POLY_SIG = (-0.08397278, 1.22083953, 0.0052439)
_POLY_BAK = (-0.13166888, 1.60915514, -0.39604546)
_POLY_OVR = (-0.06766283, 1.11546468, 0.04602535)


class DnsmosUnavailableError(ImportError):
    """onnxruntime or the speechmos package (the ONNX models) is not installed; the message
    names the extra to install (``se-metrics[dnsmos]``)."""


def _model_dir() -> Path:
    try:
        import onnxruntime  # noqa: F401, PLC0415
    except ImportError as err:
        raise DnsmosUnavailableError(f"DNSMOS needs onnxruntime, which is not installed: {INSTALL_HINT}.") from err
    try:
        root = resources.files("speechmos")
    except ImportError as err:
        raise DnsmosUnavailableError(
            f"DNSMOS needs the ONNX models of the speechmos package, which is not installed: {INSTALL_HINT}.") from err
    missing = [f for f in (P835_FILE, P808_FILE) if not root.joinpath(f).is_file()]
    if missing:
        raise DnsmosUnavailableError(
            f"the installed speechmos package ({root}) lacks {', '.join(missing)}: reinstall it "
            f"(pip install --force-reinstall 'speechmos>=0.0.1.1').")
    return Path(str(root))


@functools.cache
def dnsmos_model_info() -> dict[str, str]:
    """The ONNX files DNSMOS runs, ``{"p835": "speechmos/dnsmos_models/sig_bak_ovr.onnx sha256:...",
    "p808": ...}`` (the evaluator records this; a change of model refuses a resume). Raises
    :class:`DnsmosUnavailableError` when the extra is missing."""
    root = _model_dir()
    info = {}
    for key, rel in (("p835", P835_FILE), ("p808", P808_FILE)):
        digest = hashlib.sha256((root / rel).read_bytes()).hexdigest()
        info[key] = f"speechmos/{rel} sha256:{digest}"
    return info


# ----------------------------------------------------------------------------- P.808 features
def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's ``htk=False``): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    mel = f / (200.0 / 3)
    log_t = f >= 1000.0
    return np.where(log_t, 15.0 + np.log(np.maximum(f, 1e-300) / 1000.0) / (np.log(6.4) / 27.0), mel)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))


@functools.cache
def mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """``[n_mels, n_fft // 2 + 1]`` triangular Slaney-normalised mel filters over 0..sr/2, as
    ``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)`` (librosa >= 0.10: bin ``k`` at
    ``k * sr / n_fft`` Hz), in float64."""
    fft_f = np.arange(n_fft // 2 + 1) * (sr / n_fft)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_f[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    w = np.maximum(0.0, np.minimum(lower, upper))
    w *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    w.setflags(write=False)
    return w


@functools.cache
def _hann(n: int) -> np.ndarray:
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)  # periodic, as scipy.signal.get_window("hann", n)
    w.setflags(write=False)
    return w


def p808_features(windows: np.ndarray) -> np.ndarray:
    """P.808 input for ``windows`` ``[B, T]`` (each a 9.01 s window less its last 160 samples):
    ``[B, 1 + T // 160, 120]`` float32 log mel spectra scaled as DNSMOS does (see the module
    docstring); equal to ``(librosa.power_to_db(librosa.feature.melspectrogram(y=w, sr=16000,
    n_fft=321, hop_length=160, n_mels=120), ref=np.max) + 40) / 40`` transposed."""
    x = np.asarray(windows, dtype=np.float64)
    pad = N_FFT // 2
    x = np.pad(x, ((0, 0), (pad, pad)))
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT, axis=-1)[:, ::MEL_HOP]  # [B, F, 321]
    power = np.abs(np.fft.rfft(frames * _hann(N_FFT), axis=-1)) ** 2                   # [B, F, 161]
    mel = power @ mel_filterbank().T                                                    # [B, F, 120]
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    db -= 10.0 * np.log10(np.maximum(mel.max(axis=(1, 2), keepdims=True), 1e-10))
    db = np.maximum(db, db.max(axis=(1, 2), keepdims=True) - 80.0)
    return ((db + 40.0) / 40.0).astype(np.float32)


# ----------------------------------------------------------------------------- windows
def windows(audio: np.ndarray) -> np.ndarray:
    """The 9.01 s windows DNSMOS scores for a 16 kHz clip, ``[N, 144160]`` (the clip's dtype):
    a short clip doubled until it is long enough, then windows every second, those whose float
    end index falls one sample short skipped, as the reference code does."""
    x = np.asarray(audio)
    if x.shape[0] == 0:
        raise MetricInputError("DNSMOS got an empty clip (0 samples): there is nothing to score.")
    reps = 0
    while x.shape[0] << reps < WINDOW:  # np.append(x, x) until >= 9.01 s
        reps += 1
    if reps:
        x = np.tile(x, 1 << reps)
    num_hops = int(math.floor(x.shape[0] / SAMPLE_RATE) - INPUT_LENGTH) + 1
    segs = [x[int(i * HOP): int((i + INPUT_LENGTH) * HOP)] for i in range(num_hops)]
    return np.stack([s for s in segs if s.shape[0] >= WINDOW])


def _poly(c: Sequence[float], v: np.ndarray) -> np.ndarray:
    return (c[0] * v + c[1]) * v + c[2]


class DNSMOS:
    """The two DNSMOS models loaded once (onnxruntime, CPU); call it on a 16 kHz clip.

    threads: onnxruntime's intra-op threads (None: its default, one per physical core; the
        evaluator's worker processes use 1).
    Raises :class:`DnsmosUnavailableError` naming the extra when onnxruntime or speechmos is
    missing.
    """

    def __init__(self, threads: int | None = None) -> None:
        root = _model_dir()
        import onnxruntime as ort  # noqa: PLC0415

        opts = ort.SessionOptions()
        # no busy-waiting between runs: the models share the cores with the evaluator's workers
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads is not None:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        self.threads = threads
        self._p835 = ort.InferenceSession(str(root / P835_FILE), opts, providers=["CPUExecutionProvider"])
        self._p808 = ort.InferenceSession(str(root / P808_FILE), opts, providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()  # one run at a time per session pair keeps thread counts as asked

    def window_scores(self, audio: Any) -> np.ndarray:
        """Per-window scores ``[N, 4]`` (SIG, BAK, OVRL after the P.835 maps; P.808) of a 16 kHz
        clip that has passed the checks of :meth:`__call__`."""
        w = windows(audio)
        out = np.empty((w.shape[0], 4), dtype=np.float64)
        for s in range(0, w.shape[0], BATCH):
            chunk = w[s:s + BATCH]
            feats = p808_features(chunk[:, :-MEL_HOP])
            with self._lock:
                raw = self._p835.run(None, {"input_1": chunk.astype(np.float32)})[0]
                p808 = self._p808.run(None, {"input_1": feats})[0]
            raw = raw.astype(np.float64)
            out[s:s + BATCH, 0] = _poly(_POLY_SIG, raw[:, 0])
            out[s:s + BATCH, 1] = _poly(_POLY_BAK, raw[:, 1])
            out[s:s + BATCH, 2] = _poly(_POLY_OVR, raw[:, 2])
            out[s:s + BATCH, 3] = p808[:, 0]
        return out

    @sample_rate_alias
    def __call__(self, audio: Any, sample_rate: int = SAMPLE_RATE) -> dict[str, float]:
        """``{"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"}`` of ``audio`` [T] (numpy
        array or torch tensor, mono) at ``sample_rate`` Hz, which must be 16000."""
        x = as_1d_array(audio, "audio")
        sr = check_sample_rate(sample_rate)
        if sr != SAMPLE_RATE:
            raise wrong_rate("DNSMOS is defined only at 16000 Hz", sr, SAMPLE_RATE)
        if x.shape[0] == 0:
            raise MetricInputError("DNSMOS got an empty clip (0 samples): there is nothing to score.")
        if np.issubdtype(x.dtype, np.integer):
            raise MetricInputError(f"DNSMOS needs float audio in [-1, 1], got dtype {x.dtype}: read the file as "
                                   f"float (soundfile.read(path, dtype='float64')).")
        if not np.all(np.isfinite(x)):
            n_bad = int(np.count_nonzero(~np.isfinite(x)))
            raise MetricInputError(f"audio contains {n_bad} NaN/Inf sample(s): DNSMOS on it would be meaningless.")
        ac = float(np.std(x, dtype=np.float64))
        if ac < SILENCE_RMS:
            what = "every sample is equal" if float(x.max()) == float(x.min()) else f"RMS of what varies {ac:.2g}"
            reason = f"silent clip ({what}, below {SILENCE_RMS:g})"
            raise MetricUndefinedError(
                f"DNSMOS is undefined for a {reason}: its P.808 features are relative to the clip's own "
                f"loudest band, so it would score a clip without signal as if it were audible.", reason=reason)
        scores = self.window_scores(x).mean(axis=0)
        return {m: float(v) for m, v in zip(DNSMOS_METRICS, scores)}


_MODELS: dict[int | None, DNSMOS] = {}
_MODELS_LOCK = threading.Lock()


def _model(threads: int | None) -> DNSMOS:
    with _MODELS_LOCK:
        if threads not in _MODELS:
            _MODELS[threads] = DNSMOS(threads)
        return _MODELS[threads]


@sample_rate_alias
def dnsmos(audio: Any, sample_rate: int = SAMPLE_RATE, *, threads: int | None = None) -> dict[str, float]:
    """DNSMOS of a mono clip at 16 kHz: ``{"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl",
    "dnsmos_p808"}`` (P.835 signal / background / overall quality from the non-personalised
    model, and P.808 MOS; each about 1..5, higher is better).

    audio: [T] numpy array or torch tensor, float, nominally in [-1, 1]; no reference needed.
    sample_rate: must be 16000 (``sr=`` also accepted); another rate raises
        :class:`MetricSampleRateError` (``se_data.resample(x, sr, 16000)`` first).
    threads: onnxruntime intra-op threads (None: its default). The models load once per
        process and value of ``threads``.
    Raises :class:`DnsmosUnavailableError` (an ``ImportError``) naming the ``dnsmos`` extra when
    onnxruntime or speechmos is missing, :class:`MetricUndefinedError` for a silent clip.
    """
    return _model(threads)(audio, sample_rate)

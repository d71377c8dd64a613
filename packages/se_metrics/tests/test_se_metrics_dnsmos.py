"""DNSMOS (se_metrics.dnsmos): features equal librosa's, scores equal speechmos's own
``dnsmos.run`` on real speech and noise (short clips repeated, long ones windowed, other rates
resampled first), bad input, the missing-extra error, and the evaluator's DNSMOS modes."""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
from math import gcd

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

import se_metrics as sm
from se_metrics import non_intrusive as ni
from se_metrics._per_file import columns

pytest.importorskip("onnxruntime", reason="the dnsmos extra (onnxruntime) is not installed")
SR = 16000
#: speechmos's keys for ours
PEER_KEYS = {"dnsmos_sig": "sig_mos", "dnsmos_bak": "bak_mos", "dnsmos_ovrl": "ovrl_mos", "dnsmos_p808": "p808_mos"}
#: the issue asks for 0.01; the implementations differ by float rounding only (measured <= 4e-7)
TOL = 1e-3


@pytest.fixture(scope="module")
def speechmos_run():
    """speechmos's own DNSMOS (imports librosa and requests, from the test extra)."""
    pytest.importorskip("librosa", reason="speechmos's own dnsmos module needs librosa")
    pytest.importorskip("requests", reason="speechmos's own dnsmos module imports requests")
    from speechmos import dnsmos as peer

    return lambda x: {k: float(peer.run(np.asarray(x), SR)[v]) for k, v in PEER_KEYS.items()}


def _read16k(path):
    x, sr = sf.read(path, dtype="float64", always_2d=True)
    x = x.mean(axis=1)
    if sr != SR:
        g = gcd(SR, sr)
        x = resample_poly(x, SR // g, sr // g)
    return np.clip(x, -1.0, 1.0)  # speechmos refuses samples beyond [-1, 1]


def _speech_like(seconds, seed=0):
    """A voiced source-filter signal with a moving pitch and noise bursts (no data needed)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 20)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    x = x / np.abs(x).max() * 0.3 + 0.02 * rng.standard_normal(t.size)
    return np.clip(x, -1, 1)


# ----------------------------------------------------------------------------- features
def test_mel_filterbank_equals_librosa():
    librosa = pytest.importorskip("librosa")
    want = librosa.filters.mel(sr=SR, n_fft=321, n_mels=120, dtype=np.float64)
    np.testing.assert_allclose(ni.mel_filterbank(), want, rtol=0, atol=1e-12)


def test_p808_features_equal_librosa():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(1)
    w = np.stack([_speech_like(9.01)[:ni.WINDOW], 0.1 * rng.standard_normal(ni.WINDOW)])[:, :-160]
    ours = ni.p808_features(w)
    assert ours.shape == (2, 900, 120) and ours.dtype == np.float32
    for b in range(2):
        mel = librosa.feature.melspectrogram(y=w[b], sr=SR, n_fft=321, hop_length=160, n_mels=120)
        want = ((librosa.power_to_db(mel, ref=np.max) + 40) / 40).T
        np.testing.assert_allclose(ours[b], want, rtol=0, atol=1e-5)


def _peer_windows(x):
    """speechmos's windowing loop, written out: the starts of the windows it scores."""
    audio = np.asarray(x)
    while len(audio) < int(9.01 * SR):
        audio = np.append(audio, audio)
    num_hops = int(np.floor(len(audio) / SR) - 9.01) + 1
    return audio, [i for i in range(num_hops)
                   if len(audio[int(i * SR): int((i + 9.01) * SR)]) >= int(9.01 * SR)]


@pytest.mark.parametrize("n", [1, 5000, 3 * SR + 7, ni.WINDOW - 1, ni.WINDOW, 10 * SR, 34 * SR + 123, 130 * SR])
def test_windows_as_the_reference_loop(n):
    x = np.arange(n, dtype=np.float64)
    audio, starts = _peer_windows(x)
    w = ni.windows(x)
    assert w.shape == (len(starts), ni.WINDOW)
    for row, s in zip(w, starts):
        np.testing.assert_array_equal(row, audio[s * SR: s * SR + ni.WINDOW])
    if n == 34 * SR + 123:  # 25 hops; windows 7..23 end one sample short by float rounding: skipped
        assert starts == [0, 1, 2, 3, 4, 5, 6, 24]


def test_short_clip_is_doubled_to_length():
    x = _speech_like(3.0)
    np.testing.assert_array_equal(ni.windows(x), ni.windows(np.concatenate([x, x])))  # both become 12 s
    assert ni.windows(x).shape[0] == 3


# ----------------------------------------------------------------------------- parity with speechmos
def test_equals_speechmos_on_a_synthetic_clip(speechmos_run):
    x = _speech_like(3.2, seed=3)
    ours, peer = sm.dnsmos(x, SR), speechmos_run(x)
    assert list(ours) == list(sm.DNSMOS_METRICS)
    for k in ours:
        assert abs(ours[k] - peer[k]) < TOL, (k, ours[k], peer[k])
        assert 1.0 <= ours[k] <= 5.0


#: (file, SNR of added white noise or None, seconds kept or None); each costs ~0.5 s per
#: 9.01 s window and implementation on one core. Windowing of long clips (the skipped windows)
#: is checked against the reference loop above; here a 12.5 s noise has three windows averaged.
# real speech shorter than one window (repeated to length) and real noise over three windows (all 34
# clips of ../shared/data agreed to 4e-7 when this was written; the suite keeps two for time)
REAL = {
    "vb_noisy_1.96s": ("speech/voicebank16k/noisy/p287_001.wav", None, None),
    "noise_12.5s_3_windows": ("noise/noise1.wav", None, 12.5),
}


@pytest.mark.parametrize("case", list(REAL))
def test_equals_speechmos_on_real_audio(case, shared_data, speechmos_run):
    rel, snr, keep = REAL[case]
    x = _read16k(shared_data / rel)
    if keep is not None:
        x = x[:int(keep * SR)]
    if snr is not None:
        noise = np.random.default_rng(0).standard_normal(x.size)
        x = np.clip(x + noise * math.sqrt(np.mean(x ** 2) / np.mean(noise ** 2) / 10 ** (snr / 10)), -1, 1)
    ours, peer = sm.dnsmos(x, SR), speechmos_run(x)
    for k in sm.DNSMOS_METRICS:
        assert abs(ours[k] - peer[k]) < TOL, (k, ours[k], peer[k])


def test_scores_rank_clean_above_noisy(shared_data):
    vb = shared_data / "speech" / "voicebank16k"
    clean = sm.dnsmos(_read16k(vb / "clean" / "p287_002.wav"), SR)
    noisy = sm.dnsmos(_read16k(vb / "noisy" / "p287_002.wav"), SR)
    assert clean["dnsmos_ovrl"] > noisy["dnsmos_ovrl"] + 1 and clean["dnsmos_bak"] > noisy["dnsmos_bak"] + 1


# ----------------------------------------------------------------------------- input handling
def test_bad_input():
    x = _speech_like(1.0)
    with pytest.raises(sm.MetricSampleRateError, match="16000 Hz.*se_data.resample"):
        sm.dnsmos(x, 48000)
    with pytest.raises(sm.MetricInputError, match="1-D"):
        sm.dnsmos(np.stack([x, x], 1), SR)
    bad = x.copy()
    bad[3] = np.nan
    with pytest.raises(sm.MetricInputError, match="NaN"):
        sm.dnsmos(bad, SR)
    with pytest.raises(sm.MetricInputError, match="empty"):
        sm.dnsmos(np.zeros(0), SR)
    with pytest.raises(sm.MetricInputError, match="float audio"):
        sm.dnsmos((x * 3000).astype(np.int16), SR)
    for silent in (np.zeros(SR), np.full(SR, 0.25), 1e-9 * x):
        with pytest.raises(sm.MetricUndefinedError, match="silent clip") as err:
            sm.dnsmos(silent, SR)
        assert err.value.reason.startswith("silent clip")


def test_torch_float32_and_sr_keyword():
    torch = pytest.importorskip("torch")
    x = _speech_like(2.0, seed=5)
    a = sm.dnsmos(x, sample_rate=SR)
    b = sm.dnsmos(torch.from_numpy(x.astype(np.float32)), sr=SR)
    for k in a:
        assert abs(a[k] - b[k]) < 1e-4


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(sm.DnsmosUnavailableError, match=r"onnxruntime.*se-metrics\[dnsmos\]"):
        sm.DNSMOS()
    monkeypatch.delitem(sys.modules, "onnxruntime")
    monkeypatch.setitem(sys.modules, "speechmos", None)
    with pytest.raises(ImportError, match=r"speechmos.*se-metrics\[dnsmos\]"):
        sm.DNSMOS()


# ----------------------------------------------------------------------------- evaluator
def _rows(path, cols):
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == cols
        return {r["file"]: r for r in reader}


def test_evaluate_dir_non_intrusive(tmp_path, shared_data):
    vb = shared_data / "speech" / "voicebank16k"
    enh, noisy = tmp_path / "enh", tmp_path / "noisy"
    enh.mkdir()
    noisy.mkdir()
    shutil.copy(vb / "clean" / "p287_001.wav", enh / "a.wav")
    shutil.copy(shared_data / "speech" / "p286_011_48k.wav", enh / "b48k.wav")
    sf.write(enh / "silent.wav", np.zeros(SR), SR)
    shutil.copy(vb / "noisy" / "p287_001.wav", noisy / "a.wav")
    out = tmp_path / "eval"
    summary = sm.evaluate_dir(enh, None, out, workers=1, noisy_dir=noisy, progress=False)
    cols = columns(sm.DNSMOS_METRICS, intrusive=False)
    assert cols == ("file", *sm.DNSMOS_METRICS, "undefined", "note", "error",
                    "input_path", "input_size", "input_mtime_ns", "input_sha256")
    rows = _rows(out / "per_file.csv", cols)
    assert list(rows) == ["a.wav", "b48k.wav", "silent.wav"]
    want_a = sm.dnsmos(sf.read(enh / "a.wav")[0], SR)
    want_b = sm.dnsmos(_read16k(enh / "b48k.wav"), SR)
    for k in sm.DNSMOS_METRICS:
        assert float(rows["a.wav"][k]) == pytest.approx(want_a[k], abs=1e-9)
        assert float(rows["b48k.wav"][k]) == pytest.approx(want_b[k], abs=1e-9)
        assert rows["silent.wav"][k] == ""
    assert rows["silent.wav"]["error"] == "" and "silent clip" in rows["silent.wav"]["undefined"]
    enh_s = summary["enhanced"]
    assert list(enh_s["metrics"]) == list(sm.DNSMOS_METRICS) and enh_s["n_ok"] == 3
    assert enh_s["metrics"]["dnsmos_ovrl"]["count"] == 2 and enh_s["metrics"]["dnsmos_ovrl"]["n_undefined"] == 1
    assert summary["resampled"] == [{"path": str((enh / "b48k.wav").resolve()), "role": "enhanced",
                                     "from_sr": 48000, "to_sr": SR}]
    assert summary["config"]["clean_dir"] is None and "sha256:" in summary["config"]["dnsmos"]["p835"]
    # noisy: "a.wav" scored, the others have no noisy partner (failures of the noisy side only)
    noisy_rows = _rows(out / "per_file_noisy.csv", cols)
    assert noisy_rows["a.wav"]["error"] == "" and "missing noisy partner" in noisy_rows["b48k.wav"]["error"]
    assert summary["delta"]["n_files"] == 1
    assert summary["delta"]["metrics"]["dnsmos_bak"]["mean"] > 0  # clean beats its noisy version
    text = sm.format_summary_table(summary, out)
    assert "dnsmos_ovrl ↑" in text and "non-intrusive: no clean reference, DNSMOS only" in text
    assert "1 file(s) resampled from 48000 Hz to 16000 Hz" in text and "DNSMOS needs 16 kHz" in text
    assert "pesq_wb" not in text

    again = sm.evaluate_dir(enh, None, out, workers=1, noisy_dir=noisy, progress=False)
    assert again["n_computed_this_run"] == 2  # the noisy side's two failures are retried, nothing else
    assert again["enhanced"]["metrics"] == enh_s["metrics"]
    with pytest.raises(sm.MetricInputError, match="other settings"):
        sm.evaluate_dir(enh, enh, out, workers=1, progress=False)  # intrusive into a DNSMOS-only folder


def test_evaluate_dir_with_dnsmos_keeps_the_intrusive_metrics(tmp_path, shared_data):
    vb = shared_data / "speech" / "voicebank16k"
    enh, clean = tmp_path / "enh", tmp_path / "clean"
    enh.mkdir()
    clean.mkdir()
    shutil.copy(vb / "noisy" / "p287_001.wav", enh / "p287_001.wav")
    shutil.copy(vb / "clean" / "p287_001.wav", clean / "p287_001.wav")
    plain = sm.evaluate_dir(enh, clean, tmp_path / "plain", workers=1, progress=False)
    assert "dnsmos" not in plain["config"] and list(plain["enhanced"]["metrics"]) == list(sm.METRICS)
    both = sm.evaluate_dir(enh, clean, tmp_path / "both", workers=1, progress=False, dnsmos=True)
    assert list(both["enhanced"]["metrics"]) == list(sm.METRICS + sm.DNSMOS_METRICS)
    rows = _rows(tmp_path / "both" / "per_file.csv", columns(sm.METRICS + sm.DNSMOS_METRICS))
    plain_rows = _rows(tmp_path / "plain" / "per_file.csv", columns())
    for m in sm.METRICS:  # the same numbers (to float rounding: BLAS threads may differ once onnxruntime loaded)
        assert float(rows["p287_001.wav"][m]) == pytest.approx(float(plain_rows["p287_001.wav"][m]), rel=1e-12)
    want = sm.dnsmos(sf.read(enh / "p287_001.wav")[0], SR)
    assert float(rows["p287_001.wav"]["dnsmos_ovrl"]) == pytest.approx(want["dnsmos_ovrl"], abs=1e-9)
    with pytest.raises(sm.MetricInputError, match="other settings"):  # adding DNSMOS to a plain evaluation
        sm.evaluate_dir(enh, clean, tmp_path / "plain", workers=1, progress=False, dnsmos=True)
    json.loads((tmp_path / "both" / "summary.json").read_text())

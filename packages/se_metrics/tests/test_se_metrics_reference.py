"""se_metrics against the peers' reference values on real recordings (../shared/data)."""

from __future__ import annotations

import json

import pesq as pesq_lib
import pystoi
import pytest
import soundfile as sf

import se_metrics as sm

# Tolerances from the issue: PESQ/STOI/ESTOI absolute 1e-6; SI-SDR/SNR/LSD absolute 1e-3;
# SSNR/LLR/WSS/composite relative 1 %.
ABS_TOL = {"pesq_wb": 1e-6, "pesq_nb": 1e-6, "stoi": 1e-6, "estoi": 1e-6,
           "si_sdr": 1e-3, "snr": 1e-3, "lsd": 1e-3}
REL_TOL = {"ssnr": 0.01, "llr": 0.01, "wss": 0.01, "csig": 0.01, "cbak": 0.01, "covl": 0.01}


def _pair_paths(shared, key):
    speech = shared / "speech"
    if key == "speech_bab_0dB.wav":
        return speech / "speech.wav", speech / "speech_bab_0dB.wav"
    name = key.split("/")[-1]
    return speech / "voicebank16k" / "clean" / name, speech / key


@pytest.fixture(scope="module")
def reference(shared_data):
    return json.loads((shared_data / "reference" / "metrics_shared_pairs.json").read_text())


@pytest.fixture(scope="module")
def computed(shared_data, reference):
    """Every metric of every shared pair, read as float64 with soundfile (equal lengths)."""
    out = {}
    for key in reference:
        cp, ep = _pair_paths(shared_data, key)
        clean, sr = sf.read(cp)
        enh, sr2 = sf.read(ep)
        assert sr == sr2 == 16000 and clean.shape == enh.shape
        vals = sm.evaluate_pair(clean, enh, sr)
        vals["llr"] = sm.llr(clean, enh, sr)
        vals["wss"] = sm.wss(clean, enh, sr)
        out[key] = vals
    return out


def test_reference_has_all_pairs(reference):
    assert len(reference) == 7
    for vals in reference.values():
        assert set(vals) == set(sm.METRICS) | {"llr", "wss"}


@pytest.mark.parametrize("metric", sorted(ABS_TOL))
def test_matches_reference_absolute(computed, reference, metric):
    for key, ref in reference.items():
        got = computed[key][metric]
        assert abs(got - ref[metric]) <= ABS_TOL[metric], (key, metric, got, ref[metric])


@pytest.mark.parametrize("metric", sorted(REL_TOL))
def test_matches_reference_relative(computed, reference, metric):
    for key, ref in reference.items():
        got = computed[key][metric]
        assert abs(got - ref[metric]) <= REL_TOL[metric] * abs(ref[metric]), (key, metric, got, ref[metric])


def test_known_pesq_pair_values(shared_data):
    """The published pesq-package values and STOI from float input, as exact floats."""
    clean, sr = sf.read(shared_data / "speech" / "speech.wav")
    noisy, _ = sf.read(shared_data / "speech" / "speech_bab_0dB.wav")
    assert sm.pesq(clean, noisy, sr, "wb") == 1.0832337141036987
    assert sm.pesq(clean, noisy, sr, "nb") == 1.6072081327438354
    assert abs(sm.stoi(clean, noisy, sr) - 0.6739177895331301) < 1e-12


@pytest.mark.parametrize("dtype", ["float64", "float32", "int16"])
def test_pesq_stoi_bit_identical_to_libraries(shared_data, dtype):
    """Our wrappers pass arrays through untouched: same value as the libraries, for any dtype."""
    clean, sr = sf.read(shared_data / "speech" / "voicebank16k" / "clean" / "p287_001.wav", dtype=dtype)
    noisy, _ = sf.read(shared_data / "speech" / "voicebank16k" / "noisy" / "p287_001.wav", dtype=dtype)
    for mode in ("wb", "nb"):
        assert sm.pesq(clean, noisy, sr, mode) == pesq_lib.pesq(sr, clean, noisy, mode)
    assert sm.stoi(clean, noisy, sr) == pystoi.stoi(clean, noisy, sr)
    # pystoi's ESTOI itself varies run to run in the last few ulps (summation order depends on
    # memory alignment): 20 calls on the same arrays give ~9 values within 2e-15. Compare to 1e-12.
    assert abs(sm.stoi(clean, noisy, sr, extended=True) - pystoi.stoi(clean, noisy, sr, extended=True)) < 1e-12


def test_single_metrics_equal_evaluate_pair(shared_data, computed):
    clean, sr = sf.read(shared_data / "speech" / "speech.wav")
    noisy, _ = sf.read(shared_data / "speech" / "speech_bab_0dB.wav")
    got = computed["speech_bab_0dB.wav"]
    assert sm.si_sdr(clean, noisy, sr) == got["si_sdr"]
    assert sm.snr(clean, noisy, sr) == got["snr"]
    assert sm.ssnr(clean, noisy, sr) == got["ssnr"]
    assert sm.lsd(clean, noisy, sr) == got["lsd"]
    comp = sm.composite(clean, noisy, sr)
    assert set(comp) == {"csig", "cbak", "covl"}
    for k in comp:
        assert comp[k] == pytest.approx(got[k], abs=1e-12)


def test_torch_tensors_accepted(shared_data):
    torch = pytest.importorskip("torch")
    clean, sr = sf.read(shared_data / "speech" / "voicebank16k" / "clean" / "p287_001.wav")
    noisy, _ = sf.read(shared_data / "speech" / "voicebank16k" / "noisy" / "p287_001.wav")
    ct, nt = torch.from_numpy(clean), torch.from_numpy(noisy).requires_grad_(True)
    assert sm.pesq(ct, nt, sr) == sm.pesq(clean, noisy, sr)
    assert sm.si_sdr(ct, nt, sr) == sm.si_sdr(clean, noisy, sr)
    assert sm.lsd(ct, nt, sr) == sm.lsd(clean, noisy, sr)

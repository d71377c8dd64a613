"""DistillationLoss's lowpass edges and reductions, asr() on a precomputed BandlimitResult, the
bounded window caches, and the teacher/student analysis module (aa_distill.analysis)."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch
from scipy.signal.windows import chebwin

import aa_distill
from aa_distill import (
    ANALYSIS_BANDS_HZ,
    ANALYSIS_METRICS,
    DEVICE_WINDOW_CACHE_SIZE,
    HOST_WINDOW_CACHE_SIZE,
    NMR,
    DistillationLoss,
    HarmonicMagnitudeLoss,
    KaiserLowpass,
    OversampledWaveshaper,
    analyse_outputs,
    analysis_tone_params,
    asr,
    bandlimit,
    chebyshev_window,
    dc_loss,
    esr,
    harmonic_analysis,
    kaiser_lowpass_taps,
    lambda_weights,
    mean_db,
    model_outputs,
    overall_rows,
    per_band_rows,
    per_tone_band_rows,
    per_tone_rows,
    target_summary,
    target_verdicts,
)

# the submodule (the package attribute of that name is the function)
bandlimit_module = importlib.import_module("aa_distill.bandlimit")

FS = 48_000


def _tones(f0s, fs=FS, seed=0):
    """Hard-driven tanh tones (aliasing), the last second, with a slightly different copy as the
    prediction: ``(pred [B, fs], target [B, fs], f0 [B])`` in float64."""
    t = torch.arange(int(1.2 * fs), dtype=torch.float64) / fs
    f0 = torch.tensor(f0s, dtype=torch.float64)
    x = torch.tanh(10 * torch.sin(2 * math.pi * f0[:, None] * t))
    target = bandlimit(x, f0, fs).bandlimited
    g = torch.Generator().manual_seed(seed)
    pred = 0.9 * x[:, -fs:] + 0.01 * torch.randn(x.shape[0], fs, generator=g, dtype=torch.float64)
    return pred, target, f0


@pytest.fixture(scope="module")
def batch():
    return _tones([110.0, 1245.0, 3000.0])


# ----------------------------------------------------------------------------- DistillationLoss
def test_reduction_none_is_per_item_and_its_mean_is_reduction_mean(batch):
    pred, target, f0 = batch
    kw = dict(lam=0.3, dc_weight=0.7, harmonic_weight=0.5)
    total_n, terms_n = DistillationLoss(FS, reduction="none", **kw)(pred, target, f0)
    total_m, terms_m = DistillationLoss(FS, reduction="mean", **kw)(pred, target, f0)
    assert total_n.shape == (3,) and total_m.shape == ()
    assert set(terms_n) == set(terms_m) == {"esr", "nmr", "dc", "harmonic"}
    assert torch.equal(total_n.mean(), total_m)
    for k in terms_n:
        assert terms_n[k].shape == (3,)
        assert torch.equal(terms_n[k].mean(), terms_m[k])
    # each item's loss is the weighted sum of its own terms, each computed on that item alone
    lp = KaiserLowpass(FS)
    p, t = lp(pred), lp(target)
    we, wn = lambda_weights(0.3)
    harm, _ = HarmonicMagnitudeLoss(FS, reduction="none")(pred, target, f0)
    want = we * esr(p, t, "none") + wn * NMR(FS)(p, t) + 0.7 * dc_loss(p, t, "none") + 0.5 * harm
    torch.testing.assert_close(total_n, want, rtol=1e-12, atol=0)
    for i in range(3):  # an item's value does not depend on the rest of the batch
        alone, _ = DistillationLoss(FS, reduction="none", **kw)(pred[i:i + 1], target[i:i + 1], f0[i:i + 1])
        torch.testing.assert_close(alone[0], total_n[i], rtol=1e-12, atol=0)


def test_default_reduction_is_the_reference_pooled_form(batch):
    pred, target, f0 = batch
    total, terms = DistillationLoss(FS)(pred, target, f0)
    lp = KaiserLowpass(FS)
    p, t = lp(pred), lp(target)
    assert torch.equal(terms["esr"], esr(p, t, "pooled")) and torch.equal(terms["dc"], dc_loss(p, t, "pooled"))
    torch.testing.assert_close(terms["nmr"], torch.exp(torch.log(NMR(FS)(p, t)).mean()), rtol=1e-12, atol=0)
    torch.testing.assert_close(total, 0.5 * terms["esr"] + 0.5 * terms["nmr"] + terms["dc"], rtol=1e-12, atol=0)
    # the pooled ratio is not the mean of the per-item ratios
    assert not torch.allclose(terms["esr"], esr(p, t, "mean"), rtol=1e-6)


def test_lowpass_edges(batch):
    pred, target, f0 = batch
    loss = DistillationLoss(FS, lowpass_hz=(10_000.0, 14_000.0), reduction="none")
    np.testing.assert_array_equal(loss.lowpass.taps.numpy(), kaiser_lowpass_taps(FS, 10_000.0, 14_000.0))
    # same 4 kHz transition as the default 12/16 kHz: order ceil(72.05 / 14.36 * 12) = 61 -> 62
    assert loss.lowpass.num_taps == 63 and loss.lowpass.pass_hz == 10_000.0 and loss.lowpass.stop_hz == 14_000.0
    lp = KaiserLowpass(FS, 10_000.0, 14_000.0)
    p, t = lp(pred), lp(target)
    total, terms = loss(pred, target, f0)
    torch.testing.assert_close(terms["esr"], esr(p, t, "none"), rtol=1e-12, atol=0)
    default = DistillationLoss(FS, reduction="none")
    assert default.lowpass.num_taps == 63 and not torch.equal(default(pred, target, f0)[1]["esr"], terms["esr"])
    with pytest.raises(ValueError, match="below Nyquist"):
        DistillationLoss(FS, lowpass_hz=(20_000.0, 25_000.0))
    with pytest.raises(ValueError, match="pass_hz < stop_hz"):
        DistillationLoss(FS, lowpass_hz=(14_000.0, 10_000.0))


def test_reduction_arguments_are_checked():
    with pytest.raises(ValueError, match="reduction must be one of"):
        DistillationLoss(FS, reduction="sum")
    with pytest.raises(ValueError, match="esr_reduction='pooled' contradicts reduction='none'"):
        DistillationLoss(FS, reduction="none", esr_reduction="pooled")
    with pytest.raises(ValueError, match="dc_reduction must be one of"):
        DistillationLoss(FS, dc_reduction="sum")
    assert DistillationLoss(FS, esr_reduction="mean").esr_reduction == "mean"
    assert DistillationLoss(FS, reduction="mean", esr_reduction="mean").esr_reduction == "none"


# ----------------------------------------------------------------------------- asr on a result
@pytest.mark.parametrize("reduction", ["none", "mean", "pooled"])
def test_asr_reuses_a_bandlimit_result(batch, reduction):
    x, _, f0 = _tones([55.0, 440.0, 7000.0])
    r = bandlimit(x, f0, FS)
    direct = asr(x, f0, FS, reduction)
    assert torch.equal(asr(r, reduction=reduction), direct)
    assert torch.equal(asr(r, sample_rate=FS, reduction=reduction), direct)
    want = r.aliases.pow(2).sum(-1) / r.bandlimited.pow(2).sum(-1)
    if reduction == "none":
        assert torch.equal(direct, want)


def test_asr_argument_errors(batch):
    x, _, f0 = batch
    r = bandlimit(x, f0, FS)
    with pytest.raises(TypeError, match="already holds f0"):
        asr(r, f0)
    with pytest.raises(ValueError, match="computed at 48000 Hz"):
        asr(r, sample_rate=44_100)
    with pytest.raises(TypeError, match="needs f0"):
        asr(x)


# ----------------------------------------------------------------------------- window caches
def test_window_caches_stay_bounded():
    bandlimit_module._device_windows.clear()
    lengths = [1000 + 2 * k for k in range(DEVICE_WINDOW_CACHE_SIZE + HOST_WINDOW_CACHE_SIZE + 3)]
    for n in lengths:
        x = torch.sin(torch.arange(n, dtype=torch.float64))[None]
        harmonic_analysis(x, 100.0, n)
        assert len(bandlimit_module._device_windows) <= DEVICE_WINDOW_CACHE_SIZE
        assert bandlimit_module._window_np.cache_info().currsize <= HOST_WINDOW_CACHE_SIZE
    # least recently used dropped first: the last DEVICE_WINDOW_CACHE_SIZE lengths are kept
    kept = [key[0] for key in bandlimit_module._device_windows]
    assert kept == lengths[-DEVICE_WINDOW_CACHE_SIZE:]
    harmonic_analysis(torch.ones(1, lengths[-DEVICE_WINDOW_CACHE_SIZE]), 100.0, lengths[-DEVICE_WINDOW_CACHE_SIZE])
    assert [key[0] for key in bandlimit_module._device_windows][-1] == lengths[-DEVICE_WINDOW_CACHE_SIZE]
    assert len(bandlimit_module._device_windows) == DEVICE_WINDOW_CACHE_SIZE


def test_chebyshev_window_values_and_a_private_copy():
    w = chebyshev_window(4800)
    np.testing.assert_array_equal(w.numpy(), chebwin(4800, at=120.0, sym=False))
    w.zero_()  # the caller's copy: the cached window is untouched
    np.testing.assert_array_equal(chebyshev_window(4800).numpy(), chebwin(4800, at=120.0, sym=False))


# ----------------------------------------------------------------------------- analysis module
@pytest.fixture(scope="module")
def analysed():
    # f0 that do not divide the rate (there every alias lands on a harmonic)
    params = analysis_tone_params(FS, num_tones=3, f_min=210.0, f_max=5900.0, levels_db=(-18.0, -6.0))
    models = {"teacher": OversampledWaveshaper(FS, gain=10.0, factor=1, shape="hardclip"),
              "student": OversampledWaveshaper(FS, gain=3.0, factor=4)}
    outs = {k: model_outputs(m, params, batch_size=4) for k, m in models.items()}
    return params, outs, analyse_outputs(outs, params.f0, FS, batch_size=4)


def test_model_outputs_are_the_last_second_of_the_response(analysed):
    params, outs, _ = analysed
    teacher = OversampledWaveshaper(FS, gain=10.0, factor=1, shape="hardclip")
    x = aa_distill.synthesize_tones(params, torch.float64)
    assert outs["teacher"].shape == (6, FS) and outs["teacher"].dtype == torch.float64
    assert torch.equal(outs["teacher"], teacher(x)[:, -FS:])


def test_analysis_invariants(analysed):
    params, outs, metrics = analysed
    t, s = metrics["teacher"], metrics["student"]
    assert set(t.per_tone) == set(ANALYSIS_METRICS) and t.per_band["nmr_s"].shape == (6, len(ANALYSIS_BANDS_HZ))
    # the teacher is the reference: HESR-T is exactly 0, NMR-T is NMR-S and ESR-T is its ASR
    assert torch.equal(t.per_tone["hesr_t"], torch.zeros(6, dtype=torch.float64))
    assert torch.equal(t.per_tone["nmr_t"], t.per_tone["nmr_s"])
    torch.testing.assert_close(t.per_tone["esr_t"], t.per_tone["asr"], rtol=1e-12, atol=0)
    # ASR is asr() of the model's output; its bands sum to it up to the part above 20 kHz
    for key, mm in metrics.items():  # (in the same batches: the FFT sizes depend on the batch)
        direct = torch.cat([asr(outs[key][sl], params.f0[sl], FS) for sl in (slice(0, 4), slice(4, 6))])
        assert torch.equal(mm.per_tone["asr"], direct)
        assert bool((mm.per_band["asr"].sum(-1) <= mm.per_tone["asr"] * (1 + 1e-12)).all())
    # bands that cover 0 Hz .. Nyquist split the ASR and the ESR-T exactly
    whole = analyse_outputs(outs, params.f0, FS, batch_size=4, bands=((0.0, 9000.0), (9000.0, FS / 2 + 1)))
    for mm in whole.values():
        for m in ("asr", "esr_t"):
            torch.testing.assert_close(mm.per_band[m].sum(-1), mm.per_tone[m], rtol=1e-9, atol=0)
    # NMR-T of the student against the bandlimited teacher, recomputed directly
    rt = bandlimit(outs["teacher"], params.f0, FS).bandlimited
    torch.testing.assert_close(s.per_tone["nmr_t"], NMR(FS, dtype=torch.float64)(outs["student"], rt),
                               rtol=1e-12, atol=0)
    # the naive hard clipper aliases far more than the 4x oversampled soft one
    assert bool((t.per_tone["asr"] > 10 * s.per_tone["asr"]).all())


def test_rows(analysed):
    params, _, metrics = analysed
    levels = torch.tensor([-18.0] * 3 + [-6.0] * 3, dtype=torch.float64)
    tones = per_tone_rows(params, levels, metrics)
    assert len(tones) == 2 * 6 and tones[0]["model"] == "teacher" and tones[-1]["model"] == "student"
    assert tones[0]["hesr_t_db"] == -math.inf
    assert tones[7]["nmr_s_db"] == pytest.approx(10 * math.log10(float(metrics["student"].per_tone["nmr_s"][1])))
    bands = per_band_rows(levels, metrics)
    assert len(bands) == 2 * 3 * len(ANALYSIS_BANDS_HZ)  # models x (all, -18, -6) x bands
    assert [r["level_db"] for r in bands[:: len(ANALYSIS_BANDS_HZ)][:3]] == ["all", -18.0, -6.0]
    assert bands[0]["num_tones"] == 6 and bands[len(ANALYSIS_BANDS_HZ)]["num_tones"] == 3
    overall = overall_rows(metrics)
    want = float((10 * torch.log10(metrics["student"].per_tone["asr"])).mean())
    assert overall[1]["model"] == "student" and overall[1]["asr_db"] == pytest.approx(want, rel=1e-12)
    assert set(overall[0]) == {"model"} | {f"{m}_db" for m in ANALYSIS_METRICS}


def test_target_verdicts_known_values():
    """NMR-S < -10 dB and HESR-T (= HESR-R) < -15 dB, strictly; nan (nothing in the band) is
    no verdict and does not count."""
    v = target_verdicts({"nmr_s_db": -12.0, "hesr_t_db": -14.0})
    assert v == {"nmr_s_pass": True, "hesr_t_pass": False, "meets_targets": False}
    assert target_verdicts({"nmr_s_db": -10.0, "hesr_t_db": -math.inf})["nmr_s_pass"] is False  # not below
    assert target_verdicts({"nmr_s_db": -10.5, "hesr_t_db": math.nan}) == {
        "nmr_s_pass": True, "hesr_t_pass": None, "meets_targets": True}
    assert target_verdicts({"nmr_s_db": math.nan, "hesr_t_db": math.nan})["meets_targets"] is None
    assert target_verdicts({"nmr_s_db": -5.0}, {"nmr_s": 0.0}) == {"nmr_s_pass": True, "meets_targets": True}


def test_per_band_verdicts_per_tone_band_rows_and_summary(analysed):
    params, _, metrics = analysed
    levels = torch.tensor([-18.0] * 3 + [-6.0] * 3, dtype=torch.float64)
    nb = len(ANALYSIS_BANDS_HZ)
    bands = per_band_rows(levels, metrics)
    for r in bands:
        assert r["nmr_s_pass"] == (r["nmr_s_db"] < -10.0) and r["hesr_t_pass"] == (r["hesr_t_db"] < -15.0)
        assert r["meets_targets"] == (r["nmr_s_pass"] and r["hesr_t_pass"])
    # per tone and band: the values whose mean per_band_rows reports
    rows = per_tone_band_rows(params, levels, metrics)
    assert len(rows) == 2 * 6 * nb
    assert [r["band"] for r in rows[:nb]] == [r["band"] for r in bands[:nb]]
    assert rows[nb + 2]["f0_hz"] == float(params.f0[1]) and rows[nb + 2]["band"] == "2k-8k"
    assert rows[nb + 2]["nmr_s_db"] == pytest.approx(
        10 * math.log10(float(metrics["teacher"].per_band["nmr_s"][1, 2])), rel=1e-12)
    for model in ("teacher", "student"):
        for b in range(nb):
            mine = [r for r in rows if r["model"] == model and r["band"] == bands[b]["band"]]
            want = next(r for r in bands if r["model"] == model and r["level_db"] == "all"
                        and r["band"] == mine[0]["band"])
            vals = [r["asr_db"] for r in mine if not math.isnan(r["asr_db"])]
            assert want["asr_db"] == pytest.approx(sum(vals) / len(vals), rel=1e-12)
    # the naive hard clipper: NMR-S -3.6 dB in 2k-8k fails, its own HESR-T (-inf) passes; the
    # oversampled soft clipper (another amp) keeps aliases inaudible but not the harmonics
    summ = target_summary(bands)
    assert summ["targets_db"] == {"nmr_s": -10.0, "hesr_t": -15.0}
    t, s = summ["per_band"]["teacher"], summ["per_band"]["student"]
    assert list(t) == ["20-500", "500-2k", "2k-8k", "8k-12k", "12k-20k"]
    assert t["2k-8k"]["nmr_s_db"] == pytest.approx(-3.57, abs=0.05) and t["2k-8k"]["nmr_s_pass"] is False
    assert [b["meets_targets"] for b in t.values()] == [True, True, False, True, True]
    assert all(b["hesr_t_db"] == -math.inf and b["hesr_t_pass"] for b in t.values())
    assert all(b["nmr_s_pass"] and not b["hesr_t_pass"] for b in s.values())
    assert s["20-500"]["band_hz"] == [20.0, 500.0] and s["20-500"]["num_tones"] == 6
    assert summ["meets_targets"] == {"teacher": False, "student": False}
    # a model meets the targets when every band does (bands without a verdict do not count)
    passing = [{**r, "nmr_s_db": -20.0, "hesr_t_db": -20.0 if r["band"] != "12k-20k" else math.nan}
               for r in bands]
    assert target_summary(passing)["meets_targets"] == {"teacher": True, "student": True}


def test_mean_db_known_values():
    assert mean_db(torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)) == pytest.approx(10.0, abs=1e-12)
    assert mean_db(torch.tensor([10.0, math.nan], dtype=torch.float64)) == pytest.approx(10.0, abs=1e-12)
    assert mean_db(torch.tensor([0.0, 10.0], dtype=torch.float64)) == -math.inf
    assert math.isnan(mean_db(torch.tensor([math.nan], dtype=torch.float64)))


def test_analyse_outputs_needs_the_teacher(analysed):
    params, outs, _ = analysed
    with pytest.raises(ValueError, match="no 'teacher' entry"):
        analyse_outputs({"student": outs["student"]}, params.f0, FS)

"""Noise mixing, temporal augmentation and the non-stationary composer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from se_data.mixing import mix_at_snr
from se_data.noise_augment import TemporalAugment, augment_noise, mix_noises
from se_data.nonstationary import add_events, compose_nonstationary, concat_noises
from se_data.nonstationary import mix_with_snr_trajectory, snr_trajectory, synthetic_event
from se_data.synthetic_noise import brown_noise, white_noise

SR = 16000


def _rms(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.sqrt(np.mean(x**2)))


@pytest.fixture(scope="module")
def real(shared_data):
    n1, _ = sf.read(shared_data / "noise" / "noise1.wav", dtype="float32")
    n2, _ = sf.read(shared_data / "noise" / "noise2.wav", dtype="float32")
    s, _ = sf.read(shared_data / "speech" / "voicebank16k" / "clean" / "p287_004.wav", dtype="float32")
    return torch.from_numpy(n1), torch.from_numpy(n2), torch.from_numpy(s)


def test_mix_noises_weights_and_reproducibility(real):
    n1, n2, _ = real
    mix, p = mix_noises(n1, n2, 3 * SR, seed=5, weight=0.25)
    assert mix.shape == (3 * SR,) and math.isclose(_rms(mix), 1.0, rel_tol=1e-5)
    a = n1.double().numpy()[p["offset_a"]:p["offset_a"] + 3 * SR]
    idx = (p["offset_b"] + np.arange(3 * SR)) % n2.numel()  # noise2 is 5 s: cropped, maybe looped
    b = n2.double().numpy()[idx]
    expect = math.sqrt(0.25) * a / _rms(a) + math.sqrt(0.75) * b / _rms(b)
    np.testing.assert_allclose(mix.numpy(), expect / _rms(expect), atol=1e-5)
    again, q = mix_noises(n1, n2, 3 * SR, seed=5, weight=0.25)
    assert torch.equal(mix, again) and p == q
    _, r = mix_noises(n1, n2, 1000, seed=1)
    assert 0.3 <= r["weight"] <= 0.7
    with pytest.raises(ValueError, match="weight"):
        mix_noises(n1, n2, 100, seed=0, weight=1.5)


def test_augment_noise_params_rebuild_the_output(real):
    n1, _, _ = real
    cfg = TemporalAugment(shift=True, gain_db=(-6.0, 6.0), p_reverse=1.0, p_flip=1.0)
    out, p = augment_noise(n1, 2 * SR, seed=9, config=cfg)
    assert p["reversed"] and p["flipped"] and -6.0 <= p["gain_db"] <= 6.0
    seg = n1.double().numpy()[p["offset"]:p["offset"] + 2 * SR]
    expect = -np.roll(seg / _rms(seg), p["shift"])[::-1] * 10 ** (p["gain_db"] / 20)
    np.testing.assert_allclose(out.numpy(), expect, atol=1e-5)
    assert math.isclose(_rms(out), 10 ** (p["gain_db"] / 20), rel_tol=1e-5)
    plain, q = augment_noise(n1, 2 * SR, seed=9, config=TemporalAugment(False, (0.0, 0.0), 0.0, 0.0))
    assert q["shift"] == 0 and not q["reversed"] and q["gain_db"] == 0.0
    # looping: a 5000-sample noise cropped to 2 s
    looped, _ = augment_noise(n1[:5000], 2 * SR, seed=1)
    assert looped.shape == (2 * SR,) and torch.isfinite(looped).all()
    assert torch.equal(out, augment_noise(n1, 2 * SR, seed=9, config=cfg)[0])


def test_concat_noises_segments_and_equal_power_crossfades():
    a, b = white_noise(4 * SR, seed=1), brown_noise(4 * SR, seed=2)
    out, info = concat_noises([a, b], 4 * SR, SR, seed=3, n_segments=3, crossfade_s=0.1, level_db=(0.0, 0.0),
                              labels=["white", "brown"])
    segs, xf = info["segments"], info["crossfade"]
    assert [s["label"] for s in segs] in (["white", "brown", "white"], ["brown", "white", "brown"])
    assert segs[0]["start"] == 0 and segs[-1]["end"] == 4 * SR and xf == 1600
    assert all(s["end"] - s["start"] >= SR // 2 for s in segs)
    src = [a.double().numpy(), b.double().numpy()]
    for j, s in enumerate(segs):  # away from the crossfades each segment is its noise, RMS-normalised piece
        lo, hi = max(0, s["start"] - xf), min(4 * SR, s["end"] + xf)
        piece = np.roll(src[s["index"]], -s["offset"])[lo:hi]
        inner = slice(s["start"] + xf // 2 + (0 if j else -xf // 2), s["end"] - xf // 2)
        np.testing.assert_allclose(out.numpy()[inner], (piece / _rms(piece))[inner.start - lo:inner.stop - lo],
                                   atol=1e-5)
    # equal power: within the crossfade the two weights are cos/sin of the same angle
    t = np.arange(4 * SR)
    b1 = segs[1]["start"]
    u = np.clip((t - (b1 - xf / 2)) / xf, 0, 1)
    assert np.allclose(np.cos(0.5 * np.pi * u) ** 2 + np.sin(0.5 * np.pi * u) ** 2, 1.0)
    assert torch.equal(out, concat_noises([a, b], 4 * SR, SR, seed=3, n_segments=3, crossfade_s=0.1,
                                          level_db=(0.0, 0.0))[0])


def test_add_events_levels_and_positions():
    bg = white_noise(3 * SR, seed=0)
    out, info = add_events(bg, SR, seed=4, n_events=3, level_db=(10.0, 10.0))
    ev = info["events"]
    assert len(ev) == 3 and {e["kind"] for e in ev} <= {"knock", "beep", "click"}
    mask = np.zeros(3 * SR, bool)
    for e in ev:
        mask[e["start"]:e["end"]] = True
    assert np.array_equal(out.numpy()[~mask], bg.numpy()[~mask])  # untouched outside the events
    for e in ev:  # an event that does not overlap another adds exactly 10 dB over the background RMS
        others = [o for o in ev if o is not e and o["start"] < e["end"] and e["start"] < o["end"]]
        if not others:
            added = out.double().numpy()[e["start"]:e["end"]] - bg.double().numpy()[e["start"]:e["end"]]
            assert abs(20 * np.log10(_rms(added) / _rms(bg)) - 10.0) < 1e-3
    clip = synthetic_event("beep", SR, seed=1)
    assert math.isclose(_rms(clip), 1.0, rel_tol=1e-5) and 0.1 * SR <= clip.numel() <= 0.4 * SR
    with pytest.raises(ValueError, match="unknown event kind"):
        synthetic_event("siren", SR, seed=0)
    with pytest.raises(ValueError, match="silent"):
        add_events(torch.zeros(SR), SR, seed=0)


@pytest.mark.parametrize("kind", ["random_walk", "linear", "steps", "sine"])
def test_snr_trajectory_kinds(kind):
    c = snr_trajectory(5 * SR, SR, seed=2, kind=kind, snr_range=(-5.0, 15.0))
    assert c.shape == (5 * SR,) and c.dtype == torch.float64
    assert float(c.min()) >= -5.0 - 1e-9 and float(c.max()) <= 15.0 + 1e-9
    assert float(c.max() - c.min()) > 0.5  # it actually varies
    if kind == "linear":
        assert float(c.diff().diff().abs().max()) < 1e-9
    if kind == "steps":  # piecewise constant over 0.5 s knots
        assert torch.all(c.view(-1, SR // 2).diff(dim=1) == 0)
    assert torch.equal(c, snr_trajectory(5 * SR, SR, seed=2, kind=kind, snr_range=(-5.0, 15.0)))


def test_time_varying_snr_mixing(real):
    _, _, s = real
    n = white_noise(s.numel(), seed=0)
    # a constant curve is plain mix_at_snr
    const = torch.full((s.numel(),), 7.0, dtype=torch.float64)
    y1, i1 = mix_with_snr_trajectory(s, n, const, offset=0)
    y2, i2 = mix_at_snr(s, n, 7.0, offset=0)
    assert abs(i1["snr_db"] - 7.0) < 1e-9
    torch.testing.assert_close(y1, y2, rtol=0, atol=1e-6)
    # a step curve: the local noise level relative to the long-term speech level follows it
    curve = snr_trajectory(s.numel(), SR, seed=1, kind="steps", snr_range=(-5.0, 15.0), knot_s=0.5)
    y, info = mix_with_snr_trajectory(s, n, curve, offset=0)
    s64 = s.double().numpy()
    noise_part = y.double().numpy() - s64
    ps = np.mean(s64**2)
    step = SR // 2
    for k in range(s.numel() // step):
        blk = slice(k * step, (k + 1) * step)
        local = 10 * np.log10(ps / np.mean(noise_part[blk] ** 2))
        n64 = n.double().numpy()
        expect = -10 * np.log10(np.mean(n64[blk] ** 2 * 10 ** (-curve.numpy()[blk] / 10)) / np.mean(n64**2))
        assert abs(local - expect) < 1e-4
        assert abs(local - float(curve[k * step])) < 0.5  # white noise is stationary: ~ the curve itself
    with pytest.raises(ValueError, match="one dB value per sample"):
        mix_with_snr_trajectory(s, n, curve[:-1], offset=0)


def test_compose_nonstationary(real):
    n1, n2, _ = real
    x, info = compose_nonstationary([n1, n2, white_noise(SR, seed=0)], 4 * SR, SR, seed=8,
                                    labels=["noise1", "noise2", "white"], event_rate_hz=1.0)
    assert x.shape == (4 * SR,) and math.isclose(_rms(x), 1.0, rel_tol=1e-5)
    assert len(info["segments"]) == 2 and all(s["label"] in {"noise1", "noise2", "white"} for s in info["segments"])
    assert info["segments"][0]["index"] != info["segments"][1]["index"]
    assert "events" in info
    again, _ = compose_nonstationary([n1, n2, white_noise(SR, seed=0)], 4 * SR, SR, seed=8,
                                     labels=["noise1", "noise2", "white"], event_rate_hz=1.0)
    assert torch.equal(x, again)

"""Sine-tone data, cached teacher targets and the .nam-exportable student."""

from __future__ import annotations

import json
import math

import pytest
import torch

from aa_distill import (
    DistillationLoss,
    NamWaveNet,
    SineToneDataset,
    bandlimit,
    check_teacher_student_pair,
    check_warmup,
    load_nam,
    midi_to_hz,
    sample_tone_params,
    save_nam,
    student_from_teacher,
    student_metadata,
    student_wavenet,
    synthesize_tones,
    teacher_targets,
    validation_tone_params,
)


@pytest.fixture(scope="module")
def tiny_path(shared_data):
    return shared_data / "nam" / "core_wavenet_tiny.nam"


# ----------------------------------------------------------------------------- tones
def test_tone_params_are_seeded_and_follow_the_paper():
    g = torch.Generator().manual_seed(7)
    p = sample_tone_params(4000, 48_000, generator=g)
    q = sample_tone_params(4000, 48_000, generator=torch.Generator().manual_seed(7))
    assert torch.equal(p.f0, q.f0) and torch.equal(p.amplitude, q.amplitude)
    assert p.f0.dtype == torch.float64
    assert float(p.midi.min()) >= 21 and float(p.midi.max()) <= 127
    assert not torch.equal(p.midi, p.midi.round())  # non-integer notes
    assert torch.allclose(p.f0, 440 * 2 ** ((p.midi - 69) / 12), rtol=1e-15)
    assert float(p.phase.min()) >= 0 and float(p.phase.max()) < 2 * math.pi
    # linear U(0, 1): ~90 % of tones above -20 dBFS; uniform in dB (-60..0): ~1/3
    assert float((p.amplitude > 0.1).double().mean()) == pytest.approx(0.9, abs=0.03)
    d = sample_tone_params(4000, 48_000, amplitude="db", generator=g)
    assert float((d.amplitude > 0.1).double().mean()) == pytest.approx(1 / 3, abs=0.03)
    assert float(midi_to_hz(21)) == pytest.approx(27.5) and float(midi_to_hz(69)) == 440.0
    with pytest.raises(ValueError, match="Nyquist"):
        sample_tone_params(4, 16_000)


def test_linear_hz_f0_sampling():
    """f0 ~ U(f0_range_hz) in Hz (the extended-range experiment: 27.5 Hz - 18 kHz), the MIDI note
    matching it; amplitudes and phases are the MIDI draw's (the same uniform numbers)."""
    n = 20_000
    p = sample_tone_params(n, 48_000, f0_sampling="linear_hz", generator=torch.Generator().manual_seed(7))
    q = sample_tone_params(n, 48_000, generator=torch.Generator().manual_seed(7))
    assert torch.equal(p.amplitude, q.amplitude) and torch.equal(p.phase, q.phase)
    assert float(p.f0.min()) >= 27.5 and float(p.f0.max()) <= 18_000.0 and p.f0.dtype == torch.float64
    torch.testing.assert_close(p.f0, midi_to_hz(p.midi), rtol=1e-13, atol=0)
    # uniform in Hz: mean (27.5 + 18000) / 2 (std of the mean 5200 / sqrt(n) = 37 Hz), and
    # (18000 - 12500) / 17972.5 = 30.6 % of the tones above the MIDI draw's top (12.5 kHz), where
    # the MIDI draw has none and puts half its tones below 1.2 kHz
    assert float(p.f0.mean()) == pytest.approx((27.5 + 18_000.0) / 2, abs=150.0)
    assert float((p.f0 > 12_543.9).double().mean()) == pytest.approx(5456.1 / 17_972.5, abs=0.01)
    assert float((q.f0 > 12_543.9).double().mean()) == 0.0
    assert float((p.f0 < 1_200.0).double().mean()) == pytest.approx(1172.5 / 17_972.5, abs=0.01)
    r = sample_tone_params(3, 44_100, f0_sampling="linear_hz", f0_range_hz=(100.0, 200.0),
                           generator=torch.Generator().manual_seed(7))
    u = torch.rand(3, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)[0]
    assert torch.equal(r.f0, 100.0 + (200.0 - 100.0) * u)  # the first uniform row, scaled to the range
    with pytest.raises(ValueError, match="Nyquist"):
        sample_tone_params(4, 32_000, f0_sampling="linear_hz")  # 18 kHz >= 16 kHz
    with pytest.raises(ValueError, match="increasing"):
        sample_tone_params(4, 48_000, f0_sampling="linear_hz", f0_range_hz=(500.0, 400.0))
    with pytest.raises(ValueError, match="f0_sampling"):
        sample_tone_params(4, 48_000, f0_sampling="log")
    # only the chosen range is checked: a MIDI range above Nyquist does not matter in Hz mode
    sample_tone_params(1, 16_000, f0_sampling="linear_hz", f0_range_hz=(50.0, 7000.0))


def test_synthesized_tones_and_warmup_rule():
    p = sample_tone_params(3, 48_000, generator=torch.Generator().manual_seed(0))
    x = synthesize_tones(p)
    assert x.shape == (3, 57_600) and x.dtype == torch.float64
    n = torch.tensor([0, 1234, 57_599], dtype=torch.float64)
    expect = p.amplitude[:, None] * torch.sin(2 * math.pi * p.f0[:, None] * n / 48_000
                                               + p.phase[:, None])
    assert torch.allclose(x[:, n.long()], expect, atol=1e-12)
    assert p.warmup == 9600
    check_warmup(p, 4093)
    short = sample_tone_params(1, 48_000, duration=1.05)
    with pytest.raises(ValueError, match=r"2400 samples.*4093 samples.*1\.0853"):
        check_warmup(short, 4093)  # the reference's NAM set-up had this flaw


def test_validation_grid():
    v = validation_tone_params(48_000)
    assert len(v) == 88 * 3
    assert float(v.f0[0]) == pytest.approx(27.5) and float(v.f0[48]) == pytest.approx(440.0)
    assert torch.allclose(v.amplitude[[0, 88, 176]],
                          10 ** (torch.tensor([-36.0, -18.0, -6.0], dtype=torch.float64) / 20))
    assert float(v.phase.abs().max()) == 0.0


def test_teacher_targets_in_float64_and_cached_dataset(tiny_path):
    teacher = load_nam(tiny_path)  # float32 as loaded
    p = sample_tone_params(5, 48_000, generator=torch.Generator().manual_seed(1))
    t = teacher_targets(teacher, p, batch_size=2)
    assert t.shape == (5, 48_000) and t.dtype == torch.float64
    assert teacher.dtype == torch.float32  # the caller's teacher is untouched
    t64 = load_nam(tiny_path, torch.float64)
    with torch.no_grad():
        y = t64(synthesize_tones(p))
    # same float64 computation (batches of 2 vs 5 only change FFT sizes: rounding level)
    assert torch.allclose(t, bandlimit(y, p.f0, 48_000).bandlimited, rtol=0, atol=1e-13)
    ds = SineToneDataset.from_teacher(teacher, p, store_dtype=torch.float32)
    x0, y0, f0 = ds[3]
    assert x0.shape == (57_600,) and y0.dtype == torch.float32 and float(f0) == float(p.f0[3])
    xb, yb, fb = ds.batch(torch.tensor([3, 1]))
    assert torch.equal(xb[0], x0) and torch.equal(yb[0], y0) and torch.equal(fb, p.f0[[3, 1]])
    with pytest.raises(ValueError, match="44100 Hz"):
        teacher_targets(teacher, sample_tone_params(1, 44_100))


# ----------------------------------------------------------------------------- students
@pytest.mark.parametrize("preset, n", [("standard", 13_802), ("lite", 6_554), ("feather", 3_026)])
def test_student_presets_match_nam(preset, n):
    s = student_wavenet(preset, sample_rate=48_000, seed=0)
    assert s.num_weights == n and s.receptive_field == 4093
    again = student_wavenet(preset, sample_rate=48_000, seed=0)  # seeded init
    assert (s.export_weights() == again.export_weights()).all()
    cfg = s.nam_config()
    assert cfg["head_scale"] == 0.02 and cfg["head"] is None
    assert [la["head_bias"] for la in cfg["layers"]] == [False, True]


def test_student_exports_to_nam_and_reloads_identically(tiny_path, tmp_path):
    teacher = load_nam(tiny_path)
    s = student_wavenet("nano", sample_rate=teacher.sample_rate, seed=3)
    meta = student_metadata(tiny_path, teacher, epochs=0)
    path = save_nam(s, tmp_path / "student.nam", metadata=meta)
    doc = json.loads(path.read_text())
    assert doc["architecture"] == "WaveNet" and doc["sample_rate"] == 48_000
    rec = doc["metadata"]["aa_distill"]
    assert rec["teacher_sample_rate"] == 48_000 and rec["teacher_file"] == "core_wavenet_tiny.nam"
    assert len(rec["teacher_sha256"]) == 64
    back = load_nam(path)
    assert isinstance(back, NamWaveNet)
    x = torch.randn(2, 6000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(back(x), s(x))
    assert check_teacher_student_pair(teacher, back, tiny_path) == "verified"
    assert check_teacher_student_pair(teacher, s, tiny_path) == "unverified"  # no record


def test_pair_check_refuses_mismatches(shared_data, tiny_path, tmp_path):
    teacher = load_nam(tiny_path)
    other = shared_data / "nam" / "boss_sd1_feather.nam"
    s = student_wavenet("nano", sample_rate=48_000, seed=0)
    s.metadata = student_metadata(other, load_nam(other))
    with pytest.raises(ValueError, match="boss_sd1_feather.nam.*not from core_wavenet_tiny.nam"):
        check_teacher_student_pair(teacher, s, tiny_path)
    s44 = student_wavenet("nano", sample_rate=44_100, seed=0)
    with pytest.raises(ValueError, match="sample rates differ"):
        check_teacher_student_pair(teacher, s44, tiny_path)


def test_student_from_teacher_starts_equal(tiny_path):
    teacher = load_nam(tiny_path)
    student = student_from_teacher(teacher)
    assert student.metadata is None and student is not teacher
    x = torch.randn(2, 3000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(student(x), teacher(x))
    student.arrays[0].rechannel.weight.data.zero_()
    assert float(teacher.arrays[0].rechannel.weight.detach().abs().sum()) > 0  # a copy


def test_a_few_distillation_steps_reduce_the_loss(tiny_path):
    teacher = load_nam(tiny_path)
    p = sample_tone_params(2, 48_000, generator=torch.Generator().manual_seed(2),
                           midi_range=(60.0, 100.0))
    ds = SineToneDataset.from_teacher(teacher, p)
    x, target, f0 = ds.batch(torch.arange(2), dtype=torch.float32)
    student = student_wavenet("nano", sample_rate=48_000, seed=0,
                              dilations=((1, 2, 4), (1, 2, 4, 8)))  # short: a fast test
    loss_fn = DistillationLoss(48_000, lam=1.0, nmr_dtype=torch.float32)
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)
    losses = []
    for _ in range(4):
        pred = student(x[:, -(48_000 + student.receptive_field - 1):], pad_start=False)
        loss, terms = loss_fn(pred, target.float(), f0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert math.isfinite(losses[0]) and losses[-1] < losses[0]


def test_lstm_teacher_targets(shared_data):
    teacher = load_nam(shared_data / "nam" / "core_lstm_tiny.nam", torch.float64)
    p = sample_tone_params(1, 48_000, generator=torch.Generator().manual_seed(4))
    t = teacher_targets(teacher, p)
    with torch.no_grad():
        y = teacher(synthesize_tones(p))
    assert teacher.dtype == torch.float64  # used as is, not copied or converted
    assert torch.allclose(t, bandlimit(y, p.f0, 48_000).bandlimited, rtol=0, atol=1e-13)
    assert float(t.abs().max()) > 1e-4

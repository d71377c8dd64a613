"""A distillation run's library parts (what tools/train_aa.py composes): the thinned validation
grid, ToneDataSpec and the dataset round trip, make_student / student_config, the exported
student's metadata, the built-in teacher's record and pair check, predict_last_second,
validation_metrics and the summary. Numbers are compared in float64 against the computation
the training tool did before these functions existed, so they hold at any thread count."""

from __future__ import annotations

import io
import json
import math

import pytest
import torch

from aa_distill import (
    VALIDATION_METRICS,
    DistillationLoss,
    OversampledWaveshaper,
    SineToneDataset,
    ToneDataSpec,
    ToneParams,
    bandlimit,
    builtin_teacher_record,
    check_teacher_student_pair,
    dc_loss,
    distillation_metadata,
    distillation_summary,
    esr,
    lambda_weights,
    make_student,
    midi_to_hz,
    predict_last_second,
    sample_tone_params,
    student_config,
    student_wavenet,
    validation_metrics,
    validation_tone_params,
)

FS = 48_000
TOY_STUDENT = dict(channels=(2, 1), dilations1=(1, 2, 4), dilations2=(1, 2))  # 89 weights, rf 21


@pytest.fixture(scope="module")
def teacher():
    """The built-in analytic teacher at 2x oversampling (cheap), float64."""
    return OversampledWaveshaper(FS, gain=10.0, factor=2, shape="hardclip").to(torch.float64).eval()


@pytest.fixture(scope="module")
def valid_data(teacher):
    """Three validation tones (MIDI 21, 64, 108 at -6 dBFS) with float64 targets."""
    p = validation_tone_params(FS, levels_db=(-6.0,), num_notes=3)
    return SineToneDataset.from_teacher(teacher, p, batch_size=3)


@pytest.fixture(scope="module")
def toy_student(teacher):
    s, kind = make_student(teacher, "nano", sample_rate=FS, seed=3, **TOY_STUDENT)
    assert kind == "nano"
    return s.to(torch.float64)


# ----------------------------------------------------------------------------- tones
def _old_valid_params(n: int, duration: float, levels_db: tuple[float, ...]) -> ToneParams:
    """The training tool's former grid thinning: the full grid, then the chosen notes kept."""
    notes = torch.linspace(21, 108, n).round().to(torch.int64).unique() if n > 1 else torch.tensor([69])
    full = validation_tone_params(FS, duration=duration, levels_db=levels_db)
    return full.subset(torch.isin(full.midi.to(torch.int64), notes))


@pytest.mark.parametrize("n", [1, 2, 6, 88, 200])
def test_thinned_validation_grid_equals_the_former_subset(n):
    levels = (-36.0, -18.0, -6.0)
    got = validation_tone_params(FS, levels_db=levels, num_notes=n)
    ref = _old_valid_params(n, 1.2, levels)
    for k in ("midi", "f0", "amplitude", "phase"):
        assert torch.equal(getattr(got, k), getattr(ref, k)), k
    assert len(got) == min(n, 88) * 3 and got.f0.dtype == torch.float64


def test_thinned_validation_grid_known_values():
    v = validation_tone_params(FS, levels_db=(-6.0, 0.0), num_notes=2)
    assert v.midi.tolist() == [21.0, 108.0, 21.0, 108.0]
    assert float(v.f0[0]) == pytest.approx(27.5, rel=1e-15)
    assert float(v.f0[1]) == pytest.approx(440.0 * 2 ** (39 / 12), rel=1e-15)  # 4186.0 Hz
    assert v.amplitude.tolist() == pytest.approx([10 ** (-6 / 20)] * 2 + [1.0] * 2, rel=1e-15)
    one = validation_tone_params(FS, levels_db=(-6.0,), num_notes=1)
    assert one.f0.tolist() == [440.0]
    assert torch.equal(validation_tone_params(FS, num_notes=None).f0, validation_tone_params(FS).f0)
    with pytest.raises(ValueError, match="num_notes must be >= 1"):
        validation_tone_params(FS, num_notes=0)
    with pytest.raises(ValueError, match="A4"):
        validation_tone_params(FS, midi=(21, 60), num_notes=1)


def test_tone_data_spec_builds_the_former_tones_and_fingerprint():
    spec = ToneDataSpec(num_tones=5, duration=1.1, midi_range=[30.0, 90.0], amplitude="db",
                        db_range=[-40.0, -3.0], valid_notes=4, valid_levels_db=[-18.0], seed=11,
                        float64=True)
    assert spec.midi_range == (30.0, 90.0) and spec.valid_levels_db == (-18.0,)
    train, valid = spec.tone_params(FS)
    ref = sample_tone_params(5, FS, duration=1.1, midi_range=(30.0, 90.0), amplitude="db",
                             db_range=(-40.0, -3.0), generator=torch.Generator().manual_seed(11))
    for k in ("midi", "f0", "amplitude", "phase"):
        assert torch.equal(getattr(train, k), getattr(ref, k)), k
        assert torch.equal(getattr(valid, k), getattr(_old_valid_params(4, 1.1, (-18.0,)), k)), k
    assert (train.sample_rate, train.duration, len(valid)) == (FS, 1.1, 4)
    assert spec.store_dtype == torch.float64 and ToneDataSpec().store_dtype == torch.float32

    record = {"teacher_sha256": "ab" * 32}
    fp = spec.fingerprint(record)
    assert fp == {"teacher": record, "num_tones": 5, "duration": 1.1, "midi_range": [30.0, 90.0],
                  "amplitude": "db", "db_range": [-40.0, -3.0], "valid_notes": 4,
                  "valid_levels_db": [-18.0], "seed": 11, "float64": True, "f0_sampling": "midi",
                  "f0_range_hz": [27.5, 18_000.0]}
    assert list(fp) == ["teacher", *ToneDataSpec.field_names()]
    assert json.loads(json.dumps(fp)) == fp
    assert ToneDataSpec(seed=1).fingerprint(record) != ToneDataSpec(seed=2).fingerprint(record)
    # the f0 distribution is part of the cache's identity: a cache never serves the other draw
    lin = ToneDataSpec(f0_sampling="linear_hz")
    assert lin.fingerprint(record) != ToneDataSpec().fingerprint(record)
    assert lin.fingerprint(record) != ToneDataSpec(f0_sampling="linear_hz",
                                                   f0_range_hz=[27.5, 12_000.0]).fingerprint(record)
    old_cache = {k: v for k, v in ToneDataSpec().fingerprint(record).items()
                 if k not in ("f0_sampling", "f0_range_hz")}  # written before the option existed
    assert old_cache != ToneDataSpec().fingerprint(record)
    train_lin, valid_lin = lin.tone_params(FS)
    assert float(train_lin.f0.max()) > midi_to_hz(127.0) and float(train_lin.f0.max()) <= 18_000.0
    assert torch.equal(valid_lin.f0, ToneDataSpec().tone_params(FS)[1].f0)  # the validation grid is unchanged
    with pytest.raises(ValueError, match="f0_sampling"):
        ToneDataSpec(f0_sampling="mel")
    with pytest.raises(ValueError, match="even rate"):
        spec.tone_params(44_101)


def test_dataset_round_trips_through_torch_save(valid_data):
    d = valid_data.to_dict()
    assert set(d) == {"midi", "f0", "amplitude", "phase", "sample_rate", "duration", "targets"}
    buf = io.BytesIO()
    torch.save(d, buf)
    buf.seek(0)
    back = SineToneDataset.from_dict(torch.load(buf, weights_only=True))
    assert back.targets.shape == (3, FS) and back.sample_rate == FS and back.params.duration == 1.2
    assert torch.equal(back.targets, valid_data.targets)
    for k in ("midi", "f0", "amplitude", "phase"):
        assert torch.equal(getattr(back.params, k), getattr(valid_data.params, k))
    p = ToneParams.from_dict(valid_data.params.to_dict())
    assert torch.equal(p.f0, valid_data.params.f0) and p.sample_rate == FS


# ----------------------------------------------------------------------------- students
def test_make_student_choices(teacher):
    s, kind = make_student(teacher, sample_rate=FS, seed=0)  # auto, not a WaveNet: nano
    assert kind == "nano" and s.receptive_field == 4093 and s.num_weights == 842
    ref = student_wavenet("nano", sample_rate=FS, seed=0)
    assert torch.equal(torch.as_tensor(s.export_weights()), torch.as_tensor(ref.export_weights()))

    s, kind = make_student(teacher, "feather", sample_rate=FS, channels=(6, 3), dilations2=[1, 2], seed=1)
    cfg = s.nam_config()
    assert [la["channels"] for la in cfg["layers"]] == [6, 3]
    assert cfg["layers"][1]["dilations"] == [1, 2] and len(cfg["layers"][0]["dilations"]) == 7

    wavenet_teacher = student_wavenet("nano", sample_rate=FS, seed=5).to(torch.float64)
    s, kind = make_student(wavenet_teacher, sample_rate=FS)  # auto, a WaveNet: fine-tune a copy
    assert kind == "teacher" and s is not wavenet_teacher
    assert all(p.dtype == torch.float32 for p in s.parameters())
    assert s.nam_config() == wavenet_teacher.nam_config()

    with pytest.raises(ValueError, match="not one"):
        make_student(teacher, "teacher", sample_rate=FS)
    with pytest.raises(ValueError, match="do not apply"):
        make_student(wavenet_teacher, "teacher", sample_rate=FS, channels=(2, 1))
    with pytest.raises(ValueError, match="unknown student kind"):
        make_student(teacher, "huge", sample_rate=FS)


def test_student_config_known_values(toy_student):
    cfg = student_config(toy_student, "nano")
    assert cfg == {"kind": "nano", "config": toy_student.nam_config(), "sample_rate": FS,
                   "receptive_field": 21, "num_weights": 89}


def test_distillation_metadata_record():
    rec = {"teacher_sha256": "cd" * 32, "teacher_file": "amp.nam", "teacher_sample_rate": FS}
    meta = distillation_metadata(rec, epoch=3, valid_loss=0.25, lam=None, curriculum=(3.0, 0.3),
                                 harmonic_weight=0.3, lowpass_hz=(12_000.0, 16_000.0), num_tones=32,
                                 seed=0)
    assert meta == {"aa_distill": {**rec, "tool": "train_aa", "epoch": 3, "valid_loss": 0.25, "lambda": None,
                                   "curriculum": [3.0, 0.3], "harmonic_weight": 0.3,
                                   "lowpass_hz": [12_000.0, 16_000.0], "num_tones": 32, "seed": 0,
                                   "f0_sampling": "midi", "f0_range_hz": None}}
    assert list(meta["aa_distill"])[:3] == list(rec)
    assert json.loads(json.dumps(meta)) == meta
    plain = distillation_metadata(rec, epoch=0, valid_loss=None, lam=1.0, curriculum=None, harmonic_weight=0.0,
                                  lowpass_hz=None, num_tones=4, seed=7, tool="mine")["aa_distill"]
    assert (plain["tool"], plain["lambda"], plain["curriculum"], plain["lowpass_hz"]) == ("mine", 1.0, None, None)
    wide = distillation_metadata(rec, epoch=0, valid_loss=None, lam=0.3, curriculum=None, harmonic_weight=0.0,
                                 lowpass_hz=(18_000.0, 22_000.0), num_tones=4, seed=7, f0_sampling="linear_hz",
                                 f0_range_hz=(27.5, 18_000))["aa_distill"]
    assert (wide["f0_sampling"], wide["f0_range_hz"], wide["lowpass_hz"]) == (
        "linear_hz", [27.5, 18_000.0], [18_000.0, 22_000.0])


def test_builtin_teacher_record_and_pair_check(teacher, toy_student):
    rec = builtin_teacher_record(teacher)
    assert rec == {"teacher_builtin": {"sample_rate": FS, "gain": 10.0, "factor": 2, "shape": "hardclip",
                                       "attenuation_db": 100.0},
                   "teacher_file": None, "teacher_description": teacher.describe(),
                   "teacher_sample_rate": FS, "teacher_architecture": "OversampledWaveshaper"}
    s = student_wavenet("nano", sample_rate=FS, channels=(2, 1), seed=0)
    assert check_teacher_student_pair(teacher, s) == "unverified"
    s.metadata = {"aa_distill": rec}
    assert check_teacher_student_pair(teacher, s) == "verified"
    other = OversampledWaveshaper(FS, gain=3.0, factor=2, shape="hardclip")
    with pytest.raises(ValueError, match="built-in teacher .* not "):
        check_teacher_student_pair(other, s)
    with pytest.raises(ValueError, match="built-in teacher"):  # a file teacher, a built-in student
        check_teacher_student_pair(student_wavenet("nano", sample_rate=FS, seed=0), s, "amp.nam")
    s.metadata = {"aa_distill": {"teacher_sha256": "ef" * 32, "teacher_file": "amp.nam"}}
    with pytest.raises(ValueError, match="from the file amp.nam .*not from the built-in teacher"):
        check_teacher_student_pair(teacher, s)
    s.sample_rate = 44_100
    with pytest.raises(ValueError, match="sample rates differ"):
        check_teacher_student_pair(teacher, s)


# ----------------------------------------------------------------------------- prediction, validation
def test_predict_last_second_is_the_padded_run_s_last_second(valid_data, toy_student):
    x, _, _ = valid_data.batch(torch.arange(3), dtype=torch.float64)
    with torch.no_grad():
        y = predict_last_second(toy_student, x, FS, toy_student.receptive_field)
        full = toy_student(x)
    assert y.shape == (3, FS) and y.dtype == torch.float64
    # the warm-up covers the receptive field: the padding reaches no output of the last second
    # (float64; a tolerance, not equality, as the two input lengths may take other conv kernels)
    torch.testing.assert_close(y, full[:, -FS:], rtol=1e-12, atol=1e-15)


def _old_validate(student, loss_fn, data, lam, batch_size, dtype):
    """The training tool's former validation, on one process: per-tone sums, then means."""
    fs, rf = data.sample_rate, student.receptive_field
    w_esr, w_nmr = lambda_weights(lam)
    nmr = loss_fn.nmr.nmr
    sums = torch.zeros(7, dtype=torch.float64)
    db = lambda v: 10 * torch.log10(v.double().clamp_min(1e-30)).sum()  # noqa: E731
    with torch.no_grad():
        for b in torch.arange(len(data)).split(batch_size):
            x, target, f0 = data.batch(b, dtype=dtype)
            pred = student(x[:, -(fs + rf - 1):], pad_start=False)
            p, t = loss_fn.lowpass(pred), loss_fn.lowpass(target)
            e, n, d = esr(p, t, "none"), nmr(p, t).to(torch.float64), dc_loss(p, t, "none")
            total = (w_esr * e + w_nmr * n + loss_fn.dc_weight * d).to(torch.float64).sum()
            total = total + loss_fn.harmonic_weight * loss_fn.harmonic(pred, target, f0)[0].double() * len(b)
            r = bandlimit(pred, f0, fs)
            ns = nmr(pred, r.bandlimited).to(torch.float64)
            a = r.aliases.double().pow(2).sum(-1) / r.bandlimited.double().pow(2).sum(-1)
            sums += torch.stack([total, db(e), db(n), db(d), db(ns), db(a), torch.tensor(float(len(b)),
                                                                                        dtype=torch.float64)])
    return {k: float(sums[i] / sums[-1]) for i, k in enumerate(["loss", "esr_db", "nmr_db", "dc_db",
                                                                 "nmr_s_db", "asr_db"])}


def _losses(reduction):
    return DistillationLoss(FS, lam=1.0, harmonic_weight=0.3, nmr_dtype=torch.float64, reduction=reduction)


def test_validation_metrics_equal_the_former_validation_in_float64(valid_data, toy_student):
    ref = _old_validate(toy_student, _losses("pooled"), valid_data, 0.3, 2, torch.float64)
    got = validation_metrics(toy_student, valid_data, _losses("none"), lam=0.3, batch_size=2,
                             dtype=torch.float64)
    assert list(got) == list(VALIDATION_METRICS)
    for k in got:
        assert got[k] == pytest.approx(ref[k], rel=1e-12, abs=1e-12), k
    assert all(math.isfinite(v) for v in got.values())
    assert got["nmr_s_db"] < -30 and got["asr_db"] < -30  # a nearly linear toy student aliases little


def test_validation_metrics_do_not_depend_on_batching_threads_or_sharding(valid_data, toy_student):
    loss = _losses("none")
    kw = dict(lam=0.3, dtype=torch.float64)
    base = validation_metrics(toy_student, valid_data, loss, batch_size=3, **kw)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = validation_metrics(toy_student, valid_data, loss, batch_size=1, **kw)
        torch.set_num_threads(2)
        two = validation_metrics(toy_student, valid_data, loss, batch_size=2, **kw)
    finally:
        torch.set_num_threads(threads)
    for k in base:
        assert one[k] == pytest.approx(base[k], rel=1e-12) and two[k] == pytest.approx(base[k], rel=1e-12), k

    # two shards whose sums are combined by reduce_sums give the whole set's means
    seen = []

    def keep(v):
        seen.append(v.clone())
        return v

    a = validation_metrics(toy_student, valid_data, loss, indices=torch.tensor([0, 2]), reduce_sums=keep, **kw)
    shard_b = validation_metrics(toy_student, valid_data, loss, indices=torch.tensor([1]), reduce_sums=keep, **kw)
    assert seen[0].shape == (len(VALIDATION_METRICS) + 1,) and seen[0].dtype == torch.float64
    assert float(seen[0][-1]) == 2.0 and float(seen[1][-1]) == 1.0 and a != shard_b
    total = seen[0] + seen[1]
    both = validation_metrics(toy_student, valid_data, loss, indices=torch.tensor([0, 2]),
                              reduce_sums=lambda v: total, **kw)
    for k in base:
        assert both[k] == pytest.approx(base[k], rel=1e-12), k


def test_validation_metrics_checks_and_restores(valid_data, toy_student):
    with pytest.raises(ValueError, match="reduction='none'"):
        validation_metrics(toy_student, valid_data, _losses("pooled"))
    toy_student.train()
    own = validation_metrics(toy_student, valid_data, DistillationLoss(FS, lam=0.5, reduction="none"),
                             dtype=torch.float64)
    given = validation_metrics(toy_student, valid_data, DistillationLoss(FS, lam=3.0, reduction="none"),
                               lam=0.5, dtype=torch.float64)
    assert toy_student.training
    assert own == given  # lam=None: the loss's own λ


def test_distillation_summary_text():
    metrics = {"valid_loss": 0.123456, "valid_esr_db": -12.3456, "valid_nmr_s_db": -40.0, "train_loss": 9.0}
    text = distillation_summary(metrics, teacher="amp.nam", epochs_run=4, best_epoch=2, student="out/s.nam")
    assert text == ("summary (validation: mean over tones after the lowpass; NMR-S on the raw output)\n"
                    "  teacher                    amp.nam\n"
                    "  epochs run                 4\n"
                    "  best epoch                 3\n"
                    "  valid loss                 0.1235\n"
                    "  best ESR-T (dB)            -12.35\n"
                    "  best NMR-S (dB, aliasing)  -40.00\n"
                    "  student                    out/s.nam")
    empty = distillation_summary({}, teacher="t", epochs_run=1, best_epoch=0, student="s")
    assert "  valid loss  n/a" in empty.splitlines()

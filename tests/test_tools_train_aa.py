"""tools/train_aa.py end to end (subprocess, as users run it), at toy sizes: exact resume,
curriculum λ and the harmonic term in the log, .nam export with the teacher's record on a real
WaveNet teacher, the NaN/Inf stop, and refusals."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aa_distill import load_nam, nam_sha256, sample_tone_params

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/_inproc.py (pytest's importlib mode)
from _inproc import tool_module  # noqa: E402

# a toy student (89 weights, receptive field 21) and toy data: every run takes seconds
TOY = ["--num-tones", "4", "--batch-size", "2", "--valid-notes", "2", "--valid-levels-db", "-6",
       "--channels", "2", "1", "--dilations1", "1", "2", "4", "--dilations2", "1", "2", "--no-progress",
       "--threads", "1", "--builtin-oversample", "2"]




def _run(repo_root, *args, tool="tools/train_aa.py", timeout=300):
    return subprocess.run([sys.executable, tool, *map(str, args)], cwd=repo_root, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ))


def _run_parallel(repo_root, *arg_lists, timeout=300):
    """Start the single-threaded runs together (each one mostly pays torch's import)."""
    procs = [subprocess.Popen([sys.executable, "tools/train_aa.py", *map(str, a)], cwd=repo_root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
             for a in arg_lists]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


@pytest.fixture(scope="module")
def train_aa():
    """The tool's module, imported in-process for cheap argument / refusal checks."""
    return tool_module("train_aa.py")


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _documented_loss(row, lam, harmonic_weight, dc_weight=1.0):
    """``ESR/(1+λ) + NMR·λ/(1+λ) + w_dc·DC + w_h·harmonic`` from a log.csv row's mean training terms."""
    t = {k: float(row[f"train_{k}"]) for k in ("esr", "nmr", "dc")}
    h = float(row["train_harmonic"]) if harmonic_weight else 0.0
    return t["esr"] / (1 + lam) + t["nmr"] * lam / (1 + lam) + dc_weight * t["dc"] + harmonic_weight * h


def test_resume_is_bit_exact_with_curriculum_and_harmonic_loss(repo_root, tmp_path):
    """2 epochs straight == 1 epoch + --resume to 2 (bit-identical weights and .nam), with the
    curriculum λ and the harmonic-magnitude term on."""
    extra = ["--curriculum", "--harmonic-weight", "0.3", "--seed", "3"]
    a, b = tmp_path / "straight", tmp_path / "resumed"
    for r in _run_parallel(repo_root, [*TOY, *extra, "--epochs", "2", "--out", a],
                           [*TOY, *extra, "--epochs", "1", "--out", b]):
        assert r.returncode == 0, r.stderr
    r = _run(repo_root, *TOY, *extra, "--epochs", "2", "--out", b, "--resume")
    assert r.returncode == 0, r.stderr
    assert "resumed" in r.stdout and "summary" in r.stdout

    ka = torch.load(a / "last.pt", weights_only=True)
    kb = torch.load(b / "last.pt", weights_only=True)
    assert ka["epoch"] == kb["epoch"] == 1 and ka["step"] == kb["step"] == 4
    assert ka["model"].keys() == kb["model"].keys()
    for k in ka["model"]:
        assert torch.equal(ka["model"][k], kb["model"][k]), k
    assert (a / "student.nam").read_bytes() == (b / "student.nam").read_bytes()

    rows = _rows(b / "log.csv")
    assert [int(x["epoch"]) for x in rows] == [0, 1]  # the resume neither lost nor repeated a row
    lam = [float(x["lambda"]) for x in rows]
    assert lam[0] == pytest.approx(3.0) and lam[1] == pytest.approx(3.0 * 0.1 ** 0.5, rel=1e-5)
    for x in rows:
        for key in ("train_loss", "train_esr", "train_nmr", "train_dc", "train_harmonic", "valid_loss",
                    "valid_nmr_s_db", "valid_asr_db"):
            assert key in x and float(x[key]) == float(x[key]), key  # present and not NaN
    assert float(rows[0]["train_harmonic"]) > 0
    for x in rows:  # each epoch's mean loss is its λ's weighting of the mean terms (the loss is linear in them)
        assert float(x["train_loss"]) == pytest.approx(_documented_loss(x, float(x["lambda"]), 0.3), rel=1e-5)
    cfg = json.loads((a / "config.json").read_text())
    assert cfg["sample_rate"] == 48_000 and cfg["teacher"]["teacher_builtin"]["shape"] == "hardclip"

    # the exported student records the built-in teacher and runs at its rate
    s = load_nam(a / "student.nam")
    rec = s.metadata["aa_distill"]
    assert rec["teacher_builtin"] == cfg["teacher"]["teacher_builtin"] and rec["teacher_sample_rate"] == 48_000
    assert rec["curriculum"] == [3.0, 0.3] and rec["harmonic_weight"] == 0.3
    assert s.sample_rate == 48_000 and s.receptive_field == 21



def test_loss_flags_weight_the_terms_as_documented(train_aa):
    """The research notes' variants from the command line: the λ sweep (1, 0.5, 0.3, 0.1, 3) weighs
    ESR by 1/(1+λ) and NMR by λ/(1+λ), --harmonic-weight adds w_h x the harmonic-magnitude term,
    --dc-weight scales DC, and --lowpass-hz moves the Kaiser edges (float64, so exact to rounding)."""
    fs = 48_000
    g = torch.Generator().manual_seed(0)
    n = torch.arange(fs, dtype=torch.float64)
    f0 = torch.tensor([220.0, 3_100.0], dtype=torch.float64)
    target = torch.tanh(3 * torch.sin(2 * torch.pi * f0[:, None] * n / fs))
    pred = 0.9 * target + 0.01 * torch.randn(2, fs, generator=g, dtype=torch.float64)
    f64 = ["--nmr-dtype", "float64"]

    def loss_of(*flags):
        return train_aa.make_loss(train_aa.parse_args([*flags, *f64]), fs, torch.device("cpu"))

    plain = loss_of("--lambda", "0", "--dc-weight", "0")
    total, terms = plain(pred, target, f0)
    assert terms["esr"] > 0 and terms["nmr"] > 0 and terms["dc"] > 0 and "harmonic" not in terms
    assert float(total) == pytest.approx(float(terms["esr"]), rel=1e-12)  # λ = 0: ESR alone
    for lam in (1.0, 0.5, 0.3, 0.1, 3.0):
        total, t = loss_of("--lambda", str(lam))(pred, target, f0)
        for k in ("esr", "nmr", "dc"):
            assert float(t[k]) == pytest.approx(float(terms[k]), rel=1e-12)  # λ only weighs the terms
        want = float(t["esr"]) / (1 + lam) + float(t["nmr"]) * lam / (1 + lam) + float(t["dc"])
        assert float(total) == pytest.approx(want, rel=1e-12), lam
    total, t = loss_of("--lambda", "0.3", "--harmonic-weight", "0.3", "--dc-weight", "2")(pred, target, f0)
    assert float(t["harmonic"]) > 0
    want = float(t["esr"]) / 1.3 + float(t["nmr"]) * 0.3 / 1.3 + 2 * float(t["dc"]) + 0.3 * float(t["harmonic"])
    assert float(total) == pytest.approx(want, rel=1e-12)
    # the extended lowpass passes an 16.5 kHz tone the default one removes (stop edge 16 kHz, 80 dB)
    x = torch.sin(2 * torch.pi * 16_500.0 * n / fs)[None]
    wide = loss_of("--lowpass-hz", "18000", "22000")
    assert (wide.lowpass.pass_hz, wide.lowpass.stop_hz) == (18_000.0, 22_000.0)
    gain = {name: float(m.lowpass(x)[0, 4000:-4000].pow(2).mean() / x[0, 4000:-4000].pow(2).mean())
            for name, m in (("default", plain), ("wide", wide))}
    assert gain["wide"] == pytest.approx(1.0, abs=1e-3) and gain["default"] < 1e-7
    # the curriculum: λ(epoch) = 3 (0.3/3)^(epoch/epochs), validation at the end value
    c = train_aa.parse_args(["--curriculum", "--epochs", "40"])
    assert (c.curriculum, c.curriculum_range) == (True, [3.0, 0.3])
    assert train_aa.curriculum_lambda(20, c.epochs, *c.curriculum_range) == pytest.approx(3.0 * 0.1 ** 0.5)


def test_f0_sampling_flags(train_aa, capsys):
    a = train_aa.parse_args(["--f0-sampling", "linear_hz", "--f0-range-hz", "27.5", "18000", "--lowpass-hz", "18000",
                             "22000"])
    spec = train_aa.ToneDataSpec(**{k: getattr(a, k) for k in train_aa.ToneDataSpec.field_names()})
    assert (spec.f0_sampling, spec.f0_range_hz, spec.midi_range) == ("linear_hz", (27.5, 18_000.0), (21.0, 127.0))
    d = train_aa.parse_args([])
    assert (d.f0_sampling, d.f0_range_hz) == ("midi", [27.5, 18_000.0])
    for bad, msg in ((["--f0-range-hz", "500", "400"], r"--f0-range-hz LO \(500\) must be less than HI \(400\)"),
                     (["--f0-range-hz", "100", "24000"], "Nyquist"),
                     (["--f0-range-hz", "100", "20000", "--builtin-rate", "32000"], "Nyquist"),
                     (["--f0-range-hz", "7.9", "100"], "--f0-range-hz")):
        with pytest.raises(SystemExit) as e:
            train_aa.parse_args(["--f0-sampling", "linear_hz", *bad])
        assert e.value.code == 2, bad
        assert re.search(msg, capsys.readouterr().err), bad
    with pytest.raises(SystemExit):
        train_aa.parse_args(["--f0-sampling", "log"])
    # the range of the other sampling is not used, so not checked
    train_aa.parse_args(["--f0-range-hz", "100", "30000"])
    train_aa.parse_args(["--f0-sampling", "linear_hz", "--midi-range", "21", "139"])


def test_extended_range_run(repo_root, tmp_path):
    """The extended-range experiment end to end (f0 uniform in Hz up to 18 kHz, lowpass 18 / 22 kHz) with
    λ = 0.3 and the harmonic term: the cached tones follow the flags, the log's loss is the documented
    weighting of its terms, and the student records how it was trained."""
    out = tmp_path / "wide"
    r = _run(repo_root, *TOY, "--epochs", "1", "--num-tones", "6", "--f0-sampling", "linear_hz", "--f0-range-hz",
             "27.5", "18000", "--lowpass-hz", "18000", "22000", "--lambda", "0.3", "--harmonic-weight", "0.3",
             "--out", out)
    assert r.returncode == 0, r.stderr
    cache = torch.load(out / "targets.pt", weights_only=True)
    assert cache["fingerprint"]["f0_sampling"] == "linear_hz" and cache["fingerprint"]["f0_range_hz"] == [27.5, 18000.0]
    f0 = cache["train"]["f0"]
    ref = sample_tone_params(6, 48_000, f0_sampling="linear_hz", f0_range_hz=(27.5, 18_000.0),
                             generator=torch.Generator().manual_seed(0))
    assert torch.equal(f0, ref.f0) and float(f0.max()) > 12_544.0  # above the MIDI draw's top note
    (row,) = _rows(out / "log.csv")
    assert float(row["lambda"]) == 0.3
    assert float(row["train_loss"]) == pytest.approx(_documented_loss(row, 0.3, 0.3), rel=1e-5)
    rec = load_nam(out / "student.nam").metadata["aa_distill"]
    assert (rec["f0_sampling"], rec["f0_range_hz"], rec["lowpass_hz"], rec["lambda"], rec["harmonic_weight"]) == (
        "linear_hz", [27.5, 18_000.0], [18_000.0, 22_000.0], 0.3, 0.3)


def test_resume_refuses_other_settings(train_aa, tmp_path):
    ck = {"config": vars(train_aa.parse_args([*TOY, "--curriculum", "--out", str(tmp_path)]))}
    same = train_aa.parse_args([*TOY, "--curriculum", "--out", str(tmp_path), "--resume", "--epochs", "9"])
    train_aa._train.check_resume_args(ck, same, tmp_path)  # --epochs may grow
    other = train_aa.parse_args([*TOY, "--out", str(tmp_path), "--resume", "--lambda", "0.3"])
    with pytest.raises(SystemExit, match=r"other settings \(curriculum: True -> False, lam: 1.0 -> 0.3\)"):
        train_aa._train.check_resume_args(ck, other, tmp_path)


def test_fine_tunes_a_real_wavenet_and_exports_it(repo_root, shared_data, tmp_path):
    teacher = shared_data / "nam" / "core_wavenet_tiny.nam"
    out = tmp_path / "run"
    r = _run(repo_root, "--teacher", teacher, "--num-tones", "2", "--batch-size", "2", "--valid-notes", "1",
             "--valid-levels-db", "-18", "--epochs", "1", "--lambda", "0.3", "--no-progress", "--threads", "1",
             "--float64", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "student: teacher WaveNet" in r.stdout and "float64" in r.stdout  # auto: fine-tune the teacher
    ck = torch.load(out / "best.pt", weights_only=True)
    assert all(v.dtype == torch.float64 for v in ck["model"].values())
    assert torch.load(out / "targets.pt", weights_only=True)["train"]["targets"].dtype == torch.float64
    t = load_nam(teacher)
    s = load_nam(out / "student.nam")
    rec = s.metadata["aa_distill"]
    assert rec["teacher_sha256"] == nam_sha256(teacher) and rec["teacher_file"] == teacher.name
    assert rec["teacher_sample_rate"] == t.sample_rate == s.sample_rate
    assert rec["lambda"] == 0.3 and rec["epoch"] == 0
    assert s.nam_config() == t.nam_config()  # same architecture, fine-tuned weights
    w_t, w_s = t.export_weights(), s.export_weights()
    assert w_t.shape == w_s.shape and (w_t != w_s).any()
    assert abs(w_t - w_s).max() < 0.05  # one step of Adam at lr 5e-4 moves each weight by ~5e-4
    assert json.loads((out / "results.json").read_text())["best"]["epoch"] == 0



def test_student_choice(train_aa, shared_data):
    import _aa_common

    lstm = shared_data / "nam" / "core_lstm_tiny.nam"
    args = train_aa.parse_args(["--teacher", str(lstm), "--student", "teacher"])
    teacher = _aa_common.load_teacher(args)
    with pytest.raises(SystemExit, match="not one"):  # only a WaveNet teacher can be fine-tuned
        train_aa.build_student(args, teacher)
    args = train_aa.parse_args(["--teacher", str(lstm)])  # auto: a fresh nano WaveNet
    student, kind = train_aa.build_student(args, teacher)
    assert kind == "nano" and student.sample_rate == teacher.sample_rate == 48_000
    assert student.receptive_field == 4093 and student.num_weights == 842
    args = train_aa.parse_args(["--student", "feather", "--channels", "6", "3", "--dilations2", "1", "2"])
    student, kind = train_aa.build_student(args, _aa_common.load_teacher(args))
    assert student.nam_config()["layers"][1]["dilations"] == [1, 2]
    assert [la["channels"] for la in student.nam_config()["layers"]] == [6, 3]


def test_stops_on_non_finite_loss(repo_root, tmp_path):
    r = _run(repo_root, *TOY, "--epochs", "1", "--lr", "1e30", "--out", tmp_path / "nan")
    assert r.returncode != 0
    assert "non-finite loss at epoch 0, step 1" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "nan" / "student.nam").exists()


def test_refuses_bad_input(train_aa, tmp_path):
    import _aa_common

    bad = tmp_path / "bad.nam"
    bad.write_text("{not json")
    with pytest.raises(SystemExit, match="malformed JSON") as e:
        _aa_common.load_teacher(train_aa.parse_args(["--teacher", str(bad)]))
    assert str(bad) in str(e.value)
    with pytest.raises(SystemExit, match="no such file"):
        _aa_common.load_teacher(train_aa.parse_args(["--teacher", str(tmp_path / "missing.nam")]))
    with pytest.raises(SystemExit):  # argparse: --resume needs --out
        train_aa.parse_args(["--resume"])


def test_refuses_a_warmup_shorter_than_the_student(repo_root, tmp_path):
    """Checked before any teacher target is computed (nano: 4093 samples > 0.05 s at 48 kHz)."""
    r = _run(repo_root, "--num-tones", "2", "--duration", "1.05", "--student", "nano", "--out",
             tmp_path / "short", "--no-progress", "--threads", "1")
    assert r.returncode != 0 and "receptive field of the student" in r.stderr
    assert not (tmp_path / "short" / "targets.pt").exists()


def test_help_explains_every_flag(train_aa, capsys):
    with pytest.raises(SystemExit) as e:
        train_aa.parse_args(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--teacher", "--builtin-gain", "--student", "--lambda", "--curriculum", "--harmonic-weight",
                 "--float64", "--resume", "--num-tones", "--valid-notes", "--lowpass-hz", "--seed", "--device",
                 "--out", "--clip", "--nmr-dtype", "--f0-sampling", "--f0-range-hz", "--midi-range"):
        assert flag in text, flag


@pytest.mark.skipif(shutil.which("torchrun") is None and not os.path.exists(
    os.path.join(os.path.dirname(sys.executable), "torchrun")), reason="torchrun not installed")
def test_runs_under_torchrun_with_two_processes(repo_root, tmp_path):
    """DDP on CPU (gloo): two processes share the tones (2 steps per epoch instead of 4) and the
    exported student loads."""
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    out = tmp_path / "ddp"
    r = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "tools/train_aa.py", *TOY,
                        "--epochs", "1", "--out", str(out)], cwd=repo_root, capture_output=True, text=True,
                       timeout=300, env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 process(es)" in r.stdout
    rows = _rows(out / "log.csv")
    assert len(rows) == 1 and int(rows[0]["step"]) == 1  # 4 tones / 2 ranks / batch 2 = 1 step
    assert load_nam(out / "student.nam").receptive_field == 21

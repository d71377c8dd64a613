"""tools/analyze_aa.py end to end on the real .nam files (subprocess, as users run it): the tiny
WaveNet capture as teacher and a student made from it (student_from_teacher + save_nam with
the teacher record); a mismatched pair is refused, an unverifiable one warned about."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from aa_distill import ANALYSIS_BANDS_HZ, band_label, load_nam, save_nam, student_from_teacher, student_metadata

TONE_COLUMNS = ["model", "f0_hz", "level_db", "nmr_s_db", "nmr_t_db", "esr_t_db", "hesr_t_db", "asr_db"]
BAND_COLUMNS = ["model", "band", "band_lo_hz", "band_hi_hz", "level_db", "num_tones", "nmr_s_db", "nmr_t_db",
                "esr_t_db", "hesr_t_db", "asr_db", "nmr_s_pass", "hesr_t_pass", "meets_targets"]
TONE_BAND_COLUMNS = ["model", "f0_hz", "level_db", "band", "band_lo_hz", "band_hi_hz", "nmr_s_db", "nmr_t_db",
                     "esr_t_db", "hesr_t_db", "asr_db", "nmr_s_pass", "hesr_t_pass", "meets_targets"]
FAST = ["--no-progress", "--threads", "1"]




def _start(repo_root, *args):
    return subprocess.Popen([sys.executable, "tools/analyze_aa.py", *map(str, args)], cwd=repo_root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def _finish(p, timeout=300):
    out, err = p.communicate(timeout=timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def _read(path):
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        return r.fieldnames, list(r)


@pytest.fixture(scope="module")
def students(shared_data, tmp_path_factory):
    """Students of core_wavenet_tiny.nam: one with the teacher record (weights nudged so that it
    differs), an exact copy without any metadata, and one recording another teacher."""
    nam = shared_data / "nam"
    teacher = load_nam(nam / "core_wavenet_tiny.nam")
    d = tmp_path_factory.mktemp("students")
    s = student_from_teacher(teacher)
    with torch.no_grad():
        w = torch.as_tensor(s.export_weights())
        g = torch.Generator().manual_seed(0)
        w[:-1] *= 1 + 0.01 * torch.randn(w.numel() - 1, generator=g, dtype=torch.float64)  # not head_scale
        s.import_weights(w)
    save_nam(s, d / "paired.nam", metadata=student_metadata(nam / "core_wavenet_tiny.nam", teacher))
    save_nam(student_from_teacher(teacher), d / "anonymous.nam")
    other = load_nam(nam / "core_wavenet_standard.nam")
    save_nam(student_from_teacher(teacher), d / "other.nam",
             metadata=student_metadata(nam / "core_wavenet_standard.nam", other))
    return {"teacher": nam / "core_wavenet_tiny.nam", "dir": d}


def test_analysis_of_a_verified_pair(repo_root, students, tmp_path):
    teacher, d = students["teacher"], students["dir"]
    out = tmp_path / "an"
    runs = [_start(repo_root, "--teacher", teacher, "--student", d / "paired.nam", "--num-tones", "3",
                   "--levels-db", "-18", "-6", "--spectrogram-tones", "2", "--out", out, *FAST),
            _start(repo_root, "--teacher", teacher, "--student", d / "other.nam", "--out", tmp_path / "refused",
                   *FAST),
            _start(repo_root, "--teacher", teacher, "--student", d / "anonymous.nam", "--num-tones", "1",
                   "--f-range", "1000", "1000", "--levels-db", "-6", "--no-plots", "--out", tmp_path / "anon",
                   *FAST)]
    r, refused, anon = (_finish(p) for p in runs)

    assert r.returncode == 0, r.stderr
    assert "pair verified" in r.stdout and "warning" not in r.stderr
    assert "per band" in r.stdout and "12k-20k" in r.stdout
    cols, tones = _read(out / "per_tone.csv")
    assert cols == TONE_COLUMNS and len(tones) == 2 * 3 * 2  # teacher and student, 3 f0 x 2 levels
    f0 = sorted({float(t["f0_hz"]) for t in tones})
    assert f0[0] == 27.5 and f0[-1] == 12_000.0
    for t in tones:
        if t["model"] == "teacher":
            assert math.isfinite(float(t["nmr_t_db"])) and t["nmr_t_db"] == t["nmr_s_db"]
            assert t["esr_t_db"] == t["asr_db"] and t["hesr_t_db"] == "-inf"  # its own reference
        else:
            assert -80 < float(t["esr_t_db"]) < -10  # weights nudged by 1 %
            assert float(t["hesr_t_db"]) < -10 and math.isfinite(float(t["nmr_t_db"]))
    cols, bands = _read(out / "per_band.csv")
    assert cols == BAND_COLUMNS
    for model in ("teacher", "student"):
        for level in ("all", "-18", "-6"):
            got = [b["band"] for b in bands if b["model"] == model and b["level_db"] == level]
            assert got == [band_label(b) for b in ANALYSIS_BANDS_HZ], (model, level)
    assert all(math.isfinite(float(b["nmr_s_db"])) for b in bands)
    _check_verdicts(out, bands, r.stdout)
    for name in ("per_band.png", "spectrograms.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a student recording another teacher is refused before anything is computed
    assert refused.returncode != 0
    assert "refusing the pair" in refused.stderr and "core_wavenet_standard.nam" in refused.stderr
    assert not (tmp_path / "refused").exists()

    # a student without a record: warned, analysed; an exact copy matches the teacher exactly
    assert anon.returncode == 0, anon.stderr
    assert "warning: cannot verify" in anon.stderr and "anonymous.nam" in anon.stderr
    _, rows = _read(tmp_path / "anon" / "per_tone.csv")
    t, s = (next(x for x in rows if x["model"] == m) for m in ("teacher", "student"))
    assert s["nmr_s_db"] == t["nmr_s_db"] and s["asr_db"] == t["asr_db"] and s["hesr_t_db"] == "-inf"


def _verdict(value, limit):
    return "" if value == "nan" else str(float(value) < limit)


def _check_verdicts(out, bands, stdout):
    """The pass / fail marks of the research notes' targets (NMR-S < -10 dB, HESR-T = HESR-R < -15 dB
    in every band) in per_band.csv, per_tone_band.csv, summary.json and the printed table agree with
    the values they mark; per_tone_band.csv holds the values per_band.csv averages."""
    for b in bands:
        assert b["nmr_s_pass"] == _verdict(b["nmr_s_db"], -10.0) and b["hesr_t_pass"] == _verdict(b["hesr_t_db"], -15.0)
        assert b["meets_targets"] == str(b["nmr_s_pass"] == "True" and b["hesr_t_pass"] == "True")
    cols, tb = _read(out / "per_tone_band.csv")
    assert cols == TONE_BAND_COLUMNS and len(tb) == 2 * 6 * len(ANALYSIS_BANDS_HZ)  # models x tones x bands
    for row in tb:
        assert row["nmr_s_pass"] == _verdict(row["nmr_s_db"], -10.0)
    for b in (b for b in bands if b["level_db"] == "all"):
        vals = [float(t["esr_t_db"]) for t in tb if (t["model"], t["band"]) == (b["model"], b["band"])
                and t["esr_t_db"] != "nan"]
        assert float(b["esr_t_db"]) == pytest.approx(sum(vals) / len(vals), rel=1e-5)  # CSVs hold 6 digits
    summary = json.loads((out / "summary.json").read_text())
    assert summary["targets_db"] == {"nmr_s": -10.0, "hesr_t": -15.0}
    assert set(summary["per_band"]) == {"teacher", "student"}
    for b in (b for b in bands if b["level_db"] == "all"):
        j = summary["per_band"][b["model"]][b["band"]]
        assert j["band_hz"] == [float(b["band_lo_hz"]), float(b["band_hi_hz"])]
        assert j["num_tones"] == 6
        for key in ("nmr_s_db", "nmr_t_db", "esr_t_db", "hesr_t_db", "asr_db"):
            if b[key] in ("-inf", "inf"):
                assert j[key] == b[key]  # JSON has no infinities: spelled as strings
            else:
                assert isinstance(j[key], float) and j[key] == pytest.approx(float(b[key]), rel=1e-5)
        assert [str(j[k]) for k in ("nmr_s_pass", "hesr_t_pass", "meets_targets")] == [
            b["nmr_s_pass"], b["hesr_t_pass"], b["meets_targets"]]
    for model, bands_of in summary["per_band"].items():
        assert summary["meets_targets"][model] == all(v["meets_targets"] for v in bands_of.values())
    assert summary["per_band"]["teacher"]["2k-8k"]["hesr_t_db"] == "-inf"  # the teacher is the reference
    ok = summary["meets_targets"]["student"]
    assert f"student meets the targets in every band: {'yes' if ok else 'NO'}" in stdout
    for band, j in summary["per_band"]["student"].items():
        line = next(x for x in stdout.splitlines() if x.startswith(f"  {band} "))
        assert line.rstrip().endswith("yes") == j["meets_targets"]
        if j["hesr_t_pass"] is False:
            assert "HESR-T" in line.split("NO")[-1]


def test_pair_checks_in_process(repo_root, students, shared_data):
    """Sample-rate mismatch and built-in-teacher records are refused (check_pair unit checks)."""
    sys.path.insert(0, str(repo_root / "tools"))
    import argparse

    import _aa_common

    ns = argparse.Namespace(teacher=str(students["teacher"]), builtin_rate=48_000, builtin_gain=10.0,
                            builtin_oversample=8, builtin_shape="hardclip")
    teacher = _aa_common.load_teacher(ns)
    s = student_from_teacher(teacher.module)
    s.sample_rate = 44_100
    with pytest.raises(SystemExit, match="sample rates differ"):
        _aa_common.check_pair(teacher, s, "s.nam")
    s.sample_rate = 48_000
    assert _aa_common.check_pair(teacher, s, "s.nam") == "unverified"
    builtin = _aa_common.load_teacher(argparse.Namespace(**{**vars(ns), "teacher": "builtin"}))
    s.metadata = {"aa_distill": builtin.record}
    assert _aa_common.check_pair(builtin, s, "s.nam") == "verified"
    with pytest.raises(SystemExit, match="built-in teacher"):
        _aa_common.check_pair(teacher, s, "s.nam")
    other = _aa_common.load_teacher(argparse.Namespace(**{**vars(ns), "teacher": "builtin", "builtin_gain": 3.0}))
    with pytest.raises(SystemExit, match="--builtin-"):
        _aa_common.check_pair(other, s, "s.nam")

"""evaluate_dir: pairing, per-file failures, resampling, resume, noisy/delta sections."""

from __future__ import annotations

import csv
import json
import os
import stat
import shutil

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

import se_metrics as sm
from se_metrics.batch import COLUMNS

SR = 16000


def _read_csv(path):
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == COLUMNS
        return {r["file"]: r for r in reader}


@pytest.fixture(scope="module")
def vb(shared_data):
    return shared_data / "speech" / "voicebank16k"


@pytest.fixture()
def tree(tmp_path, vb):
    """enhanced/ = two real noisy files (one in a subfolder) + bad cases; clean/ and noisy/ partners."""
    enh, clean, noisy = tmp_path / "enh", tmp_path / "clean", tmp_path / "noisy"
    for d in (enh / "sub", clean / "sub", noisy / "sub"):
        d.mkdir(parents=True)
    shutil.copy(vb / "noisy" / "p287_001.wav", enh / "p287_001.wav")
    shutil.copy(vb / "noisy" / "p287_002.wav", enh / "sub" / "p287_002.wav")
    shutil.copy(vb / "clean" / "p287_001.wav", clean / "p287_001.wav")
    shutil.copy(vb / "clean" / "p287_002.wav", clean / "p287_002.wav")  # paired by unique name
    # "noisy" inputs: the real noisy files plus extra noise, so enhanced beats noisy
    rng = np.random.default_rng(0)
    for rel, src in (("p287_001.wav", "p287_001.wav"), ("sub/p287_002.wav", "p287_002.wav")):
        x, _ = sf.read(vb / "noisy" / src)
        sf.write(noisy / rel, x + 0.05 * rng.standard_normal(x.shape[0]), SR, subtype="FLOAT")
    # bad cases (every one has a clean partner unless stated)
    c1, _ = sf.read(vb / "clean" / "p287_001.wav")
    (enh / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
    sf.write(enh / "empty.wav", np.zeros(0), SR)
    sf.write(enh / "orphan.wav", c1, SR)                      # no clean partner
    sf.write(enh / "stereo.wav", np.stack([c1, c1], 1), SR)
    nan = c1.copy()
    nan[500] = np.nan
    sf.write(enh / "nan.wav", nan, SR, subtype="FLOAT")
    sf.write(enh / "mismatch.wav", c1[:-100], SR)
    for name in ("corrupt", "empty", "stereo", "nan", "mismatch"):
        sf.write(clean / f"{name}.wav", c1, SR)
    sf.write(enh / "silentref.wav", c1, SR)
    sf.write(clean / "silentref.wav", np.zeros_like(c1), SR)
    # 48 kHz enhanced file: resampled to 16 kHz before scoring
    sf.write(enh / "hi48k.wav", resample_poly(c1, 3, 1), 48000, subtype="FLOAT")
    sf.write(clean / "hi48k.wav", c1, SR, subtype="FLOAT")
    return enh, clean, noisy


EXPECTED_FAIL = {
    "corrupt.wav": "cannot be read as audio",
    "empty.wav": "is empty",
    "orphan.wav": "missing clean partner for orphan.wav",
    "stereo.wav": "2 channels",
    "nan.wav": "NaN/Inf",
    "mismatch.wav": "differ in length",
    "silentref.wav": "reference is silent",
}


@pytest.mark.parametrize("workers", [1, 2])
def test_evaluate_dir_rows_failures_resampling(tree, tmp_path, shared_data, workers):
    enh, clean, _ = tree
    out = tmp_path / f"out{workers}"
    summary = sm.evaluate_dir(enh, clean, out, workers=workers, progress=False)
    rows = _read_csv(out / "per_file.csv")
    assert list(rows) == sorted(rows)  # final CSV sorted by file
    assert set(rows) == {"p287_001.wav", "sub/p287_002.wav", "hi48k.wav"} | set(EXPECTED_FAIL)
    # good rows: exactly evaluate_pair on the same arrays, and the peers' reference values
    ref = json.loads((shared_data / "reference" / "metrics_shared_pairs.json").read_text())
    for rel, name in (("p287_001.wav", "p287_001.wav"), ("sub/p287_002.wav", "p287_002.wav")):
        r = rows[rel]
        assert r["error"] == ""
        c, _ = sf.read(clean / name)
        e, _ = sf.read(enh / rel)
        direct = sm.evaluate_pair(c, e, SR)
        for m in sm.METRICS:
            got = float(r[m])
            if m == "estoi":  # pystoi's ESTOI wobbles in the last ulps run to run
                assert got == pytest.approx(direct[m], abs=1e-12)
            else:
                assert got == direct[m], (rel, m)
        assert float(r["pesq_wb"]) == ref[f"voicebank16k/noisy/{name}"]["pesq_wb"]
    # failures: error set, no numbers, reason names the problem (and the file)
    for f, why in EXPECTED_FAIL.items():
        assert why in rows[f]["error"], (f, rows[f]["error"])
        assert f.split(".")[0] in rows[f]["error"]
        assert all(rows[f][m] == "" for m in sm.METRICS)
    # resampled 48 kHz estimate of the clean signal scores near the clean-vs-clean optimum
    hi = rows["hi48k.wav"]
    assert hi["error"] == "" and float(hi["pesq_wb"]) > 4.5 and float(hi["si_sdr"]) > 40
    assert summary["resampled"] == [{"path": str((enh / "hi48k.wav").resolve()), "role": "enhanced",
                                     "from_sr": 48000, "to_sr": SR}]
    # summary: mean / std / count over successful rows, failures listed with reasons
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary
    enh_sec = summary["enhanced"]
    assert enh_sec["n_files"] == 10 and enh_sec["n_ok"] == 3
    for m in sm.METRICS:
        vals = [float(r[m]) for r in rows.values() if not r["error"]]
        assert enh_sec["metrics"][m] == {"mean": pytest.approx(np.mean(vals), abs=1e-12),
                                         "std": pytest.approx(np.std(vals), abs=1e-12), "count": 3}
    assert {f["file"] for f in enh_sec["failures"]} == set(EXPECTED_FAIL)
    assert "noisy" not in summary and "delta" not in summary
    table = sm.format_summary_table(summary)
    assert "3/10 enhanced files scored, 7 failed" in table and "FAILED orphan.wav" in table


def test_resume_computes_only_missing(tree, tmp_path):
    enh, clean, _ = tree
    for f in list(EXPECTED_FAIL) + ["hi48k.wav"]:
        (enh / f).unlink()
    out = tmp_path / "out"
    old_umask = os.umask(0o022)
    try:
        sm.evaluate_dir(enh, clean, out, workers=1, progress=False)
    finally:
        os.umask(old_umask)
    path = out / "per_file.csv"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # the umask's mode, not mkstemp's 0600
    rows = _read_csv(path)
    # tamper with one kept row and delete the other: only the deleted one may be recomputed
    rows["p287_001.wav"]["pesq_wb"] = "9.5"
    del rows["sub/p287_002.wav"]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows.values())
    summary = sm.evaluate_dir(enh, clean, out, workers=1, progress=False)
    assert summary["n_computed_this_run"] == 1
    again = _read_csv(path)
    assert again["p287_001.wav"]["pesq_wb"] == "9.5"  # kept, not recomputed
    assert float(again["sub/p287_002.wav"]["pesq_wb"]) == 1.3397458791732788
    # a third run has nothing to do
    assert sm.evaluate_dir(enh, clean, out, workers=1, progress=False)["n_computed_this_run"] == 0


def test_resume_retries_failures_and_refuses_other_settings(tree, tmp_path):
    enh, clean, noisy = tree
    for f in list(EXPECTED_FAIL) + ["hi48k.wav", "sub/p287_002.wav"]:
        if f != "orphan.wav":
            (enh / f).unlink()
    out = tmp_path / "out"
    s1 = sm.evaluate_dir(enh, clean, out, workers=1, progress=False)
    assert [f["file"] for f in s1["enhanced"]["failures"]] == ["orphan.wav"]
    shutil.copy(enh / "orphan.wav", clean / "orphan.wav")  # partner appears: retried on resume
    s2 = sm.evaluate_dir(enh, clean, out, workers=1, progress=False)
    assert s2["n_computed_this_run"] == 1 and s2["enhanced"]["failures"] == []
    with pytest.raises(sm.MetricInputError, match="other settings"):
        sm.evaluate_dir(enh, clean, out, workers=1, progress=False, noisy_dir=noisy)
    # a CSV that is not the evaluator's is never resumed from (or overwritten)
    (out / "per_file.csv").write_text("name,score\nx,1\n")
    with pytest.raises(sm.MetricInputError, match="cannot be resumed"):
        sm.evaluate_dir(enh, clean, out, workers=1, progress=False)
    assert (out / "per_file.csv").read_text() == "name,score\nx,1\n"


def test_noisy_dir_writes_noisy_and_delta(tree, tmp_path):
    enh, clean, noisy = tree
    for f in list(EXPECTED_FAIL) + ["hi48k.wav"]:
        (enh / f).unlink()
    out = tmp_path / "out"
    summary = sm.evaluate_dir(enh, clean, out, workers=2, noisy_dir=noisy, progress=False)
    enh_rows, noisy_rows = _read_csv(out / "per_file.csv"), _read_csv(out / "per_file_noisy.csv")
    assert set(enh_rows) == set(noisy_rows) == {"p287_001.wav", "sub/p287_002.wav"}
    assert set(summary) >= {"enhanced", "noisy", "delta"}
    for m in sm.METRICS:
        d = [float(enh_rows[f][m]) - float(noisy_rows[f][m]) for f in enh_rows]
        assert summary["delta"]["metrics"][m]["mean"] == pytest.approx(np.mean(d), abs=1e-12)
        assert summary["delta"]["metrics"][m]["count"] == 2
    assert summary["delta"]["metrics"]["pesq_wb"]["mean"] > 0  # extra noise made "noisy" worse
    assert summary["delta"]["metrics"]["lsd"]["mean"] < 0
    assert "delta (enh - noisy)" in sm.format_summary_table(summary)


def test_evaluate_dir_bad_arguments(tmp_path):
    (tmp_path / "e").mkdir()
    with pytest.raises(sm.MetricInputError, match="no \\*.wav files"):
        sm.evaluate_dir(tmp_path / "e", tmp_path / "e", tmp_path / "o")
    with pytest.raises(sm.MetricInputError, match="does not exist"):
        sm.evaluate_dir(tmp_path / "nope", tmp_path / "e", tmp_path / "o")
    with pytest.raises(sm.MetricSampleRateError, match="sample_rate=8000"):
        sm.evaluate_dir(tmp_path / "e", tmp_path / "e", tmp_path / "o", sr=8000)

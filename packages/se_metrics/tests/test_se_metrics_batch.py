"""evaluate_dir: pairing, per-file failures, resampling, resume (recomputing rows whose inputs
changed), undefined metrics and clipped files, noisy/delta sections."""

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

import se_data
import se_metrics as sm
from se_metrics.batch import COLUMNS, LEGACY_COLUMNS

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
                                         "std": pytest.approx(np.std(vals), abs=1e-12), "count": 3,
                                         "n_undefined": 0}
    assert {f["file"] for f in enh_sec["failures"]} == set(EXPECTED_FAIL)
    assert enh_sec["undefined"] == {} and enh_sec["n_clipped"] == 0 and enh_sec["recomputed"]["n_files"] == 0
    # each scored row records both inputs' fingerprints; a failed row's partner is named where known
    for rel, name in (("p287_001.wav", "p287_001.wav"), ("sub/p287_002.wav", "p287_002.wav")):
        fp_e, fp_c = se_data.file_fingerprint(enh / rel), se_data.file_fingerprint(clean / name)
        r = rows[rel]
        assert (r["input_path"], r["clean_path"]) == (rel, name)
        assert (int(r["input_size"]), int(r["input_mtime_ns"]), r["input_sha256"]) == tuple(fp_e.values())
        assert (int(r["clean_size"]), int(r["clean_mtime_ns"]), r["clean_sha256"]) == tuple(fp_c.values())
    assert rows["orphan.wav"]["clean_path"] == "" and rows["orphan.wav"]["clean_sha256"] == ""
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


def _tamper(path, values):
    """Overwrite cells of per_file.csv rows ({file: {column: text}}), keeping everything else."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        header, rows = reader.fieldnames, list(reader)
    for r in rows:
        r.update(values.get(r["file"], {}))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        w.writerows(rows)


@pytest.fixture()
def three(tmp_path, vb):
    """enhanced/ = three real noisy files (one in a subfolder), clean/ their references."""
    enh, clean = tmp_path / "enh", tmp_path / "clean"
    (enh / "sub").mkdir(parents=True)
    clean.mkdir()
    for rel in ("p287_001.wav", "sub/p287_002.wav", "p287_003.wav"):
        name = rel.rsplit("/", 1)[-1]
        shutil.copy(vb / "noisy" / name, enh / rel)
        shutil.copy(vb / "clean" / name, clean / name)  # sub/p287_002 paired by its unique name
    return enh, clean


def test_resume_recomputes_rows_whose_inputs_changed(three, tmp_path, vb):
    enh, clean = three
    out = tmp_path / "out"
    sm.evaluate_dir(enh, clean, out, workers=1, progress=False)
    first = _read_csv(out / "per_file.csv")
    # mark every kept row: a row that is not recomputed keeps the marker
    _tamper(out / "per_file.csv", {f: {"pesq_wb": "9.5"} for f in first})
    shutil.copy(vb / "clean" / "p287_001.wav", enh / "p287_001.wav")   # enhanced file replaced
    c2, sr = sf.read(clean / "p287_002.wav")
    sf.write(clean / "p287_002.wav", 0.5 * c2, sr)                     # clean reference replaced
    st = (enh / "p287_003.wav").stat()                                 # touched, same bytes
    os.utime(enh / "p287_003.wav", ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))
    summary = sm.evaluate_dir(enh, clean, out, workers=1, progress=False)
    rows = _read_csv(out / "per_file.csv")
    assert summary["n_computed_this_run"] == 2
    assert rows["p287_003.wav"]["pesq_wb"] == "9.5"                    # unchanged content: kept
    assert float(rows["p287_001.wav"]["pesq_wb"]) > 4.5                # now the clean file itself
    assert float(rows["p287_001.wav"]["pesq_wb"]) == sm.pesq(*[sf.read(p)[0] for p in (
        clean / "p287_001.wav", enh / "p287_001.wav")], SR)
    new2 = sm.evaluate_pair(sf.read(clean / "p287_002.wav")[0], sf.read(enh / "sub" / "p287_002.wav")[0], SR)
    assert float(rows["sub/p287_002.wav"]["pesq_wb"]) == new2["pesq_wb"]   # recomputed on the new reference
    assert float(rows["sub/p287_002.wav"]["snr"]) == new2["snr"] != float(first["sub/p287_002.wav"]["snr"])
    assert rows["sub/p287_002.wav"]["clean_sha256"] == se_data.file_fingerprint(clean / "p287_002.wav")["sha256"]
    rec = summary["enhanced"]["recomputed"]
    assert rec["n_files"] == 2 and rec["by_reason"] == {"clean reference changed": 1, "enhanced file changed": 1}
    reasons = {f["file"]: f["reasons"] for f in rec["files"]}
    assert reasons["p287_001.wav"][0].startswith("enhanced file changed: ")
    assert reasons["sub/p287_002.wav"] == [f"clean reference changed: content changed (sha256 "
                                           f"{first['sub/p287_002.wav']['clean_sha256'][:8]}... -> "
                                           f"{rows['sub/p287_002.wav']['clean_sha256'][:8]}...)"]
    assert "2 enhanced file(s) recomputed: clean reference changed (1), enhanced file changed (1)" \
        in sm.format_summary_table(summary)
    # the clean partner moves: a file now exists at the same relative path, which wins
    (clean / "sub").mkdir()
    shutil.copy(vb / "clean" / "p287_002.wav", clean / "sub" / "p287_002.wav")
    s3 = sm.evaluate_dir(enh, clean, out, workers=1, progress=False)
    assert s3["n_computed_this_run"] == 1
    assert s3["enhanced"]["recomputed"]["files"] == [
        {"file": "sub/p287_002.wav", "reasons": ["clean partner changed: p287_002.wav -> sub/p287_002.wav"]}]
    assert _read_csv(out / "per_file.csv")["sub/p287_002.wav"]["clean_path"] == "sub/p287_002.wav"
    # nothing changed since: nothing computed, nothing reported
    s4 = sm.evaluate_dir(enh, clean, out, workers=1, progress=False)
    assert s4["n_computed_this_run"] == 0 and s4["enhanced"]["recomputed"]["n_files"] == 0
    # a clean reference that disappears: its row is recomputed, and fails
    (clean / "p287_003.wav").unlink()
    s5 = sm.evaluate_dir(enh, clean, out, workers=1, progress=False)
    assert s5["enhanced"]["recomputed"]["by_reason"] == {"partner missing": 1}
    assert [f["file"] for f in s5["enhanced"]["failures"]] == ["p287_003.wav"]


def test_resume_recomputes_rows_without_fingerprints(three, tmp_path):
    enh, clean = three
    (enh / "p287_003.wav").unlink()
    out = tmp_path / "out"
    sm.evaluate_dir(enh, clean, out, workers=1, progress=False)
    rows = _read_csv(out / "per_file.csv")
    # an older per_file.csv: no undefined / note / fingerprint columns; its rows are never trusted
    with open(out / "per_file.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=LEGACY_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows({**r, "pesq_wb": "9.5"} for r in rows.values())
    summary = sm.evaluate_dir(enh, clean, out, workers=1, progress=False)
    again = _read_csv(out / "per_file.csv")  # rewritten with the current columns
    assert summary["n_computed_this_run"] == 2
    assert {f: r["pesq_wb"] for f, r in again.items()} == {f: r["pesq_wb"] for f, r in rows.items()}
    assert summary["enhanced"]["recomputed"]["by_reason"] == {"no fingerprint recorded": 2}
    # a current-format row with its fingerprint cells emptied is recomputed too
    _tamper(out / "per_file.csv", {"p287_001.wav": {"pesq_wb": "9.5", "clean_sha256": ""},
                                   "sub/p287_002.wav": {"pesq_wb": "9.5"}})
    s3 = sm.evaluate_dir(enh, clean, out, workers=1, progress=False)
    assert s3["n_computed_this_run"] == 1 and s3["enhanced"]["recomputed"]["by_reason"] == {"no fingerprint recorded": 1}
    third = _read_csv(out / "per_file.csv")
    assert third["p287_001.wav"]["pesq_wb"] == rows["p287_001.wav"]["pesq_wb"]
    assert third["sub/p287_002.wav"]["pesq_wb"] == "9.5"
    # a row whose cells are not numbers is recomputed, not a crash
    _tamper(out / "per_file.csv", {"p287_001.wav": {"snr": "loud"}})
    s4 = sm.evaluate_dir(enh, clean, out, workers=1, progress=False)
    assert s4["enhanced"]["recomputed"]["by_reason"] == {"unreadable row": 1}
    assert _read_csv(out / "per_file.csv")["p287_001.wav"]["snr"] == rows["p287_001.wav"]["snr"]


@pytest.fixture()
def edges(tmp_path, vb):
    """A real pair plus edge-case estimates, each with a clean partner of the same length."""
    enh, clean = tmp_path / "enh", tmp_path / "clean"
    enh.mkdir()
    clean.mkdir()
    c, _ = sf.read(vb / "clean" / "p287_001.wav")
    shutil.copy(vb / "noisy" / "p287_001.wav", enh / "good.wav")
    rng = np.random.default_rng(0)
    estimates = {"silent.wav": np.zeros_like(c), "near_silent.wav": 1e-9 * rng.standard_normal(c.shape[0]),
                 "dc.wav": np.full_like(c, 0.3), "clipped.wav": np.clip(20 * c, -1, 1)}
    for name, e in estimates.items():
        sf.write(enh / name, e, SR, subtype="FLOAT")
        sf.write(clean / name, c, SR, subtype="FLOAT")
    shutil.copy(vb / "clean" / "p287_001.wav", clean / "good.wav")
    for name, n in (("short01.wav", int(0.1 * SR)), ("short03.wav", int(0.3 * SR))):
        cut = c[SR: SR + n]
        sf.write(clean / name, cut, SR, subtype="FLOAT")
        sf.write(enh / name, cut + 0.01 * rng.standard_normal(n), SR, subtype="FLOAT")
    (enh / "broken.wav").write_bytes(b"not a wav file at all")
    sf.write(clean / "broken.wav", c, SR)
    return enh, clean


SILENT_WHY = ("pesq_wb, pesq_nb, stoi, estoi, si_sdr, lsd: silent estimate (every sample is 0); csig, cbak, covl: "
              "needs pesq_wb, which is undefined (silent estimate (every sample is 0))")


@pytest.mark.parametrize("workers", [1, 2])
def test_undefined_metrics_are_recorded_not_failed(edges, tmp_path, workers):
    enh, clean = edges
    out = tmp_path / f"out{workers}"
    summary = sm.evaluate_dir(enh, clean, out, workers=workers, progress=False)
    rows = _read_csv(out / "per_file.csv")
    sec = summary["enhanced"]
    assert [f["file"] for f in sec["failures"]] == ["broken.wav"]   # only what cannot be read
    assert sec["n_ok"] == 7 and sec["n_files"] == 8
    # undefined: empty cells with the reason; the defined metrics of the same file are recorded
    assert rows["silent.wav"]["undefined"] == SILENT_WHY and rows["silent.wav"]["error"] == ""
    assert float(rows["silent.wav"]["snr"]) == 0.0 and rows["silent.wav"]["si_sdr"] == ""
    assert rows["near_silent.wav"]["undefined"].startswith("pesq_wb, pesq_nb, stoi, estoi, si_sdr, lsd: near-silent")
    assert rows["dc.wav"]["undefined"].startswith("pesq_wb, pesq_nb, stoi, estoi, si_sdr, lsd: DC-only estimate")
    assert rows["short01.wav"]["undefined"].startswith("pesq_wb, pesq_nb: too short (1600 samples = 0.100 s")
    assert float(rows["short01.wav"]["si_sdr"]) > 20 and rows["short01.wav"]["lsd"] == ""
    assert rows["short03.wav"]["undefined"] == "stoi, estoi: too short (4800 samples = 0.300 s, needs 6554 = 0.410 s)"
    assert float(rows["short03.wav"]["pesq_wb"]) > 1
    assert rows["good.wav"]["undefined"] == "" and rows["clipped.wav"]["undefined"] == ""
    # counts per metric; means and stds over the defined values only, all finite
    want_undef = {"pesq_wb": 4, "pesq_nb": 4, "stoi": 5, "estoi": 5, "si_sdr": 3, "snr": 0, "ssnr": 0, "lsd": 4,
                  "csig": 4, "cbak": 4, "covl": 4}
    for m in sm.METRICS:
        st = sec["metrics"][m]
        vals = [float(r[m]) for r in rows.values() if r[m] != ""]
        assert st["n_undefined"] == want_undef[m] and st["count"] == 7 - want_undef[m] == len(vals), m
        assert st["mean"] == pytest.approx(np.mean(vals), abs=1e-12) and np.isfinite(st["std"])
        assert [e["file"] for e in sec["undefined"].get(m, [])] == sorted(
            f for f, r in rows.items() if not r["error"] and r[m] == "")
    assert sec["undefined"]["si_sdr"][0] == {"file": "dc.wav", "reason": "DC-only estimate (every sample is 0.3)"}
    # clipped: scored, counted, noted
    n_clip = int(np.count_nonzero(np.abs(sf.read(enh / "clipped.wav")[0]) >= 1))
    assert n_clip > 1000 and rows["clipped.wav"]["note"] == f"clipped: {n_clip} sample(s) at |x| >= 1"
    assert sec["n_clipped"] == 1 and sec["clipped"] == [{"file": "clipped.wav", "note": rows["clipped.wav"]["note"]}]
    assert all(rows["clipped.wav"][m] != "" for m in sm.METRICS)
    assert json.loads((out / "summary.json").read_text()) == summary
    table = sm.format_summary_table(summary)
    head = table.splitlines()[0].split()
    assert head == ["metric", "enhanced", "count", "undefined"]
    assert table.splitlines()[2].split()[-2:] == ["3", "4"]   # pesq_wb: 3 defined, 4 undefined
    assert f"UNDEFINED silent.wav: {SILENT_WHY}" in table and "5 enhanced file(s) scored with some metrics undefined" in table
    assert "1 enhanced file(s) clipped" in table and "7/8 enhanced files scored, 1 failed" in table
    # resume keeps rows with undefined metrics (they round-trip through the CSV) and retries the failure
    again = sm.evaluate_dir(enh, clean, out, workers=1, progress=False)
    assert again["n_computed_this_run"] == 1 and again["enhanced"]["recomputed"]["n_files"] == 0
    assert again["enhanced"]["metrics"] == sec["metrics"] and again["enhanced"]["undefined"] == sec["undefined"]


def test_noisy_delta_skips_metrics_undefined_on_either_side(edges, tmp_path):
    enh, clean = edges
    for f in enh.iterdir():
        if f.name not in ("good.wav", "silent.wav"):
            f.unlink()
    noisy = tmp_path / "noisy"
    noisy.mkdir()
    shutil.copy(enh / "good.wav", noisy / "good.wav")
    shutil.copy(enh / "good.wav", noisy / "silent.wav")  # the noisy input of the silent output was fine
    summary = sm.evaluate_dir(enh, clean, tmp_path / "out", workers=1, noisy_dir=noisy, progress=False)
    d = summary["delta"]["metrics"]
    assert d["pesq_wb"]["count"] == 1 and d["pesq_wb"]["mean"] == 0.0   # only good.wav, identical files
    assert d["snr"]["count"] == 2   # defined for both
    assert summary["noisy"]["metrics"]["pesq_wb"]["n_undefined"] == 0

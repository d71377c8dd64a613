"""tools/eval_dir.py end to end on real VoiceBank-DEMAND pairs (subprocess, as users run it)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

COLUMNS = ["file", "pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "snr", "ssnr", "lsd",
           "csig", "cbak", "covl", "undefined", "note", "error",
           "input_path", "input_size", "input_mtime_ns", "input_sha256",
           "clean_path", "clean_size", "clean_mtime_ns", "clean_sha256"]


def _run(repo_root, *args):
    return subprocess.run([sys.executable, "tools/eval_dir.py", *map(str, args)], cwd=repo_root,
                          capture_output=True, text=True, timeout=300)


def _rows(path):
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == COLUMNS
        return {r["file"]: r for r in reader}


def test_help_explains_every_flag(repo_root):
    res = _run(repo_root, "--help")
    assert res.returncode == 0
    for flag in ("ENHANCED_DIR", "CLEAN_DIR", "--out", "--noisy-dir", "--workers", "--sr", "--no-progress",
                 "--dnsmos", "--metrics"):
        assert flag in res.stdout
    import se_metrics as sm
    flat = " ".join(res.stdout.split())
    assert all(m in flat for m in sm.METRICS + sm.DNSMOS_METRICS)  # --metrics lists every valid name
    assert "resampled" in res.stdout and "resume" in res.stdout.lower()
    assert "non-intrusive" in res.stdout and "se-metrics[dnsmos]" in res.stdout


def test_eval_dir_noisy_resume_and_refusals(repo_root, shared_data, tmp_path):
    vb = shared_data / "speech" / "voicebank16k"
    enh, clean, noisy = tmp_path / "enh", tmp_path / "clean", tmp_path / "noisy"
    for d in (enh, clean, noisy):
        d.mkdir()
    rng = np.random.default_rng(0)
    for name in ("p287_001.wav", "p287_002.wav"):
        shutil.copy(vb / "noisy" / name, enh / name)
        shutil.copy(vb / "clean" / name, clean / name)
        x, sr = sf.read(vb / "noisy" / name)
        sf.write(noisy / name, x + 0.05 * rng.standard_normal(x.shape[0]), sr, subtype="FLOAT")
    shutil.copy(vb / "noisy" / "p287_005.wav", enh / "lonely.wav")  # no clean partner
    (enh / "broken.wav").write_bytes(b"not a wav file at all")
    shutil.copy(vb / "clean" / "p287_001.wav", clean / "broken.wav")

    out = tmp_path / "eval"
    res = _run(repo_root, enh, clean, "--out", out, "--noisy-dir", noisy, "--workers", 2)
    assert res.returncode == 1, res.stderr  # two files failed: the exit status says so
    assert "2 of 4 enhanced file(s) failed; exit status 1 (--allow-failures to exit 0)" in res.stderr
    assert "pesq_wb" in res.stdout and "delta (enh - noisy)" in res.stdout
    assert "2/4 enhanced files scored, 2 failed" in res.stdout
    assert "FAILED lonely.wav: missing clean partner for lonely.wav" in res.stdout
    assert "evaluating" in res.stderr  # tqdm progress bar

    rows = _rows(out / "per_file.csv")
    assert list(rows) == ["broken.wav", "lonely.wav", "p287_001.wav", "p287_002.wav"]
    ref = json.loads((shared_data / "reference" / "metrics_shared_pairs.json").read_text())
    for name in ("p287_001.wav", "p287_002.wav"):
        want = ref[f"voicebank16k/noisy/{name}"]
        assert rows[name]["error"] == ""
        assert float(rows[name]["pesq_wb"]) == want["pesq_wb"]
        assert float(rows[name]["stoi"]) == pytest.approx(want["stoi"], abs=1e-12)
        assert float(rows[name]["lsd"]) == pytest.approx(want["lsd"], abs=1e-9)
    assert "cannot be read as audio" in rows["broken.wav"]["error"] and rows["broken.wav"]["pesq_wb"] == ""
    noisy_rows = _rows(out / "per_file_noisy.csv")
    assert float(noisy_rows["p287_001.wav"]["pesq_wb"]) < float(rows["p287_001.wav"]["pesq_wb"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["enhanced"]["metrics"]["pesq_wb"]["count"] == 2
    assert {f["file"] for f in summary["enhanced"]["failures"]} == {"broken.wav", "lonely.wav"}
    d = summary["delta"]["metrics"]["pesq_wb"]
    assert d["count"] == 2 and d["mean"] == pytest.approx(np.mean(
        [float(rows[f]["pesq_wb"]) - float(noisy_rows[f]["pesq_wb"]) for f in ("p287_001.wav", "p287_002.wav")]))

    # resume: drop one scored row; only it is recomputed, plus the failed rows, which are retried
    # (enhanced: p287_002, broken, lonely; noisy: broken and lonely have no partners)
    kept = {k: v for k, v in rows.items() if k != "p287_002.wav"}
    with open(out / "per_file.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(kept.values())
    res2 = _run(repo_root, enh, clean, "--out", out, "--noisy-dir", noisy, "--workers", 1, "--no-progress",
                "--allow-failures")
    assert res2.returncode == 0, res2.stderr
    assert "2 of 4 enhanced file(s) failed; exit status 0 (--allow-failures)" in res2.stderr
    assert "resuming" in res2.stderr and "(5 file(s) computed this run)" in res2.stdout
    again = _rows(out / "per_file.csv")
    assert list(again) == list(rows)
    for f, r in rows.items():  # recomputed row equal; pystoi's ESTOI wobbles in the last ulps
        assert {k: v for k, v in again[f].items() if k != "estoi"} == {k: v for k, v in r.items() if k != "estoi"}
        assert again[f]["estoi"] == r["estoi"] or abs(float(again[f]["estoi"]) - float(r["estoi"])) < 1e-12

    # a non-empty folder that is not an evaluation is never overwritten
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    res3 = _run(repo_root, enh, clean, "--out", other)
    assert res3.returncode != 0 and "not empty" in res3.stderr and (other / "keep.txt").read_text() == "x"


def test_undefined_metrics_exit_0_and_a_replaced_file_is_rescored(repo_root, shared_data, tmp_path):
    """A silent output and a 0.3 s file have undefined metrics (counted, not failures: exit 0);
    replacing an enhanced file makes the next run rescore exactly that file and say why."""
    vb = shared_data / "speech" / "voicebank16k"
    enh, clean = tmp_path / "enh", tmp_path / "clean"
    enh.mkdir()
    clean.mkdir()
    c, sr = sf.read(vb / "clean" / "p287_001.wav")
    for name in ("p287_001.wav", "p287_002.wav"):
        shutil.copy(vb / "noisy" / name, enh / name)
        shutil.copy(vb / "clean" / name, clean / name)
    sf.write(enh / "silent.wav", np.zeros_like(c), sr)
    shutil.copy(vb / "clean" / "p287_001.wav", clean / "silent.wav")
    sf.write(enh / "short.wav", c[sr: sr + int(0.3 * sr)], sr)
    sf.write(clean / "short.wav", c[sr: sr + int(0.3 * sr)], sr)
    out = tmp_path / "eval"
    res = _run(repo_root, enh, clean, "--out", out, "--workers", 2, "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "4/4 enhanced files scored, 0 failed" in res.stdout and "failed;" not in res.stderr
    assert "2 enhanced file(s) scored with some metrics undefined" in res.stdout
    assert "UNDEFINED silent.wav: pesq_wb, pesq_nb, stoi, estoi, si_sdr, lsd: silent estimate" in res.stdout
    assert "UNDEFINED short.wav: stoi, estoi: too short (4800 samples = 0.300 s" in res.stdout
    pesq_line = next(ln for ln in res.stdout.splitlines() if ln.startswith("pesq_wb"))
    assert pesq_line.split()[-2:] == ["3", "1"]  # defined for 3 files, undefined for 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["enhanced"]["metrics"]["stoi"]["n_undefined"] == 2 and summary["enhanced"]["failures"] == []
    rows = _rows(out / "per_file.csv")
    assert rows["silent.wav"]["si_sdr"] == "" and float(rows["silent.wav"]["snr"]) == 0.0

    before = float(rows["p287_002.wav"]["pesq_wb"])
    shutil.copy(vb / "clean" / "p287_002.wav", enh / "p287_002.wav")  # a better enhancement replaces the file
    res2 = _run(repo_root, enh, clean, "--out", out, "--workers", 1, "--no-progress")
    assert res2.returncode == 0, res2.stderr
    assert "(1 file(s) computed this run)" in res2.stdout
    assert "1 enhanced file(s) recomputed: enhanced file changed (1)" in res2.stdout
    after = _rows(out / "per_file.csv")
    assert float(after["p287_002.wav"]["pesq_wb"]) > 4.5 > before
    assert {k: v for k, v in after["p287_001.wav"].items() if k != "estoi"} == \
        {k: v for k, v in rows["p287_001.wav"].items() if k != "estoi"}  # untouched: kept as it was

    # an unreadable enhanced file is a failure: exit status 1
    (enh / "broken.wav").write_bytes(b"not a wav file at all")
    shutil.copy(vb / "clean" / "p287_001.wav", clean / "broken.wav")
    res3 = _run(repo_root, enh, clean, "--out", out, "--workers", 1, "--no-progress")
    assert res3.returncode == 1
    assert "1 of 5 enhanced file(s) failed; exit status 1" in res3.stderr
    assert "FAILED broken.wav: " in res3.stdout and "cannot be read as audio" in res3.stdout


def test_enhanced_dir_alone_scores_dnsmos(repo_root, shared_data, tmp_path):
    """Non-intrusive mode: ENHANCED_DIR alone scores DNSMOS only, a 48 kHz file is resampled and
    the output says so, the per-file values are se_metrics.dnsmos's; --dnsmos with CLEAN_DIR adds
    the four columns to the usual eleven."""
    pytest.importorskip("onnxruntime", reason="the dnsmos extra is not installed")
    import se_metrics as sm
    from scipy.signal import resample_poly

    vb = shared_data / "speech" / "voicebank16k"
    enh, clean = tmp_path / "enh", tmp_path / "clean"
    enh.mkdir()
    clean.mkdir()
    shutil.copy(vb / "noisy" / "p287_001.wav", enh / "p287_001.wav")
    shutil.copy(vb / "clean" / "p287_001.wav", clean / "p287_001.wav")
    shutil.copy(shared_data / "speech" / "p286_011_48k.wav", enh / "p286_011_48k.wav")
    out = tmp_path / "eval"
    res = _run(repo_root, enh, "--out", out, "--workers", 2, "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "non-intrusive: no clean reference, DNSMOS only" in res.stdout
    assert "1 file(s) resampled from 48000 Hz to 16000 Hz" in res.stdout and "DNSMOS needs 16 kHz" in res.stdout
    assert "2/2 enhanced files scored, 0 failed" in res.stdout
    metric_lines = [ln.split()[0] for ln in res.stdout.splitlines() if ln.split()[1:2] in (["↑"], ["↓"])]
    assert metric_lines == ["dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"]
    with open(out / "per_file.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["file", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808", "undefined",
                                     "note", "error", "input_path", "input_size", "input_mtime_ns", "input_sha256"]
        rows = {r["file"]: r for r in reader}
    x48, _ = sf.read(enh / "p286_011_48k.wav")
    want = sm.dnsmos(resample_poly(x48, 1, 3), 16000)
    for k, v in want.items():
        assert float(rows["p286_011_48k.wav"][k]) == pytest.approx(v, abs=1e-9)

    res2 = _run(repo_root, enh, clean, "--out", tmp_path / "both", "--dnsmos", "--workers", 1, "--no-progress",
                "--allow-failures")  # p286_011_48k has no clean partner
    assert res2.returncode == 0, res2.stderr
    names = [ln.split()[0] for ln in res2.stdout.splitlines() if ln.split() and ln.split()[0] in
             list(sm.METRICS) + list(sm.DNSMOS_METRICS)]
    assert names == list(sm.METRICS) + list(sm.DNSMOS_METRICS)


def test_dnsmos_without_the_extra_names_it(repo_root, tmp_path):
    """Without onnxruntime, ENHANCED_DIR alone and --dnsmos stop before writing anything and name
    the extra to install; the default evaluation does not need it."""
    enh = tmp_path / "enh"
    enh.mkdir()
    sf.write(enh / "a.wav", 0.1 * np.random.default_rng(0).standard_normal(16000), 16000)
    block = ("import sys, runpy; sys.modules['onnxruntime'] = None; sys.path.insert(0, 'tools'); "
             "sys.argv = ['eval_dir.py'] + sys.argv[1:]; runpy.run_path('tools/eval_dir.py', run_name='__main__')")
    for extra in ([], ["--dnsmos"]):
        out = tmp_path / f"out{len(extra)}"
        args = [str(enh)] + ([str(enh)] if extra else []) + ["--out", str(out)] + extra
        res = subprocess.run([sys.executable, "-c", block, *args], cwd=repo_root, capture_output=True, text=True,
                             timeout=300)
        assert res.returncode == 1, res.stderr
        assert "se-metrics[dnsmos]" in res.stderr and "onnxruntime" in res.stderr
        assert not out.exists()


def _pairs(vb, enh, clean, names=("p287_001.wav", "p287_002.wav")):
    for d in (enh, clean):
        d.mkdir()
    for name in names:
        shutil.copy(vb / "noisy" / name, enh / name)
        shutil.copy(vb / "clean" / name, clean / name)


def test_metrics_subset_equals_full_run_and_resume_keeps_the_choice(repo_root, shared_data, tmp_path):
    """--metrics: the CSV and summary hold only the chosen metrics (in METRICS order, whatever
    the order given), each value equal to the full run's; a resume into that folder with
    another choice (or all) is refused, naming the first run's metrics, and changes nothing."""
    import se_metrics as sm

    vb = shared_data / "speech" / "voicebank16k"
    enh, clean = tmp_path / "enh", tmp_path / "clean"
    _pairs(vb, enh, clean)
    full, sub = tmp_path / "full", tmp_path / "sub"
    res = _run(repo_root, enh, clean, "--out", full, "--workers", 1, "--no-progress")
    assert res.returncode == 0, res.stderr
    chosen = ["si_sdr", "pesq_wb", "stoi", "covl"]
    res = _run(repo_root, enh, clean, "--out", sub, "--workers", 1, "--no-progress", "--metrics", ",".join(chosen))
    assert res.returncode == 0, res.stderr
    want = ["pesq_wb", "stoi", "si_sdr", "covl"]
    assert [ln.split()[0] for ln in res.stdout.splitlines() if ln.split()[1:2] in (["↑"], ["↓"])] == want
    rows_full = _rows(full / "per_file.csv")
    with open(sub / "per_file.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["file"] + want + COLUMNS[12:]
        rows_sub = {r["file"]: r for r in reader}
    assert list(rows_sub) == list(rows_full) == ["p287_001.wav", "p287_002.wav"]
    for f, r in rows_sub.items():
        for m in want:
            assert float(r[m]) == float(rows_full[f][m]), (f, m)
    summary = json.loads((sub / "summary.json").read_text())
    full_summary = json.loads((full / "summary.json").read_text())
    assert list(summary["enhanced"]["metrics"]) == want and summary["config"]["metrics"] == want
    assert "metrics" not in full_summary["config"]
    for m in want:
        assert summary["enhanced"]["metrics"][m] == full_summary["enhanced"]["metrics"][m]

    before = (sub / "per_file.csv").read_bytes()
    for other in (["--metrics", "pesq_wb,stoi"], []):
        res = _run(repo_root, enh, clean, "--out", sub, "--workers", 1, "--no-progress", *other)
        assert res.returncode == 1
        assert "cannot be resumed with another metric set" in res.stderr
        assert "--metrics pesq_wb,stoi,si_sdr,covl" in res.stderr
        assert (sub / "per_file.csv").read_bytes() == before
    res = _run(repo_root, enh, clean, "--out", full, "--workers", 1, "--no-progress", "--metrics", "pesq_wb")
    assert res.returncode == 1 and "evaluation of the metrics " + ",".join(sm.METRICS) in res.stderr
    res = _run(repo_root, enh, clean, "--out", sub, "--workers", 1, "--no-progress",
               "--metrics", "covl,si_sdr,stoi,pesq_wb")
    assert res.returncode == 0, res.stderr  # the same choice in another order resumes: nothing to compute
    assert "(0 file(s) computed this run)" in res.stdout


def test_metrics_bad_names_are_refused_with_exit_2(repo_root, tmp_path):
    """An unknown or repeated name, a metric that needs CLEAN_DIR without one, and DNSMOS alone
    with CLEAN_DIR are command-line errors: exit status 2, the valid names listed, nothing written."""
    enh = tmp_path / "enh"
    enh.mkdir()
    sf.write(enh / "a.wav", 0.1 * np.random.default_rng(0).standard_normal(16000), 16000)
    out = tmp_path / "out"
    cases = [((enh, enh, "--metrics", "pesq_wb,pesq"),
              "unknown metric(s) pesq; valid: pesq_wb, pesq_nb, stoi, estoi, si_sdr, snr, ssnr, lsd, csig, cbak, covl "
              "(these need CLEAN_DIR, a clean reference) and dnsmos_sig, dnsmos_bak, dnsmos_ovrl, dnsmos_p808"),
             ((enh, enh, "--metrics", "stoi,stoi"), "each metric once"),
             ((enh, enh, "--metrics", ","), "no name"),
             ((enh, "--metrics", "stoi,dnsmos_ovrl"), "stoi: a clean reference is needed"),
             ((enh, enh, "--metrics", "dnsmos_ovrl"), "only DNSMOS scores chosen with CLEAN_DIR")]
    for args, message in cases:
        res = _run(repo_root, *args, "--out", out)
        assert res.returncode == 2, (args, res.stderr)
        assert message in res.stderr, (args, res.stderr)
        assert not out.exists()


def test_metrics_dnsmos_subset_non_intrusive(repo_root, shared_data, tmp_path):
    """--metrics with DNSMOS names alone in non-intrusive mode: only those columns, the values of
    se_metrics.dnsmos; with CLEAN_DIR a DNSMOS name implies --dnsmos."""
    pytest.importorskip("onnxruntime", reason="the dnsmos extra is not installed")
    import se_metrics as sm

    vb = shared_data / "speech" / "voicebank16k"
    enh, clean = tmp_path / "enh", tmp_path / "clean"
    _pairs(vb, enh, clean, names=("p287_001.wav",))
    out = tmp_path / "eval"
    res = _run(repo_root, enh, "--out", out, "--workers", 1, "--no-progress", "--metrics", "dnsmos_p808,dnsmos_ovrl")
    assert res.returncode == 0, res.stderr
    with open(out / "per_file.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["file", "dnsmos_ovrl", "dnsmos_p808", "undefined", "note", "error",
                                     "input_path", "input_size", "input_mtime_ns", "input_sha256"]
        row = next(reader)
    want = sm.dnsmos(sf.read(enh / "p287_001.wav")[0], 16000)
    for m in ("dnsmos_ovrl", "dnsmos_p808"):
        assert float(row[m]) == pytest.approx(want[m], abs=1e-9)
    res = _run(repo_root, enh, clean, "--out", tmp_path / "both", "--workers", 1, "--no-progress",
               "--metrics", "dnsmos_sig,pesq_wb")
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "both" / "summary.json").read_text())
    assert list(summary["enhanced"]["metrics"]) == ["pesq_wb", "dnsmos_sig"] and summary["config"]["dnsmos"]

"""tools/make_nonstationary_testset.py end to end (subprocess, as users run it): build from real
speech (one file at 48 kHz) and real noises in class folders (one at 48 kHz), rebuild
byte-identically from the manifest, refuse a used --out; synthetic noise with a failed mixture
(exit 1, or 0 with --allow-failures); command-line errors exit 2 and create nothing."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: the helper beside this file
from _inproc import run_tool  # noqa: E402

TOOL = "tools/make_nonstationary_testset.py"


def _run(repo_root, *args):
    return subprocess.run([sys.executable, TOOL, *map(str, args)], cwd=repo_root, capture_output=True, text=True,
                          timeout=300)


def _hashes(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.wav"))}


def test_build_rebuild_and_refuse(repo_root, shared_data, tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    for name in ("p287_001.wav", "p287_002.wav"):
        shutil.copy(shared_data / "speech" / "voicebank16k" / "clean" / name, clean / name)
    shutil.copy(shared_data / "speech" / "p286_011_48k.wav", clean / "p286_011_48k.wav")
    noise = tmp_path / "noise"
    for cls, src in (("background", "noise2.wav"), ("freesound", "noise_freesound_573577.wav"),
                     ("dishes", "doing_the_dishes.wav")):
        (noise / cls).mkdir(parents=True)
        shutil.copy(shared_data / "noise" / src, noise / cls / src)

    out = tmp_path / "ns"
    r = _run(repo_root, "--clean", clean, "--noise", noise, "--out", out, "--noises-per-file", "2",
             "--trajectory", "steps", "--snr-range", "0", "10", "--seed", "3", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "3 mixtures from 3 clean files" in r.stdout and "1 clean source(s) resampled" in r.stdout
    with open(out / "manifest.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames[:4] == ["file", "clean_source", "noise_sources", "noise_classes"]
        rows = list(reader)
    assert sorted(x["file"] for x in rows) == ["p286_011_48k.wav", "p287_001.wav", "p287_002.wav"]
    meta = json.loads((out / "manifest.json").read_text())
    assert meta["seed"] == 3 and meta["settings"]["trajectory"] == "steps" and meta["settings"]["noise_layout"] == "folder"
    assert meta["resampled"]["clean"] == ["p286_011_48k.wav"]
    assert meta["source_audio"]["clean"]["p286_011_48k.wav"]["sample_rate"] == 48000
    for x, row in zip(rows, sorted(meta["rows"], key=lambda m: m["file"])):
        assert len(set(x["noise_classes"].split("|"))) == 2 and x["file"] == row["file"]
        assert 0.0 <= row["snr_min_db"] <= row["snr_max_db"] <= 10.0
        for sub in ("noisy", "clean"):
            assert sf.info(out / sub / x["file"]).samplerate == 16000
    built = _hashes(out)
    assert len(built) == 6

    again = tmp_path / "again"
    r = _run(repo_root, "--from-manifest", out / "manifest.json", "--out", again, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "byte-identical" in r.stdout and _hashes(again) == built

    r = _run(repo_root, "--clean", clean, "--noise", noise, "--out", out, "--no-progress")
    assert r.returncode == 2 and "nothing is overwritten" in r.stderr
    assert _hashes(out) == built


def test_synthetic_noise_failures_and_exit_codes(repo_root, tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    t = np.arange(24000) / 16000
    sf.write(clean / "tone.wav", 0.1 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)), 16000)
    sf.write(clean / "silent.wav", np.zeros(16000), 16000)
    common = ["--clean", clean, "--noise", "synthetic", "--synthetic-kinds", "white", "pink",
              "--synthetic-seconds", "3", "--no-progress"]
    r = _run(repo_root, *common, "--out", tmp_path / "a")
    assert r.returncode == 1, r.stderr
    assert "1 of 2 mixture(s) failed" in r.stderr and "silent.wav" in r.stderr
    meta = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert meta["noise_root"] == "synthetic" and set(meta["sources"]["noise"]) <= {"synthetic:white", "synthetic:pink"}
    assert [f["clean_source"] for f in meta["failures"]] == ["silent.wav"]
    assert not (tmp_path / "a" / ".lock").exists()  # the lock is gone after the run
    # the tool's main in this process from here on (tests/_inproc.py: the same output, status and
    # lock release at exit; the run above is the command line end to end)
    r = run_tool("make_nonstationary_testset.py", *common, "--out", tmp_path / "b", "--allow-failures")
    assert r.returncode == 0, r.stderr
    assert _hashes(tmp_path / "a") == _hashes(tmp_path / "b")  # same seed, same bytes

    r = run_tool("make_nonstationary_testset.py", *common, "--out", clean / "inside")  # an output inside an input
    assert r.returncode == 2 and "is inside --clean" in r.stderr and not (clean / "inside").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / ".lock").write_text(json.dumps({"host": os.uname().nodename, "pid": os.getpid(),
                                            "tool": "make_nonstationary_testset", "started": "now"}))
    r = run_tool("make_nonstationary_testset.py", *common, "--out", busy)
    assert r.returncode == 2 and "is in use by make_nonstationary_testset" in r.stderr
    assert sorted(p.name for p in busy.iterdir()) == [".lock"]


def _tool(repo_root):
    spec = importlib.util.spec_from_file_location("make_nonstationary_testset_cli", repo_root / TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("argv,message", [
    (["--clean", "C", "--noise", "N", "--snr-range", "10", "0"], "--snr-range LO (10) must be at most --snr-range HI (0)"),
    (["--clean", "C", "--noise", "N", "--event-level-db", "6", "-6"], "--event-level-db LO (6) must be at most"),
    (["--clean", "C", "--noise", "N", "--synthetic-kinds", "white"], "--synthetic-kinds applies only with --noise synthetic"),
    (["--clean", "C", "--noise", "synthetic", "--synthetic-kinds", "white", "white"], "must be distinct"),
    (["--clean", "C", "--noise", "synthetic", "--categories", "dog"], "not to --noise synthetic"),
    (["--clean", "C"], "--clean and --noise are required"),
    (["--clean", "C", "--noise", "N", "--snr-range", "0", "90"], "argument --snr-range: invalid value '90'"),
])
def test_bad_command_lines_exit_2(repo_root, monkeypatch, capsys, argv, message):
    monkeypatch.syspath_prepend(str(repo_root / "tools"))  # the tool imports its helpers by plain name
    with pytest.raises(SystemExit) as e:
        _tool(repo_root).parse_args(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err

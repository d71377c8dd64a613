"""tools/make_ood_testset.py end to end (subprocess, as users run it): build from real speech and a
folder of real noises (one at 48 kHz), rebuild byte-identically from the manifest, refuse an
existing output folder (the rebuild and the refusal call its main in this process,
tests/_inproc.py: the same output and status without a second start-up)."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: the helper beside this file
from _inproc import run_tool  # noqa: E402

COLUMNS = ["file", "clean_source", "noise_source", "noise_class", "noise_offset", "snr_db", "clean_gain",
           "noise_gain"]


def _run(repo_root, *args):
    return subprocess.run([sys.executable, "tools/make_ood_testset.py", *map(str, args)], cwd=repo_root,
                          capture_output=True, text=True, timeout=300)


def _hashes(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.wav"))}


def test_build_rebuild_and_refuse(repo_root, shared_data, tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    for name in ("p287_001.wav", "p287_002.wav"):
        shutil.copy(shared_data / "speech" / "voicebank16k" / "clean" / name, clean / name)
    noise = tmp_path / "noise"
    noise.mkdir()
    shutil.copy(shared_data / "noise" / "noise2.wav", noise / "noise2.wav")
    shutil.copy(shared_data / "noise" / "noise_freesound_573577.wav", noise / "freesound.wav")  # 48 kHz

    out = tmp_path / "ood"
    r = _run(repo_root, "--clean", clean, "--noise", noise, "--out", out, "--snrs", "-5", "0", "7.5",
             "--seed", "3", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "6 mixtures from 2 clean files" in r.stdout and "SNR (dB)" in r.stdout
    with open(out / "manifest.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        rows = list(reader)
    assert len(rows) == 6 and {float(x["snr_db"]) for x in rows} == {-5.0, 0.0, 7.5}
    assert {x["noise_class"] for x in rows} <= {"noise2", "freesound"}
    meta = json.loads((out / "manifest.json").read_text())
    assert meta["seed"] == 3 and meta["sample_rate"] == 16000 and meta["settings"]["noise_layout"] == "folder"
    assert set(meta["sources"]["clean"]) == {"p287_001.wav", "p287_002.wav"}
    for x in rows:
        assert sf.info(out / "noisy" / x["file"]).samplerate == 16000
    built = _hashes(out)
    assert len(built) == 12

    again = tmp_path / "again"
    r = run_tool("make_ood_testset.py", "--from-manifest", out / "manifest.json", "--out", again, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "byte-identical" in r.stdout
    assert _hashes(again) == built  # every wav, bit for bit

    r = run_tool("make_ood_testset.py", "--from-manifest", out / "manifest.json", "--out", out, "--no-progress")
    assert r.returncode == 2 and "nothing is overwritten" in r.stderr
    assert _hashes(out) == built

"""tools/resample_dataset.py on a small synthetic VoiceBank-DEMAND-like tree, including resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from se_data import resample

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: the helper beside this file
from _inproc import run_tool  # noqa: E402

LOG = "p226_001 babble 15\np226_002 car 5\np287_001 ssn 0\n"


def _make_tree(root, seconds=0.3):
    rng = np.random.default_rng(0)
    files = {}
    for sub in ("clean_trainset_28spk_wav", "noisy_trainset_28spk_wav", "clean_testset_wav"):
        for name in ("p226_001", "p226_002", "p287_001"):
            x = (0.3 * rng.standard_normal(int(48000 * seconds))).clip(-0.9, 0.9).astype(np.float32)
            p = root / sub / f"{name}.wav"
            p.parent.mkdir(parents=True, exist_ok=True)
            sf.write(p, x, 48000, subtype="PCM_16")
            files[f"{sub}/{name}.wav"] = p
    (root / "logfiles").mkdir()
    (root / "logfiles" / "log_trainset_28spk.txt").write_text(LOG)
    sf.write(root / "already16k.wav", np.zeros(1600, np.float32), 16000, subtype="PCM_16")
    return files


def _run(repo_root, *args, process=True):
    """tools/resample_dataset.py ARGS as a process, or without ``process`` its main in this
    process (tests/_inproc.py: the same output, status and lock release at exit)."""
    if not process:
        return run_tool("resample_dataset.py", *args, "--no-progress")
    return subprocess.run([sys.executable, "tools/resample_dataset.py", *map(str, args), "--no-progress"],
                          cwd=repo_root, capture_output=True, text=True, timeout=120)


def _table(stdout):
    out = {}
    for line in stdout.splitlines():
        parts = line.rsplit("  ", 1)
        if len(parts) == 2:
            out[parts[0].strip()] = parts[1].strip()
    return out


def test_resample_tree_then_resume(tmp_path, repo_root):
    src, dst = tmp_path / "vb48k", tmp_path / "vb16k"
    files = _make_tree(src)
    r = _run(repo_root, src, dst, "--sr", 16000, "--workers", 2, "--report", tmp_path / "rep.json")
    assert r.returncode == 0, r.stderr
    t = _table(r.stdout)
    assert t["audio resampled"] == "9" and t["audio copied (already 16000 Hz)"] == "1"
    assert t["other files copied"] == "1" and t["failed"] == "0"
    assert t["source rates seen"] == "16000 Hz: 1, 48000 Hz: 9"
    rep = json.loads((tmp_path / "rep.json").read_text())
    assert rep["resampled"] == 9 and rep["rates_seen"] == {"16000": 1, "48000": 9}

    # same layout, 16 kHz, PCM_16, exact length, values = library resample (to PCM_16 precision)
    got = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    want = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    assert got == sorted(want + [".resample_manifest.json"])  # plus the record of each file's source
    for rel, sp in files.items():
        info = sf.info(dst / rel)
        assert (info.samplerate, info.frames, info.subtype) == (16000, 4800, "PCM_16")
        x, _ = sf.read(sp, dtype="float32")
        y, _ = sf.read(dst / rel, dtype="float32")
        assert np.abs(y - resample(torch.from_numpy(x), 48000, 16000).numpy()).max() <= 1 / 32768 + 1e-6
    assert (dst / "logfiles" / "log_trainset_28spk.txt").read_text() == LOG
    assert (dst / "already16k.wav").read_bytes() == (src / "already16k.wav").read_bytes()

    # resume after a simulated interruption: one file missing, one truncated, one stale .partial
    (dst / "clean_testset_wav" / "p226_001.wav").unlink()
    bad = dst / "noisy_trainset_28spk_wav" / "p287_001.wav"
    bad.write_bytes(bad.read_bytes()[:2000])
    (dst / "clean_testset_wav" / ".p226_001.wav.4242.0123abcd.partial").write_bytes(b"half")
    r2 = _run(repo_root, src, dst, "--sr", 16000, "--workers", 1, process=False)
    assert r2.returncode == 0, r2.stderr
    t2 = _table(r2.stdout)
    assert t2["audio resampled"] == "2" and t2["audio skipped (already done)"] == "8"
    assert t2["replaced (invalid in DST)"] == "1" and t2["other files skipped"] == "1"
    assert t2["stale .partial files removed"] == "1"
    assert sf.info(bad).frames == 4800
    assert not list(dst.rglob("*.partial"))
    assert t2["redone (source changed)"] == "0"

    # a source replaced since: its DST file is valid (same rate and length) but stale, so it is redone
    changed = files["clean_testset_wav/p287_001.wav"]
    x, _ = sf.read(changed, dtype="float32")
    sf.write(changed, -x, 48000, subtype="PCM_16")
    r3 = _run(repo_root, src, dst, "--sr", 16000, "--workers", 1, process=False)
    assert r3.returncode == 0, r3.stderr
    t3 = _table(r3.stdout)
    assert t3["audio resampled"] == "1" and t3["redone (source changed)"] == "1"
    assert "redone: clean_testset_wav/p287_001.wav: source changed: content changed (sha256 " in r3.stdout
    y, _ = sf.read(dst / "clean_testset_wav" / "p287_001.wav", dtype="float32")
    assert np.abs(y + resample(torch.from_numpy(x), 48000, 16000).numpy()).max() <= 2 / 32768 + 1e-6


def test_help_and_bad_flags(tmp_path, repo_root):
    r = _run(repo_root, tmp_path, tmp_path / "d", "--sr", 0, process=False)
    assert r.returncode == 2 and "argument --sr: invalid value '0'" in r.stderr and "sample rate" in r.stderr
    h = subprocess.run([sys.executable, "tools/resample_dataset.py", "--help"], cwd=repo_root,
                       capture_output=True, text=True)
    assert h.returncode == 0
    for flag in ("--sr", "--workers", "--report", "--no-progress", "resume"):
        assert flag in h.stdout

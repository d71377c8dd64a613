"""Output folders: the --out lock (a second run fails and names the holder; a dead holder is
reported and --resume takes the folder over, starting from scratch without a checkpoint; the lock
is gone after the run), input/output folders that must not overlap, and written files that
respect the umask."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: the helper beside this file
from _inproc import run_tool  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TOY = ["--num-tones", "4", "--batch-size", "2", "--valid-notes", "2", "--valid-levels-db", "-6",
       "--channels", "2", "1", "--dilations1", "1", "2", "4", "--dilations2", "1", "2", "--no-progress",
       "--threads", "1", "--builtin-oversample", "2", "--epochs", "1"]


def _run(tool: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, f"tools/{tool}", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ))


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _write_lock(out: Path, pid: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "tool": "train_aa",
                                           "started": "2026-01-01T00:00:00"}))


def test_a_live_holder_refuses_a_second_run_and_names_it(tmp_path):
    out = tmp_path / "run"
    _write_lock(out, os.getpid())  # this test process: alive on this host
    r = _run("train_aa.py", *TOY, "--out", out)
    assert r.returncode != 0 and f"is in use by train_aa (PID {os.getpid()}" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing was written
    r = _run("train_aa.py", *TOY, "--out", out, "--resume")  # --resume never takes a live run's folder
    assert r.returncode != 0 and "is in use by" in r.stderr


def test_a_dead_holder_points_to_resume_which_starts_from_scratch(tmp_path):
    out = tmp_path / "run"
    _write_lock(out, _dead_pid())
    r = _run("train_aa.py", *TOY, "--out", out)
    assert r.returncode != 0 and "no longer running" in r.stderr and "--resume" in r.stderr
    r = _run("train_aa.py", *TOY, "--out", out, "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "starting from scratch" in r.stdout
    assert (out / "last.pt").is_file() and (out / "config.json").is_file() and (out / "student.nam").is_file()
    assert not (out / ".lock").exists()  # released at exit
    # the exported .nam respects the umask (not 0600)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((out / "student.nam").stat().st_mode) == 0o666 & ~umask


def test_a_failed_run_releases_its_lock(tmp_path):
    out = tmp_path / "run"
    r = _run("train_aa.py", *TOY, "--out", out, "--teacher", tmp_path / "missing.nam")
    assert r.returncode != 0 and "missing.nam" in r.stderr
    assert out.is_dir()  # the run took the folder (and its lock) before it failed on the teacher
    assert not (out / ".lock").exists()


def test_input_and_output_folders_must_not_overlap(tmp_path):
    """(Each main in this process, tests/_inproc.py: the same message and status as the process.)"""
    noisy = tmp_path / "noisy"
    noisy.mkdir()
    sf.write(noisy / "a.wav", np.zeros(16000, np.float32), 16000)
    for out, word in ((noisy, "is"), (noisy / "enh", "is inside")):
        r = run_tool("enhance.py", noisy, out, "--ckpt", tmp_path / "none.pt")
        assert r.returncode != 0 and f"OUT_DIR {out} {word} IN_DIR" in r.stderr, r.stderr
    r = run_tool("eval_dir.py", noisy, noisy, "--out", tmp_path)
    assert r.returncode != 0 and "contains ENHANCED_DIR" in r.stderr, r.stderr
    r = run_tool("make_ood_testset.py", "--clean", noisy, "--noise", tmp_path, "--out", noisy / "ood")
    assert r.returncode != 0 and "--out" in r.stderr and "is inside --clean" in r.stderr, r.stderr


def test_make_ood_testset_holds_the_out_lock(tmp_path):
    """A second make_ood_testset into a folder another run holds stops before reading anything."""
    clean, noise = tmp_path / "clean", tmp_path / "noise"
    clean.mkdir()
    noise.mkdir()
    out = tmp_path / "ood"
    _write_lock(out, os.getpid())
    r = _run("make_ood_testset.py", "--clean", clean, "--noise", noise, "--out", out)
    assert r.returncode != 0 and f"is in use by train_aa (PID {os.getpid()}" in r.stderr, r.stderr
    assert sorted(p.name for p in out.iterdir()) == [".lock"]
    (out / ".lock").unlink()
    (out / "old.txt").write_text("x")
    r = _run("make_ood_testset.py", "--clean", clean, "--noise", noise, "--out", out)
    assert r.returncode == 2 and "not empty" in r.stderr and (out / "old.txt").read_text() == "x"


def _lock_cases(tmp: Path, shared: Path) -> dict[str, list]:
    """Each tool that writes an output folder, with arguments that reach its lock (OUT is the folder)."""
    d = tmp / "in"
    d.mkdir(exist_ok=True)
    return {
        "train_bsdt.py": ["--epochs", "1", "--demo-dir", tmp / "demo", "--out", "OUT"],
        "train_sgmse.py": ["--epochs", "1", "--demo-dir", tmp / "demo", "--out", "OUT"],
        "train_aa.py": [*TOY, "--out", "OUT"],
        "eval_dir.py": [d, d, "--out", "OUT"],
        "enhance.py": ["--ckpt", tmp / "none.pt", d, "OUT"],
        "resample_dataset.py": [d, "OUT"],
        "make_ood_testset.py": ["--clean", d, "--noise", d, "--out", "OUT"],
        "make_nonstationary_testset.py": ["--clean", d, "--noise", "synthetic", "--out", "OUT"],
        "render_nam.py": ["--model", shared / "nam" / "core_wavenet_tiny.nam", "--out", "OUT"],
        "run_study.py": [REPO / "studies" / "bsdt_ablation.toml", "--quick", "--out", "OUT"],
    }


def test_every_tool_refuses_an_output_folder_another_run_holds(tmp_path, shared_data):
    """One row per tool: a live holder's lock stops the run before it writes anything, and the
    message names the holder. Each tool's main runs in this process (tests/_inproc.py: the same
    message and status; the holder's PID, this process's, is alive either way); the message on
    a process's stderr is checked end to end for train_aa and make_ood_testset above."""
    failures = []
    for tool, argv in _lock_cases(tmp_path, shared_data).items():
        out = tmp_path / f"out-{tool}"
        _write_lock(out, os.getpid())
        r = run_tool(tool, *[out if a == "OUT" else a for a in argv])
        names = sorted(p.name for p in out.iterdir())
        if r.returncode == 0 or f"in use by train_aa (PID {os.getpid()}" not in r.stderr or names != [".lock"]:
            failures.append(f"{tool}: exit {r.returncode}, folder {names}, stderr {r.stderr[-300:]!r}")
    assert not failures, "\n".join(failures)

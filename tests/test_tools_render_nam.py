"""tools/render_nam.py: every input through every model, outputs equal to the models' own
forward pass, spectrograms, and clear refusals (wrong rate, stereo, models at other rates)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import aa_distill

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: the helper beside this file
from _inproc import run_tool  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "tools/render_nam.py", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_builtin_signals_through_teacher_and_student(shared_data, tmp_path):
    teacher, student = shared_data / "nam" / "core_wavenet_tiny.nam", shared_data / "nam" / "core_lstm_tiny.nam"
    out = tmp_path / "r"
    r = _run("--model", teacher, "--model", student, "--out", out, "--sweep-seconds", "0.5", "--note-seconds", "0.2")
    assert r.returncode == 0, r.stderr
    rec = json.loads((out / "render.json").read_text())
    assert rec["sample_rate"] == 48_000 and set(rec["inputs"]) == {"sweep", "pluck"}
    assert rec["models"]["core_wavenet_tiny"]["sha256"] == aa_distill.nam_sha256(teacher)
    for name, seconds in (("sweep", 0.5), ("pluck", 6 * 0.2)):
        x, sr = sf.read(out / "inputs" / f"{name}.wav", dtype="float32")
        assert sr == 48_000 and len(x) == round(seconds * sr)
        for path in (teacher, student):
            y, _ = sf.read(out / path.stem / f"{name}.wav", dtype="float32")
            with torch.no_grad():
                ref = aa_distill.load_nam(path, dtype=torch.float64)(torch.from_numpy(x).double()[None])[0]
            # rendered in float64 and stored as float32: equal to float32 rounding at any thread count
            np.testing.assert_allclose(y, ref.numpy(), rtol=2 ** -23, atol=1e-12)
        assert (out / "spectrograms" / f"{name}.png").stat().st_size > 10_000
    assert not (out / ".lock").exists()


def test_inputs_at_another_rate_or_stereo_are_refused_naming_the_flag(shared_data, tmp_path):
    """(The tool's main in this process, tests/_inproc.py: the same messages and statuses; the
    command line end to end is the test above.)"""
    model = shared_data / "nam" / "core_wavenet_tiny.nam"
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "di44.wav", 0.1 * np.sin(np.arange(44_100) / 10), 44_100)
    sf.write(src / "stereo.wav", np.zeros((4800, 2)) + 0.1, 48_000)
    r = run_tool("render_nam.py", src / "di44.wav", src / "stereo.wav", "--model", model, "--out", tmp_path / "o",
                 "--no-plots")
    assert r.returncode == 1
    assert "di44.wav" in r.stderr and "pass `--resample`" in r.stderr and "resample=True" not in r.stderr
    assert "stereo.wav" in r.stderr and "pass `--downmix`" in r.stderr
    r = run_tool("render_nam.py", src / "di44.wav", src / "stereo.wav", "--model", model, "--out", tmp_path / "o2",
                 "--no-plots", "--resample", "--downmix")
    assert r.returncode == 0, r.stderr
    y, sr = sf.read(tmp_path / "o2" / "core_wavenet_tiny" / "di44.wav")
    assert sr == 48_000 and len(y) == 48_000
    r = run_tool("render_nam.py", "--model", model, "--out", src, src / "di44.wav")
    assert r.returncode != 0 and "contains the input" in r.stderr
    r = run_tool("render_nam.py", "--model", tmp_path / "missing.nam", "--out", tmp_path / "o3")
    assert r.returncode != 0 and "missing.nam" in r.stderr and "Traceback" not in r.stderr

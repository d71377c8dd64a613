"""tools/enhance.py --batch-size: files of different lengths enhanced N at a time write what one
at a time writes (to the PCM_16 step), a bad file fails alone, and the manifest treats both alike;
the 601-bin ERB-UNet with adaptive attention behind its adapter is batched too."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: the helper beside this file
from _inproc import run_tool  # noqa: E402
from _tiny_bsdt_ckpt import SR, write_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _line(stdout: str, word: str) -> str:
    return next((ln for ln in stdout.splitlines() if ln.strip().startswith(word)), "")


def _run(*args: object, process: bool = False) -> subprocess.CompletedProcess:
    """tools/enhance.py ARGS --device cpu: its main in this process (tests/_inproc.py: the same
    output and status), or with ``process`` as a command of its own."""
    if not process:
        return run_tool("enhance.py", *args, "--device", "cpu")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "tools/enhance.py", *map(str, args), "--device", "cpu"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


def test_batches_write_the_one_at_a_time_outputs(tmp_path: Path) -> None:
    noisy = tmp_path / "noisy"
    (noisy / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for rel, n in (("a.wav", 4000), ("b.wav", 9000), ("sub/c.wav", 6500), ("d.wav", 5200)):
        sf.write(noisy / rel, 0.1 * rng.standard_normal(n), SR, subtype="PCM_16")
    sf.write(noisy / "e.wav", 0.1 * rng.standard_normal((7000, 2)), SR, subtype="PCM_16")  # refused on load
    sf.write(noisy / "short.wav", 0.1 * rng.standard_normal(100), SR, subtype="PCM_16")  # < n_fft: fails alone
    ckpt = write_checkpoint(tmp_path / "best.pt", 0)

    one = _run("--ckpt", ckpt, noisy, tmp_path / "one", "--allow-failures")
    many = _run("--ckpt", ckpt, noisy, tmp_path / "many", "--batch-size", "4", "--allow-failures",
                process=True)  # the command line end to end
    for r in (one, many):
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert " 4 files" in _line(r.stdout, "enhanced") and re.search(r"^\s+failed\s+2$", r.stdout, re.M)
        assert "short.wav" in r.stdout and "n_fft" in r.stdout and "e.wav" in r.stdout
    for rel in ("a.wav", "b.wav", "sub/c.wav", "d.wav"):
        x1, _ = sf.read(tmp_path / "one" / rel)
        x4, _ = sf.read(tmp_path / "many" / rel)
        assert x1.shape == x4.shape
        assert np.abs(x1 - x4).max() <= 1 / 32768 + 1e-9, rel
    # the batch size changes no output: a rerun at another batch size skips every file
    again = _run("--ckpt", ckpt, noisy, tmp_path / "many", "--allow-failures")
    assert " 0 files" in _line(again.stdout, "enhanced") and " 4 (already" in _line(again.stdout, "skipped")
    records = [json.loads(ln) for ln in (tmp_path / "many" / ".enhance_manifest.jsonl").read_text().splitlines()]
    assert sorted(r["file"] for r in records) == ["a.wav", "b.wav", "d.wav", "sub/c.wav"]


def test_batch_size_is_checked(tmp_path: Path) -> None:
    r = _run("--ckpt", tmp_path / "x.pt", tmp_path, tmp_path / "out", "--batch-size", "0")
    assert r.returncode == 2 and "--batch-size" in r.stderr


def test_adaptive_erb_unet_behind_its_adapter_is_batched(tmp_path: Path) -> None:
    """One batched run against the library's one-at-a-time outputs (one subprocess, not two)."""
    import torch

    import bandsplit

    noisy = tmp_path / "noisy"
    noisy.mkdir()
    rng = np.random.default_rng(1)
    for name, n in (("a.wav", 5000), ("b.wav", 6100), ("c.wav", 7300)):
        sf.write(noisy / name, 0.1 * rng.standard_normal(n), SR, subtype="PCM_16")
    cfg = {"name": "erb-unet", "depth": 2, "transformer_layers": 1, "d_model": 16, "num_heads": 2,
           "attention": "adaptive"}
    ckpt = write_checkpoint(tmp_path / "erb.pt", 0, cfg)  # perturbed weights: the gate reads the statistics
    many = _run("--ckpt", ckpt, noisy, tmp_path / "many", "--batch-size", "3")
    assert many.returncode == 0, many.stdout[-3000:] + many.stderr[-3000:]
    assert " 3 files" in _line(many.stdout, "enhanced")
    assert "one file at a time" not in many.stdout  # the padded batch, not the fallback
    model = bandsplit.load_model(ckpt)
    for name in ("a.wav", "b.wav", "c.wav"):
        x0, _ = sf.read(noisy / name, dtype="float32")
        x3, _ = sf.read(tmp_path / "many" / name)
        alone = bandsplit.enhance(model, torch.from_numpy(x0), SR).double().numpy()
        assert x3.shape == alone.shape
        assert np.abs(x3 - alone).max() <= 1 / 32768 + 1e-6, name  # the PCM_16 step
        assert np.abs(alone - x0).max() > 1e-2  # the net changed the file

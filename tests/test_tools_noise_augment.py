"""--noise-dir in the trainers: training items are remixed with a noise folder on the fly, the
folder's sub-folders add noise classes to the NC head, and a resumed run equals a straight one
(every draw is keyed by seed, epoch and item)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import se_data

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: the helper beside this file
from _inproc import run_tool  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _run(script: str, args: list, check: bool = True, process: bool = True) -> subprocess.CompletedProcess:
    """tools/SCRIPT --threads 1 ARGS as a process, or without ``process`` its main in this
    process (tests/_inproc.py: the same output and status)."""
    if not process:
        proc = run_tool(script, "--threads", "1", *args)
        if check and proc.returncode != 0:
            raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, f"tools/{script}", "--threads", "1", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def corpus_and_noise(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("aug")
    se_data.make_demo_corpus(root / "corpus", n_train=12, n_valid=2, n_test=2, seconds=(1.5, 2.0), seed=0)
    rng = np.random.default_rng(0)
    for cls in ("hum", "hiss"):
        (root / "noise" / cls).mkdir(parents=True)
        t = np.arange(32000) / 16000
        x = 0.2 * np.sin(2 * np.pi * 50 * t) if cls == "hum" else 0.1 * rng.standard_normal(32000)
        sf.write(root / "noise" / cls / f"{cls}.wav", x, 16000)
    return root / "corpus", root / "noise"


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def test_bsdt_augmented_resume_equals_a_straight_run(corpus_and_noise, tmp_path):
    corpus, noise = corpus_and_noise
    common = ["--num-channel", "8", "--num-layer", "1", "--batch-size", "2", "--steps-per-epoch", "2",
              "--no-test", "--valid-pesq-files", "0", "--optimizer", "sgd", "--data", corpus,
              "--noise-dir", noise, "--snr-range", "0", "10"]
    _run("train_bsdt.py", [*common, "--epochs", "2", "--out", tmp_path / "straight"], process=False)
    _run("train_bsdt.py", [*common, "--epochs", "1", "--out", tmp_path / "resumed"])
    _run("train_bsdt.py", [*common, "--epochs", "2", "--out", tmp_path / "resumed", "--resume"])
    a, b = _weights(tmp_path / "straight" / "last.pt"), _weights(tmp_path / "resumed" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    cfg = json.loads((tmp_path / "straight" / "config.json").read_text())
    aug = cfg["noise_augmentation"]
    assert aug["snr_range_db"] == [0.0, 10.0] and sorted(aug["noise_classes"]) == ["hiss", "hum"]
    bad = _run("train_bsdt.py", [*common, "--epochs", "1", "--snr-range", "10", "0", "--out", tmp_path / "b"],
               check=False, process=False)
    assert bad.returncode == 2 and "--snr-range" in bad.stderr


def test_sgmse_nc_head_gains_the_noise_folders_classes(corpus_and_noise, tmp_path):
    corpus, noise = corpus_and_noise
    out = tmp_path / "sg"
    _run("train_sgmse.py", ["--frames", "32", "--batch-size", "2", "--unet-channels", "4,8", "--encoder-channels",
                            "4,8", "--embed-dim", "8", "--test-files", "0", "--steps-per-epoch", "1", "--epochs", "1",
                            "--data", corpus, "--noise-dir", noise, "--out", out])
    names = torch.load(out / "last.pt", map_location="cpu", weights_only=True)["class_names"]
    assert list(names) == list(se_data.DEMO_NOISE_CLASSES) + ["hiss", "hum"]  # corpus classes keep their indices

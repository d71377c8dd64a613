"""train_bsdt.py --gan and validation PESQ with the scores in worker processes
(--metric-workers): the same run, bit for bit, as scoring them in the training process."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import se_data

REPO = Path(__file__).resolve().parents[1]
TINY = ["--model", "bsdt", "--num-channel", "8", "--num-layer", "1", "--num-heads", "2"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "corpus"
    se_data.make_demo_corpus(root, n_train=8, n_valid=3, n_test=2, seconds=(1.0, 1.5), seed=0)
    return root


def _train(corpus: Path, out: Path, workers: int) -> None:
    cmd = [sys.executable, "tools/train_bsdt.py", "--threads", "1", *TINY, "--data", str(corpus), "--epochs", "2",
           "--steps-per-epoch", "2", "--batch-size", "3", "--segment", "1.0", "--gan", "--gan-start", "0.5",
           "--valid-pesq-files", "3", "--no-test", "--metric-workers", str(workers), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_gan_and_validation_pesq_in_workers_equal_in_process(corpus: Path, tmp_path: Path) -> None:
    # the PESQ targets are the same function on the same float32 rows in another process, and the
    # discriminator step of each batch waits for exactly that batch's targets: every weight and
    # every logged number equal, not merely close
    runs = {w: tmp_path / f"w{w}" for w in (0, 2)}
    for w, out in runs.items():
        _train(corpus, out, w)
    ck = {w: torch.load(out / "last.pt", weights_only=True) for w, out in runs.items()}
    for part in ("model", "discriminator"):
        assert ck[0][part].keys() == ck[2][part].keys()
        for k in ck[0][part]:
            assert torch.equal(ck[0][part][k], ck[2][part][k]), (part, k)
    logs = {w: list(csv.DictReader(open(out / "log.csv"))) for w, out in runs.items()}
    for a, b in zip(logs[0], logs[2], strict=True):
        for key in ("train_d_loss", "train_loss", "valid_pesq"):
            assert a[key] == b[key] and a[key] != "", key
    assert float(logs[0][1]["train_g_adv"]) > 0  # the generator's term ran in epoch 2

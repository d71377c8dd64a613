"""tools/eval_ood.py end to end on an OOD set built by tools/make_ood_testset.py: the table per
set and guidance condition, the uncertainty-vs-quality correlations and the scatter plot."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import se_data
from sgmse_cfg import CNNNoiseEncoder, NoiseCondScoreModel, SmallUNet

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import _train  # noqa: E402


def _run(script: str, args: list) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, f"tools/{script}", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _tiny_checkpoint(path: Path) -> None:
    """A model.pt as tools/train_sgmse.py writes it (untrained tiny weights, fitted bank)."""
    torch.manual_seed(0)
    m = NoiseCondScoreModel(SmallUNet(channels=(4, 8), temb_dim=16), CNNNoiseEncoder(channels=(4, 8), dim=8),
                            n_classes=5, class_names=["babble", "brown", "nonstationary", "pink", "white"],
                            p_uncond=0.1)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():  # conditional and unconditional scores differ
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    m.fit_bank(torch.randn(32, 8, generator=g))
    _train.save_checkpoint(path, {"tool": "train_sgmse", "model_config": m.to_config(), "sample_rate": 16000,
                                  "class_names": m.class_names, "ema": m.state_dict()})


def test_eval_ood_table_correlation_and_plot(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    se_data.make_demo_corpus(corpus, n_train=0, n_valid=0, n_test=3, seconds=(1.2, 1.5), seed=0)
    noise = tmp_path / "tones"
    noise.mkdir()
    t = np.arange(16000 * 2) / 16000
    sf.write(noise / "alarm.wav", (0.3 * np.sin(2 * np.pi * 1200 * t) * (np.sin(2 * np.pi * 3 * t) > 0)), 16000)
    ood = tmp_path / "ood"
    _run("make_ood_testset.py", ["--clean", corpus / "test" / "clean", "--noise", noise, "--out", ood,
                                 "--snrs", "0", "--no-progress"])
    ckpt = tmp_path / "model.pt"
    _tiny_checkpoint(ckpt)
    out = tmp_path / "eval"
    proc = _run("eval_ood.py", ["--ckpt", ckpt, "--id", corpus / "test", "--ood", ood, "--files", "3",
                                "--conditions", "uncond", "cond", "static:2", "knn", "mix", "--N", "1",
                                "--threads", "1", "--out", out])
    lines = proc.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if "PESQ-WB" in line)
    labels = [" ".join(line.split()[:-5]) for line in lines[head + 2: head + 14]]
    assert labels == ["ID noisy", "ID uncond", "ID cond", "ID static w=2", "ID knn", "ID mix",
                      "OOD noisy", "OOD uncond", "OOD cond", "OOD static w=2", "OOD knn", "OOD mix"]
    res = json.loads((out / "results.json").read_text())
    tab = res["table"]
    assert tab["ID uncond"]["mean w"] == 0.0 and tab["OOD static w=2"]["mean w"] == 2.0
    assert 0.0 < tab["OOD knn"]["mean w"] < 1.0 and tab["ID cond"]["files"] == 3
    # the guidance scale matters: static w=2 differs from the conditional score
    assert tab["ID static w=2"]["SI-SDR (dB)"] != tab["ID cond"]["SI-SDR (dB)"]
    rows = list(csv.DictReader(open(out / "per_file.csv")))
    assert len(rows) == 6 and {r["set"] for r in rows} == {"ID", "OOD"}
    # correlations recomputed from the per-file table
    from scipy.stats import pearsonr

    d = [float(r["knn_distance"]) for r in rows]
    q = [float(r["cond|SI-SDR (dB)"]) - float(r["noisy|SI-SDR (dB)"]) for r in rows]
    want = pearsonr(d, q)[0]
    got = res["correlations"]["k-NN distance vs dSI-SDR (cond - noisy)"]
    assert got["n"] == 6 and abs(got["pearson"] - want) < 1e-9
    assert "1 - NC certainty vs dSI-SDR (cond - uncond)" in res["correlations"]
    assert "uncertainty vs quality" in proc.stdout
    assert (out / "plots" / "uncertainty_vs_quality.png").stat().st_size > 10_000

"""tools/train_aa.py --amp bf16 (the student's forward under bfloat16 autocast): a toy run completes,
records amp in its config, keeps float32 weights and float32 loss terms within bfloat16's rounding of
the float32 run from the same seed; --amp with --float64 is refused."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/_inproc.py (pytest's importlib mode)
from _inproc import tool_module  # noqa: E402

# a toy student (89 weights, receptive field 21) and toy data, as tests/test_tools_train_aa.py
TOY = ["--num-tones", "4", "--batch-size", "2", "--valid-notes", "2", "--valid-levels-db", "-6",
       "--channels", "2", "1", "--dilations1", "1", "2", "4", "--dilations2", "1", "2", "--no-progress",
       "--threads", "1", "--builtin-oversample", "2", "--epochs", "1", "--seed", "4"]
# bfloat16 keeps 8 significant bits (one rounding <= 3.9e-3 relative); the toy student's output passes a
# handful of roundings and the first epoch's two Adam steps start from the same weights: 2e-2 relative.
# NMR (and the loss, half NMR) also hears bf16's rounding noise (~2^-9 of the output) as noise in its
# quietest bands, where the mask is low: 5e-2 (measured 1.1e-2 and 7e-3 on this run)
BF16_REL = {"train_loss": 5e-2, "train_nmr": 5e-2, "train_esr": 2e-2, "train_dc": 2e-2, "valid_loss": 2e-2}


@pytest.fixture(scope="module")
def train_aa():
    return tool_module("train_aa.py")


def _row(path):
    with open(path, newline="") as f:
        (row,) = list(csv.DictReader(f))
    return row


def test_bf16_run_completes_and_records_amp(repo_root, tmp_path):
    outs = {amp: tmp_path / amp for amp in ("float32", "bf16")}
    procs = {amp: subprocess.Popen([sys.executable, "tools/train_aa.py", *TOY, "--out", str(out),
                                    *(["--amp", "bf16"] if amp == "bf16" else [])], cwd=repo_root,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
             for amp, out in outs.items()}
    res = {amp: (p, *p.communicate(timeout=300)) for amp, p in procs.items()}
    for amp, (p, _, err) in res.items():
        assert p.returncode == 0, (amp, err[-3000:])
    assert "(bf16 forward)" in res["bf16"][1] and "(bf16 forward)" not in res["float32"][1]
    cfg = {amp: json.loads((out / "config.json").read_text())["args"] for amp, out in outs.items()}
    assert cfg["bf16"]["amp"] == "bf16" and cfg["float32"]["amp"] is None
    ck = torch.load(outs["bf16"] / "best.pt", weights_only=True)
    assert all(v.dtype == torch.float32 for v in ck["model"].values())  # the weights stay float32
    rows = {amp: _row(out / "log.csv") for amp, out in outs.items()}
    for key, rel in BF16_REL.items():
        a, b = float(rows["bf16"][key]), float(rows["float32"][key])
        assert a == pytest.approx(b, rel=rel), key
    # the bf16 forward really ran: the training loss is not the float32 run's bit for bit
    assert float(rows["bf16"]["train_loss"]) != float(rows["float32"]["train_loss"])


def test_amp_flag_parsing(train_aa, capsys):
    assert train_aa.parse_args([]).amp is None
    assert train_aa.parse_args(["--amp", "bf16"]).amp == "bf16"
    with pytest.raises(SystemExit) as e:
        train_aa.parse_args(["--amp", "bf16", "--float64"])
    assert e.value.code == 2 and "leave out --amp" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_aa.parse_args(["--amp", "fp16"])
    with pytest.raises(SystemExit):
        train_aa.parse_args(["--help"])
    assert "--amp" in capsys.readouterr().out

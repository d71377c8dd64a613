"""tools/enhance.py --ckpt with a checkpoint of the widely used BSRNN reimplementation (its plain
state dict, as sungwon23/BSRNN's train.py saves it): the size is read from the shapes and the
output is bandsplit's; a plain state dict of anything else is refused naming --ckpt."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import bandsplit
import se_data

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: the helper beside this file
from _inproc import run_tool  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SR = 16000


def _run(*args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "tools/enhance.py", *map(str, args), "--device", "cpu"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


def test_a_plain_reference_state_dict_enhances_a_folder(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = bandsplit.BSRNN(num_channel=8, num_layer=2)
    with torch.no_grad():
        for p in src.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ckpt = tmp_path / "gene_epoch_119_0.064"
    torch.save(OrderedDict(src.state_dict()), ckpt)
    noisy = tmp_path / "noisy"
    noisy.mkdir()
    x = 0.1 * np.random.default_rng(1).standard_normal(SR // 2)
    sf.write(noisy / "a.wav", x, SR, subtype="PCM_16")
    proc = _run("--ckpt", ckpt, noisy, tmp_path / "out")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    got, sr = sf.read(tmp_path / "out" / "a.wav", dtype="float32")
    wave, _ = se_data.load_audio(noisy / "a.wav", SR)
    want = bandsplit.enhance(src.eval(), wave, SR).numpy()
    assert sr == SR and got.shape == want.shape
    assert np.abs(got - want).max() <= 1.0 / 32768  # PCM_16 rounding of the same float output

    other = tmp_path / "bsdt_state_dict.pt"
    torch.save(bandsplit.build_model({"name": "bsdt", "num_channel": 8, "num_layer": 1, "num_heads": 2}).state_dict(),
               other)
    bad = run_tool("enhance.py", "--ckpt", other, noisy, tmp_path / "out2", "--device", "cpu")  # main in this process
    assert bad.returncode == 1
    assert "error: --ckpt:" in bad.stderr and "reference BSRNN" in bad.stderr and "lstm_t1.weight_ih_l0" in bad.stderr

"""tools/enhance_sgmse.py --ckpt with an official SGMSE+ checkpoint (.ckpt saved through a
Lightning Trainer by the sgmse 0.1.2 package itself; packages/sgmse_cfg/tests/data, made by
bench/sgmse_ckpt_fixtures.py): --sgmse-compat writes what sgmse's enhancement.py writes for the
same seed, the default path runs the toolkit's own, and the errors name the tool's flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

import sgmse_cfg

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "packages" / "sgmse_cfg" / "tests" / "data"
LSB = 1.0 / 32768  # the tool writes 16-bit PCM, as enhancement.py's soundfile.write does


def _run(args: list[Any], *, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "tools/enhance_sgmse.py", *map(str, args), "--device", "cpu"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    path = DATA / "sgmse_reference.pt"
    if not path.is_file():
        pytest.skip(f"{path} missing: make it with bench/sgmse_ckpt_fixtures.py (isolated sgmse env)")
    return torch.load(path, weights_only=True)


def test_sgmse_compat_writes_what_sgmses_enhancement_py_writes(reference: dict[str, Any], tmp_path: Path) -> None:
    c = reference["configs"]["ncsnpp_ouve"]
    noisy = tmp_path / "noisy"
    noisy.mkdir()
    for name, w in zip(("a.wav", "b.wav"), c["waves"]):  # enhancement.py's order: sorted names
        sf.write(noisy / name, w.numpy(), c["sample_rate"], subtype="FLOAT")
    ckpt = DATA / c["file"]
    proc = _run([noisy, "--ckpt", ckpt, "--out", tmp_path / "compat", "--sgmse-compat", "--seed", reference["seed"]])
    for name, want in zip(("a.wav", "b.wav"), c["enhanced"]):
        got, sr = sf.read(tmp_path / "compat" / "enhanced" / name, dtype="float32")
        assert sr == 16000 and got.shape == tuple(want.shape)
        # the barely trained tiny network's output peaks far above 1: the tool scales it to peak 1
        # (and says so); then only the PCM rounding of the same float output is left
        peak = float(want.abs().max())
        assert peak > 1 and f"{name}: output peak {peak:.2f} > 1" in proc.stdout
        assert np.abs(got - want.numpy() / peak).max() <= 1.01 * LSB
    settings = json.loads((tmp_path / "compat" / "settings.json").read_text())
    assert settings["args"]["sgmse_compat"] and settings["model_config"]["backbone"] == "NCSNpp"

    # the toolkit's own path: per-file generators, spectrogram trimmed first; another sample
    proc = _run([noisy, "--ckpt", ckpt, "--out", tmp_path / "own", "--seed", reference["seed"]])
    assert "as sgmse's enhancement.py" not in proc.stdout and "sampler pc, N=30" in proc.stdout
    own, _ = sf.read(tmp_path / "own" / "enhanced" / "a.wav", dtype="float32")
    want = c["enhanced"][0].numpy()
    assert np.isfinite(own).all() and np.abs(own - want / np.abs(want).max()).max() > 100 * LSB


def test_refusals_name_the_tools_flags(reference: dict[str, Any], tmp_path: Path) -> None:
    ckpt = DATA / reference["configs"]["ncsnpp_ouve"]["file"]
    noisy = tmp_path / "noisy8k"
    noisy.mkdir()
    sf.write(noisy / "x.wav", 0.1 * np.random.default_rng(0).standard_normal(4000), 8000)
    bad = _run([noisy, "--ckpt", ckpt, "--out", tmp_path / "o1", "--N", "1"], check=False)
    assert bad.returncode == 1 and "pass `--resample`" in bad.stdout and "resample=True" not in bad.stdout

    clash = _run([noisy, "--ckpt", ckpt, "--out", tmp_path / "o2", "--sgmse-compat", "--chunk-seconds", "2"],
                 check=False)
    assert clash.returncode == 2 and "--sgmse-compat" in clash.stderr and "--chunk-seconds" in clash.stderr

    # a checkpoint without the EMA state: the fix is the tool's flag
    ck = sgmse_cfg.read_sgmse_checkpoint(ckpt)
    del ck["ema"]
    ck["hyper_parameters"]["data_module_cls"] = "sgmse.data_module.SpecsDataModule"
    no_ema = tmp_path / "no_ema.ckpt"
    torch.save(ck, no_ema)
    miss = _run([noisy, "--ckpt", no_ema, "--out", tmp_path / "o3"], check=False)
    assert miss.returncode == 1 and "--weights live" in miss.stderr and "weights='live'" not in miss.stderr

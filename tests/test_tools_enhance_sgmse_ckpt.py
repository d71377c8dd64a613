"""tools/enhance_sgmse.py --ckpt with an official SGMSE+ checkpoint (.ckpt in the layout the
sgmse 0.1.2 package saves through a Lightning Trainer, written from the seeded recipe and the
JSON description in packages/sgmse_cfg/tests (sgmse_ckpt_recipe.py, data/sgmse_ckpt.json, made
by bench/sgmse_ckpt_fixtures.py)): --sgmse-compat writes what sgmse's enhancement.py writes for
the same seed, the default path runs the toolkit's own, and the errors name the tool's flags."""

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
SGMSE_TESTS = REPO / "packages" / "sgmse_cfg" / "tests"
sys.path.insert(0, str(SGMSE_TESTS))  # the recipe and JSON helpers (pytest's importlib mode)
from json_fixtures import assert_matches_summary, stored_max_diff, summary_scale  # noqa: E402
from sgmse_ckpt_recipe import waves, write_checkpoint  # noqa: E402

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
    return json.loads((SGMSE_TESTS / "data" / "sgmse_ckpt.json").read_text())


@pytest.fixture(scope="module")
def ckpt(reference: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plain SGMSE+ (ncsnpp, OUVE) checkpoint as sgmse's Lightning run saved it."""
    path = tmp_path_factory.mktemp("ckpt") / "sgmse_ncsnpp_ouve.ckpt"
    return Path(write_checkpoint(path, reference["configs"]["ncsnpp_ouve"]))


def test_sgmse_compat_writes_what_sgmses_enhancement_py_writes(reference: dict[str, Any], ckpt: Path,
                                                               tmp_path: Path) -> None:
    c = reference["configs"]["ncsnpp_ouve"]
    noisy = tmp_path / "noisy"
    noisy.mkdir()
    for name, w in zip(("a.wav", "b.wav"), waves(c["sample_rate"], c["hyper_parameters"]["hop_length"])):
        sf.write(noisy / name, w.numpy(), c["sample_rate"], subtype="FLOAT")  # enhancement.py's order: sorted
    proc = _run([noisy, "--ckpt", ckpt, "--out", tmp_path / "compat", "--sgmse-compat", "--seed", reference["seed"]])
    for name, want in zip(("a.wav", "b.wav"), c["outputs"]["enhanced"]):
        got, sr = sf.read(tmp_path / "compat" / "enhanced" / name, dtype="float32")
        assert sr == 16000 and list(got.shape) == want["shape"]
        # the untrained tiny network's output peaks far above 1: the tool scales it to peak 1
        # (and says so); then only the PCM rounding of the same float output is left (sgmse's
        # output is stored as a summary: first / last 64 samples, every 16th, row statistics)
        peak = summary_scale(want)
        assert peak > 1 and f"{name}: output peak {peak:.2f} > 1" in proc.stdout
        assert_matches_summary(torch.from_numpy(got) * peak, want, 1.01 * LSB * peak, name)
    settings = json.loads((tmp_path / "compat" / "settings.json").read_text())
    assert settings["args"]["sgmse_compat"] and settings["model_config"]["backbone"] == "NCSNpp"

    # the toolkit's own path: per-file generators, spectrogram trimmed first; another sample
    proc = _run([noisy, "--ckpt", ckpt, "--out", tmp_path / "own", "--seed", reference["seed"]])
    assert "as sgmse's enhancement.py" not in proc.stdout and "sampler pc, N=30" in proc.stdout
    own, _ = sf.read(tmp_path / "own" / "enhanced" / "a.wav", dtype="float32")
    want = c["outputs"]["enhanced"][0]
    assert np.isfinite(own).all()
    assert stored_max_diff(torch.from_numpy(own) * summary_scale(want), want) > 100 * LSB * summary_scale(want)


def test_refusals_name_the_tools_flags(ckpt: Path, tmp_path: Path) -> None:
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

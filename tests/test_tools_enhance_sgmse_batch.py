"""tools/enhance_sgmse.py --batch-size: files that pad to the same frame count share a sampler
run, each with its own noise stream (seed --seed + its index), and write what one at a time
writes (to the PCM_16 step); enhance.csv keeps the file order. Uses the small official-format
NCSN++ checkpoint that packages/sgmse_cfg/tests/sgmse_ckpt_recipe.py writes from
data/sgmse_ckpt.json."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SGMSE_TESTS = REPO / "packages" / "sgmse_cfg" / "tests"
sys.path.insert(0, str(SGMSE_TESTS))  # the checkpoint recipe (pytest's importlib mode)
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/_inproc.py
from _inproc import tool_module  # noqa: E402
from nc_model_recipe import small_noise_conditioned_model  # noqa: E402
from sgmse_ckpt_recipe import write_checkpoint  # noqa: E402

SR = 16000


def _run(args: list[Any]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "tools/enhance_sgmse.py", *map(str, args), "--device", "cpu"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)


def _one_and_batched(noisy: Path, common: list[Any], out: Path, n_files: int) -> None:
    """Enhance ``noisy`` one file at a time into ``out/one`` and in batches of 2 into ``out/many``;
    both runs succeed on every file and the batched one really batches."""
    one = _run([noisy, *common, "--out", out / "one"])
    many = _run([noisy, *common, "--out", out / "many", "--batch-size", "2"])
    assert "one file at a time" not in many.stdout
    for r in (one, many):
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert f"enhanced {n_files} of {n_files} files" in r.stdout


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = json.loads((SGMSE_TESTS / "data" / "sgmse_ckpt.json").read_text())["configs"]["ncsnpp_ouve"]
    return Path(write_checkpoint(tmp_path_factory.mktemp("ckpt") / "sgmse_ncsnpp_ouve.ckpt", config))


def test_batches_write_the_one_at_a_time_outputs(ckpt: Path, tmp_path: Path) -> None:
    noisy = tmp_path / "noisy"
    noisy.mkdir()
    rng = np.random.default_rng(0)
    # the fixture's STFT (hop 32) and backbone (multiple 2): 282 padded frames for 9000 and 9010
    # samples, 158 for 5000 and 5020, 532 for 17000 (alone)
    for name, n in (("a", 9000), ("b", 5000), ("c", 9010), ("d", 17000), ("e", 5020)):
        sf.write(noisy / f"{name}.wav", 0.1 * rng.standard_normal(n), SR, subtype="PCM_16")
    _one_and_batched(noisy, ["--ckpt", ckpt, "--N", "1", "--seed", "7"], tmp_path, 5)
    for name in "abcde":
        x1, _ = sf.read(tmp_path / "one" / "enhanced" / f"{name}.wav")
        x3, _ = sf.read(tmp_path / "many" / "enhanced" / f"{name}.wav")
        assert x1.shape == x3.shape and np.abs(x1 - x3).max() <= 1 / 32768 + 1e-9, name
    with open(tmp_path / "many" / "enhance.csv") as fh:
        rows = {r["file"]: r for r in csv.DictReader(fh)}
    assert list(rows) == [f"{n}.wav" for n in "abcde"]
    # a and c shared a sampler run (its time shared out evenly), so did b and e
    assert rows["a.wav"]["wall_s"] == rows["c.wav"]["wall_s"] and rows["b.wav"]["wall_s"] == rows["e.wav"]["wall_s"]


def test_batch_size_with_sgmse_compat_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        tool_module("enhance_sgmse.py").parse_args(["NOISY", "--ckpt", "x.ckpt", "--sgmse-compat", "--batch-size", "2"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--batch-size" in err and "--sgmse-compat" in err


def test_noise_conditioned_batches_keep_each_files_condition(tmp_path: Path) -> None:
    """A noise-conditioned model with adaptive guidance and --noise-ref batches too: each file keeps
    its own noise reference and guidance scale, and the outputs and enhance.csv rows equal one at a
    time's."""
    import torch

    import sgmse_cfg

    m = small_noise_conditioned_model()
    ckpt = tmp_path / "model.pt"
    torch.save({"format": sgmse_cfg.CHECKPOINT_FORMAT, "tool": "train_sgmse", "config": {},
                "model_config": m.to_config(), "sample_rate": SR, "class_names": None, "ema": m.state_dict()}, ckpt)
    noisy, refs = tmp_path / "noisy", tmp_path / "refs"
    noisy.mkdir(), refs.mkdir()
    rng = np.random.default_rng(0)
    # SGMSE+'s STFT (hop 128), backbone multiple 2: 72 padded frames for 9000 / 9010, 40 for 5000 / 5020
    for name, n in (("a", 9000), ("b", 5000), ("c", 9010), ("e", 5020)):
        sf.write(noisy / f"{name}.wav", 0.1 * rng.standard_normal(n), SR, subtype="PCM_16")
        sf.write(refs / f"{name}.wav", 0.05 * rng.standard_normal(4000), SR, subtype="PCM_16")
    common = ["--ckpt", ckpt, "--N", "2", "--seed", "7", "--guidance", "mix", "--w", "2", "--noise-ref", refs]
    _one_and_batched(noisy, common, tmp_path, 4)
    rows = []
    for out in ("one", "many"):
        with open(tmp_path / out / "enhance.csv") as fh:
            rows.append({r["file"]: r for r in csv.DictReader(fh)})
    for name in "abce":
        x1, _ = sf.read(tmp_path / "one" / "enhanced" / f"{name}.wav")
        x2, _ = sf.read(tmp_path / "many" / "enhanced" / f"{name}.wav")
        assert x1.shape == x2.shape and np.abs(x1 - x2).max() <= 1 / 32768 + 1e-9, name
        for key in ("w", "nc_certainty", "knn_distance", "forwards_per_eval"):
            assert float(rows[1][f"{name}.wav"][key]) == pytest.approx(float(rows[0][f"{name}.wav"][key]), rel=1e-6)
    assert len({rows[1][f"{n}.wav"]["w"] for n in "abce"}) > 1  # adaptive: a scale per file
    assert rows[1]["a.wav"]["wall_s"] == rows[1]["c.wav"]["wall_s"]  # a and c shared a sampler run

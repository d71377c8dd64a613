"""``--dns-root``: the trainers train on DNS-Challenge-style mixtures synthesised on the fly."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import se_data

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import train_bsdt  # noqa: E402
import train_sgmse  # noqa: E402

TINY = ["--model", "bsdt", "--num-channel", "8", "--num-layer", "1", "--num-heads", "2", "--epochs", "1",
        "--steps-per-epoch", "2", "--batch-size", "2", "--segment", "0.5", "--valid-pesq-files", "0", "--no-test"]


def _dns_tree(root: Path, sr: int = 16000) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(sr) / sr
    for i in range(4):
        (root / "clean").mkdir(parents=True, exist_ok=True)
        sf.write(root / "clean" / f"c{i}.wav", 0.3 * np.sin(2 * np.pi * (140 + 30 * i) * t), sr)
    (root / "noise").mkdir()
    sf.write(root / "noise" / "n0.wav", 0.1 * rng.standard_normal(2 * sr), sr)
    (root / "impulse_responses").mkdir()
    h = np.exp(-np.arange(400) / 80.0) * rng.standard_normal(400)
    h[0] = 1.0
    sf.write(root / "impulse_responses" / "r0.wav", 0.5 * h, sr)
    return root


def test_bsdt_trains_on_dns_mixtures(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"  # validation comes from --data
    se_data.make_demo_corpus(corpus, n_train=2, n_valid=2, n_test=1, seconds=(1.0, 1.2), seed=0)
    dns = _dns_tree(tmp_path / "dns")
    out = tmp_path / "run"
    train_bsdt.main([*TINY, "--data", str(corpus), "--dns-root", str(dns), "--rir-p", "0.5", "--snr-range", "0", "10",
                     "--out", str(out)])
    cfg = json.loads((out / "config.json").read_text())
    aug = cfg["noise_augmentation"]
    assert aug["kind"] == "DNS-Challenge mixtures" and aug["clean_files"] == 4 and aug["rir_files"] == 1
    assert aug["snr_range_db"] == [0.0, 10.0] and aug["rir_p"] == 0.5 and aug["segment"] == 0.5
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert len(rows) == 1 and math.isfinite(float(rows[0]["train_loss"]))


@pytest.mark.parametrize("tool", [train_bsdt, train_sgmse])
def test_dns_flags_are_checked_at_parse_time(tool, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        tool.parse_args(["--dns-root", "D", "--noise-dir", "N"])
    assert e.value.code == 2 and "leave out --noise-dir" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        tool.parse_args(["--rir-p", "0.5"])
    assert e.value.code == 2 and "pass --dns-root DIR" in capsys.readouterr().err


def test_dns_files_at_another_rate_name_the_file_and_the_flag(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    se_data.make_demo_corpus(corpus, n_train=2, n_valid=2, n_test=1, seconds=(1.0, 1.2), seed=0)
    dns = _dns_tree(tmp_path / "dns")
    sf.write(dns / "noise" / "n48.wav", np.zeros(4800) + 0.1, 48000)
    with pytest.raises(SystemExit) as e:
        train_bsdt.main([*TINY, "--data", str(corpus), "--dns-root", str(dns), "--out", str(tmp_path / "o")])
    msg = str(e.value)
    assert "--dns-root" in msg and "n48.wav (48000 Hz)" in msg and "--resample" in msg

"""``--config RUN/config.json`` in every trainer: a replay writes the same config.json, command-line
flags override it (each override printed), and a key that is not a flag is refused by name."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import se_data

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import train_aa  # noqa: E402
import train_bsdt  # noqa: E402
import train_sgmse  # noqa: E402

TOOLS = {"train_bsdt": train_bsdt, "train_sgmse": train_sgmse, "train_aa": train_aa}


def _typed(ns: object) -> dict[str, tuple[type, object]]:
    """A namespace's values with their types (a list is not a tuple: --resume compares them)."""
    return {k: (type(v), v) for k, v in vars(ns).items()}


def test_bsdt_replay_writes_the_same_config(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    se_data.make_demo_corpus(corpus, n_train=4, n_valid=2, n_test=1, seconds=(1.0, 1.2), seed=0)
    first = tmp_path / "first"
    train_bsdt.main(["--model", "bsdt", "--num-channel", "8", "--num-layer", "1", "--num-heads", "2",
                     "--data", str(corpus), "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2",
                     "--segment", "0.5", "--valid-pesq-files", "0", "--no-test", "--lr", "0.002",
                     "--out", str(first)])
    replay = tmp_path / "replay"
    train_bsdt.main(["--config", str(first / "config.json"), "--out", str(replay)])
    a = json.loads((first / "config.json").read_text())
    b = json.loads((replay / "config.json").read_text())
    assert a["args"]["out"] == str(first) and b["args"]["out"] == str(replay)  # --out is never replayed
    a["args"]["out"] = b["args"]["out"] = None
    assert a == b
    assert "config" not in b["args"]
    assert a["args"]["lr"] == 0.002 and a["args"]["select_on"] == "loss" and a["args"]["num_channel"] == 8


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_replay_equals_the_run_and_prints_each_override(name: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    tool = TOOLS[name]
    args = tool.parse_args(["--seed", "5", "--epochs", "3", "--out", str(tmp_path / "run")])
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"args": vars(args), "other": "entries are ignored"}))
    capsys.readouterr()
    same = tool.parse_args(["--config", str(path), "--out", str(tmp_path / "run")])
    assert _typed(same) == _typed(args)
    assert capsys.readouterr().out == ""  # nothing overridden, nothing printed
    over = tool.parse_args(["--config", str(path), "--seed", "7"])
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed == [f"--config {path}: overriding --seed: 5 -> 7"]
    assert over.seed == 7 and over.epochs == 3 and over.out is None  # --out comes from the command line only
    assert {k for k in vars(args) if vars(args)[k] != vars(over)[k]} == {"seed", "out"}


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_unknown_key_and_bad_files_are_usage_errors(name: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    tool = TOOLS[name]
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"args": {**vars(tool.parse_args([])), "no_such_flag": 1}}))
    with pytest.raises(SystemExit) as e:
        tool.parse_args(["--config", str(path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "'no_such_flag'" in err and str(path) in err
    path.write_text(json.dumps({"epochs": 2}))
    with pytest.raises(SystemExit):
        tool.parse_args(["--config", str(path)])
    assert 'no "args" object' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.parse_args(["--config", str(tmp_path / "missing.json")])
    assert "cannot read" in capsys.readouterr().err

"""tools/export_onnx.py: a checkpoint of train_bsdt.py (or a preset) to OUT/model.onnx (+ int8 copy,
or a streaming step), checked against PyTorch (export.json, the printed table), loaded back with
bandsplit alone; refusals for what cannot be exported and for an existing --out."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import bandsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/_inproc.py (pytest's importlib mode)
from _inproc import tool_module  # noqa: E402

pytest.importorskip("onnx", reason="ONNX export needs the onnx package: pip install 'bandsplit[onnx]'")
pytest.importorskip("onnxruntime", reason="ONNX inference needs onnxruntime: pip install 'bandsplit[onnx]'")

REPO = Path(__file__).resolve().parents[1]
CFG = {"name": "bsrnn", "num_channel": 8, "num_layer": 1, "causal": True}


def _tool():
    return tool_module("export_onnx.py")


def _checkpoint(path: Path) -> Path:
    """A tools/train_bsdt.py-schema checkpoint of a tiny causal BSRNN."""
    torch.manual_seed(0)
    model = bandsplit.build_model(CFG)
    payload: dict[str, Any] = {
        "format": bandsplit.CHECKPOINT_FORMAT, "tool": "train_bsdt", "config": {"model": "bsrnn"},
        "model_config": dict(CFG), "sample_rate": 16000, "stft": {"n_fft": 512, "hop": 128},
        "versions": {"torch": str(torch.__version__)}, "epoch": 1, "step": 1, "model": model.state_dict()}
    torch.save(payload, path)
    return path


def test_checkpoint_to_float32_and_int8_graphs_checked_and_loadable(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "best.pt")
    out = tmp_path / "onnx"
    assert _tool().main(["--ckpt", str(ckpt), "--int8", "--out", str(out), "--check-seconds", "0.5",
                         "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "float32" in printed and "int8" in printed
    assert sorted(p.name for p in out.iterdir() if p.name != ".lock") == ["export.json", "model.int8.onnx", "model.onnx"]
    report = json.loads((out / "export.json").read_text())
    assert report["check"]["float32"]["relative"] < 1e-4
    assert 0 < report["check"]["int8"]["relative"] < 0.1
    assert report["metadata"]["model"]["config"] == CFG and report["metadata"]["stft"]["n_fft"] == 512
    # the file runs with the bandsplit package alone and equals the checkpoint's model
    model, onnx_model = bandsplit.load_model(ckpt), bandsplit.load_onnx(out / "model.onnx", threads=1)
    wave = 0.05 * torch.randn(1, 8000, generator=torch.Generator().manual_seed(3))
    y, ref = bandsplit.enhance(onnx_model, wave, 16000), bandsplit.enhance(model, wave, 16000)
    assert (y - ref).abs().max().item() < 1e-4 * ref.abs().max().item()


def test_streaming_step_of_a_causal_preset(tmp_path):
    out = tmp_path / "stream"
    assert _tool().main(["--preset", "bsrnn-demo", "--causal", "--streaming", "--batch-size", "2", "--out",
                         str(out), "--check-seconds", "0.5"]) == 0
    report = json.loads((out / "export.json").read_text())
    assert report["metadata"]["streaming"] is True and report["check"]["float32"]["relative"] < 1e-5
    assert isinstance(bandsplit.load_onnx(out / "model.onnx"), bandsplit.OnnxStreamer)


def test_refusals(tmp_path):
    tool = _tool()
    with pytest.raises(SystemExit, match="causal BSRNN"):
        tool.main(["--preset", "bsdt-demo", "--streaming", "--out", str(tmp_path / "a")])
    with pytest.raises(SystemExit, match="only BSRNN"):
        tool.main(["--preset", "bsdt-demo", "--causal", "--out", str(tmp_path / "b")])
    with pytest.raises(SystemExit, match="unknown preset"):
        tool.main(["--preset", "nope", "--out", str(tmp_path / "c")])
    with pytest.raises(SystemExit, match="--ckpt"):
        tool.main(["--ckpt", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "d")])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    with pytest.raises(SystemExit, match="not empty"):
        tool.main(["--preset", "bsrnn-demo", "--out", str(tmp_path / "full")])
    assert (tmp_path / "full" / "x").read_text() == "keep"


@pytest.mark.parametrize("argv", [["--causal", "--ckpt", "x.pt"], ["--preset", "bsrnn-demo", "--batch-size", "2"],
                                  [], ["--ckpt", "x.pt", "--preset", "bsrnn-demo"]])
def test_parse_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        _tool().parse_args(argv)
    assert e.value.code == 2

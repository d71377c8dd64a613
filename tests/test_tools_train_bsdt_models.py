"""train_bsdt's model flags: every ablation of the band-split studies is one flag, each maps to
the bandsplit config it names, sizes are demo / research / custom and said so, and a flag the
chosen model does not have is refused before anything runs."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

import bandsplit

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "tools") not in sys.path:
    sys.path.insert(0, str(REPO / "tools"))  # the tools import their helpers by plain name

import train_bsdt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: the helper beside this file
from _inproc import run_tool  # noqa: E402


def _cfg(*argv: str) -> dict:
    return train_bsdt.model_config(train_bsdt.parse_args(list(argv)))


def _params(cfg: dict) -> int:
    return sum(p.numel() for p in bandsplit.build_model(cfg).parameters())


def test_sizes_are_demo_on_the_demo_corpus_research_with_data_and_custom_when_given():
    args = train_bsdt.parse_args([])
    assert train_bsdt.model_size(args) == ("demo", {"num_channel": 32, "num_layer": 2, "num_heads": 2})
    label, size = train_bsdt.model_size(train_bsdt.parse_args(["--data", "somewhere"]))
    assert (label, size) == ("research", {"num_channel": 128, "num_layer": 1, "num_heads": 4})
    assert _params(_cfg("--data", "somewhere")) == 3_919_311  # the research notes' ~3.9 M
    assert _params(_cfg("--model", "bsrnn", "--data", "x")) == 2_963_024  # BSRNN(64, 5)
    assert train_bsdt.model_size(train_bsdt.parse_args(["--data", "x", "--num-layer", "2"]))[0] == "custom"
    assert _cfg("--model", "erb-unet", "--data", "x")["base_channels"] == bandsplit.ERB_UNET_FULL_SIZE["base_channels"]
    assert _cfg("--model", "erb-unet", "--num-channel", "4")["base_channels"] == 4


def test_each_ablation_flag_maps_to_its_config_key():
    base = ["--num-channel", "16", "--num-layer", "1"]
    assert _cfg(*base, "--fusion", "fixed")["fusion"] == "fixed"
    assert list(_cfg(*base, "--windows", "4")["windows"]) == [4]
    assert _cfg(*base, "--top-k", "3")["top_k"] == 3
    assert _cfg(*base, "--attention", "standard")["attention"] == "standard"
    assert _cfg(*base, "--temporal", "per-band")["temporal_sharing"] == "per_band"
    assert _cfg(*base, "--no-multiscale")["use_multiscale"] is False
    erb = _cfg("--model", "erb-unet", "--attention", "differential", "--conv", "plain", "--n-fft", "1000",
               "--hop", "80")
    assert {k: erb[k] for k in ("attention", "conv", "n_fft", "hop")} == {"attention": "diff", "conv": "plain",
                                                                           "n_fft": 1000, "hop": 80}
    assert _cfg("--model", "erb-unet-801")["name"] == "erb-unet-801"
    net1 = _cfg("--model", "erb-unet-801", "--mask-resize", "nearest", "--skip-align", "adaptive-pool")
    assert (net1["mask_resize"], net1["skip_align"]) == ("nearest", "adaptive_pool")
    assert "mask_resize" not in _cfg("--model", "erb-unet") and "skip_align" not in _cfg("--model", "erb-unet")
    # the flags change the models as they say
    full = _params(_cfg(*base))
    assert _params(_cfg(*base, "--temporal", "per-band")) > full
    assert _params(_cfg(*base, "--fusion", "equal")) < _params(_cfg(*base, "--fusion", "fixed")) < full
    assert _params(_cfg(*base, "--attention", "standard")) < full  # no lambda, no per-head norm
    assert list(bandsplit.build_model(_cfg(*base, "--windows", "4")).config["windows"]) == [4]


@pytest.mark.parametrize("argv, words", [
    (["--model", "bsrnn", "--fusion", "fixed"], "--fusion applies to --model bsdt / bsdt-v1"),
    (["--model", "bsrnn", "--conv", "plain"], "--conv applies to"),
    (["--model", "erb-unet-257", "--n-fft", "512"], "--n-fft applies to"),
    (["--attention", "adaptive"], "--attention adaptive applies to the ERB-UNets"),
    (["--no-multiscale", "--fusion", "fixed"], "contradicts --fusion fixed"),
    (["--model", "bsdt-v1", "--top-k", "3"], "--top-k applies to the learned graph"),
    (["--fusion", "equal", "--diversity-weight", "1"], "--diversity-weight needs per-scale gates"),
    (["--windows", "2,2"], "--windows must be distinct"),
    (["--model", "erb-unet", "--conv", "plain", "--mask-resize", "nearest"], "--conv plain has none"),
    (["--model", "bsdt", "--skip-align", "truncate"], "--skip-align applies to"),
    (["--model", "erb-unet", "--diversity-weight", "1"], "with an ERB-UNet, --attention adaptive"),
])
def test_flags_the_model_does_not_have_are_refused(argv, words, capsys):
    with pytest.raises(SystemExit) as e:
        train_bsdt.parse_args(argv)
    assert e.value.code == 2 and words in capsys.readouterr().err


def test_diversity_loss_trains_and_is_logged(tmp_path):
    out = tmp_path / "run"  # main in this process (tests/_inproc.py); the CLI end to end: test_tools_train_bsdt.py
    proc = run_tool("train_bsdt.py", "--threads", "1", "--num-channel", "8", "--num-layer", "1",
                    "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--no-test", "--valid-pesq-files",
                    "0", "--diversity-weight", "0.5", "--windows", "2,4", "--demo-dir", tmp_path / "demo", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "at its custom size" in proc.stdout + proc.stderr
    row = next(csv.DictReader(open(out / "log.csv")))
    assert 0.0 <= float(row["train_diversity"]) <= 1.0  # a mean |correlation|

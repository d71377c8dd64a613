"""bandsplit.load_model: a checkpoint of tools/train_bsdt.py's schema loads with the package alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import se_data
import torch

import bandsplit
from bandsplit import CHECKPOINT_FORMAT, load_model

SR = 16000
CFG = {"name": "bsdt", "num_channel": 8, "num_layer": 1, "num_heads": 2, "graph": "learned",
       "use_inter_band": True, "use_multiscale": True}


def _payload(model: torch.nn.Module, **extra: Any) -> dict[str, Any]:
    """The dict tools/train_bsdt.py saves (tools/_train.py adds the format tag first)."""
    return {"format": CHECKPOINT_FORMAT, "tool": "train_bsdt", "config": {"model": "bsdt", "lr": 1e-3},
            "model_config": dict(CFG), "sample_rate": SR, "stft": {"n_fft": 512, "hop": 128},
            "versions": {"python": "3.11", "torch": str(torch.__version__), "bandsplit": "0.1.0"},
            "epoch": 3, "step": 42, "model": model.state_dict(), "optimizer": {}, "best": {"epoch": 2},
            "history": [], **extra}


@pytest.fixture()
def trained(tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = bandsplit.build_model(CFG)
    with torch.no_grad():   # weights that differ from a fresh build's
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "best.pt"
    torch.save(_payload(model), path)
    return model, path


def test_loads_the_trained_weights_ready_for_enhance(trained: tuple[torch.nn.Module, Path]) -> None:
    model, path = trained
    loaded = load_model(path)
    assert not loaded.training and isinstance(loaded, bandsplit.BSDT)
    sd, ref = loaded.state_dict(), model.state_dict()
    assert sd.keys() == ref.keys() and all(torch.equal(sd[k], ref[k]) for k in ref)
    assert loaded.sample_rate == SR
    assert loaded.stft.to_dict() == {"sample_rate": SR, "n_fft": 512, "hop_length": 128, "window": "hann"}
    assert loaded.info["weights"] == "live" and loaded.info["epoch"] == 3 and loaded.info["step"] == 42
    assert loaded.info["config"] == {"model": "bsdt", "lr": 1e-3} and loaded.info["model_config"] == CFG
    assert loaded.info["versions"]["bandsplit"] == "0.1.0" and loaded.info["path"] == str(path)
    x = 0.1 * torch.randn(2, 4000, generator=torch.Generator().manual_seed(1))
    model.eval()
    torch.testing.assert_close(bandsplit.enhance(loaded, x, SR), bandsplit.enhance(model, x, SR), rtol=0, atol=0)
    assert load_model(path, weights="live").info["weights"] == "live"


def test_ema_weights_are_used_where_the_checkpoint_holds_them(tmp_path: Path) -> None:
    torch.manual_seed(0)
    live, ema = bandsplit.build_model(CFG), bandsplit.build_model(CFG)
    path = tmp_path / "ema.pt"
    torch.save(_payload(live, ema=ema.state_dict()), path)
    got = load_model(path)                       # default: EMA
    assert got.info["weights"] == "ema"
    assert all(torch.equal(got.state_dict()[k], v) for k, v in ema.state_dict().items())
    got_live = load_model(path, weights="live")
    assert got_live.info["weights"] == "live"
    assert all(torch.equal(got_live.state_dict()[k], v) for k, v in live.state_dict().items())
    assert any(not torch.equal(live.state_dict()[k], v) for k, v in ema.state_dict().items())


def test_float64_weights_load_as_float64(tmp_path: Path) -> None:
    model = bandsplit.build_model(CFG).double()
    path = tmp_path / "f64.pt"
    torch.save(_payload(model), path)
    got = load_model(path)
    assert {p.dtype for p in got.parameters()} == {torch.float64}
    assert all(torch.equal(got.state_dict()[k], v) for k, v in model.state_dict().items())


def test_bad_inputs_are_refused_with_the_file_named(trained: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    model, path = trained
    with pytest.raises(ValueError, match="'ema' or 'live'"):
        load_model(path, weights="best")
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_model(tmp_path / "nope.pt")
    bare = tmp_path / "bare.pt"
    torch.save(model.state_dict(), bare)   # a state dict, no format tag
    with pytest.raises(ValueError, match=r"bare\.pt is not a checkpoint.*se-toolkit-checkpoint/1"):
        load_model(bare)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"cannot read checkpoint .*junk\.pt"):
        load_model(junk)
    other = tmp_path / "sgmse.pt"
    torch.save({**_payload(model), "tool": "train_sgmse"}, other)
    with pytest.raises(ValueError, match=r"written by tools/train_sgmse.py, not tools/train_bsdt.py: "
                                         r".*use tools/enhance_sgmse.py --ckpt"):
        load_model(other)
    wrong = tmp_path / "wrong.pt"
    torch.save({**_payload(model), "model_config": {**CFG, "num_channel": 16}}, wrong)
    with pytest.raises(ValueError, match=r"wrong\.pt: the stored weights do not fit"):
        load_model(wrong)
    rate = tmp_path / "rate.pt"
    torch.save({**_payload(model), "sample_rate": 48000}, rate)
    with pytest.raises(se_data.SampleRateError, match=r"rate\.pt: the checkpoint's STFT"):
        load_model(rate)
    hop = tmp_path / "hop.pt"
    torch.save({**_payload(model), "stft": {"n_fft": 512, "hop_length": 256}}, hop)
    with pytest.raises(ValueError, match="differs from the one its model"):
        load_model(hop)


def test_the_checkpoint_needs_no_code_to_load(trained: tuple[torch.nn.Module, Path]) -> None:
    _, path = trained
    ck = torch.load(path, weights_only=True)   # what load_model does: no pickled code runs
    assert ck["format"] == CHECKPOINT_FORMAT

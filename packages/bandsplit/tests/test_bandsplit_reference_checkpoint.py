"""bandsplit.load_model on a checkpoint of the widely used BSRNN reimplementation (sungwon23/BSRNN):
its plain state dict (``torch.save(model.state_dict(), path)``), size read from the shapes."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

import bandsplit
from bandsplit import BSRNN, load_model


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    torch.save(OrderedDict(state), path)  # what the reimplementation's train.py writes
    return path


def _seeded(num_channel: int, num_layer: int, seed: int = 0, **kw) -> BSRNN:
    torch.manual_seed(seed)
    model = BSRNN(num_channel=num_channel, num_layer=num_layer, **kw)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_the_reference_parity_fixture_loads_from_its_plain_state_dict_and_reproduces_its_output(
        shared_data: Path, tmp_path: Path) -> None:
    parity = torch.load(shared_data / "reference" / "bsrnn_reference_parity_N16_L2.pt", weights_only=True)
    model = load_model(_save(parity["state_dict"], tmp_path / "gene_epoch_119_0.064"))
    assert isinstance(model, BSRNN) and not model.training
    assert model.info["model_config"] == {"name": "bsrnn", "num_channel": 16, "num_layer": 2}
    assert model.info["weights"] == "live" and model.info["tool"] is None
    assert model.sample_rate == 16000 and model.stft.to_dict()["n_fft"] == 512
    with torch.no_grad():
        y = model(parity["input"])
    torch.testing.assert_close(y, parity["output"], rtol=1e-5, atol=1e-5)  # as test_bandsplit_bsrnn's bound
    assert float((y - parity["output"]).abs().max() / parity["output"].abs().max()) < 1e-6


def test_the_published_size_is_read_from_a_file_with_the_reference_keys_and_shapes(
        shared_data: Path, tmp_path: Path) -> None:
    """N = 64, L = 5: a state dict with exactly the reference's keys and shapes (its JSON
    listing) and seeded values loads as BSRNN(64, 5) holding those values."""
    shapes = json.loads((shared_data / "reference" / "bsrnn_reference_state_dict_shapes_N64_L5.json").read_text())
    g = torch.Generator().manual_seed(3)
    state = {k: 0.1 * torch.randn(*shape, generator=g) for k, shape in shapes.items()}
    model = load_model(_save(state, tmp_path / "gene_epoch_80_0.071"))
    assert model.info["model_config"] == {"name": "bsrnn", "num_channel": 64, "num_layer": 5}
    assert sum(p.numel() for p in model.parameters()) == 2_963_024
    got = model.state_dict()
    assert list(got) == list(shapes) and all(torch.equal(got[k], state[k]) for k in shapes)


@pytest.mark.parametrize(("n", "layers", "prefix"), [(8, 1, ""), (12, 3, "module.")])
def test_any_size_and_a_dataparallel_prefix_give_the_same_function(tmp_path: Path, n: int, layers: int,
                                                                   prefix: str) -> None:
    src = _seeded(n, layers, seed=n)
    path = _save({prefix + k: v for k, v in src.state_dict().items()}, tmp_path / "g")
    model = load_model(path)
    assert model.info["model_config"] == {"name": "bsrnn", "num_channel": n, "num_layer": layers}
    x = torch.randn(2, 4000, generator=torch.Generator().manual_seed(1)) * 0.1
    torch.testing.assert_close(bandsplit.enhance(model, x, 16000), bandsplit.enhance(src, x, 16000), rtol=0, atol=0)


def test_another_band_table_is_read_from_the_band_norms(tmp_path: Path) -> None:
    widths = [1, 2, 4, 8, 16, 32, 66]  # 129 bins: n_fft 256
    src = _seeded(8, 1, band_widths=widths)
    model = load_model(_save(src.state_dict(), tmp_path / "g"))
    assert model.info["model_config"]["band_widths"] == widths
    assert model.band_widths == tuple(widths) and model.stft.to_dict()["n_fft"] == 256


def test_float64_weights_stay_float64(tmp_path: Path) -> None:
    src = _seeded(8, 1).double()
    model = load_model(_save(src.state_dict(), tmp_path / "g"))
    assert {p.dtype for p in model.parameters()} == {torch.float64}


def test_other_plain_state_dicts_are_refused_naming_the_file_and_the_keys(tmp_path: Path) -> None:
    disc = _save({"layers.0.weight_orig": torch.zeros(16, 2, 4, 4), "layers.0.bias": torch.zeros(16)},
                 tmp_path / "disc_epoch_3")
    with pytest.raises(ValueError, match=r"disc_epoch_3.*bare state dict.*band_split\.fc1\.weight"):
        load_model(disc)
    good = _seeded(8, 2).state_dict()
    wrong = dict(good)
    wrong["lstm_t2.weight_hh_l0"] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match=r"N=8, L=2.*lstm_t2\.weight_hh_l0 \(3, 3\) \(expected \(64, 16\)\)"):
        load_model(_save(wrong, tmp_path / "wrong"))
    missing = {k: v for k, v in good.items() if k != "fc_k2.bias"}
    with pytest.raises(ValueError, match=r"missing \['fc_k2\.bias'\]"):
        load_model(_save(missing, tmp_path / "missing"))
    extra = {**good, "lstm_k3.weight_ih_l0": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"unexpected \['lstm_k3\.weight_ih_l0'\]"):
        load_model(_save(extra, tmp_path / "extra"))
    odd = dict(good)
    odd["band_split.norm2.weight"] = torch.zeros(5)
    with pytest.raises(ValueError, match=r"band_split\.norm2\.weight has shape \(5,\)"):
        load_model(_save(odd, tmp_path / "odd"))

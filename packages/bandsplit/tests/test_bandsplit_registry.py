"""The registry: named presets (the trainer's demo sizes, the published BSRNN) and config overrides."""

from __future__ import annotations

import pytest
import torch

import bandsplit
from bandsplit import PRESETS, build_model, preset_config


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_presets_hold_the_known_sizes() -> None:
    assert dict(PRESETS["bsrnn-published"]) == {"name": "bsrnn", "num_channel": 64, "num_layer": 5}
    assert _params(build_model(preset="bsrnn-published")) == 2_963_024   # the published model's count
    for name in ("bsrnn-demo", "bsdt-demo", "bsdt-v1-demo"):
        cfg = preset_config(name)
        assert (cfg["num_channel"], cfg["num_layer"]) == (32, 2)
        assert cfg.get("num_heads", 2) == 2
        # a preset builds exactly the model of its explicit config
        assert _params(build_model(preset=name)) == _params(build_model(cfg))
    assert isinstance(build_model(preset="bsdt-demo"), bandsplit.BSDT)
    assert build_model(preset="bsdt-v1-demo").graph == "fixed" and build_model(preset="bsdt-demo").graph == "learned"


def test_presets_are_read_only_and_copies_are_editable() -> None:
    with pytest.raises(TypeError):
        PRESETS["bsdt-demo"]["num_channel"] = 8  # type: ignore[index]
    cfg = preset_config("bsdt-demo")
    cfg["num_channel"] = 8
    assert PRESETS["bsdt-demo"]["num_channel"] == 32


def test_config_overrides_the_preset() -> None:
    small = build_model({"num_layer": 1, "use_multiscale": False}, preset="bsdt-demo")
    assert (small.num_channel, small.num_layer, small.use_multiscale) == (32, 1, False)
    assert _params(small) == _params(build_model({**preset_config("bsdt-demo"), "num_layer": 1,
                                                  "use_multiscale": False}))
    with pytest.raises(ValueError, match="drop one of them"):
        build_model({"name": "bsrnn"}, preset="bsdt-demo")
    with pytest.raises(ValueError, match="unknown preset 'tiny'"):
        build_model(preset="tiny")
    with pytest.raises(ValueError, match="choose one of bsrnn"):
        build_model({"name": "unet"})


def test_research_presets_hold_the_research_sizes() -> None:
    # the BSDT design's size: N=128, 4 differential heads, one block (the notes' "~3.9M")
    assert dict(PRESETS["bsdt-research"]) == {"name": "bsdt", "num_channel": 128, "num_layer": 1, "num_heads": 4}
    assert _params(build_model(preset="bsdt-research")) == 3_919_311
    assert _params(build_model(preset="bsdt-v1-research")) == 3_918_350
    # the ERB-UNet's "~15-20M" size at 601 and at 801 bins (the seed's Net2 and Net1)
    assert _params(build_model(preset="erb-unet-research")) == 16_981_402
    net1 = build_model(preset="erb-unet-801-research")
    assert _params(net1) == 17_624_210 and net1.net.num_bins == 801
    for name in PRESETS:
        assert build_model(preset=name).config == preset_config(name)


def test_models_carry_their_config() -> None:
    cfg = {"name": "bsdt", "num_channel": 8, "num_layer": 1, "fusion": "fixed", "windows": [4]}
    m = build_model(cfg)
    assert m.config == cfg and m.config is not cfg
    assert _params(build_model(m.config)) == _params(m)
    assert build_model({"num_layer": 1}, preset="bsdt-demo").config == {**preset_config("bsdt-demo"), "num_layer": 1}

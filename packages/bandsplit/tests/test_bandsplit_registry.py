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

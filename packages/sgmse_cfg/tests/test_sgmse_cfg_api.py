"""API conventions: one register_* function per registry (the tables are read-only views),
and one loss signature and result shape, ``(total, terms)``, across the model classes."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn as nn

import sgmse_cfg
from sgmse_cfg import (
    AUDIO_ENCODER_ARCHS,
    BACKBONES,
    NOISE_ENCODERS,
    CNNNoiseEncoder,
    NoiseCondScoreModel,
    ScoreModel,
    SmallUNet,
    TransformerAudioEncoder,
    register_audio_encoder,
    register_backbone,
    register_noise_encoder,
    score_model_from_config,
)


class _WideUNet(SmallUNet):
    """A backbone class outside the package (registered by the test)."""


class _SmallCNN(CNNNoiseEncoder):
    """A noise-encoder class outside the package (registered by the test)."""


def test_each_registry_has_one_register_function_and_a_read_only_table() -> None:
    registers = sorted(n for n in sgmse_cfg.__all__ if n.startswith("register_"))
    assert registers == ["register_audio_encoder", "register_backbone", "register_noise_encoder"]
    for table in (BACKBONES, NOISE_ENCODERS, AUDIO_ENCODER_ARCHS):
        with pytest.raises(TypeError):
            table["x"] = nn.Module  # type: ignore[index]
    assert set(BACKBONES) >= {"NCSNpp", "SmallUNet"} and set(NOISE_ENCODERS) >= {"cnn", "seq", "pretrained"}
    assert AUDIO_ENCODER_ARCHS["transformer"] is TransformerAudioEncoder


def test_registered_classes_round_trip_through_configs() -> None:
    assert register_backbone("test_wide_unet", _WideUNet) is _WideUNet
    assert register_noise_encoder("test_small_cnn", _SmallCNN) is _SmallCNN
    register_backbone("test_wide_unet", _WideUNet)  # the same class again: a no-op
    assert BACKBONES["test_wide_unet"] is _WideUNet and NOISE_ENCODERS["test_small_cnn"] is _SmallCNN
    torch.manual_seed(0)
    m = NoiseCondScoreModel(_WideUNet(channels=(4, 8), temb_dim=16), _SmallCNN(channels=(4, 8), dim=8))
    cfg = m.to_config()
    assert cfg["backbone"] == "test_wide_unet" and cfg["noise_cond"]["encoder"] == "test_small_cnn"
    clone = score_model_from_config(cfg)
    assert type(clone.backbone) is _WideUNet and type(clone.encoder) is _SmallCNN
    clone.load_state_dict(m.state_dict())  # strict: the same architecture


def test_register_refuses_a_taken_name_and_unregistered_classes_name_the_function() -> None:
    with pytest.raises(ValueError, match="'SmallUNet' is taken"):
        register_backbone("SmallUNet", _WideUNet)
    with pytest.raises(ValueError, match="'cnn' is taken"):
        register_noise_encoder("cnn", _SmallCNN)
    with pytest.raises(ValueError, match="'transformer' is taken"):
        register_audio_encoder("transformer", nn.Linear)

    class Unknown(SmallUNet):
        pass

    with pytest.raises(ValueError, match="register_backbone"):
        ScoreModel(Unknown(channels=(4, 8))).to_config()
    with pytest.raises(ValueError, match="unknown backbone 'Nope'.*register_backbone"):
        ScoreModel.from_config({**ScoreModel(SmallUNet(channels=(4, 8))).to_config(), "backbone": "Nope"})


def test_a_subclass_keeps_its_parents_loss_signature() -> None:
    """NoiseCondScoreModel.loss takes every parameter of ScoreModel.loss, in the same place
    with the same default (``share`` included), and only adds keyword-only ones."""
    parent = inspect.signature(ScoreModel.loss).parameters
    child = inspect.signature(NoiseCondScoreModel.loss).parameters
    for name, p in parent.items():
        q = child[name]
        assert (q.kind, q.default) == (p.kind, p.default), name
    assert list(child)[: len(parent)] == list(parent)
    assert all(child[n].kind is inspect.Parameter.KEYWORD_ONLY for n in child if n not in parent)


def test_share_is_honoured_through_the_common_signature() -> None:
    """Called the same way as ScoreModel.loss (no labels), the two ranks' shares of a global
    batch average to the one-process loss: t, z, the NC-head and condition dropouts are drawn
    for the global batch. Float64 data, so the equality is to float64 rounding."""
    torch.manual_seed(0)
    models = [ScoreModel(SmallUNet(channels=(4, 8), temb_dim=16)),
              NoiseCondScoreModel(SmallUNet(channels=(4, 8), temb_dim=16), CNNNoiseEncoder(channels=(4, 8), dim=8),
                                  n_classes=3, p_uncond=0.5)]
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(4, 1, 256, 16, dtype=torch.complex128, generator=g)
    y = x0 + 0.5 * torch.randn(4, 1, 256, 16, dtype=torch.complex128, generator=g)
    for m in models:
        m.double().train()
        whole, terms = m.loss(x0, y, torch.Generator().manual_seed(7))
        assert set(terms) == {"dsm"} and not terms["dsm"].requires_grad and whole.requires_grad
        parts = [m.loss(x0[r::2], y[r::2], torch.Generator().manual_seed(7), share=(r, 2))[0] for r in range(2)]
        torch.testing.assert_close((parts[0] + parts[1]).detach() / 2, whole.detach(), rtol=1e-12, atol=0)

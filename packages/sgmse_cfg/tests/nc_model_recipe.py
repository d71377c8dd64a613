"""A small noise-conditioned score model for the batching tests of the package and the tool
(not a test module)."""

from __future__ import annotations

import torch

import sgmse_cfg


def small_noise_conditioned_model() -> sgmse_cfg.NoiseCondScoreModel:
    """FiLM-conditioned SmallUNet with an NC head and a fitted k-NN bank, moved off its init so the
    conditional and null scores differ and each file gets its own adaptive scale (seeded: the same
    weights on every call)."""
    torch.manual_seed(0)
    m = sgmse_cfg.build_model(encoder="cnn", unet_channels=(4, 8), encoder_channels=(4, 8), embed_dim=8,
                              inject="film", n_classes=3)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    m.fit_bank(torch.randn(16, 8, generator=g))
    return m.eval()

"""The BSRNN training recipe: reconstruction loss and the MetricGAN discriminator.

Loss (sungwon23/BSRNN): ``0.5 · mean|Ŝ − S|`` (complex modulus, uncompressed) ``+ 0.5 · L1``
between magnitudes compressed as ``(|·| + 1e-10)^0.3``; with ``--gan`` a generator term
``MSE(D(|S|^c, |Ŝ|^c), 1)`` is added. The discriminator regresses normalised PESQ.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import spectral_norm

__all__ = ["compress_magnitude", "BSRNNLoss", "MetricDiscriminator", "pesq_to_target"]


def compress_magnitude(spec: Tensor, power: float = 0.3) -> Tensor:
    """``(|spec| + 1e-10) ** power`` for a complex ``[B, F, T]`` spectrogram -> real ``[B, F, T]``."""
    return (spec.abs() + 1e-10) ** power


class BSRNNLoss(nn.Module):
    """``ri_weight · mean|Ŝ − S| + mag_weight · mean| |Ŝ|^p − |S|^p |`` on complex ``[B, F, T]``.

    Returns ``(total, {"ri": ..., "mag": ...})``.
    """

    def __init__(self, ri_weight: float = 0.5, mag_weight: float = 0.5, power: float = 0.3) -> None:
        super().__init__()
        self.ri_weight, self.mag_weight, self.power = ri_weight, mag_weight, power

    def forward(self, est: Tensor, clean: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        ri = (est - clean).abs().mean()
        mag = F.l1_loss(compress_magnitude(est, self.power), compress_magnitude(clean, self.power))
        return self.ri_weight * ri + self.mag_weight * mag, {"ri": ri, "mag": mag}


class _LearnableSigmoid(nn.Module):
    def __init__(self, features: int, beta: float) -> None:
        super().__init__()
        self.beta = beta
        self.slope = nn.Parameter(torch.ones(features))

    def forward(self, x: Tensor) -> Tensor:
        return self.beta * torch.sigmoid(self.slope * x)


class MetricDiscriminator(nn.Module):
    """MetricGAN discriminator as sungwon23/BSRNN builds it (181,650 parameters at ndf=16).

    Input: two compressed magnitudes ``[B, 1, F, T]`` (reference, test); output ``[B, 1]`` in
    ``[0, beta]``, trained to predict :func:`pesq_to_target` of the pair.
    """

    def __init__(self, ndf: int = 16, in_channel: int = 2, beta: float = 1.2) -> None:
        super().__init__()
        chans = [in_channel, ndf, 2 * ndf, 4 * ndf, 8 * ndf]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1, bias=False)),
                       nn.InstanceNorm2d(cout, affine=True), nn.PReLU(cout)]
        layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                   spectral_norm(nn.Linear(8 * ndf, 4 * ndf)), nn.Dropout(0.3), nn.PReLU(4 * ndf),
                   spectral_norm(nn.Linear(4 * ndf, 1)), _LearnableSigmoid(1, beta)]
        self.layers = nn.Sequential(*layers)

    def forward(self, ref: Tensor, test: Tensor) -> Tensor:
        return self.layers(torch.cat([ref, test], dim=1))


def pesq_to_target(pesq_wb: Tensor) -> Tensor:
    """Normalise wide-band PESQ (−0.5 .. 4.5) to the discriminator's [0, 1] target."""
    return (pesq_wb + 0.5) / 5.0

"""The scale-diversity loss of the multi-scale dynamic fusion gate.

The research notes' multi-scale fusion gate (the ERB-UNet notes' ``MultiScaleDynamicFusionGate`` with
``use_diversity_reg``: "diversity loss to encourage scale specialization") penalises the
similarity of the gates its scales predict, so that the windows 2, 4, 8 learn different
patterns instead of one gate three times. Their code computed it but nothing added it to the
training loss; here it is a loss class a trainer adds with a weight::

    y, analysis = model(x, return_analysis=True)      # BSDT / ERB-UNet ("adaptive" attention)
    div, terms = ScaleDiversityLoss()(analysis["scale_gates"])
    loss = reconstruction + weight * div

Formula. For layer ``l``, scales ``i < j`` and one gate sequence ``n`` (a band of an utterance, or a
head), with the per-frame gates ``g_i, g_j ∈ (0, 1)^T``::

    ρ_ij = Σ_t (g_i[t] − ḡ_i)(g_j[t] − ḡ_j) / (‖g_i − ḡ_i‖ ‖g_j − ḡ_j‖ + ε)      (Pearson, over time)
    L_div = mean over l, i < j, n of |ρ_ij|              ∈ [0, 1]

0 when every pair of scales is uncorrelated over time, 1 when their gates move identically (or
exactly opposite). The seed used the cosine similarity of the raw gates (``centred=False``
here): gates are sigmoids, all positive, so the raw cosine of two gates is close to 1 whenever
their means are similar, whatever their time courses; minimising it mostly drives gates towards
0 rather than apart. Centring measures the time courses, which is what "scale specialisation"
means. A constant gate (e.g. at initialisation, where every gate is exactly 0.5) has no time
course: its ``ρ`` is 0 and so is its gradient, so the loss acts once the gates vary.

Padded batches: with ``mask`` (``True`` = valid frame), the means and sums over ``t`` run over each
sequence's valid frames only, so a padded batch's loss is the mean of what its sequences give
alone, whatever the padded frames hold.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def masked_centre(g: Tensor, mask: Tensor | None, centred: bool = True) -> Tensor:
    """``g [..., N, T]`` minus its mean over the valid frames of each sequence (``centred``), with
    the padded frames set to 0, so sums over ``t`` see valid frames only. ``mask``: bool ``[N, T]``
    (``True`` = valid) or None (every frame valid)."""
    if mask is None:
        return g - g.mean(-1, keepdim=True) if centred else g
    if mask.dtype != torch.bool or mask.shape != g.shape[-2:]:
        raise ValueError(f"mask must be bool {tuple(g.shape[-2:])} (sequences, frames), got "
                         f"{mask.dtype} {tuple(mask.shape)}")
    m = mask.to(g.dtype)
    if centred:
        g = g - (g * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp_min(1.0)
    return g * m


def flat_frame_mask(mask: Tensor | None, seq_shape: torch.Size) -> Tensor | None:
    """A bool mask broadcastable to ``seq_shape`` (``[..., T]``) as ``[N, T]`` (or None)."""
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = valid frame), got {mask.dtype}")
    try:
        return mask.expand(seq_shape).reshape(-1, seq_shape[-1])
    except RuntimeError:
        raise ValueError(f"mask {tuple(mask.shape)} does not broadcast to the gates' sequence dims and "
                         f"frames {tuple(seq_shape)}") from None


class ScaleDiversityLoss(nn.Module):
    """Mean absolute correlation over time between the gates of every pair of fusion scales.

    Args:
        centred: Pearson correlation (default); ``False``: cosine similarity of the raw gates as
            in the research notes' code.
        eps: added to the product of norms.

    ``forward(scale_gates, mask=None)``: ``scale_gates [L, S, *, T]`` (layers, scales, any
    sequence dims, frames; e.g. BSDT's ``analysis["scale_gates"]`` ``[L, S, B, K, T]``; one gate:
    ``[1, S, *, T]``) -> ``(total, {"diversity": total (detached), "per_layer": [L] (detached)})``.
    ``total`` is 0-d, in ``[0, 1]``; it is 0 (with a zero gradient) when ``S < 2``. ``mask``:
    optional bool frame mask (``True`` = valid) broadcastable to ``scale_gates.shape[2:]``, e.g.
    the models' ``analysis["valid_frames"]`` ``[B, 1, T]`` of a padded batch (``lengths=``): the
    correlations then use each sequence's valid frames only.
    """

    def __init__(self, centred: bool = True, eps: float = 1e-8) -> None:
        super().__init__()
        self.centred, self.eps = bool(centred), float(eps)

    def forward(self, scale_gates: Tensor, mask: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        if scale_gates.ndim < 3:
            raise ValueError(f"ScaleDiversityLoss expects scale gates [L, S, ..., T], got {tuple(scale_gates.shape)}")
        n_layers, s, t = scale_gates.shape[0], scale_gates.shape[1], scale_gates.shape[-1]
        fmask = flat_frame_mask(mask, scale_gates.shape[2:])               # [N, T] or None
        g = scale_gates.reshape(n_layers, s, -1, t)                        # [L, S, N, T]
        if s < 2:
            per_layer = g.sum(dim=(1, 2, 3)) * 0.0
        else:
            g = masked_centre(g, fmask, self.centred)
            norm = torch.linalg.vector_norm(g, dim=-1)                     # [L, S, N]
            dots = torch.einsum("lant,lbnt->labn", g, g)                   # [L, S, S, N]
            corr = dots / (norm[:, :, None] * norm[:, None, :] + self.eps)
            iu = torch.triu_indices(s, s, 1, device=g.device)
            per_layer = corr[:, iu[0], iu[1]].abs().mean(dim=(1, 2))      # [L]
        total = per_layer.mean()
        return total, {"diversity": total.detach(), "per_layer": per_layer.detach()}

    def extra_repr(self) -> str:
        return f"centred={self.centred}, eps={self.eps}"

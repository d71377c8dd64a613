"""RMS normalisation used by the Differential Transformer (per-head "subln") and as a pre-norm."""

from __future__ import annotations

import torch
from torch import Tensor, nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    """``y = x / sqrt(mean(x², -1) + eps) · weight`` over the last dimension.

    As in the Differential Transformer reference (``rms_norm.py``) the statistic is computed in at
    least float32 (half/bfloat16 inputs are upcast, float64 stays float64) and the result is cast
    back to the input dtype before the (optional) affine weight.

    Args:
        dim: size of the normalised last dimension.
        eps: added to the mean square (reference: 1e-5 for the per-head norm).
        elementwise_affine: learn a per-feature gain (initialised to 1), shared by all leading
            dimensions (e.g. by all heads when applied to ``[N, H, T, 2d]``).

    Shapes: ``[..., dim] -> [..., dim]``. Memory: one temporary of the input's size.
    """

    def __init__(self, dim: int, eps: float = 1e-5, elementwise_affine: bool = True) -> None:
        super().__init__()
        if dim <= 0:
            raise ValueError(f"RMSNorm: dim must be positive, got {dim}")
        self.dim = dim
        self.eps = eps
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(dim))
        else:
            self.register_parameter("weight", None)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.dim:
            raise ValueError(f"RMSNorm expects last dim {self.dim}, got shape {tuple(x.shape)}")
        if x.dtype in (torch.float32, torch.float64) and (self.weight is None or self.weight.dtype == x.dtype):
            # one op (a fused kernel on CUDA; the same arithmetic as below)
            return F.rms_norm(x, (self.dim,), self.weight, self.eps)
        xf = x.float()  # low precision: statistics in float32
        y = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)
        if self.weight is not None:
            y = y * self.weight
        return y

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}, elementwise_affine={self.weight is not None}"

"""``view_as_complex`` that accepts autocast's reduced-precision real pairs (private)."""

from __future__ import annotations

import torch


def as_complex(x: torch.Tensor) -> torch.Tensor:
    """``[..., 2]`` real/imaginary pairs -> complex ``[...]``. bf16 / fp16 values (from layers
    run under ``torch.autocast``) are upcast to float32 first (``view_as_complex`` takes no
    bf16); float32 / float64 pass through unchanged."""
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    return torch.view_as_complex(x)

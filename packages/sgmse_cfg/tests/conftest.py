"""Helpers shared by sgmse_cfg's backbone tests."""

from __future__ import annotations

from typing import Callable

import pytest
import torch


@pytest.fixture
def fp32_and_bf16() -> Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``run(model, x, t) -> (float32 output, output under CPU bf16 autocast)``, no gradients."""

    @torch.no_grad()
    def run(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ref = model(x, t)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return ref, model(x, t)

    return run

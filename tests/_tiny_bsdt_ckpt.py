"""A tools/train_bsdt.py-schema checkpoint of a tiny BSDT, shared by the enhance tool tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import bandsplit

SR = 16000
CFG = {"name": "bsdt", "num_channel": 8, "num_layer": 1, "num_heads": 2, "graph": "learned",
       "use_inter_band": True, "use_multiscale": True}


def write_checkpoint(path: Path, seed: int, cfg: dict[str, Any] | None = None) -> Path:
    """A tools/train_bsdt.py-schema checkpoint of a tiny BSDT (or of the ``build_model`` config
    ``cfg``) with weights set by ``seed``."""
    cfg = dict(CFG if cfg is None else cfg)
    torch.manual_seed(seed)
    model = bandsplit.build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    payload: dict[str, Any] = {
        "format": bandsplit.CHECKPOINT_FORMAT, "tool": "train_bsdt", "config": {"model": cfg["name"]},
        "model_config": cfg, "sample_rate": SR, "stft": {"n_fft": 512, "hop": 128},
        "versions": {"torch": str(torch.__version__), "bandsplit": "0.1.0"}, "epoch": 1, "step": 1,
        "model": model.state_dict(), "optimizer": {}, "best": {"epoch": 1}, "history": []}
    torch.save(payload, path)
    return path

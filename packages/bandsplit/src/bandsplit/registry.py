"""Build any model of this package from a plain config dict (as stored in checkpoints).

``build_model({"name": "bsrnn", "num_channel": 64, "num_layer": 5})``. Every model maps a
complex STFT ``[B, 257, T]`` (16 kHz, n_fft 512, hop 128) to one of the same shape.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from .bsdt import BSDT
from .bsrnn import BSRNN
from .erb_adapter import ERBUNetAdapter
from .erb_unet import ERBUNet, ERBUNet257

__all__ = ["MODEL_NAMES", "build_model"]


def _bsrnn(cfg: dict[str, Any]) -> nn.Module:
    return BSRNN(**cfg)


def _bsdt(cfg: dict[str, Any]) -> nn.Module:
    return BSDT(**{"graph": "learned", **cfg})


def _bsdt_v1(cfg: dict[str, Any]) -> nn.Module:
    return BSDT(**{"graph": "fixed", **cfg})


def _erb_unet(cfg: dict[str, Any]) -> nn.Module:
    # seed 000 option B: the net at its own resolution (601 bins, n_fft 1200, hop 100) behind the exact
    # waveform-domain adapter to 257 complex bins
    return ERBUNetAdapter(ERBUNet(**cfg), sample_rate=cfg.get("sample_rate", 16000))


def _erb_unet_257(cfg: dict[str, Any]) -> nn.Module:
    return ERBUNet257(**cfg)  # option C: the 257-bin redesign


_BUILDERS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
    "bsrnn": _bsrnn,
    "bsdt": _bsdt,        # v2: learnable top-k inter-band graph
    "bsdt-v1": _bsdt_v1,  # v1: fixed harmonic graph
    "erb-unet": _erb_unet,
    "erb-unet-257": _erb_unet_257,
}
MODEL_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def build_model(config: dict[str, Any]) -> nn.Module:
    """Instantiate ``config["name"]`` with the remaining keys as constructor arguments."""
    cfg = dict(config)
    name = cfg.pop("name", None)
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return _BUILDERS[name](cfg)

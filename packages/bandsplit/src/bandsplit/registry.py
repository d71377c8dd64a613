"""Build any model of this package from a plain config dict (as stored in checkpoints).

``build_model({"name": "bsrnn", "num_channel": 64, "num_layer": 5})``. Every model maps a
complex STFT ``[B, 257, T]`` (16 kHz, n_fft 512, hop 128) to one of the same shape.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from .bsrnn import BSRNN

__all__ = ["MODEL_NAMES", "build_model"]


def _bsrnn(cfg: dict[str, Any]) -> nn.Module:
    return BSRNN(**cfg)


_BUILDERS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {"bsrnn": _bsrnn}
MODEL_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def build_model(config: dict[str, Any]) -> nn.Module:
    """Instantiate ``config["name"]`` with the remaining keys as constructor arguments."""
    cfg = dict(config)
    name = cfg.pop("name", None)
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return _BUILDERS[name](cfg)

"""Build any model of this package from a plain config dict (as stored in checkpoints) or a preset.

``build_model({"name": "bsrnn", "num_channel": 64, "num_layer": 5})``, or
``build_model(preset="bsdt-demo")``, or both (the config's keys override the preset's). Every
model maps a complex STFT ``[B, 257, T]`` (16 kHz, n_fft 512, hop 128) to one of the same shape
and carries ``.stft`` (its :class:`~bandsplit.SpectrogramTransform`) and ``.sample_rate`` (Hz),
so :func:`bandsplit.enhance` needs nothing else.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Mapping

from torch import nn

from .bsdt import BSDT
from .bsrnn import BSRNN
from .erb_adapter import ERBUNetAdapter
from .erb_unet import ERBUNet, ERBUNet257

__all__ = ["MODEL_NAMES", "PRESETS", "build_model", "preset_config"]


def _bsrnn(cfg: dict[str, Any]) -> nn.Module:
    return BSRNN(**cfg)


def _bsdt(cfg: dict[str, Any]) -> nn.Module:
    return BSDT(**{"graph": "learned", **cfg})


def _bsdt_v1(cfg: dict[str, Any]) -> nn.Module:
    return BSDT(**{"graph": "fixed", **cfg})


def _erb_unet(cfg: dict[str, Any]) -> nn.Module:
    # the net at its own resolution (601 bins, n_fft 1200, hop 100) behind the exact
    # waveform-domain adapter to 257 complex bins
    return ERBUNetAdapter(ERBUNet(**cfg), sample_rate=cfg.get("sample_rate", 16000))


def _erb_unet_257(cfg: dict[str, Any]) -> nn.Module:
    return ERBUNet257(**cfg)  # the 257-bin redesign


_BUILDERS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
    "bsrnn": _bsrnn,
    "bsdt": _bsdt,        # v2: learnable top-k inter-band graph
    "bsdt-v1": _bsdt_v1,  # v1: fixed harmonic graph
    "erb-unet": _erb_unet,
    "erb-unet-257": _erb_unet_257,
}
MODEL_NAMES: tuple[str, ...] = tuple(_BUILDERS)

#: Named model sizes (read-only). ``*-demo``: the small models ``tools/train_bsdt.py`` trains on
#: its demo corpus in a few CPU minutes (N = 32, L = 2; BSDT with 2 differential heads);
#: ``bsrnn-published``: the BSRNN of VoiceBank-DEMAND papers (N = 64, L = 5, 2,963,024
#: parameters), the trainer's BSRNN size on real data.
PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "bsrnn-published": MappingProxyType({"name": "bsrnn", "num_channel": 64, "num_layer": 5}),
    "bsrnn-demo": MappingProxyType({"name": "bsrnn", "num_channel": 32, "num_layer": 2}),
    "bsdt-demo": MappingProxyType({"name": "bsdt", "num_channel": 32, "num_layer": 2, "num_heads": 2}),
    "bsdt-v1-demo": MappingProxyType({"name": "bsdt-v1", "num_channel": 32, "num_layer": 2, "num_heads": 2}),
})


def preset_config(preset: str) -> dict[str, Any]:
    """A fresh, editable copy of ``PRESETS[preset]`` (a config for :func:`build_model`)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return dict(PRESETS[preset])


def build_model(config: Mapping[str, Any] | None = None, *, preset: str | None = None) -> nn.Module:
    """Instantiate ``config["name"]`` with the remaining keys as constructor arguments.

    With ``preset`` the preset's config is the base and ``config``'s keys override it (a
    different ``name`` is an error). The model carries ``.stft`` and ``.sample_rate``.
    """
    cfg = preset_config(preset) if preset is not None else {}
    if config is not None:
        if preset is not None and "name" in config and config["name"] != cfg["name"]:
            raise ValueError(f"preset {preset!r} is a {cfg['name']!r} model but the config names "
                             f"{config['name']!r}; drop one of them")
        cfg.update(config)
    name = cfg.pop("name", None)
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)} "
                         f"(or a preset: {', '.join(PRESETS)})")
    return _BUILDERS[name](cfg)

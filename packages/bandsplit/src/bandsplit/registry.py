"""Build any model of this package from a plain config dict (as stored in checkpoints) or a preset.

``build_model({"name": "bsrnn", "num_channel": 64, "num_layer": 5})``, or
``build_model(preset="bsdt-demo")``, or both (the config's keys override the preset's). Every
model maps a complex STFT ``[B, 257, T]`` (16 kHz, n_fft 512, hop 128) to one of the same shape
and carries ``.stft`` (its :class:`~bandsplit.SpectrogramTransform`), ``.sample_rate`` (Hz), so
:func:`bandsplit.enhance` needs nothing else, and ``.config``: the full config it was built from
(``build_model(model.config)`` rebuilds it; this is what a checkpoint stores).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Mapping

from torch import nn

from .bsdt import BSDT
from .bsrnn import BSRNN
from .erb_adapter import ERBUNetAdapter
from .erb_unet import ERB_UNET_FULL_SIZE, ERBUNet, ERBUNet257

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


def _erb_unet_801(cfg: dict[str, Any]) -> nn.Module:
    # the ERB-UNet notes' "Net1": the same net at n_fft 1600, hop 100 (801 bins), behind the same adapter
    for key, value in (("n_fft", 1600), ("hop", 100)):
        if cfg.get(key, value) != value:
            raise ValueError(f"erb-unet-801 is the n_fft 1600 / hop 100 ERB-UNet; got {key}={cfg[key]}. "
                             f"For another resolution use {{'name': 'erb-unet', 'n_fft': ..., 'hop': ...}}")
    return _erb_unet({**cfg, "n_fft": 1600, "hop": 100})


def _erb_unet_257(cfg: dict[str, Any]) -> nn.Module:
    return ERBUNet257(**cfg)  # the 257-bin redesign


_BUILDERS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
    "bsrnn": _bsrnn,
    "bsdt": _bsdt,        # v2: learnable top-k inter-band graph
    "bsdt-v1": _bsdt_v1,  # v1: fixed harmonic graph
    "erb-unet": _erb_unet,          # 601 bins (n_fft 1200, hop 100; both options) + adapter
    "erb-unet-801": _erb_unet_801,  # 801 bins (n_fft 1600, hop 100) + adapter
    "erb-unet-257": _erb_unet_257,
}
MODEL_NAMES: tuple[str, ...] = tuple(_BUILDERS)

#: Named model sizes (read-only). ``*-demo``: the small models ``tools/train_bsdt.py`` trains on
#: its demo corpus in a few CPU minutes (N = 32, L = 2; BSDT with 2 differential heads);
#: ``bsrnn-published``: the BSRNN of VoiceBank-DEMAND papers (N = 64, L = 5, 2,963,024
#: parameters), the trainer's BSRNN size on real data; ``*-research``: the sizes of the research
#: notes: BSDT with N = 128, 4 differential heads, one block (3,919,311 parameters for v2, the
#: notes' "~3.9M"), the ERB-UNet at :data:`ERB_UNET_FULL_SIZE` (the notes' "~15-20M": 16,981,402
#: parameters at 601 bins). The bandsplit README tabulates every preset's parameters and MACs.
PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "bsrnn-published": MappingProxyType({"name": "bsrnn", "num_channel": 64, "num_layer": 5}),
    "bsdt-research": MappingProxyType({"name": "bsdt", "num_channel": 128, "num_layer": 1, "num_heads": 4}),
    "bsdt-v1-research": MappingProxyType({"name": "bsdt-v1", "num_channel": 128, "num_layer": 1, "num_heads": 4}),
    "erb-unet-research": MappingProxyType({"name": "erb-unet", **ERB_UNET_FULL_SIZE}),
    "erb-unet-801-research": MappingProxyType({"name": "erb-unet-801", **ERB_UNET_FULL_SIZE}),
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
    different ``name`` is an error). The model carries ``.stft``, ``.sample_rate`` and
    ``.config`` (``{"name": ..., **constructor keys}``, a copy of the merged config).
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
    model = _BUILDERS[name](dict(cfg))
    model.config = {"name": name, **cfg}
    return model

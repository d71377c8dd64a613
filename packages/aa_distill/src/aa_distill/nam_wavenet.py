"""NAM's WaveNet (``.nam`` 0.5.x ``"architecture": "WaveNet"``) as a vectorised PyTorch module.

Structure (neural-amp-modeler 0.12.x, NeuralAmpModelerCore 0.3): a chain of *layer arrays*.
Each array applies a bias-free 1x1 ``rechannel`` to its input, then dilated layers

    z    = conv_d(x) + input_mixer(c)              # c: the raw input audio (the condition)
    a    = act(z)               (ungated)
         = act(z[:C]) * sigmoid(z[C:])             (gated: the conv has 2C outputs)
    x    = x + conv1x1(a)                          # residual stream to the next layer
    head = head + a                                # head accumulator

and a final 1x1 ``head_rechannel`` (bias if ``head_bias``). The residual stream of array i
is the input of array i+1 and its head output is array i+1's starting head accumulator.
The model output is ``head_scale * head`` of the last array. All convolutions are "valid";
with ``pad_start=True`` (NAM's default) ``receptive_field - 1`` zeros are prepended to the
input, so the output has the input's length and the model starts from zero history.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .nam_base import NAM_WRITE_VERSION, NamModel

# Activation names as NAM writes them -> torch functions (the subset every NAM player knows).
_ACTIVATIONS = {
    "Tanh": torch.tanh,
    "Hardtanh": F.hardtanh,
    "ReLU": F.relu,
    "LeakyReLU": F.leaky_relu,
    "Sigmoid": torch.sigmoid,
    "SiLU": F.silu,
    "Hardswish": F.hardswish,
}
SUPPORTED_ACTIVATIONS: tuple[str, ...] = tuple(_ACTIVATIONS)

_LAYER_KEYS = ("input_size", "condition_size", "head_size", "channels", "kernel_size",
               "dilations", "activation", "gated", "head_bias")


@dataclass(frozen=True)
class LayerArrayConfig:
    """One entry of a WaveNet ``config["layers"]`` list (keys and order as in the file)."""

    input_size: int
    condition_size: int
    head_size: int
    channels: int
    kernel_size: int
    dilations: tuple[int, ...]
    activation: str = "Tanh"
    gated: bool = False
    head_bias: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "dilations", tuple(self.dilations))
        for name in ("input_size", "condition_size", "head_size", "channels", "kernel_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"layer array '{name}' must be a positive integer, got {v!r}")
        if not self.dilations or any(isinstance(d, bool) or not isinstance(d, int) or d < 1
                                     for d in self.dilations):
            raise ValueError(f"layer array 'dilations' must be a non-empty list of positive "
                             f"integers, got {list(self.dilations)!r}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"unsupported activation {self.activation!r}; supported: "
                             f"{', '.join(SUPPORTED_ACTIVATIONS)}")
        if not isinstance(self.gated, bool) or not isinstance(self.head_bias, bool):
            raise ValueError("layer array 'gated' and 'head_bias' must be true or false")

    @classmethod
    def from_dict(cls, d: dict) -> LayerArrayConfig:
        unknown = sorted(set(d) - set(_LAYER_KEYS))
        if unknown:
            raise ValueError(f"unknown layer-array keys {unknown} (a .nam 0.5.x WaveNet layer "
                             f"array has exactly {list(_LAYER_KEYS)})")
        missing = [k for k in _LAYER_KEYS if k not in d]
        if missing:
            raise ValueError(f"layer array is missing keys {missing}")
        return cls(**{k: d[k] for k in _LAYER_KEYS})

    def to_dict(self) -> dict:
        return {"input_size": self.input_size, "condition_size": self.condition_size,
                "head_size": self.head_size, "channels": self.channels,
                "kernel_size": self.kernel_size, "dilations": list(self.dilations),
                "activation": self.activation, "gated": self.gated, "head_bias": self.head_bias}

    @property
    def receptive_field(self) -> int:
        """``1 + (kernel_size - 1) * sum(dilations)`` samples."""
        return 1 + (self.kernel_size - 1) * sum(self.dilations)

    @property
    def num_weights(self) -> int:
        """Number of floats this array contributes to the flat weight list."""
        c, mid = self.channels, (2 if self.gated else 1) * self.channels
        per_layer = mid * c * self.kernel_size + mid + mid * self.condition_size + c * c + c
        head = self.head_size * c + (self.head_size if self.head_bias else 0)
        return c * self.input_size + len(self.dilations) * per_layer + head


def check_layer_chain(layers: Sequence[LayerArrayConfig]) -> None:
    """Check the chaining rules NAM players enforce; raise ``ValueError`` naming the array."""
    if not layers:
        raise ValueError("a WaveNet needs at least one layer array")
    if layers[0].input_size != 1:
        raise ValueError(f"layer array 0 must take the mono input (input_size 1), "
                         f"got input_size {layers[0].input_size}")
    for i, la in enumerate(layers):
        if la.condition_size != 1:
            raise ValueError(f"layer array {i}: condition_size must be 1 (the condition is the "
                             f"mono input audio), got {la.condition_size}")
    for i in range(1, len(layers)):
        prev, cur = layers[i - 1], layers[i]
        if cur.input_size != prev.channels:
            raise ValueError(f"layer array {i}: input_size {cur.input_size} must equal the "
                             f"channels of array {i - 1} ({prev.channels})")
        if cur.channels != prev.head_size:
            raise ValueError(f"layer array {i}: channels {cur.channels} must equal the head_size "
                             f"of array {i - 1} ({prev.head_size}) (the head accumulator is "
                             f"passed on)")
    if layers[-1].head_size != 1:
        raise ValueError(f"the last layer array must have head_size 1 (mono output), "
                         f"got {layers[-1].head_size}")


def wavenet_num_weights(layers: Sequence[LayerArrayConfig]) -> int:
    """Length of the flat weight list for this configuration (arrays + head_scale)."""
    return sum(la.num_weights for la in layers) + 1


class _Layer(nn.Module):
    def __init__(self, cfg: LayerArrayConfig, dilation: int) -> None:
        super().__init__()
        c = cfg.channels
        mid = 2 * c if cfg.gated else c
        self.channels, self.dilation, self.gated = c, dilation, cfg.gated
        self.conv = nn.Conv1d(c, mid, cfg.kernel_size, dilation=dilation)
        self.mixer = nn.Conv1d(cfg.condition_size, mid, 1, bias=False)
        self.conv1x1 = nn.Conv1d(c, c, 1)
        self._act = _ACTIVATIONS[cfg.activation]

    def forward(self, x: torch.Tensor, cond: torch.Tensor, out_len: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
        z = F.conv1d(x, self.conv.weight, self.conv.bias, dilation=self.dilation)
        n = z.shape[-1]
        z = z + F.conv1d(cond[..., -n:], self.mixer.weight)
        if self.gated:
            a = self._act(z[:, :self.channels]) * torch.sigmoid(z[:, self.channels:])
        else:
            a = self._act(z)
        x = x[..., -n:] + F.conv1d(a, self.conv1x1.weight, self.conv1x1.bias)
        return x, a[..., -out_len:]


class _LayerArray(nn.Module):
    def __init__(self, cfg: LayerArrayConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.rechannel = nn.Conv1d(cfg.input_size, cfg.channels, 1, bias=False)
        self.layers = nn.ModuleList(_Layer(cfg, d) for d in cfg.dilations)
        self.head_rechannel = nn.Conv1d(cfg.channels, cfg.head_size, 1, bias=cfg.head_bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, head: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        out_len = x.shape[-1] - (self.cfg.receptive_field - 1)
        x = F.conv1d(x, self.rechannel.weight)
        for layer in self.layers:
            x, term = layer(x, cond, out_len)
            head = term if head is None else head[..., -out_len:] + term
        assert head is not None
        head = F.conv1d(head, self.head_rechannel.weight, self.head_rechannel.bias)
        return head, x

    def flat_tensors(self) -> Iterator[torch.Tensor]:
        yield self.rechannel.weight
        for layer in self.layers:
            yield layer.conv.weight
            yield layer.conv.bias
            yield layer.mixer.weight
            yield layer.conv1x1.weight
            yield layer.conv1x1.bias
        yield self.head_rechannel.weight
        if self.head_rechannel.bias is not None:
            yield self.head_rechannel.bias


class NamWaveNet(NamModel):
    """NAM WaveNet: ``forward(x [B, T]) -> y [B, T]`` (``[B, T - receptive_field + 1]`` with
    ``pad_start=False``), in the module's dtype (float32 or float64).

    Parameters
    ----------
    layers
        Layer-array configurations (:class:`LayerArrayConfig` or their ``.nam`` dicts).
    head_scale
        Output scale (``config["head_scale"]``; NAM presets use 0.02).
    sample_rate, metadata, nam_version, extra
        See :class:`aa_distill.nam_base.NamModel`.

    A freshly constructed model has PyTorch's default conv initialisation (as NAM's trainer).
    Use :func:`aa_distill.load_nam` to read a file and :func:`aa_distill.save_nam` to write one.
    """

    architecture = "WaveNet"

    def __init__(self, layers: Sequence[LayerArrayConfig | dict], head_scale: float = 0.02, *,
                 sample_rate: float | None = None, metadata: dict | None = None,
                 nam_version: str = NAM_WRITE_VERSION, extra: dict | None = None) -> None:
        super().__init__(sample_rate=sample_rate, metadata=metadata, nam_version=nam_version,
                         extra=extra)
        cfgs = [la if isinstance(la, LayerArrayConfig) else LayerArrayConfig.from_dict(la)
                for la in layers]
        check_layer_chain(cfgs)
        if isinstance(head_scale, bool) or not isinstance(head_scale, (int, float)) \
                or not np.isfinite(head_scale):
            raise ValueError(f"head_scale must be a finite number, got {head_scale!r}")
        self.layer_configs: tuple[LayerArrayConfig, ...] = tuple(cfgs)
        self.arrays = nn.ModuleList(_LayerArray(c) for c in cfgs)
        self.head_scale = float(head_scale)
        # The flat weight list ends with head_scale again; NAM writes it as float32.
        self.head_scale_weight = float(np.float32(head_scale))

    @property
    def receptive_field(self) -> int:
        """Samples of input that one output sample depends on: ``1 + sum(rf_i - 1)``."""
        return 1 + sum(c.receptive_field - 1 for c in self.layer_configs)

    def nam_config(self) -> dict:
        return {"layers": [c.to_dict() for c in self.layer_configs], "head": None,
                "head_scale": self.head_scale}

    def _flat_tensors(self) -> Iterator[torch.Tensor]:
        for arr in self.arrays:
            yield from arr.flat_tensors()

    def _trailing_weights(self) -> list[float]:
        return [self.head_scale_weight]

    def _set_trailing_weights(self, values: Sequence[float]) -> None:
        (self.head_scale_weight,) = values

    def forward(self, x: torch.Tensor, pad_start: bool = True) -> torch.Tensor:
        """``x``: ``[B, T]`` (or ``[T]``) audio at :attr:`sample_rate`.

        Returns ``[B, T]`` with ``pad_start=True`` (zero history, NAM's default) or
        ``[B, T - receptive_field + 1]`` with ``pad_start=False`` (only outputs whose whole
        receptive field lies inside ``x``).
        """
        x, squeeze = self._prepare_input(x)
        rf = self.receptive_field
        if pad_start:
            x = F.pad(x, (rf - 1, 0))
        elif x.shape[-1] < rf:
            raise ValueError(f"input of {x.shape[-1]} samples is shorter than the receptive "
                             f"field ({rf}); pass pad_start=True or a longer input")
        cond = x[:, None, :]
        y, head = cond, None
        for arr in self.arrays:
            head, y = arr(y, cond, head)
        out = self.head_scale * head[:, 0, :]
        return out[0] if squeeze else out

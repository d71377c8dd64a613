"""SGMSE+ Lightning checkpoints rebuilt from seeded recipes, without the sgmse package (not a test module).

``data/sgmse_ckpt.json`` (JSON text, written by ``bench/sgmse_ckpt_fixtures.py`` in an isolated
environment with sgmse 0.1.2 and pytorch_lightning) describes, per configuration, what sgmse's
``train.py`` records (``hyper_parameters``), the Lightning layout of the file sgmse's
``ScoreModel`` saved through ``Trainer.save_checkpoint`` (top-level entries, the state-dict keys
and shapes, the state dict's module versions, torch_ema's entries) and sgmse's outputs. The
bench loaded the weights of :func:`recipe_weights` into sgmse's model before saving, and
checked that :func:`write_checkpoint` writes a file equal to Lightning's (same entries, types,
tensors and pickled code references, the data-module class under its sgmse name); the tests
write that file into a temporary folder and compare the loader's outputs with sgmse's numbers.

Weights: every tensor from a generator seeded by the configuration's seed and the tensor's
name, drawn in float64 (CPU float32 sampling takes vectorised paths that may differ between
builds) and cast to float32, scaled like a lightly trained network. torch_ema's shadow (the EMA
weights sgmse evaluates with) is the live tensor plus 0.2 times a second such draw, except for
parameters without gradients (the Gaussian Fourier projection ``W``), whose average stays
equal to the live value as in sgmse's training.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import types
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

#: the module and class name sgmse's train.py pickles into hyper_parameters['data_module_cls']
DATA_MODULE = ("sgmse.data_module", "SpecsDataModule")
EMA_STEP = 0.2
#: matrices at 0.3 / sqrt(fan_in): residual branches small against their skips, as in a lightly
#: trained net (sgmse zero-initialises their last layers). At full scale the Schroedinger
#: bridge's sampler turns float32 rounding into ~3e-4 relative differences (1e-5 here).
WEIGHT_GAIN = 0.3


def recipe_tensor(name: str, shape: Sequence[int], seed: int) -> Tensor:
    """One float32 tensor of ``shape`` for the state-dict entry ``name`` (``dnn.`` prefix included)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
    z = torch.randn(tuple(shape), generator=g, dtype=torch.float64)
    leaf = name.rsplit(".", 1)[-1]
    if name.endswith("all_modules.0.W") and len(shape) == 1:  # GaussianFourierProjection: randn * 16
        return (16.0 * z).float()
    if len(shape) == 1 and leaf == "weight":  # GroupNorm scales
        return (1.0 + 0.1 * z).float()
    if len(shape) <= 1:  # biases
        return (0.05 * z).float()
    fan_in = math.prod(shape[1:]) if leaf != "W" else shape[0]  # NIN layers store W as [in, out]
    return (WEIGHT_GAIN * z / math.sqrt(fan_in)).float()


def recipe_weights(keys: Sequence[tuple[str, Sequence[int]]], frozen: Sequence[str], seed: int
                   ) -> tuple[OrderedDict[str, Tensor], list[Tensor]]:
    """``(state_dict, shadow_params)``: the live weights for the state-dict ``keys`` (sgmse's
    ScoreModel has parameters only, no buffers, so the state-dict order is the parameter order
    torch_ema follows) and the EMA shadow, one tensor per parameter."""
    live = OrderedDict((k, recipe_tensor(k, s, seed)) for k, s in keys)
    shadow = [v.clone() if k in frozen else (v.double() + EMA_STEP * recipe_tensor(k, v.shape, seed + 1).double()
                                              ).float() for k, v in live.items()]
    return live, shadow


def score_inputs(n_freq: int, seed: int = 11) -> tuple[Tensor, Tensor, Tensor]:
    """``(x_t, y, t)``: complex64 ``[2, 1, n_freq, 8]`` states and conditions (0.3 randn per part,
    float64 draws cast) and times ``[2]``."""
    g = torch.Generator().manual_seed(seed)
    parts = [0.3 * torch.randn(2, 1, n_freq, 8, generator=g, dtype=torch.float64) for _ in range(4)]
    x_t = torch.complex(parts[0], parts[1]).to(torch.complex64)
    y = torch.complex(parts[2], parts[3]).to(torch.complex64)
    return x_t, y, torch.tensor([0.8, 0.1])


def waves(sample_rate: int, hop: int, seed: int = 7) -> list[Tensor]:
    """Two noisy float32 test waveforms ``[n]`` of 70 and 97 hops and a few samples (no multiple
    of the hop; 2245 and 3115 samples, 0.14 s and 0.19 s at 16 kHz with hop 32: 71 and 98
    frames, padded to 128): an amplitude-modulated tone plus 0.05 randn (float64 draws)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n, f0 in ((70 * hop + 5, 220.0), (97 * hop + 11, 150.0)):
        t = torch.arange(n, dtype=torch.float64) / sample_rate
        speech = 0.3 * torch.sin(2 * math.pi * f0 * t) * (1 + 0.5 * torch.sin(2 * math.pi * 3 * t))
        out.append((speech + 0.05 * torch.randn(n, generator=g, dtype=torch.float64)).float())
    return out


@contextlib.contextmanager
def sgmse_data_module_stand_in() -> Iterator[type]:
    """A class ``SpecsDataModule`` in a module ``sgmse.data_module`` registered in ``sys.modules``
    only inside the block, so ``torch.save`` pickles it by reference as sgmse's checkpoints do;
    whatever those names held before (the real sgmse, or nothing) is put back afterwards."""
    pkg, mod = types.ModuleType("sgmse"), types.ModuleType(DATA_MODULE[0])
    cls = type(DATA_MODULE[1], (), {"__module__": DATA_MODULE[0]})
    setattr(mod, DATA_MODULE[1], cls)
    pkg.data_module = mod
    before = {k: sys.modules.get(k) for k in ("sgmse", DATA_MODULE[0])}
    sys.modules.update({"sgmse": pkg, DATA_MODULE[0]: mod})
    try:
        yield cls
    finally:
        for k, v in before.items():
            if v is None:
                del sys.modules[k]
            else:
                sys.modules[k] = v


def to_json_value(obj: Any) -> Any:
    """Plain Python values (Lightning's loop and optimizer entries) as JSON: tuples marked."""
    if isinstance(obj, tuple):
        return {"__tuple__": [to_json_value(v) for v in obj]}
    if isinstance(obj, dict):
        if any(not isinstance(k, str) for k in obj):
            raise TypeError(f"non-string keys {list(obj)[:3]}: not stored")
        return {k: to_json_value(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_json_value(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"{type(obj).__name__} is not stored as JSON")


def from_json_value(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__tuple__"}:
            return tuple(from_json_value(v) for v in obj["__tuple__"])
        return {k: from_json_value(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_json_value(v) for v in obj]
    return obj


def checkpoint_payload(config: dict[str, Any], data_module_cls: type) -> dict[str, Any]:
    """The object Lightning pickles for ``config`` (one entry of the JSON's ``configs``)."""
    keys = [(k, tuple(s)) for k, s in config["state_dict"]]
    live, shadow = recipe_weights(keys, config["frozen"], config["weights_seed"])
    metadata = OrderedDict((k, dict(v)) for k, v in config["state_dict_metadata"].items())
    live._metadata = metadata  # type: ignore[attr-defined]  # as Module.state_dict() leaves it
    hp = {k: (data_module_cls if k == "data_module_cls" else from_json_value(v))
          for k, v in config["hyper_parameters"].items()}
    payload: dict[str, Any] = {}
    for key in config["layout"]:
        if key == "state_dict":
            payload[key] = live
        elif key == "hyper_parameters":
            payload[key] = hp
        elif key == "ema":
            payload[key] = {k: (shadow if k == "shadow_params" else from_json_value(v))
                            for k, v in config["ema"].items()}
        else:
            payload[key] = from_json_value(config["entries"][key])
    return payload


def write_checkpoint(path: str | os.PathLike, config: dict[str, Any]) -> str | os.PathLike:
    """Write the ``.ckpt`` of ``config`` to ``path`` (what sgmse's Lightning run would have saved
    with the recipe weights) and return ``path``."""
    with sgmse_data_module_stand_in() as cls:
        torch.save(checkpoint_payload(config, cls), path)
    return path

"""Load a model trained by ``tools/train_bsdt.py`` with this package alone.

The trainer writes ``best.pt`` / ``last.pt`` as one dict, loadable with
``torch.load(..., weights_only=True)`` (a checkpoint from someone else never runs code):

- ``"format"``: ``"se-toolkit-checkpoint/1"``; ``"tool"``: ``"train_bsdt"``;
- ``"model_config"``: the :func:`bandsplit.build_model` config (``{"name": "bsdt", ...}``);
- ``"model"``: the model's state dict (the live, trained weights);
- ``"sample_rate"`` (Hz) and ``"stft"``: ``{"n_fft": 512, "hop": 128}`` (``hop_length`` also read);
- ``"config"``: the training flags; ``"versions"``: python, torch and package versions;
- ``"epoch"``, ``"step"``, optimizer / scheduler / RNG states, ``"best"``, ``"history"``;
- optionally ``"ema"``: a state dict of exponential-moving-average weights.

``tools/train_bsdt.py`` keeps no EMA of the weights today, so ``weights="ema"`` (the default,
the right choice for a checkpoint that has one) falls back to the live weights for its files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from se_data import CHECKPOINT_FORMAT, read_checkpoint, reader_of
from torch import nn

from .registry import build_model
from .stft import SampleRateMismatchError, SpectrogramTransform

__all__ = ["CHECKPOINT_FORMAT", "load_model"]

#: Format tag of the toolkit's checkpoints (``tools/_train.py`` writes the same string).
_WEIGHTS = ("ema", "live")


def _model_config(ckpt: dict[str, Any], path: Path) -> dict[str, Any]:
    cfg = ckpt.get("model_config")
    if cfg is None and isinstance(ckpt.get("config"), dict):
        cfg = ckpt["config"].get("model_config")
    if not isinstance(cfg, dict) or "name" not in cfg:
        raise ValueError(f"{path}: the checkpoint holds no model config (a dict with 'name' under "
                         f"'model_config'); its keys are {sorted(ckpt)}")
    return dict(cfg)


def _float_dtype(state: dict[str, torch.Tensor]) -> torch.dtype | None:
    dtypes = {t.dtype for t in state.values() if isinstance(t, torch.Tensor) and t.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 else None


def load_model(path: str | os.PathLike, *, weights: str = "ema",
               map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild and load the model of a ``tools/train_bsdt.py`` checkpoint, ready for inference.

    Args:
        path: ``best.pt`` or ``last.pt`` of a training run.
        weights: ``"ema"``: the checkpoint's EMA weights where it holds them (key ``"ema"``),
            otherwise its live weights (``train_bsdt.py`` keeps no EMA today, so this is the
            live weights for its checkpoints); ``"live"``: the trained weights themselves.
        map_location: device the tensors are loaded to and the model is moved to.

    Returns:
        The model in ``eval()`` mode (a :func:`bandsplit.build_model` model: complex
        ``[B, F, T]`` in and out), in the dtype of its stored weights, with ``.sample_rate``
        (Hz), ``.stft`` (its :class:`SpectrogramTransform`, from the checkpoint's STFT settings)
        and ``.info``: ``{"path", "tool", "weights" (the ones loaded: "ema" or "live"),
        "model_config", "config" (the training flags), "versions", "epoch", "step"}``.
        ``bandsplit.enhance(model, audio, model.sample_rate)`` then enhances a waveform.

    Raises:
        ValueError: ``weights`` is neither ``"ema"`` nor ``"live"``, or the file is no checkpoint
            of the toolkit's trainer (message names the file).
        FileNotFoundError: ``path`` does not exist.
    """
    if weights not in _WEIGHTS:
        raise ValueError(f"weights must be 'ema' or 'live', got {weights!r}")
    path = Path(path)
    ckpt = read_checkpoint(path, map_location=map_location, error=ValueError,
                           format_hint="for a bare state dict build the model with bandsplit.build_model(...) "
                                       "and call load_state_dict")
    tool = ckpt.get("tool", "train_bsdt")
    if tool != "train_bsdt":
        raise ValueError(f"{path} was written by tools/{tool}.py, not tools/train_bsdt.py: bandsplit.load_model "
                         f"loads band-split models only; use {reader_of(tool)}")
    mcfg = _model_config(ckpt, path)
    use = "ema" if weights == "ema" and isinstance(ckpt.get("ema"), dict) else "live"
    state = ckpt.get(use if use == "ema" else "model")
    if not isinstance(state, dict):
        raise ValueError(f"{path}: the checkpoint holds no model weights (state dict under 'model')")
    try:
        model = build_model(mcfg)
    except Exception as e:  # noqa: BLE001 - whatever a stored config breaks (e.g. torch's RuntimeError
        # for a negative size) is the file's fault: re-raised naming it
        raise ValueError(f"{path}: cannot rebuild the model from its config {mcfg}: {e}") from e
    dtype = _float_dtype(state)
    if dtype is not None:
        model.to(dtype)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: the stored weights do not fit the model its config builds ({mcfg}): {e}") from e

    stft = model.stft
    if "sample_rate" in ckpt or "stft" in ckpt:
        try:
            stored_stft = ckpt.get("stft")
            if stored_stft is not None and not isinstance(stored_stft, dict):
                raise TypeError(f"'stft' must be a dict, got {type(stored_stft).__name__}")
            settings = {**stft.to_dict(), **({"sample_rate": ckpt["sample_rate"]} if "sample_rate" in ckpt else {}),
                        **(stored_stft or {})}
            stored = SpectrogramTransform.from_dict(settings)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: unusable STFT settings (sample_rate {ckpt.get('sample_rate')!r}, stft "
                             f"{ckpt.get('stft')!r}): {e}; the file is damaged or not of tools/train_bsdt.py") from e
        if stored.to_dict() != stft.to_dict():
            err = SampleRateMismatchError if stored.sample_rate != stft.sample_rate else ValueError
            raise err(f"{path}: the checkpoint's STFT ({stored.to_dict()}) differs from the one its model "
                      f"config builds ({stft.to_dict()}); the model would run on the wrong spectrogram")
    model.info = {"path": str(path), "tool": tool, "weights": use, "model_config": mcfg,
                  "config": ckpt.get("config"), "versions": ckpt.get("versions"),
                  "epoch": ckpt.get("epoch"), "step": ckpt.get("step")}
    return model.to(torch.device(map_location) if isinstance(map_location, str) else map_location).eval()

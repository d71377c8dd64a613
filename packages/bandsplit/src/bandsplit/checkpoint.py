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

A checkpoint of the widely used BSRNN reimplementation (sungwon23/BSRNN: ``torch.save(
model.state_dict(), path)``, files like ``gene_epoch_119_0.064``; a ``module.`` prefix from
``DataParallel`` is stripped) loads too: its keys are :class:`BSRNN`'s, and its size (N, L and
the band table) is read from the tensor shapes. It runs on 16 kHz audio, STFT 512 / 128, as
that code trains it. A bare state dict of anything else is refused naming its keys.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from se_data import CHECKPOINT_FORMAT, read_checkpoint, reader_of
from torch import nn

from .bands import BSRNN_BAND_WIDTHS
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


def _bare_state_dict(path: Path, map_location: str | torch.device) -> dict[str, torch.Tensor] | None:
    """The file's content where it is a bare state dict (string keys, tensor values), else ``None``."""
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception:  # noqa: BLE001 - unreadable: the caller's own error stands
        return None
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                        for k, v in obj.items()):
        return None
    if all(k.startswith("module.") for k in obj):  # saved from DataParallel / DistributedDataParallel
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def _count(state: dict[str, torch.Tensor], fmt: str) -> int:
    n = 0
    while fmt.format(n + 1) in state:
        n += 1
    return n


def _reference_bsrnn_config(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The :func:`build_model` config of a state dict in the reference BSRNN's layout, its size
    read from the shapes: ``num_channel`` (N, rows of ``band_split.fc1.weight``), ``num_layer``
    (L, the ``lstm_t{i}`` blocks) and, where it is not the 31-band table, ``band_widths`` (half
    the width of each ``band_split.norm{k}``). ``ValueError`` naming what does not fit otherwise
    (the full check of every key and shape follows when the model is built)."""
    need = ("band_split.fc1.weight", "band_split.norm1.weight", "lstm_t1.weight_ih_l0", "mask_decoder.norm1.weight")
    missing = [k for k in need if k not in state]
    if missing:
        disc = any(k.endswith("weight_orig") for k in state)  # spectral norm: the MetricGAN discriminator
        raise ValueError(f"it has no {', '.join(missing)} (its first keys are {sorted(state)[:4]})"
                         + ("; sungwon23/BSRNN's disc_epoch_* files hold its discriminator, the gene_epoch_* ones "
                            "the enhancer" if disc else ""))
    n_bands = _count(state, "band_split.norm{}.weight")
    widths = []
    for k in range(1, n_bands + 1):
        size = state[f"band_split.norm{k}.weight"].shape
        if len(size) != 1 or size[0] % 2:
            raise ValueError(f"band_split.norm{k}.weight has shape {tuple(size)}, where the reference's band norms "
                             f"hold 2 x the band width (real and imaginary parts)")
        widths.append(size[0] // 2)
    fc1 = state["band_split.fc1.weight"]
    if fc1.dim() != 2:
        raise ValueError(f"band_split.fc1.weight has shape {tuple(fc1.shape)}, expected [N, 2 x width]")
    cfg: dict[str, Any] = {"name": "bsrnn", "num_channel": int(fc1.shape[0]),
                           "num_layer": _count(state, "lstm_t{}.weight_ih_l0")}
    if tuple(widths) != BSRNN_BAND_WIDTHS:
        cfg["band_widths"] = widths
    return cfg


def _load_reference_bsrnn(state: dict[str, torch.Tensor], path: Path, map_location: str | torch.device,
                          weights: str, not_ours: ValueError) -> nn.Module:
    try:
        cfg = _reference_bsrnn_config(state)
    except ValueError as e:  # neither format: the toolkit's error, then why it is no reference BSRNN either
        raise ValueError(f"{not_ours}. Nor is it the reference BSRNN's bare state dict: {e}") from e
    try:
        model = build_model(cfg)
    except Exception as e:  # noqa: BLE001 - shapes no BSRNN has (a band table of the wrong sum, ...)
        raise ValueError(f"{path}: a BSRNN state dict whose shapes give no model ({cfg}): {e}") from e
    ours = model.state_dict()
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in state if k not in ours]
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in ours.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise ValueError(f"{path}: the state dict does not fit the reference BSRNN its shapes describe (N="
                         f"{cfg['num_channel']}, L={cfg['num_layer']}, {len(model.band_widths)} bands): missing "
                         f"{missing[:4]}{' ...' if len(missing) > 4 else ''}, unexpected {unexpected[:4]}"
                         f"{' ...' if len(unexpected) > 4 else ''}, wrong shapes {wrong[:4]}")
    dtype = _float_dtype(state)
    if dtype is not None:
        model.to(dtype)
    model.load_state_dict(state, strict=True)
    model.info = {"path": str(path), "tool": None, "source": "reference BSRNN state dict (sungwon23/BSRNN layout)",
                  "weights": "live", "requested_weights": weights, "model_config": cfg, "config": None,
                  "versions": None, "epoch": None, "step": None}
    return model.to(torch.device(map_location) if isinstance(map_location, str) else map_location).eval()


def _float_dtype(state: dict[str, torch.Tensor]) -> torch.dtype | None:
    dtypes = {t.dtype for t in state.values() if isinstance(t, torch.Tensor) and t.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 else None


def load_model(path: str | os.PathLike, *, weights: str = "ema",
               map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild and load the model of a ``tools/train_bsdt.py`` checkpoint, ready for inference.

    Args:
        path: ``best.pt`` or ``last.pt`` of a training run, or the bare state dict of the
            reference BSRNN (module docstring; its size is read from the shapes).
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
    try:
        ckpt = read_checkpoint(path, map_location=map_location, error=ValueError,
                               format_hint="for a bare state dict build the model with bandsplit.build_model(...) "
                                           "and call load_state_dict")
    except ValueError as not_ours:
        state = _bare_state_dict(path, map_location)
        if state is None:
            raise
        return _load_reference_bsrnn(state, path, map_location, weights, not_ours)
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

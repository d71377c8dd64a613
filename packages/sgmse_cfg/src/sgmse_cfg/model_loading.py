"""``load_model``: a ready model from a checkpoint written by ``tools/train_sgmse.py``.

Those checkpoints (``model.pt``, ``best.pt``, ``last.pt``) are plain-data dicts tagged
``"format": "se-toolkit-checkpoint/1"``: the model config (:meth:`ScoreModel.to_config`),
the sample rate, the EMA weights (``"ema"``, with the k-NN bank inside), the live weights
(``"model"``, not in the final ``model.pt``), the training config and package versions, and
in ``best.pt`` / ``last.pt`` the optimizer and RNG state. They are read with
``torch.load(weights_only=True)``, so a file from someone else never runs code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import torch

import se_data

from .errors import CheckpointError
from .noise_cond_model import score_model_from_config
from .score_model import ScoreModel
from .sgmse_checkpoint import is_sgmse_checkpoint, load_sgmse_checkpoint

__all__ = ["CHECKPOINT_FORMAT", "FINAL_CHECKPOINT_KEYS", "final_checkpoint", "load_model"]

#: format tag of the toolkit's training checkpoints (:data:`se_data.CHECKPOINT_FORMAT`)
CHECKPOINT_FORMAT = se_data.CHECKPOINT_FORMAT
#: checkpoint entries that are weights or training state, not descriptive info
_STATE_KEYS = ("format", "model", "ema", "optimizer", "rng")


def load_model(path: str | os.PathLike, *, weights: Literal["ema", "live"] = "ema",
               map_location: str | torch.device = "cpu") -> ScoreModel:
    """Load a :class:`ScoreModel` / :class:`NoiseCondScoreModel` from a training checkpoint.

    Args:
        path: ``model.pt``, ``best.pt`` or ``last.pt`` from ``tools/train_sgmse.py``, or an
            official SGMSE+ Lightning checkpoint (``.ckpt``; :func:`load_sgmse_checkpoint`).
        weights: ``"ema"`` (default; the exponential-moving-average weights SGMSE+ uses
            for inference) or ``"live"`` (the optimised weights; ``best.pt`` / ``last.pt``).
        map_location: device the model is put on (``"cpu"``, ``"cuda"``, ...).

    Returns the model in eval mode (float32), rebuilt from the stored config through the
    package's registries (:func:`register_backbone`, :func:`register_noise_encoder`) with
    the state dict loaded strictly. It carries ``.sample_rate`` (Hz), ``.stft`` (its
    :class:`SpecTransform`) and ``.info``: the checkpoint's descriptive entries (training
    ``config``, ``model_config``, ``versions``, ``class_names``, ``epoch``, ``step``, ...)
    plus ``path`` and ``weights``. Errors name the file and the fix: a missing file is a
    ``FileNotFoundError``, anything else a :class:`CheckpointError`.
    """
    p = Path(path)
    if weights not in ("ema", "live"):
        raise ValueError(f"weights must be 'ema' or 'live', got {weights!r}")
    if p.is_file() and is_sgmse_checkpoint(p):  # SGMSE+'s own Lightning .ckpt (read safely, mapped)
        return load_sgmse_checkpoint(p, weights=weights, map_location=map_location)
    ck = se_data.read_checkpoint(  # torch.load(weights_only=True): no code in the file runs
        p, expected_format=CHECKPOINT_FORMAT, map_location="cpu", error=CheckpointError,
        missing_hint="pass the model.pt, best.pt or last.pt written by tools/train_sgmse.py",
        format_hint="SGMSE+'s own Lightning checkpoints (.ckpt) load here too, but this file is neither")
    if ck.get("tool") != "train_sgmse" or not isinstance(ck.get("model_config"), dict):
        raise CheckpointError(f"{p} was not written by tools/train_sgmse.py (tool={ck.get('tool')!r}); "
                              f"it holds no score-model config: use {se_data.reader_of(ck.get('tool'))}")
    state = ck.get("ema" if weights == "ema" else "model")
    if state is None:
        why = ("a final model.pt keeps only the EMA weights" if weights == "live"
               else "the file has no EMA entry")
        raise CheckpointError(f"{p} holds no {weights} weights ({why}); load it with "
                              f"weights={'ema' if weights == 'live' else 'live'!r}")
    if not isinstance(state, dict):
        raise CheckpointError(f"{p}: its {weights} weights are a {type(state).__name__}, not a state dict; the file "
                              f"is damaged or not written by tools/train_sgmse.py")
    try:
        model = score_model_from_config(ck["model_config"])
    except Exception as e:  # noqa: BLE001 - whatever a stored config breaks (int(inf): OverflowError, a
        # negative size: torch's RuntimeError, ...) is the file's fault: re-raised naming it
        raise CheckpointError(f"{p}: cannot rebuild the model from its config: {e}") from e
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{p}: the {weights} weights do not fit the model its config describes: {e}") from e
    stored_rate = ck.get("sample_rate")
    if stored_rate is not None and (isinstance(stored_rate, bool) or not isinstance(stored_rate, (int, float))
                                    or stored_rate != model.sample_rate):  # NaN, a string, a tensor: refused too
        raise CheckpointError(f"{p}: the checkpoint says {stored_rate} Hz but its model config's transform is at "
                              f"{model.sample_rate} Hz; the file is inconsistent")
    info: dict[str, Any] = {k: v for k, v in ck.items() if k not in _STATE_KEYS}
    info.update(path=str(p), weights=weights)
    model.info = info
    return model.to(map_location).eval()


#: the training checkpoint's entries a final ``model.pt`` keeps (with the EMA weights)
FINAL_CHECKPOINT_KEYS = ("tool", "config", "model_config", "sample_rate", "frames", "class_names", "versions",
                         "epoch", "step", "best")


def final_checkpoint(model: ScoreModel) -> dict[str, Any]:
    """The payload of a final ``model.pt`` for a model read with :func:`load_model` (typically
    ``best.pt``'s EMA weights, its k-NN bank fitted since): the descriptive entries of
    :data:`FINAL_CHECKPOINT_KEYS` from ``model.info`` and the model's weights on the CPU as
    ``"ema"``; no live weights, optimizer or RNG state. Saved with ``"format":
    CHECKPOINT_FORMAT`` added (the tools' checkpoint writer adds it), :func:`load_model` reads
    it back."""
    info = getattr(model, "info", None)
    if not isinstance(info, dict) or "model_config" not in info:
        raise ValueError("final_checkpoint needs a model read with sgmse_cfg.load_model (its .info holds no "
                         "training checkpoint's entries)")
    payload = {k: info[k] for k in FINAL_CHECKPOINT_KEYS if k in info}
    payload["ema"] = {k: v.cpu() for k, v in model.state_dict().items()}
    return payload

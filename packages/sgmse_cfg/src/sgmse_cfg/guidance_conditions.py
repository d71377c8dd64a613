"""Named guidance conditions of an evaluation: ``"static:2"``, ``"knn"``, ``"mix:3"``, ...

A condition is a guidance mode (:data:`sgmse_cfg.guidance.GUIDANCE_MODES`) and its scale
``w``: ``uncond`` and ``cond`` take none, ``static`` needs one, and the adaptive rules (``nc``,
``nc_raw``, ``knn``, ``mix``) default to a maximum of 1. :func:`parse_guidance_condition`
reads one, :func:`guidance_unavailable` says why a model cannot run one (no noise encoder, no
NC head, no fitted k-NN bank).
"""

from __future__ import annotations

import math

from .guidance import GUIDANCE_MODES
from .noise_cond_model import NoiseCondScoreModel
from .score_model import ScoreModel

__all__ = ["MAX_GUIDANCE_SCALE", "guidance_unavailable", "parse_guidance_condition"]

#: the largest guidance scale a condition may ask for
MAX_GUIDANCE_SCALE = 20.0


def parse_guidance_condition(spec: str) -> tuple[str, str, float]:
    """``"MODE[:W]"`` -> ``(label, mode, w)``, e.g. ``"static:2"`` -> ``("static w=2", "static",
    2.0)``, ``"knn"`` -> ``("knn", "knn", 1.0)``, ``"mix:3"`` -> ``("mix max 3", "mix", 3.0)``.
    ``ValueError`` naming the condition for an unknown mode, a missing or unwanted scale, or a
    scale outside ``[0, MAX_GUIDANCE_SCALE]``."""
    mode, _, w = spec.partition(":")
    if mode not in GUIDANCE_MODES:
        raise ValueError(f"unknown condition {spec!r}: use uncond, cond, static:W, nc[:W], nc_raw[:W], knn[:W], "
                         f"mix[:W]")
    if mode == "static" and not w:
        raise ValueError("static needs a scale, e.g. static:2")
    if mode in ("uncond", "cond") and w:
        raise ValueError(f"{mode} takes no scale")
    val = 1.0
    if w:
        try:
            val = float(w)
        except ValueError:
            raise ValueError(f"condition {spec!r}: the scale W: {w!r} is not a number") from None
        if not (math.isfinite(val) and 0.0 <= val <= MAX_GUIDANCE_SCALE):
            raise ValueError(f"condition {spec!r}: the scale W: {w} is not a guidance scale "
                             f"(0 <= x <= {MAX_GUIDANCE_SCALE:g})")
    if mode in ("uncond", "cond"):
        label = mode
    elif mode == "static":
        label = f"static w={val:g}"
    else:
        label = mode if val == 1.0 else f"{mode} max {val:g}"
    return label, mode, val


def guidance_unavailable(model: ScoreModel, mode: str) -> str | None:
    """Why ``model`` cannot run guidance ``mode``; ``None`` where it can."""
    if mode == "cond":
        return None
    if not isinstance(model, NoiseCondScoreModel):
        return "the checkpoint has no noise encoder (only 'cond' applies)"
    if mode in ("nc", "nc_raw", "mix") and model.nc_head is None:
        return "the model has no NC head"
    if mode in ("knn", "mix") and not model.bank.is_fitted:
        return "the model has no fitted k-NN bank"
    return None

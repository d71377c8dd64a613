"""Out-of-distribution scores from the per-utterance uncertainty measures of a
:class:`NoiseCondScoreModel` (``model.uncertainty(enc)``, or ``sgmse_cfg.enhance``'s
``diagnostics``): one number per utterance, higher where the noise looks less like training
noise, ready for an AUROC of ID vs OOD utterances or a correlation with enhancement quality.

* ``nc_certainty``: ``1 - u_nc``, the ``"nc"`` rule's rescaled confidence;
* ``nc_confidence``: ``1 - max softmax``, the raw rule ``w = confidence`` (the maximum softmax
  probability as an OOD score: Hendrycks & Gimpel 2017);
* ``nc_entropy``: the softmax entropy / log C;
* ``knn_distance``: the mean distance to the k nearest training embeddings (the bank's
  metric);
* ``mix``: ``1 - (alpha u_nc + (1 - alpha) u_knn)`` with ``u_knn = 1 / (1 + d / tau)``.

``nc_certainty`` and ``nc_confidence`` rank utterances the same way (one is an increasing
affine map of the other), so their AUROCs are equal; the ``"nc"`` and ``"nc_raw"`` rules
differ in the guidance scale they give, not in the ordering. ``knn_distance`` does not depend
on ``tau``; ``mix`` does (``tau`` sets how fast the k-NN term falls against the NC term).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["OOD_SCORES", "knn_reliability", "ood_scores"]

#: key -> label of each OOD score, in report order
OOD_SCORES: dict[str, str] = {
    "nc_certainty": "1 - NC certainty",
    "nc_confidence": "1 - NC confidence",
    "nc_entropy": "NC entropy",
    "knn_distance": "k-NN distance",
    "mix": "1 - mix reliability",
}


def knn_reliability(distance: float, tau: float) -> float:
    """``1 / (1 + d / tau)``: the ``"knn"`` rule's reliability of a k-NN distance ``d``."""
    return 1.0 / (1.0 + float(distance) / float(tau))


def _num(measures: Mapping[str, Any], key: str) -> float | None:
    v = measures.get(key)
    if v is None or v == "":
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def ood_scores(measures: Mapping[str, Any], *, alpha: float = 0.5, tau: float | None = None) -> dict[str, float]:
    """The OOD scores (see the module table) that ``measures`` allows, keyed as
    :data:`OOD_SCORES`. ``measures``: one utterance's ``nc_certainty``, ``nc_confidence``,
    ``nc_entropy``, ``knn_distance``, ``knn_reliability`` (any subset; a missing or non-finite
    one leaves out the scores that need it). ``mix`` uses ``alpha`` (the NC weight) and
    ``1 / (1 + d / tau)`` when ``tau`` is given, else the measures' ``knn_reliability``."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if tau is not None and not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"tau must be a finite number > 0, got {tau!r}")
    cert, conf, ent = (_num(measures, k) for k in ("nc_certainty", "nc_confidence", "nc_entropy"))
    dist = _num(measures, "knn_distance")
    rel = knn_reliability(dist, tau) if (tau is not None and dist is not None) else _num(measures, "knn_reliability")
    out: dict[str, float] = {}
    if cert is not None:
        out["nc_certainty"] = 1.0 - cert
    if conf is not None:
        out["nc_confidence"] = 1.0 - conf
    if ent is not None:
        out["nc_entropy"] = ent
    if dist is not None:
        out["knn_distance"] = dist
    if cert is not None and rel is not None:
        out["mix"] = 1.0 - (alpha * cert + (1.0 - alpha) * rel)
    return out

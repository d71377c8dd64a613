"""The raw NC rule (w = max softmax), the NC entropy, a settable k-NN tau and the OOD scores
built from the per-utterance uncertainty measures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sgmse_cfg import (OOD_SCORES, EmbeddingBank, guidance_weights, knn_reliability, nc_certainty, nc_confidence,
                       nc_entropy, ood_scores)


def test_nc_confidence_entropy_and_the_raw_rule() -> None:
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [math.log(3.0), 0.0, 0.0, 0.0], [50.0, 0.0, 0.0, 0.0]])
    conf = nc_confidence(logits)
    torch.testing.assert_close(conf, torch.tensor([0.25, 0.5, 1.0]))  # softmax of [3, 1, 1, 1] / 6
    torch.testing.assert_close(nc_certainty(logits), (conf - 0.25) / 0.75)  # the 'nc' rescaling
    p = np.array([0.5, 1 / 6, 1 / 6, 1 / 6])
    h = -(p * np.log(p)).sum() / np.log(4)
    torch.testing.assert_close(nc_entropy(logits), torch.tensor([1.0, h, 0.0], dtype=torch.float32), atol=1e-6,
                               rtol=1e-6)
    torch.testing.assert_close(guidance_weights("nc_raw", w=2.0, logits=logits), 2.0 * conf)
    with pytest.raises(ValueError, match="NC logits"):
        guidance_weights("nc_raw", batch=1)


def test_set_tau_changes_the_reliability_as_the_formula_says() -> None:
    g = torch.Generator().manual_seed(0)
    bank = EmbeddingBank(6, k=3).fit(torch.randn(30, 6, generator=g))
    q = torch.randn(4, 6, generator=g)
    d = bank.distance(q)
    fitted = float(bank.tau)
    torch.testing.assert_close(bank.reliability(q), 1 / (1 + d / fitted))
    bank.set_tau(0.1)
    torch.testing.assert_close(bank.reliability(q), 1 / (1 + d / 0.1))
    torch.testing.assert_close(guidance_weights("knn", w=1.5, pooled=q, bank=bank), 1.5 / (1 + d / 0.1))
    torch.testing.assert_close(bank.distance(q), d)  # tau scales the weight, never the distance
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="tau"):
            bank.set_tau(bad)


def test_ood_scores() -> None:
    m = {"nc_certainty": 0.6, "nc_confidence": 0.68, "nc_entropy": 0.3, "knn_distance": 0.5, "knn_reliability": 0.4}
    s = ood_scores(m, alpha=0.25)
    assert list(s) == list(OOD_SCORES)
    assert s["nc_certainty"] == pytest.approx(0.4) and s["nc_confidence"] == pytest.approx(0.32)
    assert s["nc_entropy"] == 0.3 and s["knn_distance"] == 0.5
    assert s["mix"] == pytest.approx(1 - (0.25 * 0.6 + 0.75 * 0.4))
    # tau given: the k-NN reliability is recomputed from the distance
    assert knn_reliability(0.5, 0.25) == pytest.approx(1 / 3)
    assert ood_scores(m, alpha=0.25, tau=0.25)["mix"] == pytest.approx(1 - (0.25 * 0.6 + 0.75 / 3))
    # what a model without a head or without a bank gives
    assert set(ood_scores({"knn_distance": 0.5, "knn_reliability": 0.4})) == {"knn_distance"}
    assert set(ood_scores({"nc_certainty": 0.6, "knn_distance": math.nan})) == {"nc_certainty"}
    with pytest.raises(ValueError, match="alpha"):
        ood_scores(m, alpha=1.5)

"""metric_pool / submit_pairs: per-utterance scores in worker processes equal the same calls in
this process, in order, with NaN for an item whose metric raises."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import soundfile as sf

import se_metrics as sm

SR = 16000


def test_pool_scores_equal_in_process_scores(shared_data):
    vb = shared_data / "speech" / "voicebank16k"
    clean = [sf.read(vb / "clean" / f"p287_00{i}.wav")[0] for i in (1, 2)]
    noisy = [sf.read(vb / "noisy" / f"p287_00{i}.wav")[0] for i in (1, 2)]
    refs = [clean[0], clean[1], clean[0]]
    ests = [noisy[0].astype(np.float32), noisy[1], np.zeros_like(clean[0])]  # the last has no PESQ
    pesq_wb = functools.partial(sm.pesq, sample_rate=SR, mode="wb")
    here = sm.score_pairs(pesq_wb, refs, ests)
    assert here[:2] == [sm.pesq(clean[0], ests[0], SR, "wb"), sm.pesq(clean[1], noisy[1], SR, "wb")]
    assert math.isnan(here[2])
    with sm.metric_pool(2) as pool:
        pending = sm.submit_pairs(pesq_wb, refs, ests, pool)
        stoi = sm.score_pairs(functools.partial(sm.stoi, sample_rate=SR), refs[:2], ests[:2], pool)
        got = pending.result()
    assert got[:2] == here[:2] and math.isnan(got[2])
    assert stoi == [sm.stoi(r, e, SR) for r, e in zip(refs[:2], ests[:2])]
    assert sm.metric_pool(0) is None
    with pytest.raises(ValueError, match="pair up"):
        sm.submit_pairs(pesq_wb, refs, ests[:2])
    with pytest.raises(ValueError, match=">= 0"):
        sm.metric_pool(-1)

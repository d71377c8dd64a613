"""Log-likelihood ratio (LLR) of LPC models, as Loizou's composite.m (pysepm ``llr``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._frames import frame_params, frames, keep_lowest_mean, loizou_hann, n_frames_composite
from ._edges import LEVEL_INVARIANT, frame_min_samples, require_finite, require_samples, require_signal
from ._validate import as_float64, check_pair, sample_rate_alias


def lpc_order(sr: int) -> int:
    """LPC order composite.m uses: 10 below 10 kHz, else 16."""
    return 10 if sr < 10000 else 16


def autocorr(x: np.ndarray, order: int) -> np.ndarray:
    """Autocorrelation lags 0..order of each frame: x [F, N] -> R [F, order + 1]."""
    n = x.shape[1]
    return np.stack([np.einsum("ft,ft->f", x[:, : n - k], x[:, k:]) for k in range(order + 1)], axis=1)


def levinson(r: np.ndarray) -> np.ndarray:
    """Batched Levinson-Durbin: autocorrelation R [F, p + 1] -> LPC polynomial A [F, p + 1]
    with A[:, 0] = 1 (prediction error filter ``1 + a1 z^-1 + ...``). Loops over the order only.
    Frames with zero energy give A = [1, 0, ..., 0]."""
    f, p1 = r.shape
    p = p1 - 1
    a = np.zeros((f, p + 1))
    a[:, 0] = 1.0
    err = r[:, 0].copy()
    safe = err > 0
    for i in range(1, p + 1):
        acc = np.einsum("fj,fj->f", a[:, :i], r[:, i:0:-1])
        k = np.where(safe, -acc / np.where(safe, err, 1.0), 0.0)
        a_prev = a[:, :i + 1].copy()
        a[:, 1:i + 1] = a_prev[:, 1:i + 1] + k[:, None] * a_prev[:, i - 1::-1][:, :i]
        a[:, i] = k
        err = err * (1.0 - k * k)
        safe = safe & (err > 0)
    return a


def _toeplitz_quad(a: np.ndarray, r: np.ndarray) -> np.ndarray:
    """a_f^T Toeplitz(r_f) a_f for each frame: a, r [F, p + 1] -> [F]."""
    p1 = r.shape[1]
    idx = np.abs(np.arange(p1)[:, None] - np.arange(p1)[None, :])
    t = r[:, idx]  # [F, p+1, p+1]
    return np.einsum("fi,fij,fj->f", a, t, a)


def llr_frames(clean: np.ndarray, enhanced: np.ndarray, sr: int) -> np.ndarray:
    """Per-frame LLR [F] (unclipped, as in composite.m) for float64 signals [T] at ``sr`` Hz.

    ``log(A_e R_c A_e^T / A_c R_c A_c^T)`` with LPC polynomials A of order 16 (10 below 10 kHz)
    from 30 ms Hann frames, 75 % overlap. A non-positive ratio gives log(1000), as composite.m.
    Frames where the clean frame is digital silence (ratio undefined) are left out.
    """
    win, hop = frame_params(sr)
    n = n_frames_composite(clean.shape[0], win, hop)
    w = loizou_hann(win)
    p = lpc_order(sr)
    r_c = autocorr(frames(clean, win, hop, n) * w, p)
    r_e = autocorr(frames(enhanced, win, hop, n) * w, p)
    a_c = levinson(r_c)
    a_e = levinson(r_e)
    num = _toeplitz_quad(a_e, r_c)
    den = _toeplitz_quad(a_c, r_c)
    voiced = r_c[:, 0] > 0
    num, den = num[voiced], den[voiced]
    ratio = num / den
    ratio = np.where(ratio > 0, ratio, 1000.0)
    return np.log(ratio)


@sample_rate_alias
def llr(clean: Any, enhanced: Any, sample_rate: int) -> float:
    """Log-likelihood ratio of ``enhanced`` [T] against ``clean`` [T] at ``sample_rate`` Hz
    (``sr=`` also accepted), as composite.m: mean over the 95 % lowest frame LLRs (no clipping
    at 2). Range 0 ... ; lower is better. Raises :class:`MetricUndefinedError` for a pair
    without one complete 30 ms frame and for an estimate without signal (the LPC model of a
    silent frame does not exist; LPC ignores the gain, so a near-silent copy would score 0)."""
    c, e, sr = check_pair(clean, enhanced, sample_rate)
    require_samples(c.shape[0], frame_min_samples(*frame_params(sr)), sr, "LLR", "one complete 30 ms frame")
    require_signal(c, e, "LLR", LEVEL_INVARIANT)
    c, e = as_float64(c, e)
    return require_finite(keep_lowest_mean(llr_frames(c, e, sr)), "LLR")

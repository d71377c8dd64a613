"""Fixtures for the diffattn tests: an independent float64 differential-attention reference."""

from __future__ import annotations

import math

import pytest
import torch


def _reference_diffattn(m, x: torch.Tensor, causal: bool, attn_mask: torch.Tensor | None = None,
                        rotary: bool = False, lam_override: torch.Tensor | None = None
                        ) -> torch.Tensor:
    """Float64 naive differential attention (one layer) from a module's weights, transcribing the
    reference algorithm (microsoft/unilm Diff-Transformer multihead_diffattn.py) step by step.

    ``attn_mask``: bool ``[t, t]`` (True = allowed) or float additive. ``lam_override``: replaces
    λ, broadcastable to ``[b, H, t, 1]`` (per head and query, for the adaptive variant).
    """
    p = {n: t.detach().double() for n, t in m.named_parameters()}
    x = x.double()
    b, t, dim = x.shape
    H = m.num_heads
    d = dim // H // 2
    q = (x @ p["q_proj.weight"].T).view(b, t, 2 * H, d)
    k = (x @ p["k_proj.weight"].T).view(b, t, 2 * H, d)
    v = (x @ p["v_proj.weight"].T).view(b, t, H, 2 * d)
    if rotary:  # pairs (2i, 2i+1) as complex numbers times exp(j·pos·10000^(-2i/d))
        theta = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
        rot = torch.polar(torch.ones(t, d // 2, dtype=torch.float64),
                          torch.arange(t, dtype=torch.float64)[:, None] * theta)[:, None, :]
        q = torch.view_as_real(torch.view_as_complex(q.reshape(b, t, 2 * H, d // 2, 2)) * rot).flatten(-2)
        k = torch.view_as_real(torch.view_as_complex(k.reshape(b, t, 2 * H, d // 2, 2)) * rot).flatten(-2)
    q = q.transpose(1, 2) * d ** -0.5
    k = k.transpose(1, 2)
    v = v.transpose(1, 2)
    w = q @ k.transpose(-1, -2)
    if causal:
        w = w + torch.triu(torch.full((t, t), float("-inf"), dtype=torch.float64), 1)
    if attn_mask is not None:
        w = w.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool \
            else w + attn_mask.double()
    w = torch.softmax(w, -1)
    lam_init = 0.8 - 0.6 * math.exp(-0.3 * m.depth)
    lam = (torch.exp((p["lambda_q1"] * p["lambda_k1"]).sum())
           - torch.exp((p["lambda_q2"] * p["lambda_k2"]).sum()) + lam_init)
    if lam_override is not None:
        lam = lam_override.double()
    w = w.view(b, H, 2, t, t)
    w = w[:, :, 0] - lam * w[:, :, 1]
    a = w @ v
    a = a * torch.rsqrt(a.pow(2).mean(-1, keepdim=True) + 1e-5) * p["subln.weight"]
    a = a * (1 - lam_init)
    a = a.transpose(1, 2).reshape(b, t, H * 2 * d)
    return a @ p["out_proj.weight"].T


@pytest.fixture
def reference_diffattn():
    return _reference_diffattn

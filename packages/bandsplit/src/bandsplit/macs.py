"""Multiply-accumulate counts (MACs) of a model's forward pass, per second of audio.

Counted with :class:`torch.utils.flop_counter.FlopCounterMode` (one MAC = 2 FLOPs, so MACs =
FLOPs / 2), which sees every ATen op the forward dispatches and prices the matrix products
(``mm``, ``addmm``, ``bmm``, ``baddbmm``; ``einsum`` and ``linear`` lower to them) and
convolutions (incl. transposed). Three kernels it does not price are added here, analytically:

* recurrent layers on CPU (``aten.mkldnn_rnn_layer``, one call per layer and direction) and on
  CUDA (``aten._cudnn_rnn``, one call for the whole stack): ``tokens · Σ numel(W)`` over the
  weight matrices (input-to-hidden ``[G·H, I]``, hidden-to-hidden ``[G·H, H]``, projection), i.e.
  ``T·B·G·H·(I + H)`` per layer and direction (``G`` = 4 gates for an LSTM). The gates'
  elementwise work is not counted (like every elementwise op). LSTMs that fall back to the
  native path (e.g. float64 on CPU) decompose into ``mm`` and are counted as such - the same
  number;
* fused attention on CPU (``aten._scaled_dot_product_flash_attention_for_cpu``): ``QKᵀ`` and
  ``AV``, ``B·H·Lq·Lk·(E + Ev)``, the formula torch uses for the CUDA kernels.

Differential attention is counted in its explicit form by default: ``softmax`` maps
``Q1K1ᵀ``, ``Q2K2ᵀ`` (``2H·T²·d``) and ``(A1 − λA2)V`` (``H·T²·2d``), 4·H·T²·d MACs per
sequence, the same as a standard attention with 2H heads of size d (Ye et al. 2024, §3: the
differential layer matches the Transformer's FLOPs). The fused path the models run otherwise
zero-pads q and k from ``d`` to ``2d`` (what PyTorch's memory-efficient CPU kernel needs) and
applies both maps to V, executing 8·H·T²·d: ``count_macs(..., explicit_attention=False)``
counts that. The explicit form materialises the ``T × T`` maps (memory ``O(sequences·H·T²)``:
fine for seconds, not for a minute).

Other caveats: products only. Elementwise work (softmax, norms, activations, masks, gates), FFTs
(the ERB-UNet adapter's STFTs) and the input STFT are not counted; band layers count the zero
padding their packed, vectorised matmuls execute (BandSplit pads every band to the widest:
negligible against the rest). Attention costs grow as T², so MACs per second grow with the
duration counted (``seconds``); recurrent and convolutional costs are linear in T (plus one
frame). Causal masks are priced as full attention.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from diffattn import BandwiseAttention, DifferentialAttention
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["MacCount", "count_macs", "op_macs"]


def _tokens(input_shape: Any) -> int:
    return math.prod(input_shape[:-1])


def _mkldnn_rnn_layer_flops(input_shape: Any, w_ih: Any, w_hh: Any, *args: Any, out_shape: Any = None,
                            **kwargs: Any) -> int:
    """One layer and direction on CPU: ``2 · tokens · (numel(W_ih) + numel(W_hh))`` FLOPs."""
    return 2 * _tokens(input_shape) * (math.prod(w_ih) + math.prod(w_hh))


def _cudnn_rnn_flops(input_shape: Any, weights: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """The whole cuDNN stack: every layer and direction sees every token once per weight matrix."""
    return 2 * _tokens(input_shape) * sum(math.prod(w) for w in weights if len(w) == 2)


def _sdpa_flops(q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """``QKᵀ`` and ``AV`` of ``q [..., Lq, E]``, ``k [..., Lk, E]``, ``v [..., Lk, Ev]``."""
    batch = math.prod(q[:-2])
    return 2 * batch * q[-2] * k[-2] * (q[-1] + v[-1])


def _extra_formulas() -> dict[Any, Callable[..., int]]:
    aten = torch.ops.aten
    table = {"mkldnn_rnn_layer": _mkldnn_rnn_layer_flops, "_cudnn_rnn": _cudnn_rnn_flops,
             "_scaled_dot_product_flash_attention_for_cpu": _sdpa_flops}
    return {getattr(aten, name): f for name, f in table.items() if hasattr(aten, name)}


@dataclass(frozen=True)
class MacCount:
    """MACs of one forward pass (batch 1) over ``seconds`` of audio.

    ``macs``: total; ``frames``: STFT frames of that input; ``by_op``: MACs per ATen op
    (``"aten.mm"``, ``"aten.convolution"``, ``"aten.mkldnn_rnn_layer"``, ...); ``per_second``:
    ``macs / seconds``.
    """

    macs: int
    seconds: float
    frames: int
    by_op: Mapping[str, int] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.macs / self.seconds


def op_macs(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, int]:
    """MACs of ``fn(*args, **kwargs)`` per ATen op (FLOPs / 2 of ``FlopCounterMode`` plus the
    recurrent and CPU-attention formulas of this module), run without autograd.

    Example: ``op_macs(nn.Linear(10, 20), torch.randn(3, 10))`` -> ``{"aten.addmm": 600}``.
    """
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_extra_formulas()) as counter:
        fn(*args, **kwargs)
    counts = counter.get_flop_counts().get("Global", {})
    return {str(op): int(flops) // 2 for op, flops in counts.items() if flops}


@contextmanager
def _explicit_differential_attention(model: nn.Module) -> Iterator[None]:
    """Run every differential attention of ``model`` through its explicit-map path meanwhile."""
    mods = [m for m in model.modules()
            if isinstance(m, DifferentialAttention) or (isinstance(m, BandwiseAttention) and m.kind == "differential")]
    saved = [m.impl for m in mods]
    try:
        for m in mods:
            m.impl = "naive"
        yield
    finally:
        for m, impl in zip(mods, saved):
            m.impl = impl


def count_macs(model: nn.Module, seconds: float = 1.0, *, explicit_attention: bool = True) -> MacCount:
    """MACs of ``model`` enhancing ``seconds`` of audio (batch 1), per second with ``.per_second``.

    The model is any :func:`bandsplit.build_model` model (it carries ``.stft`` and
    ``.sample_rate``): the input is the model's STFT of ``round(seconds · sample_rate)`` samples of
    seeded noise (``T = samples // hop + 1`` frames; the values do not change the count), run in
    ``eval()`` mode (restored afterwards) on the model's device and dtype. See the module
    docstring for what is and is not counted; for attention models the per-second figure grows
    with ``seconds`` (the T² terms). ``explicit_attention``: count differential attention in its
    explicit form (default; the formula's cost) instead of the fused kernels' padded execution.
    """
    stft = getattr(model, "stft", None)
    if stft is None or not hasattr(model, "sample_rate"):
        raise TypeError(f"count_macs needs a model with .stft and .sample_rate (a bandsplit.build_model model); "
                        f"{type(model).__name__} has none: use bandsplit.op_macs(model, inputs...) instead")
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    n = int(round(seconds * int(model.sample_rate)))
    if n < stft.n_fft:
        raise ValueError(f"{seconds} s is {n} samples, shorter than the STFT's n_fft ({stft.n_fft})")
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    wave = 0.1 * torch.randn(1, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    spec: Tensor = stft.stft(wave.to(device=device, dtype=dtype))
    was_training = model.training
    model.eval()
    try:
        if explicit_attention:
            with _explicit_differential_attention(model):
                by_op = op_macs(model, spec)
        else:
            by_op = op_macs(model, spec)
    finally:
        model.train(was_training)
    return MacCount(macs=sum(by_op.values()), seconds=float(seconds), frames=int(spec.shape[-1]), by_op=by_op)

"""Replay a spectrogram model's training forward and backward as CUDA graphs.

At small batches a training step of these models is bound by Python-side kernel launches,
not by the GPU: on one H100 at 6 x 2 s, BSDT issues about 4x as many operators as BSRNN and
its eager step takes 1.1-1.5x BSRNN's. Captured once as CUDA graphs
(``torch.cuda.make_graphed_callables``), the forward and the backward each become one launch
and BSDT's step drops to 0.93x BSRNN's; the numbers are the same (``bench/cuda_graph_step.py``
checks outputs and gradients against the eager step).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["GraphedTrainingForward"]


class _RealIO(nn.Module):
    """Real ``[B, F, T, 2]`` in and out around a complex-spectrogram model, with optional autocast."""

    def __init__(self, model: nn.Module, amp: bool) -> None:
        super().__init__()
        self.model, self.amp = model, amp

    def forward(self, xr: Tensor) -> Tensor:
        # autocast inside a graph capture must not cache casts (the cache would outlive the capture)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp, cache_enabled=False):
            y = self.model(torch.view_as_complex(xr))
        return torch.view_as_real(y)


class GraphedTrainingForward:
    """Training forward of ``model`` replayed as CUDA graphs for one input shape.

    Calling it with a complex spectrogram ``[B, F, T]`` of the captured shape while the model is
    in training mode and grad is enabled replays the captured forward; ``backward()`` through its
    output replays the captured backward, and the parameters' ``.grad`` fill as usual (clip them
    and step any optimizer as usual). Any other call (another shape, ``eval()``, no grad) runs
    the model eagerly, under the same autocast setting, so a short last batch or validation
    needs no special case.

    The output of a replay lives in the graph's static memory: use it (loss, backward) before the
    next call. The gradients a replayed backward leaves in ``.grad`` live there too; before the
    next replay this class copies any such gradients into memory of their own (one
    concatenation), so gradient accumulation over several batches and reading ``.grad`` after
    the next forward stay correct. The model must have no host synchronisation or
    data-dependent control flow in its training forward and must not change its parameters'
    ``requires_grad`` after capture (BSRNN and BSDT are tested on a GPU; the capture fails
    with a CUDA error on a model that synchronises). Single process only (not under DDP).

    Args:
        model: a module on a CUDA device mapping complex ``[B, F, T]`` to complex ``[B, F, T]``.
        example: a complex spectrogram with the shape, dtype and device of the training batches.
        amp: run the captured forward under bf16 autocast (as ``train_bsdt.py --amp``).
        warmup: eager warm-up iterations before the capture (on a side stream; they leave
            ``.grad`` untouched).
    """

    def __init__(self, model: nn.Module, example: Tensor, *, amp: bool = False, warmup: int = 3) -> None:
        if not example.is_complex() or example.dim() != 3:
            raise ValueError(f"example must be a complex spectrogram [B, F, T], got {example.dtype} "
                             f"{tuple(example.shape)}")
        if example.device.type != "cuda" or not torch.cuda.is_available():
            raise ValueError(f"CUDA graphs need a CUDA device; the example is on {example.device} "
                             "(train without CUDA graphs on this device)")
        if any(p.device.type != "cuda" for p in model.parameters()):
            raise ValueError("move the model to the CUDA device before capturing it")
        self.model, self.amp = model, bool(amp)
        self.shape, self.dtype = tuple(example.shape), example.dtype
        was_training = model.training
        model.train()
        self._params = [p for p in model.parameters() if p.requires_grad]
        self._grads_may_alias = False
        static = torch.view_as_real(example.detach()).contiguous()
        self._graphed = torch.cuda.make_graphed_callables(_RealIO(model, self.amp), (static,),
                                                          num_warmup_iters=warmup)
        model.train(was_training)

    def replays(self, x: Tensor) -> bool:
        """Whether a call with ``x`` replays the graphs (else it runs eagerly)."""
        return (tuple(x.shape) == self.shape and x.dtype == self.dtype and self.model.training
                and torch.is_grad_enabled())

    def _own_grads(self) -> None:
        """Move gradients that may live in the graphs' static memory into one fresh buffer."""
        owners = [p for p in self._params if p.grad is not None]
        if owners:
            flat = torch.cat([p.grad.reshape(-1) for p in owners])
            for p, g in zip(owners, flat.split([p.numel() for p in owners])):
                p.grad = g.view_as(p)
        self._grads_may_alias = False

    def __call__(self, x: Tensor) -> Tensor:
        if self.replays(x):
            if self._grads_may_alias:
                self._own_grads()
            self._grads_may_alias = True   # the backward of this replay writes static memory
            return torch.view_as_complex(self._graphed(torch.view_as_real(x).contiguous()))
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self.model(x)

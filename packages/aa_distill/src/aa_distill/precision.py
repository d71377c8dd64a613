"""Mixed precision for the student: its forward under bfloat16 autocast, everything else float32.

With ``amp="bf16"`` the student's convolutions run in bfloat16 (``torch.autocast`` with
``dtype=torch.bfloat16``, on any device type: CUDA, and the CPU, where oneDNN uses AVX-512 BF16
/ AMX when present) while its parameters, their gradients and the optimiser state stay
float32 (autocast casts the float32 weights per op; the backward returns float32 gradients).
The output is cast back to the input's dtype (float32) before any loss sees it, so ESR, DC and
NMR are computed exactly as in a float32 run (NMR keeps its float64 STFT and its float32 band
work). bfloat16 keeps 8 significant bits (~2-3 decimal digits): the student's output, and so
the loss, differ from float32 by about 1e-2 relative.

``amp=None`` is the plain float32 (or float64) path, bit for bit.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

#: :func:`amp_forward`'s ``amp`` values -> the autocast dtype (``None``: no autocast).
AMP_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16}


def check_amp(amp: str | None) -> None:
    """Raise ``ValueError`` unless ``amp`` is ``None`` or a key of :data:`AMP_DTYPES`."""
    if amp is not None and amp not in AMP_DTYPES:
        raise ValueError(f"amp must be None (float32) or one of {sorted(AMP_DTYPES)}, got {amp!r}")


def amp_autocast(amp: str | None, device: torch.device | str) -> contextlib.AbstractContextManager:
    """``torch.autocast(device.type, dtype=AMP_DTYPES[amp])``, or a null context for
    ``amp=None``. ``device`` is where the model runs (only its type matters)."""
    check_amp(amp)
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=AMP_DTYPES[amp])


def amp_forward(model: torch.nn.Module, x: torch.Tensor, *args: Any, amp: str | None = None,
                **kwargs: Any) -> torch.Tensor:
    """``model(x, *args, **kwargs)`` with its forward under :func:`amp_autocast` on ``x``'s
    device, the output cast back to ``x.dtype``.

    For a NAM-style model ``x`` is ``[B, T]`` audio and the output ``[B, T']`` at the same
    sample rate. ``amp="bf16"`` needs a float32 ``x`` (autocast leaves float64 untouched, so a
    float64 model would silently run in float64): anything else is a ``ValueError``.
    """
    check_amp(amp)
    if amp is None:
        return model(x, *args, **kwargs)
    if x.dtype != torch.float32:
        raise ValueError(f"amp={amp!r} runs a float32 model in {AMP_DTYPES[amp]}; got a {x.dtype} input "
                         f"(use float32, or amp=None for a float64 run)")
    with amp_autocast(amp, x.device):
        y = model(x, *args, **kwargs)
    return y.to(x.dtype)

"""How an extra condition (e.g. a noise embedding) reaches a score backbone.

A :class:`BackboneCond` carries already-computed tensors, so whatever produced them (a noise
encoder run once per utterance, a CFG null condition, ...) stays outside the backbone:

* ``input_add``: added to the backbone's complex input ``[B, 2, F, T]`` (x_t and y) before
  the first layer -- NASE's "input addition" (a real ``[B, 1, F, 1]`` embedding shifts the
  real parts of both channels, identically for every frame);
* ``temb_scale`` / ``temb_shift``: FiLM on the time embedding,
  ``temb = temb * (1 + temb_scale) + temb_shift`` (``[B, temb_dim]`` each; zeros are the
  identity), which also covers plain addition (``temb_shift`` only);
* ``context``: a token sequence ``[B, L, context_dim]`` read by cross-attention blocks of a
  backbone built with ``context_dim``.

Every field is optional; ``None`` means "not used". The backbones check that a field they
cannot use is not silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

__all__ = ["BackboneCond"]


@dataclass
class BackboneCond:
    """Condition tensors for one batch; see the module docstring for shapes."""

    input_add: Tensor | None = None
    temb_scale: Tensor | None = None
    temb_shift: Tensor | None = None
    context: Tensor | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    @staticmethod
    def cat(conds: list[BackboneCond]) -> BackboneCond:
        """Concatenate along the batch (e.g. conditional and null halves of a batched CFG
        forward). Each field must be set in all or in none of ``conds``."""
        out = {}
        for f in fields(BackboneCond):
            vals = [getattr(c, f.name) for c in conds]
            if all(v is None for v in vals):
                out[f.name] = None
            elif any(v is None for v in vals):
                raise ValueError(f"BackboneCond.cat: field {f.name!r} is set in some conditions "
                                 f"and not in others; use zeros for a null condition")
            else:
                out[f.name] = torch.cat(vals, dim=0)
        return BackboneCond(**out)

    def apply_temb(self, temb: Tensor) -> Tensor:
        """FiLM / addition on the time embedding ``[B, temb_dim]``."""
        if self.temb_scale is not None:
            temb = temb * (1.0 + self.temb_scale)
        if self.temb_shift is not None:
            temb = temb + self.temb_shift
        return temb

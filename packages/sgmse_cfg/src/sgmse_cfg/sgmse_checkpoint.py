"""Backbone weights from an SGMSE+ (sp-uhh/sgmse) Lightning checkpoint.

SGMSE+'s ``ScoreModel`` keeps its backbone in ``self.dnn``, so the checkpoint's
``state_dict`` holds ``dnn.<NCSN++ key>`` entries, and its EMA of the parameters
(``torch_ema``, decay 0.999; the weights SGMSE+ evaluates with) in ``checkpoint["ema"]
["shadow_params"]``, a list in ``parameters()`` order. This module turns either into a state
dict for :class:`NCSNpp`.

Loading the ``.ckpt`` file itself is the caller's job: SGMSE+ pickles a class in its
hyper-parameters, so ``torch.load(path, weights_only=True)`` refuses it; only load
checkpoints you trust with ``weights_only=False``. Layout as read in sgmse's ``model.py``;
checked here on synthetic checkpoints of that layout, not on a released SGMSE+ file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn as nn
from torch import Tensor

__all__ = ["sgmse_backbone_state_dict"]


def sgmse_backbone_state_dict(checkpoint: Mapping[str, Any], backbone: nn.Module,
                              use_ema: bool = True, prefix: str = "dnn.") -> dict[str, Tensor]:
    """State dict for ``backbone`` (an :class:`NCSNpp` of the checkpoint's configuration).

    Args:
        checkpoint: the loaded Lightning checkpoint (``{"state_dict": ..., "ema": ...}``).
        backbone: the module the weights are for; its parameter order maps the EMA list.
        use_ema: take the EMA weights (SGMSE+'s evaluation weights) where present.
        prefix: key prefix of the backbone in ``checkpoint["state_dict"]``.
    """
    if "state_dict" not in checkpoint:
        raise ValueError("not a Lightning checkpoint: no 'state_dict' entry")
    sd = {k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    if not sd:
        raise ValueError(f"no '{prefix}*' keys in the checkpoint's state_dict")
    ema = checkpoint.get("ema") if use_ema else None
    if ema is None:
        if use_ema:
            raise ValueError("checkpoint has no 'ema' entry; pass use_ema=False for the live "
                             "(non-averaged) weights")
        return sd
    shadow = list(ema["shadow_params"])
    named = list(backbone.named_parameters())
    trainable = [(n, p) for n, p in named if p.requires_grad]
    if len(shadow) == len(named):
        order = named
    elif len(shadow) == len(trainable):
        order = trainable
    else:
        raise ValueError(f"EMA holds {len(shadow)} tensors; the backbone has {len(named)} "
                         f"parameters ({len(trainable)} trainable): wrong configuration?")
    for (name, p), s in zip(order, shadow, strict=True):
        if tuple(s.shape) != tuple(p.shape):
            raise ValueError(f"EMA tensor for {name} has shape {tuple(s.shape)}, expected "
                             f"{tuple(p.shape)}: wrong configuration?")
        sd[name] = s
    return sd

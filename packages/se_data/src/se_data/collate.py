"""Batching of variable-length clean/noisy items (full-utterance validation and testing)."""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence

__all__ = ["pad_collate"]


def pad_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate dataset items of different lengths by zero-padding at the end.

    Returns ``clean`` and ``noisy`` [B, T_max] float32, ``length`` [B] long (the number of
    real samples of each item, from ``item["length"]``: use it to mask losses and to trim
    before metrics, which must never see the padding), ``name`` (list of str) and, where the
    items have them, ``noise_class`` [B] long and ``snr_db`` [B] float; any other key is
    returned as a list.
    """
    if not items:
        raise ValueError("pad_collate got an empty batch")
    out: dict[str, Any] = {
        "clean": pad_sequence([it["clean"] for it in items], batch_first=True),
        "noisy": pad_sequence([it["noisy"] for it in items], batch_first=True),
        "length": torch.tensor([int(it["length"]) for it in items], dtype=torch.long),
        "name": [it["name"] for it in items],
    }
    for key in items[0]:
        if key in out:
            continue
        vals = [it[key] for it in items]
        if key == "noise_class":
            out[key] = torch.tensor(vals, dtype=torch.long)
        elif key == "snr_db":
            out[key] = torch.tensor(vals, dtype=torch.float32)
        else:
            out[key] = vals
    return out

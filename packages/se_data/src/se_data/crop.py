"""Seeded random crops of clean/noisy pairs, with a padding policy for short utterances.

Randomness comes from :func:`item_generator`, a ``torch.Generator`` seeded from
``(seed, epoch, index)`` only, so a crop is the same whatever the DataLoader worker, DDP
rank or iteration order: runs are reproducible and every rank sees the same crop of the
same item.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["PAD_POLICIES", "crop_pair", "crop_start", "item_generator"]

#: how an utterance shorter than the segment is handled:
#: "zero" pads zeros at the end, "reflect" mirrors the utterance (repeatedly if needed),
#: "drop" removes such utterances from the dataset when it is built
PAD_POLICIES = ("zero", "reflect", "drop")


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A CPU ``torch.Generator`` determined by ``(seed, epoch, index)`` (all >= 0), mixed
    through numpy's ``SeedSequence`` so neighbouring indices/epochs give unrelated streams."""
    for n, v in (("seed", seed), ("epoch", epoch), ("index", index)):
        if int(v) < 0:
            raise ValueError(f"{n} must be >= 0, got {v}")
    state = np.random.SeedSequence([int(seed), int(epoch), int(index)]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & ((1 << 63) - 1))


def _reflect_indices(n: int, length: int) -> torch.Tensor:
    """Indices [length] walking 0..n-1 forward and back (mirror padding of any length)."""
    if n == 1:
        return torch.zeros(length, dtype=torch.long)
    period = 2 * (n - 1)
    j = torch.arange(length) % period
    return torch.where(j < n, j, period - j)


def crop_start(length: int, segment: int, generator: torch.Generator | None = None) -> int:
    """The start of a ``segment``-sample crop of a ``length``-sample utterance (``length >=
    segment``), uniform over ``0 .. length - segment``, drawn from ``generator``: the draw of
    :func:`crop_pair`, so a dataset that reads only the crop (:func:`se_data.load_segment`) takes
    the same crop as one that loads the whole file and crops it."""
    if segment <= 0 or length < segment:
        raise ValueError(f"need 0 < segment <= length, got segment {segment} and length {length}")
    return int(torch.randint(0, length - segment + 1, (1,), generator=generator).item())


def crop_pair(clean: torch.Tensor, noisy: torch.Tensor, segment: int, *, pad: str = "zero",
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Crop ``clean`` and ``noisy`` (both [T], same T) to ``segment`` samples at the same
    random start (uniform over ``0 .. T - segment``, drawn from ``generator``).

    Shorter utterances are padded to ``segment`` at the end: ``pad="zero"`` with zeros,
    ``pad="reflect"`` by mirroring. ``pad="drop"`` expects them to be filtered out before
    and raises here. Returns ``(clean [segment], noisy [segment], length)`` where ``length``
    is the number of original (unpadded) samples, ``min(T, segment)``.
    """
    if clean.shape != noisy.shape or clean.ndim != 1:
        raise ValueError(f"crop_pair expects clean and noisy of the same shape [T], got "
                         f"{tuple(clean.shape)} and {tuple(noisy.shape)}")
    if segment <= 0:
        raise ValueError(f"segment must be > 0 samples, got {segment}")
    if pad not in PAD_POLICIES:
        raise ValueError(f"pad must be one of {PAD_POLICIES}, got {pad!r}")
    t = clean.shape[0]
    if t >= segment:
        start = crop_start(t, segment, generator)
        return clean[start:start + segment], noisy[start:start + segment], segment
    if pad == "drop":
        raise ValueError(f"utterance of {t} samples is shorter than the segment ({segment}); "
                         f"pad='drop' should have removed it when the dataset was built")
    if t == 0:
        raise ValueError("cannot crop an empty utterance")
    if pad == "zero":
        return F.pad(clean, (0, segment - t)), F.pad(noisy, (0, segment - t)), t
    idx = _reflect_indices(t, segment)
    return clean[idx], noisy[idx], t

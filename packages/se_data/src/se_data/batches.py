"""Deterministic, resumable, DDP-exact batch order for hand-written training loops.

The order of an epoch depends only on ``(seed, epoch)`` and each crop only on
``(seed, epoch, index)`` (see :func:`se_data.item_generator`), so a resumed run and an
N-process DDP run see exactly the data of one uninterrupted process with the global batch.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import torch

__all__ = ["epoch_batches", "iterate_batches"]


def epoch_batches(n: int, *, epoch: int, seed: int, batch_size: int, rank: int = 0, world_size: int = 1,
                  max_batches: int | None = None, shuffle: bool = True,
                  drop_last: bool = True) -> list[list[int]]:
    """Index batches of one epoch on one rank.

    With ``shuffle`` (training) the items are permuted by a generator seeded with
    ``(seed, epoch)`` alone (never the global RNG). ``drop_last=True`` drops the last incomplete
    *global* batch (``batch_size × world_size`` items), so every rank takes the same number of
    full steps; ``drop_last=False`` only trims the order to a multiple of ``world_size`` and keeps
    a shorter last batch. Each rank takes every ``world_size``-th item from ``rank`` on.
    Without ``shuffle`` (evaluation) the order is ``0 .. n-1``, nothing is dropped.
    """
    if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need batch_size >= 1 and 0 <= rank < world_size, got {batch_size}, {rank}, {world_size}")
    if shuffle:
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=g).tolist()
        unit = batch_size * world_size if drop_last else world_size
        usable = (n // unit) * unit
        if usable == 0:
            raise ValueError(f"{n} training items are fewer than one {'global batch' if drop_last else 'item per process'} "
                             f"({unit} = batch size {batch_size if drop_last else 1} x {world_size} processes); "
                             f"lower the batch size or use fewer processes")
        order = order[:usable]
    else:
        order = list(range(n))
    shard = order[rank::world_size]
    batches = [shard[i:i + batch_size] for i in range(0, len(shard), batch_size)]
    return batches if max_batches is None else batches[:max_batches]


def iterate_batches(ds: Any, *, epoch: int, seed: int, batch_size: int, rank: int = 0, world_size: int = 1,
                    max_batches: int | None = None, shuffle: bool = True,
                    labels: Mapping[str, int] | None = None, num_workers: int = 0
                    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield ``(noisy [B, T], clean [B, T], labels [B])`` crops of one epoch on one rank.

    ``ds`` is a paired dataset of this package (``PairedFolders``, ``VoiceBankDEMAND``): items
    are dicts with ``"noisy"``, ``"clean"`` and ``"name"``; its crops are re-drawn per epoch
    (``ds.set_epoch``; evaluation uses epoch 0's crops). ``labels`` maps an item name to a
    class index (noise-class conditioning); an item that carries its own ``"noise_class"``
    (e.g. one remixed by :class:`se_data.NoiseAugmentedDataset`, whose noise is not the file's)
    uses that instead. Items without one, or all items when ``labels`` is None, get ``-1``.
    Order and sharding: :func:`epoch_batches`.

    ``num_workers > 0`` reads (and resamples, and augments) the items in that many
    ``torch.utils.data.DataLoader`` worker processes, in order. The batches are the same for
    any worker count, bit for bit: every item's randomness comes from ``(seed, epoch, index)``
    (:func:`se_data.item_generator`), none from a worker's RNG, and the loader gets a private
    generator, so the global torch RNG is left untouched as with ``num_workers=0``.
    """
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be an integer >= 0, got {num_workers!r}")
    ds.set_epoch(epoch if shuffle else 0)
    batches = epoch_batches(len(ds), epoch=epoch, seed=seed, batch_size=batch_size, rank=rank,
                            world_size=world_size, max_batches=max_batches, shuffle=shuffle)
    collate = _Collate(labels)
    if num_workers == 0:
        for idx in batches:
            yield collate([ds[i] for i in idx])
        return
    from torch.utils.data import DataLoader  # noqa: PLC0415

    # a new loader per epoch: its workers copy the dataset after set_epoch, so they crop this epoch
    loader = DataLoader(ds, batch_sampler=batches, num_workers=num_workers, collate_fn=collate,
                        generator=torch.Generator().manual_seed(0))  # its base seed never draws on the global RNG
    yield from loader


class _Collate:
    """``(noisy [B, T], clean [B, T], labels [B])`` of a list of items (a class, so that workers
    started by ``spawn`` can pickle it)."""

    def __init__(self, labels: Mapping[str, int] | None) -> None:
        self.labels = None if labels is None else dict(labels)

    def __call__(self, items: list[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lab = [-1 if self.labels is None else int(it["noise_class"]) if "noise_class" in it
               else self.labels.get(it["name"], -1) for it in items]
        return (torch.stack([it["noisy"] for it in items]), torch.stack([it["clean"] for it in items]),
                torch.tensor(lab, dtype=torch.long))

"""Grouping files into inference batches (private to the enhancement tools and their bench).

Batched inference pads every item to the batch's longest, so items of similar length go
together: sorted by length, cut into groups of at most ``batch_size`` (the usual length
bucketing of sequence models, e.g. fairseq's ``batch_by_size``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence


def length_buckets(lengths: Sequence[float], batch_size: int, *, max_ratio: float = 1.5) -> list[list[int]]:
    """Indices of ``lengths`` in batches of at most ``batch_size`` items of similar length.

    The indices are sorted by length (ties by index) and cut into consecutive groups; a group
    is also closed before an item longer than ``max_ratio`` times the group's shortest, so no
    item is padded to more than ``max_ratio`` times its length. ``batch_size`` 1 keeps the
    input order (one item per batch)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if batch_size == 1:
        return [[i] for i in range(len(lengths))]
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    out: list[list[int]] = []
    for i in order:
        if out and len(out[-1]) < batch_size and lengths[i] <= max_ratio * lengths[out[-1][0]]:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def equal_key_buckets(keys: Sequence[Hashable], batch_size: int) -> list[list[int]]:
    """Indices in batches of at most ``batch_size`` items with equal ``keys`` (e.g. the padded
    frame count, where items must share one shape), batches in order of their first item, items
    in input order. ``batch_size`` 1 keeps the input order."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    open_batch: dict[Hashable, list[int]] = {}
    out: list[list[int]] = []
    for i, k in enumerate(keys):
        group = open_batch.get(k)
        if group is None or len(group) >= batch_size:
            group = open_batch[k] = []
            out.append(group)
        group.append(i)
    return out

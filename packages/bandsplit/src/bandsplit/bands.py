"""Band tables: the BSRNN split of a 512-point STFT and the helpers every band-split layer uses.

A band table is a sequence of positive integer widths (in STFT bins) of contiguous,
non-overlapping bands that together cover every bin of a one-sided spectrum:
``sum(widths) == n_fft // 2 + 1``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch
from diffattn import band_centres_hz as _band_centres_hz

#: The 31 bands of the widely used BSRNN reimplementation (sungwon23/BSRNN) for n_fft = 512
#: at 16 kHz: 1x2, 10x3, 12x8, 7x16, 1x17 bins (sum 257; 31 bands, not 30).
BSRNN_BAND_WIDTHS: tuple[int, ...] = (2,) + (3,) * 10 + (8,) * 12 + (16,) * 7 + (17,)


def check_band_widths(band_widths: Sequence[int], n_freq: int | None = None) -> tuple[int, ...]:
    """Validate a band table and return it as a tuple of ints.

    Raises ``ValueError`` (naming the widths) when a width is not a positive integer or,
    where ``n_freq`` is given, when the widths do not sum to the number of bins.
    """
    widths = tuple(band_widths)
    if len(widths) == 0:
        raise ValueError("band_widths is empty: give at least one band width (in STFT bins)")
    try:
        widths = tuple(operator.index(w) for w in widths)
    except TypeError:
        raise ValueError(f"band widths must be positive integers (STFT bins), got {list(widths)}") from None
    if min(widths) < 1:
        raise ValueError(f"band widths must be positive integers (STFT bins), got {list(widths)}")
    if n_freq is not None and sum(widths) != n_freq:
        raise ValueError(
            f"band widths sum to {sum(widths)} bins but the spectrum has {n_freq} bins "
            f"(n_fft // 2 + 1); widths = {list(widths)}. Give widths that cover every bin exactly "
            f"(the BSRNN table {len(BSRNN_BAND_WIDTHS)} bands summing to {sum(BSRNN_BAND_WIDTHS)} "
            f"fits n_fft = 512).")
    return widths


def band_edges(band_widths: Sequence[int]) -> list[tuple[int, int]]:
    """``[(first_bin, end_bin_exclusive), ...]`` for each band, in order."""
    edges, start = [], 0
    for w in check_band_widths(band_widths):
        edges.append((start, start + w))
        start += w
    return edges


def band_centres_hz(band_widths: Sequence[int], sample_rate: int, n_fft: int) -> torch.Tensor:
    """Centre frequency (Hz) of each band, ``[K]`` float64 (``diffattn.band_centres_hz`` with the
    widths checked to cover exactly the one-sided spectrum).

    The centre is the mean of the band's bin frequencies ``bin * sample_rate / n_fft``.
    ``sample_rate`` (Hz) and ``n_fft`` must be the STFT's; the widths must sum to
    ``n_fft // 2 + 1``.
    """
    if sample_rate <= 0 or n_fft <= 0:
        raise ValueError(f"sample_rate ({sample_rate} Hz) and n_fft ({n_fft}) must be positive")
    return _band_centres_hz(check_band_widths(band_widths, n_fft // 2 + 1), sample_rate, n_fft)


#: the earlier spelling of :func:`band_centres_hz`
band_centers_hz = band_centres_hz


def width_groups(band_widths: Sequence[int], max_groups: int = 4, tolerance: float = 0.1) -> list[tuple[int, list[int]]]:
    """Group bands into at most ``max_groups`` width classes for grouped (batched) matmuls.

    Each group is ``(cap, band_indices)``: its bands are zero-padded to ``cap`` bins (the widest
    band in the group), so one batched matmul handles the whole group. Groups are contiguous
    ranges of the sorted distinct widths, chosen to minimise the padded size (dynamic
    programming); the fewest groups whose padded size is within ``1 + tolerance`` of the
    exact size win. The BSRNN table gives 3 groups, {2, 3}, {8}, {16, 17}: 265 padded bins
    for 257 (one group would compute 527).
    """
    widths = check_band_widths(band_widths)
    distinct = sorted(set(widths))
    count = {w: widths.count(w) for w in distinct}
    exact, m = sum(widths), len(distinct)

    def seg_cost(i: int, j: int) -> int:  # widths distinct[i..j] padded to distinct[j]
        return distinct[j] * sum(count[w] for w in distinct[i:j + 1])

    inf = float("inf")
    # best[g][j]: min padded size covering distinct[0..j] with g groups; cut[g][j]: start of last group
    best = [[inf] * m for _ in range(max_groups + 1)]
    cut = [[0] * m for _ in range(max_groups + 1)]
    for j in range(m):
        best[1][j] = seg_cost(0, j)
    for g in range(2, max_groups + 1):
        for j in range(m):
            for i in range(1, j + 1):
                c = best[g - 1][i - 1] + seg_cost(i, j)
                if c < best[g][j]:
                    best[g][j], cut[g][j] = c, i
    feasible = [g for g in range(1, max_groups + 1) if best[g][m - 1] < inf]
    good = [g for g in feasible if best[g][m - 1] <= (1 + tolerance) * exact]
    g = good[0] if good else min(feasible, key=lambda gg: (best[gg][m - 1], gg))
    ranges, j = [], m - 1
    while g >= 1:
        i = cut[g][j] if g > 1 else 0
        ranges.append((i, j))
        j, g = i - 1, g - 1
    groups = []
    for i, j in reversed(ranges):
        members = set(distinct[i:j + 1])
        groups.append((distinct[j], [b for b, w in enumerate(widths) if w in members]))
    return groups

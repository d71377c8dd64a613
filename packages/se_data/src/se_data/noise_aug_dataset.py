"""On-the-fly noise augmentation of a paired training dataset: more noise types than the corpus
ships, for noise-conditioned enhancement whose noise encoder and noise-classification loss
(NASE, Hu et al. 2024) otherwise see only the corpus' few noise classes.

:class:`NoiseAugmentedDataset` wraps a paired dataset of this package (``PairedFolders``,
``VoiceBankDEMAND``, ``TrainingCorpus.train``): with probability ``p`` an item's noisy input
is replaced by its clean crop plus a noise clip from a noise collection at an SNR drawn
uniformly from ``snr_range`` (dB), mixed at exactly that SNR by :func:`se_data.mix_at_snr`
(energy ratio over the crop, float64).

Determinism: everything drawn for item ``i`` in epoch ``e`` (whether it is augmented, the
noise file, the SNR, the offset, the optional second noise and temporal augmentation) comes
from one NumPy generator seeded by ``(seed, e, i)`` alone (:func:`augment_generator`), never
from worker order, process rank or a global RNG. So a DataLoader with workers, a resumed run
and an N-process DDP run (:func:`se_data.iterate_batches`) see exactly the items of one
uninterrupted process. The underlying crop comes from the wrapped dataset, which is seeded the
same way (:func:`se_data.item_generator`); the two streams are independent.

Noise files: an ESC-50 or UrbanSound8K root (class = the dataset's category / class) or any
folder of noise files (class = the first sub-folder under the root; files directly in the root
have no class: :data:`UNKNOWN_NOISE_CLASS`), or a :class:`se_data.NoiseSet`. Files at another
rate than the dataset's are resampled on load, multi-channel files are mean-downmixed (both by
:func:`se_data.load_noise`), leading/trailing near-silence is trimmed (``trim_silence``), and
the loaded clips are kept in an LRU cache of ``cache_size`` clips per process. Every header is
read when the wrapper is built, so a corrupt file fails at once; ``resampled`` and
``downmixed`` list the files that are converted on load.

Labels for the noise-classification loss: an augmented item's ``noise_class`` is the index of
its noise's class in ``class_names`` (default: the noise collection's own sorted classes), or
:data:`NO_LABEL` (−1, the label ``sgmse_cfg.nc_loss`` ignores) when the class is unknown (a file
without a class sub-folder, or a two-noise mix of different classes). A non-augmented item is
the wrapped dataset's item unchanged (its label comes from the corpus as before).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ._setbuild import NoiseCache
from .audio_io import audio_info
from .mixing import SILENT_RMS, fit_array, mix_at_snr
from .noise import NoiseSet, open_noise_set
from .noise_augment import TemporalAugment, augment_noise, mix_noises
from .ood import pick_noise_offset

__all__ = ["NO_LABEL", "UNKNOWN_NOISE_CLASS", "NoiseAugmentedDataset", "augment_generator", "merge_class_names"]

#: class name of a noise file without a class sub-folder
UNKNOWN_NOISE_CLASS = "unknown"
#: label of an item whose noise class is unknown: the NC loss ignores it (sgmse_cfg.IGNORE_LABEL)
NO_LABEL = -1
#: fixed word that separates this module's random stream from item_generator's (any constant)
_STREAM = 0x6E6F6973  # "nois"


def augment_generator(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The NumPy generator of item ``index`` in ``epoch`` (all >= 0): ``SeedSequence([seed,
    epoch, index, stream])``, so neighbouring items / epochs get unrelated streams and the
    stream differs from the crop's :func:`se_data.item_generator` of the same triple."""
    for n, v in (("seed", seed), ("epoch", epoch), ("index", index)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < 0:
            raise ValueError(f"{n} must be an integer >= 0, got {v!r}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(index), _STREAM]))


def merge_class_names(base: Sequence[str] | None, extra: Sequence[str]) -> tuple[str, ...]:
    """``base`` followed by the names of ``extra`` not in it (order kept, no duplicates): the
    class list of a model trained on a corpus' labels plus an augmentation's noise classes, so
    the corpus' indices stay what they were. :data:`UNKNOWN_NOISE_CLASS` is never a class."""
    out = list(base or ())
    for c in extra:
        if c != UNKNOWN_NOISE_CLASS and c not in out:
            out.append(c)
    return tuple(out)


def _check_range(name: str, r: Sequence[float], lo_bound: float = -math.inf) -> tuple[float, float]:
    if len(r) != 2:
        raise ValueError(f"{name} must be (low, high), got {r!r}")
    lo, hi = float(r[0]), float(r[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and lo_bound <= lo <= hi):
        raise ValueError(f"{name} must be finite (low, high) with low <= high, got {tuple(r)}")
    return lo, hi


def _check_prob(name: str, p: float) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
    return p


class NoiseAugmentedDataset(Dataset):
    """A paired dataset whose noisy inputs are (with probability ``p``) clean + noise at a random SNR.

    Args:
        dataset: the wrapped paired dataset: ``sample_rate`` (Hz), ``set_epoch(e)``, ``len``,
            and items (dicts) with ``clean`` / ``noisy`` [T] float tensors, ``name``, ``length``.
        noise: an ESC-50 / UrbanSound8K root or a folder of noise files (``noise_filters`` go to
            :func:`se_data.open_noise_set`), or a :class:`se_data.NoiseSet` at the dataset's rate.
        seed: the augmentation seed; item ``i`` of epoch ``e`` depends only on ``(seed, e, i)``.
        snr_range: ``(low, high)`` dB; each augmented item's SNR is uniform in it.
        p: probability that an item is augmented (default 1.0: every training input becomes
            clean + noise from the collection, the corpus' own noisy files are not used; lower it
            to keep a share of the corpus' recorded mixtures).
        class_names: classes whose label indices must stay as they are (the corpus' own,
            ``TrainingCorpus.class_names``; default none). The label vocabulary
            :attr:`class_names` is these followed by the noise collection's other classes
            (:func:`merge_class_names`), so a model's NC head gets ``len(ds.class_names)`` outputs.
        extend_classes: with False, the vocabulary is ``class_names`` alone and a noise class
            outside it is a ``ValueError`` (e.g. fine-tuning a model whose NC head is fixed).
        temporal: optional :class:`se_data.TemporalAugment` applied to the noise segment
            (circular shift, time reversal, polarity flip; its gain is irrelevant since the
            mixing sets the level).
        p_two_noises: probability that the noise is a mix of two clips (:func:`se_data.mix_noises`,
            power share uniform in 0.3–0.7); its label is the class when both share it, else
            :data:`NO_LABEL`.
        trim_silence: strip each clip's leading/trailing near-silence (ESC-50 pads to 5 s).
        cache_size: noise clips kept in memory (per process / DataLoader worker).
        dtype: dtype of the returned ``clean`` / ``noisy`` (float64 for exactness checks).

    Items: the wrapped item, with, when augmented, ``noisy`` = ``clean + g·noise`` (over the
    real samples: a zero-padded tail stays zero), ``noise_class`` (int, −1 = unknown),
    ``noise_name`` (class name), ``snr_db`` (the drawn SNR), ``noise_source`` (path under the
    noise root, ``+``-joined for two), ``noise_offset`` (start sample at the dataset's rate,
    in the trimmed clip, before any temporal augmentation) and ``noise_gain`` (g). Every item has ``augmented`` (bool). A crop
    whose speech is silent (RMS ≤ :data:`se_data.mixing.SILENT_RMS`) has no SNR and stays
    unaugmented.
    """

    def __init__(self, dataset: Any, noise: str | os.PathLike | NoiseSet, *, seed: int,
                 snr_range: tuple[float, float] = (-5.0, 15.0), p: float = 1.0,
                 class_names: Sequence[str] | None = None, extend_classes: bool = True,
                 temporal: TemporalAugment | None = None,
                 p_two_noises: float = 0.0, trim_silence: bool = True, cache_size: int = 256,
                 noise_filters: dict | None = None, dtype: torch.dtype = torch.float32) -> None:
        sr = getattr(dataset, "sample_rate", None)
        if isinstance(sr, bool) or not isinstance(sr, int) or sr <= 0:
            raise ValueError(f"the wrapped dataset must record its sample_rate (Hz), got {sr!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise ValueError(f"cache_size must be a positive number of clips, got {cache_size!r}")
        self.dataset = dataset
        self.sample_rate: int = sr
        self.seed = int(seed)
        self.snr_range = _check_range("snr_range", snr_range)
        self.p = _check_prob("p", p)
        self.p_two_noises = _check_prob("p_two_noises", p_two_noises)
        self.temporal = temporal
        self.dtype = dtype
        self.epoch = 0
        nset = noise if isinstance(noise, NoiseSet) else open_noise_set(
            noise, sr, **{**(noise_filters or {}), "trim_silence": trim_silence})
        if nset.sample_rate != sr:
            raise ValueError(f"the NoiseSet delivers {nset.sample_rate} Hz but the dataset is at {sr} Hz; "
                             f"open it at {sr} Hz (files are resampled on load)")
        self.noise_set = nset
        self._sources = [nset.relpath(i) for i in range(len(nset))]
        self._paths = [e.path for e in nset.entries]
        self._classes = [self._class_of(nset, i) for i in range(len(nset))]
        #: the noise collection's classes (sorted; UNKNOWN_NOISE_CLASS excluded)
        self.noise_classes: tuple[str, ...] = tuple(sorted({c for c in self._classes if c != UNKNOWN_NOISE_CLASS}))
        #: the label vocabulary: label i is class_names[i]
        self.class_names: tuple[str, ...] = (merge_class_names(class_names, self.noise_classes) if extend_classes
                                             else tuple(class_names or ()))
        missing = [c for c in self.noise_classes if c not in self.class_names]
        if missing:
            raise ValueError(f"noise classes {missing} are not in class_names {list(self.class_names)}; add them "
                             f"(extend_classes=True appends them after the given classes)")
        infos = [audio_info(p) for p in self._paths]
        #: noise files at another rate than the dataset's (resampled on load)
        self.resampled: list[str] = [s for s, i in zip(self._sources, infos) if i.sample_rate != sr]
        #: multi-channel noise files (mean-downmixed on load)
        self.downmixed: list[str] = [s for s, i in zip(self._sources, infos) if i.channels > 1]
        self._cache = NoiseCache(sr, nset.trim_silence, size=cache_size)

    @staticmethod
    def _class_of(nset: NoiseSet, i: int) -> str:
        """A folder collection's class is the first sub-folder; a file in the root has none."""
        if nset.layout == "folder" and len(Path(nset.relpath(i)).parts) < 2:
            return UNKNOWN_NOISE_CLASS
        return nset.entries[i].label or UNKNOWN_NOISE_CLASS

    # -- Dataset protocol -----------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select epoch ``epoch``'s crops (the wrapped dataset) and noise draws."""
        if isinstance(epoch, bool) or int(epoch) < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.dataset.set_epoch(int(epoch))
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def entries(self) -> Any:
        """The wrapped dataset's entries (file pairs), for code that lists training files."""
        return self.dataset.entries

    def label_of(self, class_name: str) -> int:
        """The label index of a class name (:data:`NO_LABEL` for unknown)."""
        return self.class_names.index(class_name) if class_name in self.class_names else NO_LABEL

    def noise(self, source: str) -> torch.Tensor:
        """The noise clip ``source`` (path under the root) as used: [N] float32 at the dataset's rate."""
        return self._cache.get(self._paths[self._sources.index(source)])

    def _segment(self, k: int, span: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        x = self._cache.get(self._paths[k]).numpy().astype(np.float64)
        off = pick_noise_offset(x, span, rng)
        return fit_array(x, span, offset=off)[0], off

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        index = index % n
        item = dict(self.dataset[index])
        item.update(clean=item["clean"].to(self.dtype), noisy=item["noisy"].to(self.dtype), augmented=False)
        rng = augment_generator(self.seed, self.epoch, index)
        if not rng.random() < self.p:
            return item
        clean = item["clean"].detach().cpu().numpy().astype(np.float64)
        t = clean.shape[0]
        span = int(item.get("length", t))
        if getattr(self.dataset, "pad", "zero") != "zero":
            span = t  # a reflect-padded crop is speech over its whole length
        s = clean[:span]
        if float(np.sum(s * s)) <= SILENT_RMS**2 * span:
            return item  # silent speech: an SNR is undefined
        k = int(rng.integers(len(self._paths)))
        lo, hi = self.snr_range
        snr = float(rng.uniform(lo, hi)) if hi > lo else lo
        seg, off = self._segment(k, span, rng)
        cls, src = self._classes[k], self._sources[k]
        if self.p_two_noises > 0 and rng.random() < self.p_two_noises:
            k2 = int(rng.integers(len(self._paths)))
            seg2, _ = self._segment(k2, span, rng)
            seg = mix_noises(seg, seg2, span, seed=rng)[0].numpy().astype(np.float64)
            src = f"{src}+{self._sources[k2]}"
            cls = cls if self._classes[k2] == cls else UNKNOWN_NOISE_CLASS
        if self.temporal is not None:
            seg = augment_noise(seg, span, seed=rng, config=self.temporal)[0].numpy().astype(np.float64)
        try:
            noisy_span, info = mix_at_snr(s, seg, snr, offset=0)
        except ValueError as e:
            raise ValueError(f"noise {src} (under {self.noise_set.root}), item {index} ({item.get('name')}): "
                             f"{e}") from e
        noisy = clean.copy()
        noisy[:span] = noisy_span.numpy()
        item.update(clean=torch.from_numpy(clean).to(self.dtype), noisy=torch.from_numpy(noisy).to(self.dtype),
                    augmented=True, noise_class=self.label_of(cls), noise_name=cls, snr_db=snr,
                    noise_source=src, noise_offset=int(off), noise_gain=float(info.noise_gain))
        return item

    def describe(self) -> dict[str, Any]:
        """Plain data for a run's config."""
        return {"noise_root": str(self.noise_set.root) if self.noise_set.root else None,
                "noise_layout": self.noise_set.layout, "noise_files": len(self._paths),
                "noise_classes": list(self.noise_classes), "class_names": list(self.class_names),
                "unlabelled_files": sum(c == UNKNOWN_NOISE_CLASS for c in self._classes),
                "seed": self.seed, "snr_range_db": list(self.snr_range), "p": self.p,
                "p_two_noises": self.p_two_noises, "temporal": None if self.temporal is None else self.temporal.as_dict(),
                "trim_silence": self.noise_set.trim_silence, "resampled_files": len(self.resampled),
                "downmixed_files": len(self.downmixed), "sample_rate": self.sample_rate}

    def __repr__(self) -> str:
        return (f"NoiseAugmentedDataset({self.dataset!r}, {len(self._paths)} noise files, "
                f"{len(self.noise_classes)} classes, SNR U{self.snr_range} dB, p={self.p}, seed={self.seed})")

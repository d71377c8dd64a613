"""One training corpus from one folder: the demo corpus, VoiceBank-DEMAND or paired folders.

:func:`open_training_corpus` detects the layout of a folder (:func:`detect_layout`) and opens
its train / valid / test splits at a checked sample rate:

* ``"vbdemand"``: the official VoiceBank-DEMAND tree (``{clean,noisy}_{trainset_28spk,testset}_wav``);
  validation is a held-out part of the *training* speakers (p226 / p287 by default), so the test
  set is never used for model selection;
* ``"paired"``: ``{train,valid,test}/{clean,noisy}`` with files of the same names, which is also
  the layout of the built-in demo corpus (:func:`se_data.make_demo_corpus`, recognised by its
  manifest, which also gives noise-class labels).

With ``root=None`` the deterministic demo corpus is generated (or reused) in ``demo_dir``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .audio_io import load_audio
from .datasets import PairedFolders
from .demo_corpus import DEFAULT_NOISE_WEIGHTS, make_demo_corpus
from .errors import CorpusLayoutError
from .vbdemand import VBDEMAND_TRAIN_NOISE_CLASSES, VoiceBankDEMAND

__all__ = ["DEMO_NOISE_CLASSES", "TrainingCorpus", "detect_layout", "open_training_corpus"]

#: the demo corpus' noise kinds, in the order of their class indices
DEMO_NOISE_CLASSES: tuple[str, ...] = tuple(sorted(DEFAULT_NOISE_WEIGHTS))


@dataclass
class TrainingCorpus:
    """The three splits of a corpus. ``train`` / ``valid`` yield random / fixed crops,
    ``test`` whole utterances; ``labels`` maps an item name to a noise-class index (None where
    the corpus has no labels), ``class_names`` names those classes."""

    kind: str  # "demo corpus", "VoiceBank-DEMAND" or "paired folders"
    root: Path
    train: Any
    valid: Any
    test: Any
    sample_rate: int
    resample: bool
    is_demo: bool
    class_names: tuple[str, ...] | None = None
    labels: dict[str, int] | None = None
    mono: bool = False
    _valid_cache: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list, repr=False)

    def describe(self) -> dict[str, Any]:
        """Plain data for a run's config: kind, root, split sizes, sample rate, classes."""
        return {"kind": self.kind, "root": str(self.root), "train": len(self.train), "valid": len(self.valid),
                "test": len(self.test), "sample_rate": self.sample_rate,
                "nc_classes": list(self.class_names) if self.class_names else None}

    @property
    def test_pairs(self) -> list[tuple[str, Path, Path]]:
        """``(file name with .wav, noisy path, clean path)`` of every test utterance."""
        return [(e.name if e.name.endswith(".wav") else e.name + ".wav", e.noisy, e.clean)
                for e in self.test.entries]

    def valid_utterances(self, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The first ``n`` validation utterances, whole, as ``(noisy [T], clean [T])`` (cached)."""
        n = min(n, len(self.valid))
        while len(self._valid_cache) < n:
            e = self.valid.entries[len(self._valid_cache)]
            clean, _ = load_audio(e.clean, self.sample_rate, resample=self.resample, mono=self.mono)
            noisy, _ = load_audio(e.noisy, self.sample_rate, resample=self.resample, mono=self.mono)
            self._valid_cache.append((noisy, clean))
        return self._valid_cache[:n]


def detect_layout(root: str | os.PathLike) -> str:
    """``"vbdemand"`` or ``"paired"`` for a corpus folder; :class:`CorpusLayoutError` otherwise."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusLayoutError(f"{root} is not a folder")
    if (root / "clean_trainset_28spk_wav").is_dir() or (root / "noisy_trainset_28spk_wav").is_dir():
        return "vbdemand"
    if all((root / s / k).is_dir() for s in ("train", "valid", "test") for k in ("clean", "noisy")):
        return "paired"
    raise CorpusLayoutError(
        f"{root} is neither a VoiceBank-DEMAND tree ({{clean,noisy}}_{{trainset_28spk,testset}}_wav) "
        f"nor a paired-folder tree ({{train,valid,test}}/{{clean,noisy}} with files of the same names)")


def _demo_labels(root: Path) -> dict[str, int] | None:
    """``{name-without-extension: class}`` from a demo corpus' manifest (None if it is not one)."""
    mpath = root / "manifest.json"
    if not mpath.is_file():
        return None
    m = json.loads(mpath.read_text())
    if m.get("generator") != "se_data.demo_corpus":
        return None
    return {Path(f["name"]).stem: DEMO_NOISE_CLASSES.index(f["noise"]) for f in m["files"]
            if f["noise"] in DEMO_NOISE_CLASSES}


def open_training_corpus(root: str | os.PathLike | None, *, sample_rate: int, segment: float | None,
                         resample: bool = False, mono: bool = False, seed: int = 0, valid_speakers: tuple[str, ...] | None = None,
                         demo_dir: str | os.PathLike = "runs/demo-corpus",
                         build_demo: bool = True) -> TrainingCorpus:
    """Open a corpus for training at ``sample_rate`` Hz with ``segment``-second training crops.

    ``root=None`` uses the demo corpus in ``demo_dir``, generated there first when
    ``build_demo`` (in DDP, let one rank build it and the others open it after a barrier).
    Files at another rate raise :class:`~se_data.SampleRateError` unless ``resample``;
    multi-channel files raise :class:`~se_data.AudioFileError` unless ``mono`` (mean downmix).
    ``valid_speakers`` overrides VoiceBank-DEMAND's held-out training speakers. ``seed`` seeds
    the crops (:func:`se_data.item_generator`).
    """
    is_demo = root is None
    if is_demo:
        root = Path(demo_dir)
        if build_demo:
            make_demo_corpus(root, seed=0, sample_rate=sample_rate)
    root = Path(root)
    layout = detect_layout(root)
    common = dict(sample_rate=sample_rate, resample=resample, mono=mono, seed=seed)
    class_names: tuple[str, ...] | None = None
    labels: dict[str, int] | None = None
    if layout == "vbdemand":
        kind = "VoiceBank-DEMAND"
        vkw = {} if valid_speakers is None else {"valid_speakers": tuple(valid_speakers)}
        train = VoiceBankDEMAND(root, "train", segment=segment, **vkw, **common)
        valid = VoiceBankDEMAND(root, "valid", segment=segment, **vkw, **common)
        test = VoiceBankDEMAND(root, "test", segment=None, **common)
        if all(e.noise_class is not None for e in train.entries):
            class_names = VBDEMAND_TRAIN_NOISE_CLASSES
            labels = {e.name: int(e.noise_class) for ds in (train, valid) for e in ds.entries}
    else:
        demo_labels = _demo_labels(root)
        kind = "demo corpus" if demo_labels is not None else "paired folders"
        train = PairedFolders(root / "train" / "clean", root / "train" / "noisy", segment=segment, **common)
        valid = PairedFolders(root / "valid" / "clean", root / "valid" / "noisy", segment=segment, **common)
        test = PairedFolders(root / "test" / "clean", root / "test" / "noisy", segment=None, **common)
        if demo_labels is not None:
            class_names, labels = DEMO_NOISE_CLASSES, demo_labels
    return TrainingCorpus(kind, root, train, valid, test, int(sample_rate), bool(resample), is_demo,
                          class_names, labels, bool(mono))

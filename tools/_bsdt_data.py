"""Data plumbing for tools/train_bsdt.py (not a public API).

Three sources, all at 16 kHz (48 kHz audio is an error unless ``--resample``):
the built-in demo corpus (default), a VoiceBank-DEMAND tree, or a paired-folder tree
``{train,valid,test}/{clean,noisy}``. Validation is a held-out part of the *training*
material (speakers p226/p287 by default for VoiceBank-DEMAND); the test set is only used for
the final table, never for model selection.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

import _train

import se_data
from se_data import PairedFolders, VoiceBankDEMAND, load_audio


@dataclass
class BsdtData:
    kind: str
    root: Path
    train: Any
    valid: Any
    test_pairs: list[tuple[str, Path, Path]]
    is_demo: bool
    resample: bool
    _valid_cache: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "root": str(self.root), "train": len(self.train), "valid": len(self.valid),
                "test": len(self.test_pairs), "sample_rate": self.train.sample_rate}

    def valid_utterances(self, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The first ``n`` validation utterances, whole, as ``(noisy [T], clean [T])`` (cached)."""
        n = min(n, len(self.valid))
        while len(self._valid_cache) < n:
            e = self.valid.entries[len(self._valid_cache)]
            sr = self.valid.sample_rate
            clean, _ = load_audio(e.clean, sr, resample=self.resample, mono=True)
            noisy, _ = load_audio(e.noisy, sr, resample=self.resample, mono=True)
            self._valid_cache.append((noisy, clean))
        return self._valid_cache[:n]


def _is_vbdemand(root: Path) -> bool:
    return (root / "clean_trainset_28spk_wav").is_dir() or (root / "noisy_trainset_28spk_wav").is_dir()


def _is_paired_tree(root: Path) -> bool:
    return all((root / s / k).is_dir() for s in ("train", "valid", "test") for k in ("clean", "noisy"))


def build_datasets(args: argparse.Namespace, *, sample_rate: int, is_main: bool,
                   barrier: Callable[[], None]) -> BsdtData:
    is_demo = args.data is None
    if is_demo:
        root = Path(args.demo_dir)
        if is_main:
            se_data.make_demo_corpus(root, seed=0, sample_rate=sample_rate)
        barrier()
        kind = "demo corpus"
    else:
        root = Path(args.data)
        if not root.is_dir():
            raise SystemExit(f"error: --data {root} is not a folder")
        kind = "VoiceBank-DEMAND" if _is_vbdemand(root) else "paired folders"
    common = dict(sample_rate=sample_rate, resample=args.resample, seed=args.seed)
    if not is_demo and _is_vbdemand(root):
        vkw = {} if args.valid_speakers is None else {"valid_speakers": tuple(args.valid_speakers)}
        train = VoiceBankDEMAND(root, "train", segment=args.segment, **vkw, **common)
        valid = VoiceBankDEMAND(root, "valid", segment=args.segment, **vkw, **common)
        test = VoiceBankDEMAND(root, "test", segment=None, **common)
    elif _is_paired_tree(root):
        train = PairedFolders(root / "train" / "clean", root / "train" / "noisy", segment=args.segment, **common)
        valid = PairedFolders(root / "valid" / "clean", root / "valid" / "noisy", segment=args.segment, **common)
        test = PairedFolders(root / "test" / "clean", root / "test" / "noisy", segment=None, **common)
    else:
        raise SystemExit(
            f"error: --data {root} is neither a VoiceBank-DEMAND tree ({{clean,noisy}}_{{trainset_28spk,testset}}_wav) "
            f"nor a paired-folder tree ({{train,valid,test}}/{{clean,noisy}})")
    test_pairs = [(e.name if e.name.endswith(".wav") else e.name + ".wav", e.noisy, e.clean) for e in test.entries]
    return BsdtData(kind, root, train, valid, test_pairs, is_demo, args.resample)


def iterate_batches(ds: Any, *, epoch: int, seed: int, batch_size: int, rank: int = 0, world_size: int = 1,
                    max_batches: int | None = None, shuffle: bool = True
                    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(noisy [B, T], clean [B, T])`` crops for one epoch on one rank.

    The order depends only on ``(seed, epoch)`` and the crops only on ``(seed, epoch, index)``,
    so a resumed run and a DDP run see exactly the data of an uninterrupted single run split
    across ranks. Training drops the last incomplete global batch so that every rank takes
    the same number of steps.
    """
    ds.set_epoch(epoch if shuffle else 0)
    for idx in _train.epoch_batches(len(ds), epoch=epoch, seed=seed, batch_size=batch_size, rank=rank,
                                    world_size=world_size, max_batches=max_batches, shuffle=shuffle):
        items = [ds[i] for i in idx]
        yield torch.stack([it["noisy"] for it in items]), torch.stack([it["clean"] for it in items])

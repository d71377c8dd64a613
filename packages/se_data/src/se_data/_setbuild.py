"""Private helpers shared by the test-set builders (:mod:`se_data.ood`,
:mod:`se_data.nonstationary_set`) and the on-the-fly noise augmentation
(:mod:`se_data.noise_aug_dataset`): output folders that are never overwritten, source
listing, a small cache of noise clips at one rate, source checks and the manifest writer.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from .fingerprint import sha256_file
from .noise import AUDIO_EXTENSIONS, load_noise

#: A file a command-line tool keeps in its output folder while it runs (its run lock): not content.
RUN_LOCK_NAME = ".lock"


def require_empty_out(out_dir: Path, *, create: bool = True) -> None:
    """Raise ``FileExistsError`` unless ``out_dir`` is absent or empty (a run lock aside);
    create it when ``create``."""
    if out_dir.exists() and (not out_dir.is_dir() or any(p.name != RUN_LOCK_NAME for p in out_dir.iterdir())):
        raise FileExistsError(f"{out_dir}: already exists and is not empty; nothing is overwritten. "
                              f"Choose a new output folder.")
    if create:
        out_dir.mkdir(parents=True, exist_ok=True)


def safe_name(s: str) -> str:
    """``s`` with every run of characters outside ``[A-Za-z0-9_.+-]`` replaced by ``-``."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", s).strip("-") or "x"


def library_versions() -> dict:
    """Versions of everything that can change the bytes a builder writes."""
    from . import __version__ as se_data_version

    return {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "se_data": se_data_version, "soundfile": sf.__version__,
            "libsndfile": sf.__libsndfile_version__}


class NoiseCache:
    """Loads noise files with :func:`se_data.load_noise` (mono mean downmix, resampled to
    ``sample_rate`` Hz, leading/trailing near-silence trimmed when ``trim_silence``), keeping
    the ``size`` most recently used clips in memory."""

    def __init__(self, sample_rate: int, trim_silence: bool, size: int = 32):
        if size < 1:
            raise ValueError(f"cache size must be >= 1 clip, got {size}")
        self.sample_rate, self.trim, self.size = sample_rate, trim_silence, size
        self._d: OrderedDict[Path, torch.Tensor] = OrderedDict()

    def get(self, path: Path) -> torch.Tensor:
        """The clip [N] float32 at ``sample_rate`` Hz."""
        if path in self._d:
            self._d.move_to_end(path)
            return self._d[path]
        x = load_noise(path, self.sample_rate, trim_silence=self.trim)
        self._d[path] = x
        if len(self._d) > self.size:
            self._d.popitem(last=False)
        return x


def list_audio_tree(root: Path, what: str = "clean speech") -> list[Path]:
    """Audio files below ``root`` (recursive, sorted by path, hidden files and folders skipped)."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: {what} folder not found")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise ValueError(f"{root}: no audio files found ({', '.join(AUDIO_EXTENSIONS)})")
    return files


def write_manifests(out_dir: Path, columns: Sequence[str], csv_rows: Iterable[Sequence[Any]], meta: Mapping) -> None:
    """``out_dir/manifest.csv`` (header ``columns``, one line per row, ``\\n`` line ends) and
    ``out_dir/manifest.json`` (``meta``, sorted keys, written atomically)."""
    with open(out_dir / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for r in csv_rows:
            w.writerow(r)
    tmp = out_dir / ".manifest.json.partial"
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / "manifest.json")


def progress(it, total: int, desc: str, enabled: bool):
    """``it`` wrapped in a tqdm bar when ``enabled``."""
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc=desc, unit="file")


def changed_sources(roots: Mapping[str, Path], sources: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Which recorded source files are missing or differ: ``sources[kind][relpath] = sha256``
    under ``roots[kind]``; returns one message per bad file."""
    bad = []
    for kind, root in roots.items():
        for rel, digest in sources.get(kind, {}).items():
            p = root / rel
            if not p.is_file():
                bad.append(f"{p}: missing")
            elif sha256_file(p) != digest:
                bad.append(f"{p}: SHA-256 differs from the manifest")
    return bad


def refuse_changed(manifest: Path, bad: list[str]) -> None:
    """Raise ``ValueError`` listing (up to 10 of) ``bad`` when it is not empty."""
    if bad:
        raise ValueError(f"{manifest}: refusing to rebuild, {len(bad)} source(s) differ: " + "; ".join(bad[:10])
                         + ("" if len(bad) <= 10 else f"; ... ({len(bad) - 10} more)"))

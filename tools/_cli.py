"""Helpers shared by the thin scripts in tools/ (not a public API).

Every tool writes into ``--out DIR``; by default a new ``runs/<tool>-<YYYYmmdd-HHMMSS>/``.
Nothing is ever overwritten: an existing non-empty ``--out`` is refused unless the tool
resumes from it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
from pathlib import Path

import torch


def default_out_dir(tool: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{tool}-{stamp}"
    out, k = base, 1
    while out.exists():  # two runs in the same second never share a folder
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def prepare_out_dir(out: str | os.PathLike | None, tool: str, *, allow_existing: bool = False) -> Path:
    """Create the output folder; refuse a non-empty existing one unless ``allow_existing``."""
    path = Path(out) if out is not None else default_out_dir(tool)
    if path.exists() and any(path.iterdir()) and not allow_existing:
        sys.exit(f"error: --out {path} already exists and is not empty; nothing is overwritten. "
                 f"Choose a new --out (or pass --resume where the tool supports it).")
    path.mkdir(parents=True, exist_ok=True)
    return path


def add_common_args(p: argparse.ArgumentParser, *, device: bool = True, seed: bool = True) -> None:
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: a new runs/<tool>-<YYYYmmdd-HHMMSS>/); "
                        "an existing non-empty folder is refused, never overwritten")
    if seed:
        p.add_argument("--seed", type=int, default=0, help="random seed for every random choice (default 0)")
    if device:
        p.add_argument("--device", default="auto",
                       help="torch device: auto (cuda if available, else cpu), cpu, cuda, cuda:1 ... (default auto)")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)

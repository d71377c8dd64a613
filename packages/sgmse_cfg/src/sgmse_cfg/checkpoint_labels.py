"""Labels of the checkpoints an evaluation compares, from ``[NAME=]PATH`` command-line items."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["checkpoint_labels"]


def checkpoint_labels(specs: Sequence[str]) -> list[tuple[str, str]]:
    """``[NAME=]PATH`` -> ``(name, path)``, in order: NAME, else the checkpoint's folder name (its
    run folder, e.g. ``runs/a/model.pt`` -> ``"a"``), else ``folder/stem`` where two share a
    folder (``"a/best"``, ``"a/last"``). An item is read as ``NAME=PATH`` only when NAME has no
    path separator, PATH is not empty and the whole item is not an existing file.
    ``ValueError`` for a name given twice."""
    parsed: list[tuple[str | None, str]] = []
    for s in specs:
        name, sep, path = s.partition("=")
        if sep and name and "/" not in name and "\\" not in name and path and not Path(s).exists():
            parsed.append((name, path))
        else:
            parsed.append((None, s))
    auto = {i: Path(path).resolve().parent.name or "ckpt" for i, (n, path) in enumerate(parsed) if n is None}
    clash = {v for v in auto.values() if list(auto.values()).count(v) > 1}
    names = []
    for i, (n, path) in enumerate(parsed):
        if n is None:
            n = f"{auto[i]}/{Path(path).stem}" if auto[i] in clash else auto[i]
        names.append((n, path))
    seen = [n for n, _ in names]
    dup = sorted({n for n in seen if seen.count(n) > 1})
    if dup:
        raise ValueError(f"checkpoint name {dup[0]!r} is given twice; label them NAME=PATH")
    return names

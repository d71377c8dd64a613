"""File fingerprints for resumable tools: has an input changed since its output was made?

A fingerprint is ``{"size": bytes, "mtime_ns": int, "sha256": hex}``, taken by
:func:`file_fingerprint` (the content hash is streamed in 1 MiB chunks, so any file size works
in constant memory). :func:`fingerprint_change` compares a recorded fingerprint with the file
as it is now and returns why it no longer matches, or None. The content hash decides: a file
rewritten with the same bytes (only its mtime moved) still matches; a file whose bytes differ
never does, even with the same size and mtime. :func:`write_json_atomic` writes the sidecar
files (manifests) that hold such records: a temporary file beside the target, then a rename,
so a crash never leaves half a manifest.

Callers take the fingerprint *before* reading a file for their work: if the file changes
while it is being read, the record holds the older state and the next run redoes the work,
never the other way round.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["FINGERPRINT_KEYS", "file_fingerprint", "fingerprint_change", "sha256_file", "write_json_atomic"]

#: the keys of a fingerprint record
FINGERPRINT_KEYS = ("size", "mtime_ns", "sha256")
_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike, chunk: int = _CHUNK) -> str:
    """Hex SHA-256 of a file's bytes, read in ``chunk``-byte blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """``{"size": int (bytes), "mtime_ns": int (ns since the epoch), "sha256": str (hex)}`` of
    the file at ``path``. Raises ``OSError`` (e.g. FileNotFoundError) when it cannot be read."""
    st = os.stat(path)
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns), "sha256": sha256_file(path)}


def _is_record(old: Any) -> bool:
    return (isinstance(old, Mapping) and isinstance(old.get("size"), int) and isinstance(old.get("mtime_ns"), int)
            and isinstance(old.get("sha256"), str) and len(old["sha256"]) == 64)


def fingerprint_change(old: Mapping[str, Any] | None, path: str | os.PathLike,
                       current: Mapping[str, Any] | None = None) -> str | None:
    """Why the file at ``path`` no longer matches the recorded fingerprint ``old``; None when
    it matches (same size and same content hash; the mtime alone does not count).

    ``current``: the file's fingerprint if already taken (saves hashing it twice).
    Reasons: ``"no fingerprint recorded"`` (``old`` is None or incomplete, e.g. a record of an
    older format), ``"file is missing"``, ``"size changed (A -> B bytes)"``, ``"content
    changed (sha256 1234abcd... -> 5678ef01...)"``.
    """
    if not _is_record(old):
        return "no fingerprint recorded"
    assert old is not None
    if current is None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return "file is missing"
        if st.st_size != old["size"]:  # no need to hash
            return f"size changed ({old['size']} -> {st.st_size} bytes)"
        current = file_fingerprint(path)
    if current["size"] != old["size"]:
        return f"size changed ({old['size']} -> {current['size']} bytes)"
    if current["sha256"] != old["sha256"]:
        return f"content changed (sha256 {old['sha256'][:8]}... -> {current['sha256'][:8]}...)"
    return None


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` via a temporary file in the same folder and a
    rename: readers see the old file or the new one, never half of one. The file gets the
    mode ``open()`` would give (the umask's), not ``mkstemp``'s 0600."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=1, sort_keys=True, allow_nan=False)
            fh.write("\n")
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

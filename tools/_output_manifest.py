"""What each output file of a tool was made from, so a rerun redoes exactly the stale ones
(not a public API).

``OUT/.enhance_manifest.jsonl`` (the name is the caller's) holds one JSON object per line:

    {"file": "sub/a.wav", "input": {"size": ..., "mtime_ns": ..., "sha256": ...},
     "checkpoint": {"path": ..., "size": ..., "mtime_ns": ..., "sha256": ...},
     "settings": {"weights": "ema", "chunk_seconds": 30.0, ...}}

``file`` is the output's path relative to OUT, ``input`` the fingerprint of the input file it
was made from (:func:`se_data.file_fingerprint`, taken before the input was read),
``checkpoint`` that of the model file and ``settings`` the options that change the output. A
line is appended (and flushed) right after each output is written, so an interrupted run
loses no record; for a file listed twice the last line counts; a torn last line is ignored.
:meth:`OutputManifest.compact` rewrites the file atomically with one line per output.

An output is up to date when its record matches the input, the checkpoint (by content, not
path) and the settings of this run; :meth:`OutputManifest.stale_reasons` says why not.
An output without a record (made by another tool or an older version) is never touched.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from se_data import fingerprint_change


class OutputManifest:
    """The records of ``out_dir / name`` for a run with checkpoint ``checkpoint`` (its path)
    whose fingerprint is ``checkpoint_fp`` and whose output-changing options are ``settings``."""

    def __init__(self, out_dir: Path, name: str, checkpoint: Path, checkpoint_fp: Mapping[str, Any],
                 settings: Mapping[str, Any]) -> None:
        self.path = Path(out_dir) / name
        self.checkpoint = Path(checkpoint)
        self.checkpoint_fp = dict(checkpoint_fp)
        self.settings = json.loads(json.dumps(dict(settings)))  # as it reads back (tuples -> lists)
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a line torn by an interrupted write
                if isinstance(rec, dict) and isinstance(rec.get("file"), str):
                    self.records[rec["file"]] = rec

    def stale_reasons(self, rel: str, input_path: Path, input_fp: Mapping[str, Any]) -> list[str] | None:
        """None when output ``rel`` has no record; else why it is out of date, as
        ``"input changed: ..."``, ``"checkpoint changed: ..."``, ``"settings changed: k a -> b"``
        (empty when it is up to date)."""
        rec = self.records.get(rel)
        if rec is None:
            return None
        why = []
        change = fingerprint_change(rec.get("input"), input_path, input_fp)
        if change is not None:
            why.append(f"input changed: {change}")
        change = fingerprint_change(rec.get("checkpoint"), self.checkpoint, self.checkpoint_fp)
        if change is not None:
            why.append(f"checkpoint changed: {change}")
        old = rec.get("settings") if isinstance(rec.get("settings"), dict) else {}
        diff = [f"{k} {old.get(k)!r} -> {v!r}" for k, v in self.settings.items() if old.get(k) != v]
        if diff:
            why.append(f"settings changed: {', '.join(diff)}")
        return why

    def record(self, rel: str, input_fp: Mapping[str, Any]) -> None:
        """Append the record of output ``rel``, just written from an input with ``input_fp``."""
        rec = {"file": rel, "input": dict(input_fp), "checkpoint": {"path": str(self.checkpoint), **self.checkpoint_fp},
               "settings": self.settings}
        self.records[rel] = rec
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(rec, sort_keys=True) + "\n")
            fh.flush()

    def compact(self) -> None:
        """Rewrite the file atomically with one line per output that still exists."""
        keep = [self.records[r] for r in sorted(self.records) if (self.path.parent / r).is_file()]
        if not keep and not self.path.exists():
            return
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            with os.fdopen(fd, "w") as fh:
                fh.writelines(json.dumps(r, sort_keys=True) + "\n" for r in keep)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

"""sgmse_cfg.checkpoint_labels (the names of the checkpoints a comparison shows) and
sgmse_cfg.sgmse_file_order (the order sgmse's enhancement.py enhances a folder in)."""

from __future__ import annotations

import pytest

import sgmse_cfg


def test_checkpoint_labels(tmp_path):
    assert sgmse_cfg.checkpoint_labels(["runs/a/model.pt", "runs/b/model.pt"]) == [
        ("a", "runs/a/model.pt"), ("b", "runs/b/model.pt")]
    assert sgmse_cfg.checkpoint_labels(["runs/a/best.pt", "runs/a/last.pt", "nase=runs/c/model.pt"]) == [
        ("a/best", "runs/a/best.pt"), ("a/last", "runs/a/last.pt"), ("nase", "runs/c/model.pt")]
    odd = tmp_path / "x=y.pt"  # an existing file whose name has '=' is a path, not NAME=PATH
    odd.write_bytes(b"")
    assert sgmse_cfg.checkpoint_labels([str(odd)]) == [(tmp_path.name, str(odd))]
    for specs in (["a/model.pt", "a/model.pt"], ["x=a/model.pt", "x=b/model.pt"]):
        with pytest.raises(ValueError, match="is given twice"):
            sgmse_cfg.checkpoint_labels(specs)


def test_sgmse_file_order(tmp_path):
    for rel in ("b.wav", "a.flac", "s/c.wav", "s/a.flac", "s/t/deep.wav", "B.WAV", "note.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    got = [p.relative_to(tmp_path).as_posix() for p in sgmse_cfg.sgmse_file_order(tmp_path)]
    # *.wav, */*.wav, *.flac, */*.flac (case-sensitive globs, as sgmse's), then the rest sorted
    assert got == ["b.wav", "s/c.wav", "a.flac", "s/a.flac", "B.WAV", "s/t/deep.wav"]

"""read_checkpoint: a weights-only load of a tagged checkpoint dict, with the file named in
every error and the caller's error type and hints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import se_data
from se_data import CHECKPOINT_FORMAT, CheckpointError, read_checkpoint


def test_reads_a_tagged_dict_with_its_tensors(tmp_path: Path) -> None:
    w = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    torch.save({"format": CHECKPOINT_FORMAT, "model": {"w": w}, "step": 4, "names": ["a", "b"]}, tmp_path / "c.pt")
    ck = read_checkpoint(tmp_path / "c.pt")
    assert ck["step"] == 4 and ck["names"] == ["a", "b"] and ck["format"] == "se-toolkit-checkpoint/1"
    assert ck["model"]["w"].dtype == torch.float64 and torch.equal(ck["model"]["w"], w)
    torch.save({"format": "other/2"}, tmp_path / "o.pt")
    assert read_checkpoint(str(tmp_path / "o.pt"), expected_format="other/2") == {"format": "other/2"}


def test_errors_name_the_file_and_use_the_callers_type_and_hints(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"checkpoint .*nowhere\.pt does not exist \(pass best\.pt\)$"):
        read_checkpoint(tmp_path / "nowhere.pt", missing_hint="pass best.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*junk\.pt: "):
        read_checkpoint(tmp_path / "junk.pt")
    torch.save({"format": "something-else/2"}, tmp_path / "other.pt")
    with pytest.raises(RuntimeError, match=r"other\.pt is not a checkpoint written by this toolkit \(format tag "
                                           r"'something-else/2', expected 'se-toolkit-checkpoint/1'\); try X$"):
        read_checkpoint(tmp_path / "other.pt", error=RuntimeError, format_hint="try X")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match=r"format tag 'list'"):  # CheckpointError is a ValueError
        read_checkpoint(tmp_path / "list.pt")


def test_no_code_in_the_file_runs(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"format": CHECKPOINT_FORMAT, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_checkpoint(tmp_path / "evil.pt")
    assert "read_checkpoint" in se_data.__all__ and issubclass(CheckpointError, ValueError)


def test_reader_of_names_the_right_tool():
    from se_data import reader_of

    assert reader_of("train_sgmse") == "tools/enhance_sgmse.py --ckpt (sgmse_cfg.load_model)"
    assert reader_of("train_bsdt").startswith("tools/enhance.py --ckpt")
    assert "student.nam" in reader_of("train_aa") and reader_of(None) == "the package of tools/None.py"

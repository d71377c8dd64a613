"""Reading the toolkit's training checkpoints safely: one loader for every package.

The trainers in ``tools/`` write their checkpoints (``best.pt``, ``last.pt``, ``model.pt``) as
plain-data dicts tagged ``"format": CHECKPOINT_FORMAT``. :func:`read_checkpoint` reads such a
file with ``torch.load(weights_only=True)`` (a file from someone else never runs code) and
checks the tag, so that ``bandsplit.load_model`` and ``sgmse_cfg.load_model`` refuse a wrong
file with the same messages; what a checkpoint must hold beyond the tag is the caller's business.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "read_checkpoint", "reader_of"]

#: Format tag of the toolkit's training checkpoints (``tools/_train.py`` writes it).
CHECKPOINT_FORMAT = "se-toolkit-checkpoint/1"


#: what reads the checkpoints of each of the toolkit's trainers
_READERS = {
    "train_bsdt": "tools/enhance.py --ckpt (bandsplit.load_model)",
    "train_sgmse": "tools/enhance_sgmse.py --ckpt (sgmse_cfg.load_model)",
    "train_aa": "its exported student.nam (aa_distill.load_nam; tools/analyze_aa.py)",
}


def reader_of(tool: Any) -> str:
    """Where a checkpoint written by ``tools/<tool>.py`` is meant to be read (for the message that
    refuses it elsewhere)."""
    return _READERS.get(str(tool), f"the package of tools/{tool}.py")


class CheckpointError(ValueError):
    """A file that is not a readable checkpoint of the expected format. The message names
    the file (and the fix, where the caller gives one)."""


def read_checkpoint(path: str | os.PathLike, *, expected_format: str = CHECKPOINT_FORMAT,
                    map_location: str | torch.device = "cpu", error: type[Exception] = CheckpointError,
                    missing_hint: str = "", format_hint: str = "") -> dict[str, Any]:
    """The dict stored in ``path``, loaded with ``torch.load(weights_only=True)`` onto
    ``map_location``, whose ``"format"`` entry is ``expected_format``.

    Raises:
        FileNotFoundError: ``path`` is not a file (``"checkpoint PATH does not exist"``, then
            `` (missing_hint)`` when given).
        error: (default :class:`CheckpointError`; a package passes its own error type) the
            file cannot be read (``"cannot read checkpoint PATH: ..."``), or holds no dict with
            that format tag (``"PATH is not a checkpoint written by this toolkit (format tag
            ..., expected ...)"``, then ``"; format_hint"`` when given).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} does not exist" + (f" ({missing_hint})" if missing_hint else ""))
    try:
        ck = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        raise error(f"cannot read checkpoint {p}: {e}") from e
    if not isinstance(ck, dict) or ck.get("format") != expected_format:
        found = ck.get("format") if isinstance(ck, dict) else type(ck).__name__
        raise error(f"{p} is not a checkpoint written by this toolkit (format tag {found!r}, expected "
                    f"{expected_format!r})" + (f"; {format_hint}" if format_hint else ""))
    return ck

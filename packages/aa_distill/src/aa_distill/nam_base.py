"""Common base of the PyTorch modules that mirror ``.nam`` models (WaveNet, LSTM).

A ``NamModel`` knows its sample rate, receptive field, the file's metadata and version, and
can export / import its weights in the exact flat order of the ``.nam`` 0.5.x format, so
that :func:`aa_distill.save_nam` and :func:`aa_distill.load_nam` round-trip bit-exactly.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

#: NAM's standard sample rate (``nam.data.STANDARD_SAMPLE_RATE``). Files written by
#: neural-amp-modeler before 0.5.4 (and most files in the wild, version "0.5.0") carry no
#: ``sample_rate`` key; NAM players then assume this rate, and so do we.
NAM_DEFAULT_SAMPLE_RATE: int = 48_000

#: The ``.nam`` version string that :func:`save_nam` writes for models created here
#: (what neural-amp-modeler 0.12.x exports; every NAM player reads 0.5.x).
NAM_WRITE_VERSION: str = "0.5.4"


class NamModel(nn.Module):
    """Base class: a ``[B, T] -> [B, T]`` audio model that maps to a ``.nam`` file.

    Attributes
    ----------
    sample_rate : int | float
        The rate (Hz) the model was trained at. Taken from the file's ``sample_rate`` key;
        where the file has none, :data:`NAM_DEFAULT_SAMPLE_RATE` (48 kHz) is assumed and
        :attr:`sample_rate_assumed` is ``True``.
    sample_rate_assumed : bool
        ``True`` when the rate was not stored in the file (then :func:`save_nam` also
        leaves the key out, so a read-write cycle keeps the file as it was).
    metadata : dict | None
        The file's ``metadata`` object (deep copy), or ``None`` where the file has none.
    nam_version : str
        The ``version`` string read from (or to be written to) the file.
    extra : dict
        Unknown top-level keys of the file, kept so that nothing is lost on re-export.
    """

    architecture: str = ""

    def __init__(self, *, sample_rate: float | None = None, metadata: dict | None = None,
                 nam_version: str = NAM_WRITE_VERSION, extra: dict | None = None) -> None:
        super().__init__()
        if sample_rate is None:
            self.sample_rate: float = NAM_DEFAULT_SAMPLE_RATE
            self.sample_rate_assumed = True
        else:
            if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)) \
                    or not np.isfinite(sample_rate) or sample_rate <= 0:
                raise ValueError(f"sample_rate must be a positive number of Hz, "
                                 f"got {sample_rate!r}")
            self.sample_rate = sample_rate  # kept as written (int or float) for exact re-export
            self.sample_rate_assumed = False
        self.metadata: dict | None = copy.deepcopy(metadata)
        self.nam_version = nam_version
        self.extra: dict[str, Any] = copy.deepcopy(extra) if extra else {}

    # -- to be provided by subclasses -------------------------------------------------
    @property
    def receptive_field(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def nam_config(self) -> dict:  # pragma: no cover - abstract
        """The ``config`` object of the ``.nam`` file (JSON-serialisable)."""
        raise NotImplementedError

    def _flat_tensors(self) -> Iterator[torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _trailing_weights(self) -> list[float]:
        """Floats written after the tensors (WaveNet: head_scale)."""
        return []

    def _set_trailing_weights(self, values: Sequence[float]) -> None:
        if len(values):
            raise AssertionError("unexpected trailing weights")

    # -- shared behaviour --------------------------------------------------------------
    @property
    def num_weights(self) -> int:
        """Length of the flat ``weights`` list in the ``.nam`` file."""
        return sum(t.numel() for t in self._flat_tensors()) + len(self._trailing_weights())

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def export_weights(self) -> np.ndarray:
        """All weights as one float64 vector in the ``.nam`` flat order (``[num_weights]``)."""
        parts = [t.detach().reshape(-1).to("cpu", torch.float64) for t in self._flat_tensors()]
        flat = torch.cat(parts).numpy() if parts else np.zeros(0)
        return np.concatenate([flat, np.asarray(self._trailing_weights(), dtype=np.float64)])

    @torch.no_grad()
    def import_weights(self, weights: Sequence[float] | np.ndarray | torch.Tensor) -> None:
        """Set every weight from a flat vector in the ``.nam`` order.

        Raises ``ValueError`` when the length differs from :attr:`num_weights`.
        """
        w = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        if w.ndim != 1 or w.numel() != self.num_weights:
            raise ValueError(f"expected {self.num_weights} weights for this configuration, "
                             f"got {w.numel()}")
        i = 0
        for t in self._flat_tensors():
            n = t.numel()
            t.copy_(w[i:i + n].view_as(t))
            i += n
        self._set_trailing_weights(w[i:].tolist())

    def _prepare_input(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor [B, T], got {type(x).__name__}")
        squeeze = x.ndim == 1
        if squeeze:
            x = x[None]
        if x.ndim != 2:
            raise ValueError(f"expected audio of shape [B, T] (or [T]), got {tuple(x.shape)}")
        return x.to(self.dtype), squeeze

    def extra_repr(self) -> str:
        assumed = " (assumed)" if self.sample_rate_assumed else ""
        return (f"sample_rate={self.sample_rate}{assumed}, receptive_field={self.receptive_field}, "
                f"num_weights={self.num_weights}")

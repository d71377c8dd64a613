"""NAM's LSTM (``.nam`` 0.5.x ``"architecture": "LSTM"``) on ``torch.nn.LSTM``.

File layout (neural-amp-modeler ``recurrent.py``, NeuralAmpModelerCore ``lstm.cpp``), per
layer ``l``: ``[W_ih | W_hh]`` as one ``(4H, in + H)`` row-major matrix (gate order i, f, g, o,
PyTorch's), then ONE bias of ``4H`` (``b_ih + b_hh`` merged), then the initial hidden state
``h0`` (``H``) and the initial cell state ``c0`` (``H``). After all layers: the linear head's
weight (``H``) and bias (1). There is no skip connection from input to output.

The model starts from the stored ``(h0, c0)`` (NAM's export writes the state reached after
a burn-in on silence), not from zeros.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .nam_base import NAM_WRITE_VERSION, NamModel


def lstm_num_weights(hidden_size: int, num_layers: int, input_size: int = 1) -> int:
    """Length of the flat weight list of an LSTM ``.nam`` file."""
    h = hidden_size
    if num_layers < 1:
        return h + 1
    # layer 0 reads the input, every later layer the previous one's h outputs (closed form: a
    # .nam file's num_layers is not trusted to be small)
    first, later = 4 * h * (input_size + h) + 6 * h, 4 * h * (2 * h) + 6 * h
    return first + (num_layers - 1) * later + h + 1


class NamLSTM(NamModel):
    """NAM LSTM: ``forward(x [B, T]) -> y [B, T]`` starting from the stored initial state.

    Parameters: ``hidden_size``, ``num_layers``, ``input_size`` (NAM supports 1 only).
    ``h0`` / ``c0`` are parameters of shape ``[num_layers, hidden_size]`` (zeros for a new
    model). ``receptive_field`` is 1 (NAM's convention for recurrent models): the state
    carries unbounded history, so give a tone a warm-up long enough for its onset to decay.
    """

    architecture = "LSTM"

    def __init__(self, hidden_size: int, num_layers: int = 1, input_size: int = 1, *,
                 sample_rate: float | None = None, metadata: dict | None = None,
                 nam_version: str = NAM_WRITE_VERSION, extra: dict | None = None) -> None:
        super().__init__(sample_rate=sample_rate, metadata=metadata, nam_version=nam_version,
                         extra=extra)
        for name, v in (("hidden_size", hidden_size), ("num_layers", num_layers),
                        ("input_size", input_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"LSTM '{name}' must be a positive integer, got {v!r}")
        if input_size != 1:
            raise ValueError(f"LSTM input_size must be 1 (mono audio), got {input_size}")
        self.hidden_size, self.num_layers, self.input_size = hidden_size, num_layers, input_size
        self.core = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)
        self.h0 = nn.Parameter(torch.zeros(num_layers, hidden_size))
        self.c0 = nn.Parameter(torch.zeros(num_layers, hidden_size))
        with torch.no_grad():  # the file stores one merged bias: keep b_hh at zero
            for layer in range(num_layers):
                getattr(self.core, f"bias_hh_l{layer}").zero_()

    @property
    def receptive_field(self) -> int:
        return 1

    def nam_config(self) -> dict:
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "num_layers": self.num_layers}

    @property
    def num_weights(self) -> int:
        return lstm_num_weights(self.hidden_size, self.num_layers, self.input_size)

    # The flat list merges [W_ih | W_hh] and b_ih + b_hh, so export/import are explicit.
    def export_weights(self) -> np.ndarray:
        """All weights as one float64 vector in the ``.nam`` flat order."""
        parts = []
        for layer in range(self.num_layers):
            w_ih = getattr(self.core, f"weight_ih_l{layer}")
            w_hh = getattr(self.core, f"weight_hh_l{layer}")
            b = getattr(self.core, f"bias_ih_l{layer}") + getattr(self.core, f"bias_hh_l{layer}")
            parts += [torch.cat([w_ih, w_hh], dim=1).reshape(-1), b, self.h0[layer],
                      self.c0[layer]]
        parts += [self.head.weight.reshape(-1), self.head.bias]
        return torch.cat([p.detach().to("cpu", torch.float64) for p in parts]).numpy()

    @torch.no_grad()
    def import_weights(self, weights: Sequence[float] | np.ndarray | torch.Tensor) -> None:
        """Set every weight (and h0, c0) from a flat vector in the ``.nam`` order."""
        w = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        if w.ndim != 1 or w.numel() != self.num_weights:
            raise ValueError(f"expected {self.num_weights} weights for this configuration, "
                             f"got {w.numel()}")
        h, i = self.hidden_size, 0

        def take(n: int) -> torch.Tensor:
            nonlocal i
            out = w[i:i + n]
            i += n
            return out

        for layer in range(self.num_layers):
            n_in = self.input_size if layer == 0 else h
            mat = take(4 * h * (n_in + h)).view(4 * h, n_in + h)
            getattr(self.core, f"weight_ih_l{layer}").copy_(mat[:, :n_in])
            getattr(self.core, f"weight_hh_l{layer}").copy_(mat[:, n_in:])
            getattr(self.core, f"bias_ih_l{layer}").copy_(take(4 * h))
            getattr(self.core, f"bias_hh_l{layer}").zero_()
            self.h0[layer].copy_(take(h))
            self.c0[layer].copy_(take(h))
        self.head.weight.copy_(take(h).view(1, h))
        self.head.bias.copy_(take(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, T]`` (or ``[T]``) audio at :attr:`sample_rate`; returns ``[B, T]``."""
        x, squeeze = self._prepare_input(x)
        b = x.shape[0]
        state = (self.h0[:, None, :].expand(-1, b, -1).contiguous(),
                 self.c0[:, None, :].expand(-1, b, -1).contiguous())
        feats, _ = self.core(x[..., None], state)
        out = self.head(feats)[..., 0]
        return out[0] if squeeze else out

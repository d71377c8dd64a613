"""ONNX export of BSRNN, BSDT and the ERB-UNet, and CPU inference with onnxruntime.

``export_onnx(model, path)`` writes a graph on the real/imaginary spectrogram: input ``spec``
``[B, 2, F, T]`` (``x[:, 0]`` real, ``x[:, 1]`` imaginary part of the model's complex STFT), output
``enhanced`` of the same shape, with dynamic batch ``B`` and length ``T``. The STFT and its
inverse stay outside the graph (the model's STFT settings are stored in the file's metadata).
For the ERB-UNet behind its 257-bin adapter (registry name ``"erb-unet"``) the graph is the net at
its own resolution (601 bins, n_fft 1200, hop 100): the adapter's waveform round trip runs around
it in :func:`load_onnx`'s result.

``load_onnx(path)`` returns an :class:`OnnxModel` (an ``nn.Module`` running the graph with
onnxruntime) that takes what the PyTorch model takes (complex ``[B, F, T]``; or real
``[B, 2, F, T]``) and carries ``.stft`` / ``.sample_rate``, so ``bandsplit.enhance(onnx_model,
audio, sr)`` works as with the PyTorch model. ``quantize_onnx(src, dst)`` writes an int8 dynamically
quantised copy. ``export_onnx(causal_bsrnn, path, streaming=True)`` writes one streaming step with
its state as inputs and outputs; ``load_onnx`` then returns an :class:`OnnxStreamer` with the
``push`` / ``flush`` API of :class:`bandsplit.BSRNNStreamer`.

Needs the ``onnx`` and ``onnxruntime`` packages (``pip install 'bandsplit[onnx]'``); importing
``bandsplit`` does not.

The export uses the TorchScript-based ``torch.onnx.export(..., dynamo=False)`` (opset 17 by
default) on torch 2.4 .. 2.11: on a frozen float32 copy of the model with its attention in the
explicit form (two softmax maps; no fused kernel to translate), input-independent graphs
(BSDT's inter-band masks) precomputed, and ``aten::rms_norm`` / ``aten::xlogy`` / ``aten::asinh`` written
out as ONNX ops. Memory of
the attention models' graphs grows as T² (the maps are explicit): enhance long files in chunks
(``enhance(..., chunk_seconds=...)``).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ._real_forward import RealSpectrogramModel, RealStreamStep, _net_of
from .bsdt import BSDT
from .bsrnn import BSRNN
from .erb_adapter import ERBUNetAdapter
from .erb_unet import ERBUNet, ERBUNet257
from .stft import SpectrogramTransform

__all__ = ["OnnxModel", "OnnxStreamer", "export_onnx", "load_onnx", "quantize_onnx"]

#: the metadata key holding the export's description (JSON) in the ONNX file
METADATA_KEY = "bandsplit"
_FORMAT = "bandsplit-onnx/1"
_INSTALL_HINT = "pip install 'bandsplit[onnx]' (the onnx and onnxruntime packages)"


def _require(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError as e:
        raise ImportError(f"bandsplit's ONNX support needs the {name} package: {_INSTALL_HINT}") from e


# ------------------------------------------------------------------------------------------ export
def _rms_norm_symbolic(g: Any, x: Any, shape: Any, weight: Any, eps: Any) -> Any:
    """``aten::rms_norm`` as ONNX ops (opset 17 has no RMSNormalization): ``x / sqrt(mean(x²) + eps) * w``."""
    from torch.onnx import symbolic_helper as sh  # noqa: PLC0415

    dims = sh._get_const(shape, "is", "normalized_shape")
    eps_value = sh._maybe_get_const(eps, "f")
    if sh._is_none(eps) or not isinstance(eps_value, float):
        eps_value = float(torch.finfo(torch.float32).eps)   # F.rms_norm's default for float32
    axes = list(range(-len(dims), 0))
    mean_sq = g.op("ReduceMean", g.op("Mul", x, x), axes_i=axes, keepdims_i=1)
    eps_t = g.op("Constant", value_t=torch.tensor(eps_value, dtype=torch.float32))
    y = g.op("Div", x, g.op("Sqrt", g.op("Add", mean_sq, eps_t)))
    return y if sh._is_none(weight) else g.op("Mul", y, weight)


def _xlogy_symbolic(g: Any, x: Any, y: Any) -> Any:
    """``aten::xlogy`` (the adaptive attention's map entropy) as ONNX ops: ``x·log(y)``, 0 where ``x == 0``."""
    zero = g.op("Constant", value_t=torch.tensor(0.0, dtype=torch.float32))
    return g.op("Where", g.op("Equal", x, zero), zero, g.op("Mul", x, g.op("Log", y)))


def _asinh_symbolic(g: Any, x: Any) -> Any:
    """``aten::asinh`` (the adaptive attention's offset statistics): ONNX's own ``Asinh``."""
    return g.op("Asinh", x)


#: ops the TorchScript exporter of some torch versions cannot translate at opset 17
_SYMBOLICS = {"aten::rms_norm": _rms_norm_symbolic, "aten::xlogy": _xlogy_symbolic,
              "aten::special_xlogy": _xlogy_symbolic, "aten::asinh": _asinh_symbolic}


@contextlib.contextmanager
def _export_symbolics(opset: int) -> Iterator[None]:
    for name, fn in _SYMBOLICS.items():
        torch.onnx.register_custom_op_symbolic(name, fn, opset)
    try:
        yield
    finally:
        for name in _SYMBOLICS:
            torch.onnx.unregister_custom_op_symbolic(name, opset)


def _frozen_copy(model: nn.Module) -> nn.Module:
    """A float32, CPU, eval, no-grad copy ready for tracing (see the module docstring)."""
    net = copy.deepcopy(model).cpu().float().eval().requires_grad_(False)
    for mod in net.modules():
        if hasattr(mod, "impl") and isinstance(getattr(mod, "impl"), str):
            mod.impl = "naive"              # attention: explicit maps (no SDPA to translate)
        if hasattr(mod, "block_elements"):
            mod.block_elements = 1 << 62    # no memory-bounding loops over frame blocks
        if callable(getattr(mod, "graph_mask", None)):
            mask = mod.graph_mask()         # input-independent inter-band graph: a constant
            mod.graph_mask = (lambda m=mask: m)
        if isinstance(mod, BSRNN):
            mod.inference_chunk = 0         # one LSTM call over all frames
    return net


def _stft_info(model: nn.Module) -> dict[str, Any]:
    net = _net_of(model)
    if isinstance(net, ERBUNet):
        s = net.transform
    else:
        s = net.stft
    return {"n_fft": s.n_fft, "hop_length": s.hop_length, "sample_rate": s.sample_rate, "window": "hann",
            "center": True, "num_freqs": s.num_freqs}


def _model_info(model: nn.Module) -> dict[str, Any]:
    net = _net_of(model)
    kind = ("bsrnn" if isinstance(net, BSRNN) else "bsdt" if isinstance(net, BSDT)
            else "erb-unet-257" if isinstance(net, ERBUNet257) else "erb-unet")
    info: dict[str, Any] = {"kind": kind, "class": type(model).__name__}
    config = getattr(model, "config", None)
    if isinstance(config, dict):
        try:
            info["config"] = json.loads(json.dumps(config))
        except (TypeError, ValueError):
            pass
    if isinstance(model, ERBUNetAdapter):
        info["adapter"] = {"io_n_fft": model.io.n_fft, "io_hop": model.io.hop_length,
                           "sample_rate": model.sample_rate, "edge_floor": model.edge_floor}
    if isinstance(net, BSRNN):
        info.update(num_channel=net.num_channel, num_layer=net.num_layer, num_bands=len(net.band_widths),
                    causal=net.causal)
    return info


def export_onnx(model: nn.Module, path: str | os.PathLike, *, streaming: bool = False, opset: int = 17,
                example_frames: int = 64, batch_size: int = 1) -> Path:
    """Write ``model`` as an ONNX graph on real/imaginary spectrograms; returns the path.

    Args:
        model: a :class:`BSRNN`, :class:`BSDT`, :class:`ERBUNet257`, :class:`ERBUNet` or an
            :class:`ERBUNetAdapter` around an ERBUNet (any ``bandsplit.build_model`` /
            ``load_model`` model). It is not changed (a frozen float32 copy is traced).
        path: the ``.onnx`` file to write (replaced if it exists).
        streaming: for a causal BSRNN only: export one streaming step of one frame (input
            ``frames`` ``[batch_size, 2, F, 1]`` and the state ``h``, ``c``, ``x_prev``,
            ``taps_prev``; outputs ``y`` and the new state, see
            :class:`~bandsplit._real_forward.RealStreamStep`), with static shapes (onnxruntime then
            folds every shape computation: about 15 % faster per frame than dynamic shapes), which
            :func:`load_onnx` runs as an :class:`OnnxStreamer`.
        batch_size: streams per step of a streaming graph (static; the offline graph's batch is
            dynamic).
        opset: ONNX opset (17 by default: what both the oldest and the newest supported torch
            export; LayerNormalization needs 17).
        example_frames: frames of the example input traced (any length works afterwards).

    The graph's input ``spec`` / output ``enhanced`` are ``[B, 2, F, T]`` float32 with dynamic
    ``B`` and ``T``. Its metadata (key ``"bandsplit"``, JSON) records the model kind and config,
    the STFT (n_fft, hop_length, sample_rate, periodic Hann, centred) and, for the adapter, the
    257-bin STFT around the net. Raises ``TypeError`` for other models and ``ValueError`` for
    ``streaming=True`` on anything but a causal BSRNN.
    """
    onnx = _require("onnx")
    net = _net_of(model)
    if not isinstance(net, (BSRNN, BSDT, ERBUNet)):
        raise TypeError(f"export_onnx takes a BSRNN, BSDT, ERBUNet, ERBUNet257 or ERBUNetAdapter(ERBUNet), "
                        f"got {type(model).__name__}")
    if any(type(m).__name__ == "AdaptiveDifferentialAttention" for m in net.modules()):
        raise ValueError("export_onnx cannot export attention='adaptive' (diffattn.AdaptiveDifferentialAttention): "
                         "its attention-map statistics use the traced length as a constant, so the graph would be "
                         "wrong at any other length; export the 'diff' or 'standard' attention ERB-UNet")
    if isinstance(example_frames, bool) or int(example_frames) != example_frames or example_frames < 2:
        raise ValueError(f"example_frames must be an integer >= 2, got {example_frames!r}")
    if streaming and not (isinstance(model, BSRNN) and model.causal):
        raise ValueError("streaming=True exports a causal BSRNN's streaming step; got "
                         f"{type(model).__name__}{'' if not isinstance(model, BSRNN) else ' with causal=False'} "
                         f"(only BSRNN(..., causal=True) streams)")
    path = Path(path)
    frozen = _frozen_copy(net)
    stft = _stft_info(model)
    f, t = stft["num_freqs"], int(example_frames)
    gen = torch.Generator().manual_seed(0)
    info = _model_info(model)
    if streaming:
        assert isinstance(frozen, BSRNN)
        wrapper: nn.Module = RealStreamStep(frozen)
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        b, k, n2 = int(batch_size), len(frozen.band_widths), 2 * frozen.num_channel
        state = torch.zeros(frozen.num_layer, b * k, n2)
        args: tuple[Tensor, ...] = (torch.randn(b, 2, f, 1, generator=gen), state, state.clone(),
                                    torch.randn(b, 2, f, 2, generator=gen), torch.randn(b, f, 1, 3, 2, generator=gen))
        inputs = ["frames", "h", "c", "x_prev", "taps_prev"]
        outputs = ["y", "h_out", "c_out", "x_prev_out", "taps_prev_out"]
        dyn = None
        info["streaming"] = {"batch_size": b, "frames_per_step": 1, "state_shape": [frozen.num_layer, b * k, n2]}
    else:
        wrapper = RealSpectrogramModel(frozen)
        args = (torch.randn(1, 2, f, t, generator=gen),)
        inputs, outputs = ["spec"], ["enhanced"]
        dyn = {"spec": {0: "batch", 3: "frames"}, "enhanced": {0: "batch", 3: "frames"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), _export_symbolics(opset), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints, the exporter's deprecation note
        torch.onnx.export(wrapper, args, str(path), input_names=inputs, output_names=outputs, dynamic_axes=dyn,
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    proto = onnx.load(str(path))
    meta = {"format": _FORMAT, "model": info, "stft": stft, "layout": "[B, 2 (real, imaginary), F, T]",
            "torch": torch.__version__, "streaming": bool(streaming)}
    _set_metadata(proto, meta)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def _set_metadata(proto: Any, meta: dict[str, Any]) -> None:
    for p in list(proto.metadata_props):
        if p.key == METADATA_KEY:
            proto.metadata_props.remove(p)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta, sort_keys=True)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The export's description stored in an ONNX file by :func:`export_onnx` (a dict)."""
    onnx = _require("onnx")
    proto = onnx.load(str(path), load_external_data=False)
    for p in proto.metadata_props:
        if p.key == METADATA_KEY:
            return json.loads(p.value)
    raise ValueError(f"{path} holds no bandsplit metadata (key {METADATA_KEY!r}): not written by "
                     f"bandsplit.export_onnx")


def quantize_onnx(src: str | os.PathLike, dst: str | os.PathLike, *, per_channel: bool = False,
                  op_types: tuple[str, ...] | None = None) -> Path:
    """Write an int8 dynamically quantised copy of an exported graph (onnxruntime's
    ``quantize_dynamic``: int8 weights of MatMul / Gemm / LSTM / ..., activations quantised per
    call); the metadata is kept and marked ``"quantization": "int8-dynamic"``. ``op_types``
    restricts the quantised op types (e.g. ``("MatMul",)``). Returns ``dst``."""
    onnx = _require("onnx")
    _require("onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: PLC0415

    meta = read_metadata(src)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"weight_type": QuantType.QInt8, "per_channel": per_channel}
    if op_types is not None:
        kwargs["op_types_to_quantize"] = list(op_types)
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)   # its root-logger notes (pre-processing advice, skipped int tensors)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(src), str(dst), **kwargs)
    finally:
        logging.disable(previous)
    proto = onnx.load(str(dst))
    meta["quantization"] = {"kind": "int8-dynamic", "per_channel": per_channel,
                            "op_types": list(op_types) if op_types is not None else "default"}
    _set_metadata(proto, meta)
    onnx.save(proto, str(dst))
    return dst


# ------------------------------------------------------------------------------------------ runtime
def _session(path: str | os.PathLike, threads: int | None) -> Any:
    ort = _require("onnxruntime")
    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class OnnxModel(nn.Module):
    """An exported graph run by onnxruntime on the CPU, with the PyTorch model's interface.

    ``forward(x)``: complex ``[B, F, T]`` -> complex ``[B, F, T]`` (as the PyTorch model), or
    real ``[B, 2, F, T]`` -> real ``[B, 2, F, T]`` (the graph's own layout; also NumPy arrays).
    Tensors come back on the input's device in its dtype (the graph computes in float32).
    Carries ``.stft`` (:class:`SpectrogramTransform` from the file's metadata), ``.sample_rate``,
    ``.n_fft``, ``.hop`` (what :class:`ERBUNetAdapter` and :func:`bandsplit.enhance` read),
    ``.metadata`` and ``.session`` (the ``onnxruntime.InferenceSession``). ``threads``: onnxruntime's
    intra-op threads (default: its choice, one per core).
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.metadata = read_metadata(path)
        if self.metadata.get("streaming"):
            raise ValueError(f"{path} is a streaming step (export_onnx(..., streaming=True)): load it with "
                             f"bandsplit.load_onnx, which returns an OnnxStreamer")
        s = self.metadata["stft"]
        self.stft = SpectrogramTransform(s["n_fft"], s["hop_length"], s["sample_rate"])
        self.sample_rate, self.n_fft, self.hop = self.stft.sample_rate, self.stft.n_fft, self.stft.hop_length
        self.num_freqs = self.stft.num_freqs
        self.session = _session(path, threads)

    def run(self, spec: Any) -> Any:
        """The graph on a float32 NumPy array ``[B, 2, F, T]`` -> NumPy ``[B, 2, F, T]``."""
        import numpy as np  # noqa: PLC0415

        return self.session.run(None, {"spec": np.ascontiguousarray(spec, dtype=np.float32)})[0]

    def forward(self, x: Any) -> Any:
        if not isinstance(x, Tensor):
            return self.run(x)
        if x.is_complex():
            if x.dim() != 3 or x.shape[1] != self.num_freqs:
                raise ValueError(f"OnnxModel expects a complex STFT [B, {self.num_freqs}, T], got {tuple(x.shape)}")
            real = torch.view_as_real(x).permute(0, 3, 1, 2)
            y = torch.from_numpy(self.run(real.detach().cpu().numpy()))
            return torch.view_as_complex(y.permute(0, 2, 3, 1).contiguous().to(x.real.dtype)).to(x.device)
        if x.dim() != 4 or x.shape[1] != 2 or x.shape[2] != self.num_freqs:
            raise ValueError(f"OnnxModel expects real/imaginary [B, 2, {self.num_freqs}, T] (or complex "
                             f"[B, {self.num_freqs}, T]), got {tuple(x.shape)}")
        return torch.from_numpy(self.run(x.detach().cpu().numpy())).to(x.device, x.dtype)

    def extra_repr(self) -> str:
        return f"path={str(self.path)!r}, model={self.metadata['model'].get('kind')!r}"


class OnnxStreamer:
    """A causal BSRNN's exported streaming step run by onnxruntime: the API of
    :class:`bandsplit.BSRNNStreamer` (``push`` / ``flush`` / ``reset``, complex frames ``[B, F, n]``
    or ``[F, n]``, one frame of delay), with the state kept as NumPy arrays between calls.
    ``B`` is the graph's ``batch_size`` (static, set at export); each pushed frame is one run of
    the graph. ``threads``: onnxruntime's intra-op threads (1 for a one-core real-time budget)."""

    def __init__(self, path: str | os.PathLike, *, threads: int | None = 1) -> None:
        self.path = Path(path)
        self.metadata = read_metadata(path)
        if not self.metadata.get("streaming"):
            raise ValueError(f"{path} is an offline graph; OnnxStreamer runs export_onnx(..., streaming=True) files")
        s = self.metadata["stft"]
        self.stft = SpectrogramTransform(s["n_fft"], s["hop_length"], s["sample_rate"])
        self.sample_rate = self.stft.sample_rate
        info = self.metadata["model"]
        self.num_layer, self.num_bands = int(info["num_layer"]), int(info["num_bands"])
        self.hidden = 2 * int(info["num_channel"])
        self.batch_size = int(self.metadata["model"]["streaming"]["batch_size"])
        self.n_freq = self.stft.num_freqs
        self.session = _session(path, threads)
        self.reset()

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency in samples: the STFT window plus one hop of look-ahead."""
        return self.stft.n_fft + self.stft.hop_length

    def reset(self) -> None:
        """Start a new stream."""
        self._state: dict[str, Any] | None = None
        self._batch: int | None = None
        self._squeeze = False
        self._started = False
        self.frames_in = 0
        self.frames_out = 0

    def _init_state(self, b: int) -> None:
        import numpy as np  # noqa: PLC0415

        z = np.zeros
        f = self.n_freq
        self._state = {"h": z((self.num_layer, b * self.num_bands, self.hidden), np.float32),
                       "c": z((self.num_layer, b * self.num_bands, self.hidden), np.float32),
                       "x_prev": z((b, 2, f, 2), np.float32), "taps_prev": z((b, f, 1, 3, 2), np.float32)}

    def push(self, frames: Tensor) -> Tensor:
        """Next ``n`` complex frames ``[B, F, n]`` -> the output frames they complete (one behind)."""
        import numpy as np  # noqa: PLC0415

        if not isinstance(frames, Tensor) or not frames.is_complex() or frames.dim() not in (2, 3):
            raise ValueError(f"push expects complex STFT frames [B, F={self.n_freq}, n] (or [F, n])")
        squeeze = frames.dim() == 2
        x = frames.unsqueeze(0) if squeeze else frames
        if x.shape[1] != self.n_freq:
            raise ValueError(f"push expects {self.n_freq} frequency bins, got {x.shape[1]}")
        if self._batch is None:
            if x.shape[0] != self.batch_size:
                raise ValueError(f"{self.path} streams batches of {self.batch_size} (export_onnx(..., streaming=True, "
                                 f"batch_size=...)); got frames of shape {tuple(frames.shape)}")
            self._batch, self._squeeze = x.shape[0], squeeze
            self._init_state(x.shape[0])
        elif x.shape[0] != self._batch or squeeze != self._squeeze:
            raise ValueError(f"this stream has batch {self._batch}; got frames {tuple(frames.shape)} (reset() first)")
        n = x.shape[-1]
        out_dtype = x.dtype
        if n == 0:
            y = x[..., :0]
            return y.squeeze(0) if squeeze else y
        assert self._state is not None
        real = np.ascontiguousarray(torch.view_as_real(x.detach().cpu()).permute(0, 3, 1, 2).numpy(), dtype=np.float32)
        ys = []
        for t in range(n):   # the graph takes one frame per step (static shapes)
            y, h, c, xp, tp = self.session.run(None, {"frames": real[..., t:t + 1], **self._state})
            self._state = {"h": h, "c": c, "x_prev": xp, "taps_prev": tp}
            ys.append(y)
        y = np.concatenate(ys, axis=-1) if n > 1 else ys[0]
        if not self._started:   # the step's first output is frame -1 (zero)
            y, self._started = y[..., 1:], True
        self.frames_in += n
        self.frames_out += y.shape[-1]
        if y.shape[-1] == 0:
            out = torch.zeros(y.shape[0], self.n_freq, 0, dtype=out_dtype)
        else:
            out = torch.view_as_complex(torch.from_numpy(y).permute(0, 2, 3, 1).contiguous()).to(out_dtype)
        return out.squeeze(0) if squeeze else out

    def flush(self) -> Tensor:
        """The last output frame (zero look-ahead) ``[B, F, 1]``; then :meth:`reset`."""
        if not self._started or self._state is None:
            out = torch.zeros(self._batch or 1, self.n_freq, 0, dtype=torch.complex64)
        else:
            tp, xp = self._state["taps_prev"][:, :, 0], self._state["x_prev"]   # [B, F, 3, 2], [B, 2, F, 2]
            m = torch.view_as_complex(torch.from_numpy(tp).contiguous())              # [B, F, 3]
            xc = torch.view_as_complex(torch.from_numpy(xp).permute(0, 2, 3, 1).contiguous())  # [B, F, 2]
            out = (m[..., 0] * xc[..., 0] + m[..., 1] * xc[..., 1]).unsqueeze(-1)
        squeeze = self._squeeze
        self.reset()
        return out.squeeze(0) if squeeze else out


def load_onnx(path: str | os.PathLike, *, threads: int | None = None) -> nn.Module | OnnxStreamer:
    """Load a graph written by :func:`export_onnx` (or :func:`quantize_onnx`) for CPU inference.

    Returns an :class:`OnnxModel` with the PyTorch model's interface (complex ``[B, F, T]`` in and
    out, ``.stft``, ``.sample_rate``: ``bandsplit.enhance(model, audio, sr)`` works); for an
    exported ``ERBUNetAdapter`` the ``OnnxModel`` of its net wrapped in the same adapter (complex
    257 bins in and out); for a streaming step an :class:`OnnxStreamer` (``threads`` 1 unless
    given). ``threads``: onnxruntime's intra-op threads.
    """
    meta = read_metadata(path)
    if meta.get("streaming"):
        return OnnxStreamer(path, threads=1 if threads is None else threads)
    model = OnnxModel(path, threads=threads)
    adapter = meta["model"].get("adapter")
    if adapter:
        return ERBUNetAdapter(model, io_n_fft=adapter["io_n_fft"], io_hop=adapter["io_hop"],
                              sample_rate=adapter["sample_rate"], edge_floor=adapter["edge_floor"])
    return model

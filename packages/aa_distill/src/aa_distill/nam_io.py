"""Read and write Neural Amp Modeler ``.nam`` files (format 0.5.x: WaveNet and LSTM).

A ``.nam`` file is JSON: ``{"version", "metadata", "architecture", "config", "weights",
"sample_rate"}`` (``metadata`` and ``sample_rate`` are optional; files from before 0.5.4 have
no ``sample_rate`` and NAM assumes 48 kHz). ``weights`` is one flat list of floats in the
order documented in :mod:`aa_distill.nam_wavenet` and :mod:`aa_distill.nam_lstm`.

``load_nam`` validates everything it reads and raises :class:`NamFormatError` (naming the
file) for malformed JSON, missing keys, other versions (only 0.5.x is read: 0.6/0.7 files
changed the WaveNet keys), unknown architectures, inconsistent configurations, a weight count
that does not match the configuration, and non-finite weights. ``save_nam`` writes a file
that ``load_nam`` (and NAM players) read back bit-exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import NamFormatError
from .nam_base import NamModel
from .nam_lstm import NamLSTM, lstm_num_weights
from .nam_wavenet import LayerArrayConfig, NamWaveNet, check_layer_chain, wavenet_num_weights

SUPPORTED_ARCHITECTURES: tuple[str, ...] = ("WaveNet", "LSTM")
_TOP_KEYS = ("version", "metadata", "architecture", "config", "weights", "sample_rate")
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def nam_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes: the identity a student records for its teacher."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_nam(path: str | os.PathLike, dtype: torch.dtype = torch.float32,
             device: torch.device | str | None = None) -> NamModel:
    """Read a ``.nam`` 0.5.x file into a :class:`NamWaveNet` or :class:`NamLSTM` (eval mode).

    ``dtype`` (float32 or float64) is the dtype of the returned module's parameters and of
    its output. The module records ``sample_rate`` (48 kHz assumed where the file has none:
    see ``sample_rate_assumed``), ``receptive_field``, ``metadata`` and ``nam_version``.
    Anything unusable in the file is a :class:`NamFormatError` naming it, including a weight
    beyond float32's range when ``dtype`` is float32 (it would be inf there).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise NamFormatError(f"{path}: not a text (UTF-8 JSON) .nam file ({e})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise NamFormatError(f"{path}: malformed JSON ({e.msg} at line {e.lineno}, column "
                             f"{e.colno}); a .nam file is a JSON object written by NAM") from None
    except (RecursionError, ValueError) as e:  # nesting too deep for the parser; an integer of > 4300 digits
        raise NamFormatError(f"{path}: not a usable JSON document ({e}); a .nam file is a JSON object "
                             f"written by NAM") from None
    return model_from_nam_dict(doc, source=str(path), dtype=dtype, device=device)


def _fail(source: str, msg: str) -> NamFormatError:
    return NamFormatError(f"{source}: {msg}")


def _check_version(version: Any, source: str) -> str:
    m = _VERSION_RE.match(version) if isinstance(version, str) else None
    if m is None:
        raise _fail(source, f"'version' must be a string like \"0.5.4\", got {version!r}")
    if (int(m.group(1)), int(m.group(2))) != (0, 5):
        raise _fail(source, f"unsupported .nam version {version} (this reader supports 0.5.x, "
                            f"which every NAM player reads; 0.6/0.7 changed the WaveNet "
                            f"configuration keys): re-export the model as 0.5.x")
    return version


def _is_finite(v: int | float) -> bool:
    """``math.isfinite`` that is False (not an OverflowError) for an integer beyond a float's range."""
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _check_weights(weights: Any, source: str) -> np.ndarray:
    if not isinstance(weights, list) or any(isinstance(w, bool) or not isinstance(w, (int, float))
                                            for w in weights):
        raise _fail(source, "'weights' must be a flat list of numbers")
    too_large = next((i for i, w in enumerate(weights) if not _is_finite(w) and isinstance(w, int)), None)
    if too_large is not None:  # JSON integers are unbounded; float64 is not
        magnitude = int(abs(weights[too_large]).bit_length() * math.log10(2))
        raise _fail(source, f"weight {too_large} is an integer too large for a float (about "
                            f"10^{magnitude}); the model cannot be used")
    arr = np.asarray(weights, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise _fail(source, f"{bad.size} non-finite weight(s) (first at index {bad[0]}: "
                            f"{arr[bad[0]]}); the model cannot be used")
    return arr


def _check_config_keys(config: Any, arch: str, keys: tuple[str, ...], source: str) -> None:
    """Raise :class:`NamFormatError` unless ``config`` is an object whose keys are among ``keys``."""
    if not isinstance(config, dict):
        raise _fail(source, f"{arch} 'config' must be an object")
    unknown = sorted(set(config) - set(keys))
    if unknown:
        listed = ", ".join(f"'{k}'" for k in keys)
        raise _fail(source, f"unknown {arch} config keys {unknown} (a 0.5.x {arch} config "
                            f"has {listed})")


def _check_count(arch: str, expected: int, got: int, source: str) -> None:
    if got != expected:
        raise _fail(source, f"weight count does not match the {arch} configuration: expected "
                            f"{expected}, got {got}")


def _build_wavenet(config: Any, source: str, n_weights: int, **kw: Any) -> NamWaveNet:
    """Validate a WaveNet ``config`` and its weight count ``n_weights``, then build the module
    (the count is checked first: a config declaring a huge model never allocates it)."""
    _check_config_keys(config, "WaveNet", ("layers", "head", "head_scale"), source)
    if "layers" not in config or not isinstance(config["layers"], list):
        raise _fail(source, "WaveNet config needs a 'layers' list")
    if config.get("head") is not None:
        raise _fail(source, "a non-null WaveNet 'head' is not supported (NAM's own players "
                            "reject it as well)")
    head_scale = config.get("head_scale", 1.0)
    try:
        layers = []
        for i, la in enumerate(config["layers"]):
            if not isinstance(la, dict):
                raise ValueError(f"layer array {i} must be an object")
            try:
                layers.append(LayerArrayConfig.from_dict(la))
            except (TypeError, ValueError) as e:
                raise ValueError(f"layer array {i}: {e}") from None
        check_layer_chain(layers)
    except (TypeError, ValueError) as e:
        raise _fail(source, f"invalid WaveNet configuration: {e}") from None
    _check_count("WaveNet", wavenet_num_weights(layers), n_weights, source)
    try:
        return NamWaveNet(layers, head_scale, **kw)
    except (TypeError, ValueError) as e:
        raise _fail(source, f"invalid WaveNet configuration: {e}") from None


def _build_lstm(config: Any, source: str, n_weights: int, **kw: Any) -> NamLSTM:
    """Validate an LSTM ``config`` and its weight count ``n_weights``, then build the module
    (the count is checked before anything is allocated)."""
    _check_config_keys(config, "LSTM", ("input_size", "hidden_size", "num_layers"), source)
    if "hidden_size" not in config:
        raise _fail(source, "LSTM config needs 'hidden_size'")
    hidden = config["hidden_size"]
    layers, n_in = config.get("num_layers", 1), config.get("input_size", 1)
    if type(n_in) is int and n_in == 1 and all(type(v) is int and v >= 1 for v in (hidden, layers)):
        _check_count("LSTM", lstm_num_weights(hidden, layers, n_in), n_weights, source)
    try:  # NamLSTM refuses any other values before it allocates anything
        return NamLSTM(hidden, layers, n_in, **kw)
    except (TypeError, ValueError) as e:
        raise _fail(source, f"invalid LSTM configuration: {e}") from None


def model_from_nam_dict(doc: Any, source: str = "<.nam document>",
                        dtype: torch.dtype = torch.float32,
                        device: torch.device | str | None = None) -> NamModel:
    """Build the module for an already-parsed ``.nam`` JSON document (see :func:`load_nam`)."""
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if not isinstance(doc, dict):
        raise _fail(source, f"a .nam file must hold a JSON object, got {type(doc).__name__}")
    missing = [k for k in ("version", "architecture", "config", "weights") if k not in doc]
    if missing:
        raise _fail(source, f"missing key(s) {missing}")
    version = _check_version(doc["version"], source)
    arch = doc["architecture"]
    if arch not in SUPPORTED_ARCHITECTURES:
        raise _fail(source, f"unsupported architecture {arch!r} (supported: "
                            f"{', '.join(SUPPORTED_ARCHITECTURES)})")
    metadata = doc.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _fail(source, "'metadata' must be an object or null")
    extra = {k: v for k, v in doc.items() if k not in _TOP_KEYS}
    sample_rate = doc.get("sample_rate")
    if "sample_rate" in doc and sample_rate is None:
        extra["sample_rate"] = None  # keep an explicit null on re-export
    if sample_rate is not None and (isinstance(sample_rate, bool)
                                    or not isinstance(sample_rate, (int, float))
                                    or not _is_finite(sample_rate) or sample_rate <= 0):
        raise _fail(source, f"'sample_rate' must be a positive number of Hz, got {sample_rate!r}")
    weights = _check_weights(doc["weights"], source)
    kw = dict(sample_rate=sample_rate, metadata=metadata, nam_version=version, extra=extra)
    if arch == "WaveNet":
        model: NamModel = _build_wavenet(doc["config"], source, weights.size, **kw)
    else:
        model = _build_lstm(doc["config"], source, weights.size, **kw)
    if isinstance(model, NamWaveNet):
        trailing = float(weights[-1])
        if not math.isclose(trailing, model.head_scale, rel_tol=1e-6, abs_tol=1e-12):
            raise _fail(source, f"the last weight ({trailing!r}) must repeat config head_scale "
                                f"({model.head_scale!r}); NAM's Python and C++ players would "
                                f"disagree on this file")
    if dtype == torch.float32:
        with np.errstate(over="ignore"):
            big = np.flatnonzero(np.isinf(weights.astype(np.float32)))
        if big.size:  # finite in the file, inf in a float32 module
            raise _fail(source, f"{big.size} weight(s) beyond float32's range (first at index {big[0]}: "
                                f"{float(weights[big[0]])!r}) would be inf in a float32 model; load it with "
                                f"dtype=torch.float64")
    model.to(device=device, dtype=dtype)
    model.import_weights(weights)
    model.eval()
    return model


def nam_document(model: NamModel, metadata: dict | None = None) -> dict:
    """The ``.nam`` JSON document of ``model`` (key order as NAM writes it).

    ``metadata`` entries are merged over ``model.metadata`` (a key given here wins).
    """
    if not isinstance(model, NamModel):
        raise TypeError(f"expected a NamWaveNet or NamLSTM, got {type(model).__name__}")
    meta = None
    if model.metadata is not None or metadata is not None:
        meta = {**(model.metadata or {}), **(metadata or {})}
    weights = model.export_weights()
    bad = np.flatnonzero(~np.isfinite(weights))
    if bad.size:
        raise NamFormatError(f"refusing to write a model with {bad.size} non-finite weight(s) "
                             f"(first at flat index {bad[0]})")
    doc: dict[str, Any] = {"version": model.nam_version}
    if meta is not None:
        doc["metadata"] = meta
    doc["architecture"] = model.architecture
    doc["config"] = model.nam_config()
    doc["weights"] = weights.tolist()
    if not model.sample_rate_assumed:
        doc["sample_rate"] = model.sample_rate
    for k, v in model.extra.items():
        doc.setdefault(k, v)
    return doc


def _default_file_mode() -> int:
    """``0o666`` less the process umask: the mode a plainly created file gets."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def save_nam(model: NamModel, path: str | os.PathLike, metadata: dict | None = None, *,
             overwrite: bool = False, indent: int | None = None) -> Path:
    """Write ``model`` as a ``.nam`` 0.5.x file; returns the path.

    ``metadata`` entries are merged over the model's own metadata (e.g. a student records
    ``{"teacher_sha256": nam_sha256(teacher_path), "teacher_sample_rate": 48000}``). An
    existing file is refused unless ``overwrite=True``; the file is written atomically.
    """
    path = Path(path)
    doc = nam_document(model, metadata)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    try:
        text = json.dumps(doc, indent=indent, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise NamFormatError(f"{path}: metadata is not JSON-serialisable ({e})") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _default_file_mode())  # mkstemp's 0600 -> what open() would give (umask)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path

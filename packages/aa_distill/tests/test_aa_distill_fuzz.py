"""Property-based (hypothesis) fuzzing of the ``.nam`` reader.

Starting from small valid files that ``save_nam`` itself writes (a two-array WaveNet and a
two-layer LSTM), keys are dropped, values replaced by JSON of other types and sizes, weights
cut, extended or made NaN, the architecture renamed, and the text cut or damaged; random and
non-UTF-8 bytes are read too. ``load_nam`` / ``model_from_nam_dict`` either return a usable
model or raise :class:`NamFormatError` naming the file: never a raw ``KeyError``,
``OverflowError``, ``RecursionError`` or an allocation error. Examples are derandomized and
few (``SE_FUZZ_EXAMPLES=N`` runs N per test); hypothesis' caches go to the temp folder, not a
``.hypothesis`` folder in the checkout.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from aa_distill import (
    LayerArrayConfig,
    NamFormatError,
    NamLSTM,
    NamModel,
    NamWaveNet,
    load_nam,
    model_from_nam_dict,
    save_nam,
)


def _fuzz(default_examples: int) -> settings:
    """Bounded, deterministic settings: ``default_examples`` (or ``$SE_FUZZ_EXAMPLES``) examples."""
    raw = os.environ.get("SE_FUZZ_EXAMPLES", "").strip()
    if raw and (not raw.isdigit() or int(raw) < 1):
        raise pytest.UsageError(f"SE_FUZZ_EXAMPLES must be a positive integer, got {raw!r}")
    if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):  # hypothesis' caches: not in the checkout
        set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "se-toolkit-hypothesis")
    return settings(max_examples=int(raw) if raw else default_examples, derandomize=True, database=None,
                    deadline=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


_names = itertools.count()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory):
    """A folder for the examples' files (function-scoped tmp_path does not mix with @given)."""
    return tmp_path_factory.mktemp("nam_fuzz")


def _written_by_save_nam(model: NamModel, folder) -> str:
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.5, 0.5)
    p = save_nam(model, folder / f"{model.architecture}.nam", {"name": "fuzz seed"})
    return p.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def seeds(scratch) -> dict[str, str]:
    """The text of small valid .nam files written by the package."""
    wavenet = NamWaveNet([LayerArrayConfig(1, 1, 2, 3, 2, (1, 2)),
                          LayerArrayConfig(3, 1, 1, 2, 2, (1,), "ReLU", gated=True, head_bias=False)],
                         head_scale=0.25, sample_rate=48_000)
    return {"WaveNet": _written_by_save_nam(wavenet, scratch),
            "LSTM": _written_by_save_nam(NamLSTM(hidden_size=2, num_layers=2), scratch)}


def _read_or_nam_format_error(text_or_bytes: str | bytes, folder) -> NamModel | None:
    p = folder / f"n{next(_names)}.nam"
    if isinstance(text_or_bytes, str):
        p.write_text(text_or_bytes, encoding="utf-8")
    else:
        p.write_bytes(text_or_bytes)
    try:
        m = load_nam(p)
    except NamFormatError as e:
        assert p.name in str(e), f"the error does not name the file: {e}"
        return None
    assert isinstance(m, NamModel) and not m.training
    w = m.export_weights()
    assert w.ndim == 1 and w.size == m.num_weights and np.isfinite(w).all()
    return m


# JSON values of every type and awkward size
_json_scalars = (st.none() | st.booleans()
                 | st.sampled_from((0, 1, -1, 2, 3, 10**6, 2**31, 2**63, 10**400, -(10**400)))
                 | st.integers(-5, 40)
                 | st.sampled_from((0.0, -0.0, 0.5, 1e308, float("nan"), float("inf"), float("-inf")))
                 | st.floats(allow_nan=True, allow_infinity=True)
                 | st.sampled_from(("", "0.5.4", "0.5.0", "0.6.0", "1.0.0", "WaveNet", "LSTM", "ConvNet", "Tanh",
                                    "é", "null"))
                 | st.text(max_size=6))
_json_values = st.recursive(_json_scalars, lambda inner: st.lists(inner, max_size=3)
                            | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys / indices) into a JSON tree, the root excluded."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        out.append(prefix + (k,))
        out.extend(_paths(v, prefix + (k,)))
    return out


def _at(doc: Any, path: tuple) -> Any:
    for k in path:
        doc = doc[k]
    return doc


@st.composite
def mutated_docs(draw, seeds: dict[str, str]) -> Any:
    arch = draw(st.sampled_from(sorted(seeds)))
    doc = json.loads(seeds[arch])
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _at(doc, path[:-1]), path[-1]
        op = draw(st.sampled_from(("delete", "replace", "replace", "add key", "weights")))
        if op == "delete":
            del parent[key]
        elif op == "replace":
            parent[key] = draw(_json_values)
        elif op == "add key" and isinstance(parent, dict):
            parent[draw(st.sampled_from(("bottleneck", "head", "sample_rate", "extra", "")))] = draw(_json_values)
        elif op == "weights" and isinstance(doc, dict) and isinstance(doc.get("weights"), list):
            w = doc["weights"]
            how = draw(st.sampled_from(("cut", "extend", "special", "empty", "nested")))
            if how == "cut":
                del w[draw(st.integers(0, len(w))):]
            elif how == "extend":
                w.extend([draw(st.floats(-1, 1))] * draw(st.integers(1, 4)))
            elif how == "special" and w:
                w[draw(st.integers(0, len(w) - 1))] = draw(_json_scalars)
            elif how == "empty":
                doc["weights"] = []
            elif how == "nested":
                doc["weights"] = [w]
    return doc


@_fuzz(150)
@given(data=st.data())
def test_mutated_nam_documents_load_or_raise_nam_format_error(seeds, scratch, data) -> None:
    doc = data.draw(mutated_docs(seeds))
    text = json.dumps(doc, allow_nan=True)  # NaN / Infinity as NaN writes them (json reads them back)
    _read_or_nam_format_error(text, scratch)
    try:
        model_from_nam_dict(copy.deepcopy(doc), source="fuzz-doc")
    except NamFormatError as e:
        assert "fuzz-doc" in str(e)


@_fuzz(40)
@given(data=st.data())
def test_cut_or_damaged_nam_text_loads_or_raises(seeds, scratch, data) -> None:
    raw = bytearray(seeds[data.draw(st.sampled_from(sorted(seeds)))].encode())
    for _ in range(data.draw(st.integers(0, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    raw = raw[:data.draw(st.integers(0, len(raw)))]
    _read_or_nam_format_error(bytes(raw), scratch)


@_fuzz(40)
@given(data=st.binary(max_size=256) | st.sampled_from((b"", b"\xff\xfe{}", b"\xef\xbb\xbf{}", b"{\"version\": \"\xc3\x28\"}",
                                                       b"[" * 5000, b"null", b"1e999", b"NaN")))
def test_random_and_non_utf8_bytes_raise_nam_format_error(scratch, data: bytes) -> None:
    assert _read_or_nam_format_error(data, scratch) is None


@_fuzz(30)
@given(doc=_json_values)
def test_any_json_value_is_refused_with_nam_format_error(scratch, doc) -> None:
    assert _read_or_nam_format_error(json.dumps(doc, allow_nan=True), scratch) is None


# ----------------------------------------------------------------------------- regressions found by the fuzzing
def _lstm_doc(**config: Any) -> dict:
    return {"version": "0.5.4", "architecture": "LSTM", "config": {"input_size": 1, "num_layers": 1, **config},
            "weights": [0.0] * 3}


@pytest.mark.parametrize("config", [
    {"hidden_size": 10**6},                      # 16 TB of LSTM weights: an allocation error
    {"hidden_size": 2, "num_layers": 10**12},    # counted layer by layer: hung
])
def test_a_config_declaring_a_huge_lstm_is_refused_by_weight_count_before_allocating(tmp_path, config) -> None:
    p = tmp_path / "huge_lstm.nam"
    p.write_text(json.dumps(_lstm_doc(**config)))
    with pytest.raises(NamFormatError, match=r"huge_lstm\.nam: weight count does not match the LSTM configuration: "
                                             r"expected \d+, got 3"):
        load_nam(p)


def test_a_config_declaring_a_huge_wavenet_is_refused_by_weight_count_before_allocating(tmp_path) -> None:
    layer = {"input_size": 1, "condition_size": 1, "head_size": 1, "channels": 10**6, "kernel_size": 3,
             "dilations": [1], "activation": "Tanh", "gated": False, "head_bias": True}
    p = tmp_path / "huge_wavenet.nam"
    p.write_text(json.dumps({"version": "0.5.4", "architecture": "WaveNet",
                             "config": {"layers": [layer], "head": None, "head_scale": 0.02}, "weights": [0.02]}))
    with pytest.raises(NamFormatError, match=r"huge_wavenet\.nam: weight count does not match the WaveNet "
                                             r"configuration: expected \d+, got 1"):
        load_nam(p)


def test_an_integer_weight_beyond_float_range_is_a_nam_format_error(tmp_path) -> None:
    """JSON integers are unbounded: 10**400 as a weight was a raw OverflowError."""
    p = tmp_path / "bigint.nam"
    p.write_text(json.dumps(_lstm_doc(hidden_size=1)).replace("[0.0, 0.0, 0.0]", "[0.0, " + "1" * 400 + ", 0.0]"))
    with pytest.raises(NamFormatError, match=r"bigint\.nam: weight 1 is an integer too large for a float \(about 10\^399\)"):
        load_nam(p)
    with pytest.raises(NamFormatError, match=r"doc: weight 0 is an integer too large"):
        model_from_nam_dict({**_lstm_doc(hidden_size=1), "weights": [10**5000]}, source="doc")


def test_an_integer_sample_rate_beyond_float_range_is_a_nam_format_error(tmp_path) -> None:
    p = tmp_path / "bigrate.nam"
    p.write_text(json.dumps({**_lstm_doc(hidden_size=1), "sample_rate": 10**400}))
    with pytest.raises(NamFormatError, match=r"bigrate\.nam: 'sample_rate' must be a positive number of Hz"):
        load_nam(p)


@pytest.mark.parametrize("text, why", [
    ("[" * 100_000 + "]" * 100_000, "maximum recursion depth"),   # was a raw RecursionError
    ('{"weights": [' + "9" * 5000 + "]}", "4300"),                 # was a raw ValueError naming no file
])
def test_json_the_parser_cannot_hold_is_a_nam_format_error(tmp_path, text: str, why: str) -> None:
    p = tmp_path / "deep.nam"
    p.write_text(text)
    with pytest.raises(NamFormatError, match=rf"deep\.nam: not a usable JSON document \(.*{why}"):
        load_nam(p)


def test_a_weight_beyond_float32_range_is_refused_for_a_float32_model(tmp_path) -> None:
    """1e308 is finite in the file but was inf in the float32 model load_nam returned."""
    doc = _lstm_doc(hidden_size=1)
    doc["weights"] = [1e308] + [0.0] * 15
    p = tmp_path / "f32.nam"
    p.write_text(json.dumps(doc))
    with pytest.raises(NamFormatError, match=r"f32\.nam: 1 weight\(s\) beyond float32's range \(first at index 0: "
                                             r"1e\+308\).*dtype=torch\.float64"):
        load_nam(p)
    m = load_nam(p, dtype=torch.float64)
    assert m.export_weights()[0] == 1e308

"""Property-based (hypothesis) fuzzing of ``bandsplit.load_model``.

Random bytes, cut or damaged copies of a real (tiny BSDT) checkpoint in the trainer's schema,
and checkpoints whose entries are dropped or replaced by values of other types: the loader
either returns the model or raises its documented ``ValueError`` (``SampleRateMismatchError``
included) naming the file: never a raw ``TypeError``, ``KeyError``, ``AttributeError`` or
torch ``RuntimeError``. Examples are derandomized and few (``SE_FUZZ_EXAMPLES=N`` runs N per
test); hypothesis' caches go to the temp folder, not a ``.hypothesis`` folder in the checkout.
"""

from __future__ import annotations

import io
import itertools
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

import bandsplit
from bandsplit import CHECKPOINT_FORMAT, load_model


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


SR = 16000
CFG = {"name": "bsdt", "num_channel": 4, "num_layer": 1, "num_heads": 2}
_names = itertools.count()


def _payload() -> dict[str, Any]:
    """What tools/train_bsdt.py saves through tools/_train.save_checkpoint (format tag first)."""
    torch.manual_seed(0)
    model = bandsplit.build_model(CFG)
    return {"format": CHECKPOINT_FORMAT, "tool": "train_bsdt", "config": {"model": "bsdt", "lr": 1e-3},
            "model_config": dict(CFG), "sample_rate": SR, "stft": {"n_fft": 512, "hop": 128},
            "versions": {"torch": str(torch.__version__)}, "epoch": 1, "step": 2,
            "model": model.state_dict(), "optimizer": {}, "best": {"epoch": 1}, "history": []}


PAYLOAD = _payload()
_buf = io.BytesIO()
torch.save(PAYLOAD, _buf)
CHECKPOINT = _buf.getvalue()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("bandsplit_fuzz")


def _load_or_value_error(path) -> torch.nn.Module | None:
    try:
        model = load_model(path)
    except ValueError as e:  # the documented error (SampleRateMismatchError is one)
        assert path.name in str(e), f"the error does not name the file: {type(e).__name__}: {e}"
        return None
    assert isinstance(model, torch.nn.Module) and not model.training
    assert model.sample_rate > 0 and model.info["path"] == str(path)
    return model


def _write(folder, data: bytes):
    p = folder / f"c{next(_names)}.pt"
    p.write_bytes(data)
    return p


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # torch's note on random bytes
@_fuzz(25)
@given(data=st.binary(max_size=256) | st.sampled_from((b"", b"PK\x03\x04", b"\x80\x02}q\x00.", b"\x80\x02]q\x00.")))
def test_random_bytes_are_value_errors(scratch, data: bytes) -> None:
    assert _load_or_value_error(_write(scratch, data)) is None


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@_fuzz(25)
@given(cut=st.integers(0, len(CHECKPOINT)),
       flips=st.lists(st.tuples(st.integers(0, len(CHECKPOINT) - 1), st.integers(0, 255)), max_size=3))
def test_cut_or_damaged_checkpoints_load_or_raise(scratch, cut: int, flips) -> None:
    data = bytearray(CHECKPOINT)
    for pos, val in flips:
        data[pos] = val
    _load_or_value_error(_write(scratch, bytes(data[:cut])))


_cfg_small = (st.none() | st.booleans() | st.sampled_from((-1, 0, 1, 2, 3, 4, 5, 8))
              | st.sampled_from((0.0, 0.5, 4.0, float("nan"), float("inf")))
              | st.sampled_from(("", "bsdt", "bsrnn", "erb-unet", "hann", "16000")))
"""Model-config values: sizes stay small (a 16000-channel model would be built before its weights are checked)."""
_small = (st.none() | st.booleans() | st.sampled_from((-1, 0, 1, 2, 3, 4, 5, 8, 257, 16000, 44100))
          | st.sampled_from((0.0, 0.5, 4.0, 16000.0, float("nan"), float("inf")))
          | st.sampled_from(("", "bsdt", "bsrnn", "hann", "hamming", "16000", "train_sgmse", "train_bsdt")))
_values = (_small | st.lists(_small, max_size=3) | st.dictionaries(st.sampled_from(("name", "n_fft", "hop", "x")), _small,
                                                                   max_size=3)
           | st.builds(torch.zeros, st.integers(0, 3)))


STATE_KEYS = sorted(PAYLOAD["model"])
_dtypes = st.sampled_from((torch.float64, torch.float16, torch.int64, torch.bool, torch.complex64))
#: one edit of the checkpoint dict (a small, readable recipe: hypothesis prints it on failure)
_edits = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(("format", "tool", "model_config", "model", "sample_rate", "stft"))),
    st.tuples(st.just("set"), st.sampled_from(("format", "tool", "model", "ema", "sample_rate", "stft", "config",
                                               "epoch")), _values),
    st.tuples(st.just("set"), st.just("model_config"), _cfg_small | st.lists(_cfg_small, max_size=2)
              | st.dictionaries(st.sampled_from(("name", "num_channel")), _cfg_small, max_size=2)),
    st.tuples(st.just("model_config"), st.sampled_from(("name", "num_channel", "num_layer", "num_heads", "graph",
                                                         "n_fft", "bogus")), st.just("drop") | _cfg_small),
    st.tuples(st.just("stft"), st.sampled_from(("n_fft", "hop", "hop_length", "window", "sample_rate", "bogus")),
              st.just("drop") | _small),
    st.tuples(st.just("state drop"), st.sampled_from(STATE_KEYS)),
    st.tuples(st.just("state resize"), st.sampled_from(STATE_KEYS), st.integers(-1, 2)),
    st.tuples(st.just("state dtype"), st.sampled_from(STATE_KEYS), _dtypes),
    st.tuples(st.just("state set"), st.sampled_from(STATE_KEYS), _small),
    st.tuples(st.just("state extra"), st.sampled_from(("extra.weight", "", "stft.window"))),
)


def _edited(edits) -> dict:
    ck = {k: (dict(v) if isinstance(v, dict) else v) for k, v in PAYLOAD.items()}
    for edit in edits:
        op, key = edit[0], edit[1]
        state = ck.get("model")
        if op == "drop":
            ck.pop(key, None)
        elif op == "set":
            ck[key] = edit[2]
        elif op in ("model_config", "stft") and isinstance(ck.get(op), dict):
            if edit[2] == "drop":
                ck[op].pop(key, None)
            else:
                ck[op][key] = edit[2]
        elif not isinstance(state, dict):
            continue
        elif op == "state drop":
            state.pop(key, None)
        elif op == "state resize" and isinstance(state.get(key), torch.Tensor):
            state[key] = torch.zeros(max(state[key].numel() + edit[2], 0))
        elif op == "state dtype" and isinstance(state.get(key), torch.Tensor):
            state[key] = state[key].to(edit[2])
        elif op == "state set":
            state[key] = edit[2]
        elif op == "state extra":
            state[key] = torch.zeros(2)
    return ck


@pytest.mark.filterwarnings("ignore:Casting complex values to real:UserWarning")  # torch's copy_ of complex weights
@_fuzz(60)
@given(edits=st.lists(_edits, min_size=1, max_size=3))
def test_checkpoints_with_missing_or_mistyped_entries_load_or_raise(scratch, edits) -> None:
    p = scratch / f"m{next(_names)}.pt"
    torch.save(_edited(edits), p)
    _load_or_value_error(p)


# ----------------------------------------------------------------------------- regressions found by the fuzzing
def _saved(tmp_path, name: str, **changes: Any):
    ck = {k: (dict(v) if isinstance(v, dict) else v) for k, v in PAYLOAD.items()}
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(ck.get(key), dict):
            ck[key].update(value)
        else:
            ck[key] = value
    p = tmp_path / name
    torch.save(ck, p)
    return p


@pytest.mark.parametrize("changes, message", [
    ({"stft": {"n_fft": float("inf")}}, r"n_fft must be a positive integer, got inf"),            # OverflowError
    ({"sample_rate": None}, r"sample_rate \(Hz\) must be a positive integer, got None"),          # TypeError
    ({"stft": {"bogus": 1}}, r"unknown \['bogus'\]"),                                            # no file named
    ({"stft": {"window": "hamming"}}, r"Hann window only"),                                      # no file named
    ({"stft": "512"}, r"'stft' must be a dict, got str"),                                       # no file named
    ({"stft": torch.zeros(0)}, r"'stft' must be a dict, got Tensor"),  # bool(tensor): RuntimeError
])
def test_unusable_stft_settings_are_value_errors_naming_the_file(tmp_path, changes, message) -> None:
    p = _saved(tmp_path, "stft.pt", **changes)
    with pytest.raises(ValueError, match=rf"stft\.pt: unusable STFT settings .*{message}"):
        load_model(p)


def test_a_model_config_torch_cannot_build_is_a_value_error_naming_the_file(tmp_path) -> None:
    """num_channel -1 made torch raise 'Trying to create tensor with negative dimension' (RuntimeError)."""
    p = _saved(tmp_path, "neg.pt", model_config={"num_channel": -1})
    with pytest.raises(ValueError, match=r"neg\.pt: cannot rebuild the model from its config .*negative dimension"):
        load_model(p)


def test_a_non_tensor_per_band_weight_is_a_value_error_naming_the_file(tmp_path) -> None:
    """A per-band entry (band_split.norm1.weight) holding None was an AttributeError in the packed loader."""
    state = dict(PAYLOAD["model"])
    state["band_split.norm1.weight"] = None
    p = _saved(tmp_path, "none.pt", model=state)
    with pytest.raises(ValueError, match=r"(?s)none\.pt: the stored weights do not fit.*band_split\.norm1\.weight"
                                         r".*expected torch\.Tensor"):
        load_model(p)
    model = bandsplit.build_model(CFG)
    with pytest.raises(RuntimeError, match="norm1.weight"):  # the module's own loader: torch's error type
        model.load_state_dict(state)

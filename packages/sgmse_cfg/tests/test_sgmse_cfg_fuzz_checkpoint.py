"""Property-based (hypothesis) fuzzing of ``sgmse_cfg.load_model``.

Random bytes, cut or damaged copies of real checkpoints in tools/train_sgmse.py's schema (a
plain ScoreModel and a NoiseCondScoreModel with tiny backbones), and checkpoints whose entries,
model-config fields or weights are dropped or replaced by values of other types: the loader
either returns the model or raises its documented :class:`CheckpointError` naming the file:
never a raw ``KeyError``, ``TypeError``, ``AttributeError`` or torch ``RuntimeError``.
Examples are derandomized and few (``SE_FUZZ_EXAMPLES=N`` runs N per test); hypothesis' caches
go to the temp folder, not a ``.hypothesis`` folder in the checkout.
"""

from __future__ import annotations

import copy
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

from sgmse_cfg import (
    CHECKPOINT_FORMAT,
    SBVESDE,
    CheckpointError,
    CNNNoiseEncoder,
    NoiseCondScoreModel,
    ScoreModel,
    SmallUNet,
    load_model,
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


def _payload(model: ScoreModel) -> dict[str, Any]:
    """What tools/train_sgmse.py saves through tools/_train.save_checkpoint (format tag first)."""
    return {"format": CHECKPOINT_FORMAT, "tool": "train_sgmse", "config": {"lr": 1e-3}, "model_config": model.to_config(),
            "sample_rate": model.sample_rate, "frames": 32, "class_names": getattr(model, "class_names", None),
            "versions": {"torch": str(torch.__version__)}, "epoch": 1, "step": 4, "best": {"epoch": 1},
            "ema": model.state_dict(), "model": model.state_dict(), "optimizer": {"state": {}}}


def _seeds() -> dict[str, dict[str, Any]]:
    torch.manual_seed(0)
    plain = ScoreModel(SmallUNet(channels=(4, 8), temb_dim=16), SBVESDE(), output_scaling="data")
    nc = NoiseCondScoreModel(SmallUNet(channels=(4, 8), temb_dim=16), CNNNoiseEncoder(channels=(4, 8), dim=8),
                             n_classes=3, class_names=["a", "b", "c"], p_uncond=0.1)
    nc.fit_bank(torch.randn(12, 8, generator=torch.Generator().manual_seed(1)))
    return {"plain": _payload(plain.eval()), "noise_cond": _payload(nc.eval())}


SEEDS = _seeds()
_buf = io.BytesIO()
torch.save(SEEDS["plain"], _buf)
CHECKPOINT = _buf.getvalue()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("sgmse_fuzz")


def _load_or_checkpoint_error(path, weights: str = "ema") -> ScoreModel | None:
    try:
        model = load_model(path, weights=weights)
    except CheckpointError as e:
        assert path.name in str(e), f"the error does not name the file: {e}"
        return None
    assert isinstance(model, ScoreModel) and not model.training
    assert model.sample_rate > 0 and model.info["path"] == str(path)
    return model


def _write(folder, data: bytes):
    p = folder / f"c{next(_names)}.pt"
    p.write_bytes(data)
    return p


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # torch's note on random bytes
@_fuzz(25)
@given(data=st.binary(max_size=256) | st.sampled_from((b"", b"PK\x03\x04", b"\x80\x02}q\x00.", b"\x80\x02]q\x00.")))
def test_random_bytes_are_checkpoint_errors(scratch, data: bytes) -> None:
    assert _load_or_checkpoint_error(_write(scratch, data)) is None


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@_fuzz(25)
@given(cut=st.integers(0, len(CHECKPOINT)),
       flips=st.lists(st.tuples(st.integers(0, len(CHECKPOINT) - 1), st.integers(0, 255)), max_size=3))
def test_cut_or_damaged_checkpoints_load_or_raise(scratch, cut: int, flips) -> None:
    data = bytearray(CHECKPOINT)
    for pos, val in flips:
        data[pos] = val
    _load_or_checkpoint_error(_write(scratch, bytes(data[:cut])))


def _config_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append(prefix + (k,))
            out.extend(_config_paths(v, prefix + (k,)))
    return out


CONFIG_PATHS = sorted({p for s in SEEDS.values() for p in _config_paths(s["model_config"])}, key=repr)
STATE_KEYS = sorted({k for s in SEEDS.values() for k in s["ema"]})
# Sizes stay small: a config asking for a huge backbone is built before its weights are compared.
_small = (st.none() | st.booleans() | st.sampled_from((-1, 0, 1, 2, 3, 4, 8, 16))
          | st.sampled_from((0.0, -0.5, 0.5, 1.5, float("nan"), float("inf")))
          | st.sampled_from(("", "SmallUNet", "NCSNpp", "sbve", "ouve", "cnn", "hann", "exponent", "data", "sigma",
                             "cosine", "input_add", "reim", "16000"))
          | st.lists(st.sampled_from((-1, 0, 2, 4, 8)), max_size=3).map(tuple))
_values = (_small | st.lists(_small, max_size=2)
           | st.dictionaries(st.sampled_from(("name", "backbone", "channels", "k")), _small, max_size=2)
           | st.builds(torch.zeros, st.integers(0, 3)))
_edits = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(("format", "tool", "model_config", "ema", "model", "sample_rate"))),
    st.tuples(st.just("set"), st.sampled_from(("format", "tool", "model_config", "ema", "model", "sample_rate",
                                               "class_names", "config")), _values),
    st.tuples(st.just("config drop"), st.sampled_from(CONFIG_PATHS)),
    st.tuples(st.just("config set"), st.sampled_from(CONFIG_PATHS), _small),
    st.tuples(st.just("state drop"), st.sampled_from(STATE_KEYS)),
    st.tuples(st.just("state resize"), st.sampled_from(STATE_KEYS), st.integers(-1, 2)),
    st.tuples(st.just("state dtype"), st.sampled_from(STATE_KEYS),
              st.sampled_from((torch.float64, torch.float16, torch.int64, torch.bool))),
    st.tuples(st.just("state set"), st.sampled_from(STATE_KEYS), _small),
    st.tuples(st.just("state extra"), st.sampled_from(("extra.weight", "", "bank.x"))),
)


def _edited(seed: str, edits) -> dict:
    ck = copy.deepcopy(SEEDS[seed])
    for edit in edits:
        op, key = edit[0], edit[1]
        state, cfg = ck.get("ema"), ck.get("model_config")
        if op == "drop":
            ck.pop(key, None)
        elif op == "set":
            ck[key] = edit[2]
        elif op in ("config drop", "config set"):
            node = cfg
            for k in key[:-1]:
                node = node.get(k) if isinstance(node, dict) else None
            if isinstance(node, dict):
                if op == "config drop":
                    node.pop(key[-1], None)
                else:
                    node[key[-1]] = edit[2]
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


@_fuzz(80)
@given(seed=st.sampled_from(sorted(SEEDS)), edits=st.lists(_edits, min_size=1, max_size=3),
       weights=st.sampled_from(("ema", "live")))
def test_checkpoints_with_missing_or_mistyped_entries_load_or_raise(scratch, seed: str, edits, weights: str) -> None:
    p = scratch / f"m{next(_names)}.pt"
    torch.save(_edited(seed, edits), p)
    _load_or_checkpoint_error(p, weights)


# ----------------------------------------------------------------------------- regressions found by the fuzzing
def _saved(tmp_path, name: str, seed: str, edits) -> Any:
    p = tmp_path / name
    torch.save(_edited(seed, edits), p)
    return p


@pytest.mark.parametrize("rate", [float("nan"), float("inf"), "16k", True])
def test_an_unusable_stored_sample_rate_is_a_checkpoint_error(tmp_path, rate) -> None:
    """int(NaN) was a raw ValueError naming no file (int(inf): OverflowError)."""
    p = _saved(tmp_path, "rate.pt", "plain", [("set", "sample_rate", rate)])
    with pytest.raises(CheckpointError, match=r"rate\.pt: the checkpoint says .* Hz but its model config's transform "
                                              r"is at 16000 Hz"):
        load_model(p)


@pytest.mark.parametrize("weights", ["ema", "live"])
def test_weights_that_are_no_state_dict_are_a_checkpoint_error(tmp_path, weights: str) -> None:
    """'ema': False reached load_state_dict: a raw TypeError ('Expected state_dict to be dict-like')."""
    p = _saved(tmp_path, "flag.pt", "noise_cond", [("set", "ema" if weights == "ema" else "model", False)])
    with pytest.raises(CheckpointError, match=rf"flag\.pt: its {weights} weights are a bool, not a state dict"):
        load_model(p, weights=weights)


@pytest.mark.parametrize("path, value, raw", [
    (("noise_cond", "n_classes"), float("inf"), "cannot convert float infinity to integer"),   # OverflowError
    (("noise_cond", "bank", "k"), float("inf"), "cannot convert float infinity to integer"),   # OverflowError
    (("noise_cond", "encoder_config", "dim"), -1, "negative dimension"),                        # RuntimeError
])
def test_a_config_that_cannot_be_built_is_a_checkpoint_error(tmp_path, path, value, raw: str) -> None:
    p = _saved(tmp_path, "cfg.pt", "noise_cond", [("config set", path, value)])
    with pytest.raises(CheckpointError, match=rf"cfg\.pt: cannot rebuild the model from its config: .*{raw}"):
        load_model(p)

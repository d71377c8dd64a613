"""SGMSE+ (sp-uhh/sgmse) Lightning checkpoints: read safely, mapped to a ready :class:`ScoreModel`.

A checkpoint written by sgmse's ``ScoreModel`` through a Lightning ``Trainer`` (``.ckpt``)
holds:

* ``state_dict``: the backbone under ``dnn.<NCSN++ key>`` (the live, optimised weights);
* ``ema``: ``torch_ema``'s state (decay 0.999), whose ``shadow_params`` list follows the
  parameter order of sgmse's model: the weights sgmse evaluates with (its ``eval()`` copies
  them in), and the default here;
* ``hyper_parameters``: every argument of the training run (backbone, SDE and its
  parameters, STFT and spectrogram settings, ``t_eps``, the loss and output-scaling
  switches, ...) and the data-module **class**, pickled by reference.

:func:`load_sgmse_checkpoint` reads it with ``torch.load(weights_only=True)`` and an
allow-listed, inert stand-in for that class (nothing of sgmse is imported and no code in the
file runs), maps the hyper-parameters to a :class:`ScoreModel` (``ncsnpp``, ``ncsnpp_v2``,
``ncsnpp_48k``; ``ouve``, ``sbve``), loads the weights strictly and records sgmse's sampler
defaults. Anything it does not implement is refused by name, as is a checkpoint missing a
key. :func:`sgmse_backbone_state_dict` is the lower-level mapping for a checkpoint loaded by
the caller.
"""

from __future__ import annotations

import os
import pickletools
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn as nn
from torch import Tensor

from .errors import CheckpointError
from .score_model import ScoreModel

__all__ = ["SGMSE_BACKBONES", "SGMSE_SDES", "is_sgmse_checkpoint", "load_sgmse_checkpoint",
           "read_sgmse_checkpoint", "sgmse_backbone_state_dict", "sgmse_model_config"]

#: sgmse backbones this loader maps (``dcunet`` and forks' backbones are refused by name)
SGMSE_BACKBONES = ("ncsnpp", "ncsnpp_v2", "ncsnpp_48k")
#: sgmse SDEs this loader maps
SGMSE_SDES = ("ouve", "sbve")


# ----------------------------------------------------------------------------- the lower-level mapping
def sgmse_backbone_state_dict(checkpoint: Mapping[str, Any], backbone: nn.Module,
                              use_ema: bool = True, prefix: str = "dnn.") -> dict[str, Tensor]:
    """State dict for ``backbone`` (an :class:`NCSNpp` of the checkpoint's configuration).

    Args:
        checkpoint: the loaded Lightning checkpoint (``{"state_dict": ..., "ema": ...}``).
        backbone: the module the weights are for; its parameter order maps the EMA list.
        use_ema: take the EMA weights (SGMSE+'s evaluation weights) where present.
        prefix: key prefix of the backbone in ``checkpoint["state_dict"]``.

    :func:`load_sgmse_checkpoint` does all of it (safe reading, the configuration from the
    hyper-parameters, the EMA list mapped by the checkpoint's own parameter order).
    """
    if "state_dict" not in checkpoint:
        raise ValueError("not a Lightning checkpoint: no 'state_dict' entry")
    sd = {k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    if not sd:
        raise ValueError(f"no '{prefix}*' keys in the checkpoint's state_dict")
    ema = checkpoint.get("ema") if use_ema else None
    if ema is None:
        if use_ema:
            raise ValueError("checkpoint has no 'ema' entry; pass use_ema=False for the live "
                             "(non-averaged) weights")
        return sd
    shadow = list(ema["shadow_params"])
    named = list(backbone.named_parameters())
    trainable = [(n, p) for n, p in named if p.requires_grad]
    if len(shadow) == len(named):
        order = named
    elif len(shadow) == len(trainable):
        order = trainable
    else:
        raise ValueError(f"EMA holds {len(shadow)} tensors; the backbone has {len(named)} "
                         f"parameters ({len(trainable)} trainable): wrong configuration?")
    for (name, p), s in zip(order, shadow, strict=True):
        if tuple(s.shape) != tuple(p.shape):
            raise ValueError(f"EMA tensor for {name} has shape {tuple(s.shape)}, expected "
                             f"{tuple(p.shape)}: wrong configuration?")
        sd[name] = s
    return sd


# ----------------------------------------------------------------------------- safe reading
class _PickledClass:
    """Inert stand-in for a class a checkpoint pickled by reference (sgmse's data module).

    ``torch.load(weights_only=True)`` returns this in its place; calling or rebuilding it
    does nothing. ``qualified_name`` is the name the file referred to."""

    qualified_name = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<stand-in for {self.qualified_name}>"


#: modules whose classes a checkpoint may reference and get an inert stand-in for (sgmse
#: pickles its ``data_module_cls`` hyper-parameter; nothing else of it is needed)
_STAND_IN_MODULES = ("sgmse.data_module",)
_stand_ins: dict[str, type] = {}


def _stand_in(name: str) -> type:
    cls = _stand_ins.get(name)
    if cls is None:
        cls = type(name.rsplit(".", 1)[-1], (_PickledClass,), {"qualified_name": name, "__module__": __name__})
        _stand_ins[name] = cls
    return cls


def _checkpoint_pickle(path: Path) -> bytes | None:
    """The ``data.pkl`` bytes of a torch zip checkpoint; ``None`` where it is no such archive."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            return zf.read(names[0]) if names else None
    except (OSError, zipfile.BadZipFile, KeyError, ValueError):
        return None


def _pickle_strings(path: Path) -> set[str] | None:
    """The strings in a torch zip checkpoint's pickle, read opcode by opcode (nothing is
    unpickled); ``None`` where the file is no torch zip archive."""
    data = _checkpoint_pickle(path)
    if data is None:
        return None
    out: set[str] = set()
    try:
        for _op, arg, _ in pickletools.genops(data):
            if isinstance(arg, str) and len(arg) < 256:
                out.add(arg)
    except Exception:  # noqa: BLE001 - a damaged pickle is not an SGMSE+ checkpoint to this peek
        return out
    return out


def _pickle_globals(data: bytes) -> set[str]:
    """``module.name`` of every ``GLOBAL`` / ``STACK_GLOBAL`` in a pickle, read opcode by opcode
    (``STACK_GLOBAL`` takes the two strings pushed just before it, as pickle protocol 4 writes)."""
    out: set[str] = set()
    recent: list[str] = []
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            out.add(".".join(str(arg).split(" ", 1)))
        elif op.name == "STACK_GLOBAL" and len(recent) >= 2:
            out.add(f"{recent[-2]}.{recent[-1]}")
        if isinstance(arg, str):
            recent = (recent + [arg])[-2:]
    return out


def _refuse_code(p: Path, refused: list[str]) -> None:
    if refused:
        raise CheckpointError(f"{p} references code that is never run or imported here: {', '.join(refused)}; "
                              f"only sgmse's pickled data-module class gets a stand-in. Not an sgmse ScoreModel "
                              f"checkpoint, or one of a fork this loader does not know")


def _load_with_stand_ins_old_torch(p: Path, map_location: str | torch.device) -> Any:
    """torch 2.4/2.5 (no ``safe_globals`` context, no ``get_unsafe_globals_in_checkpoint``):
    stand-ins named as the file names the classes (``__module__``/``__name__``) are added to
    the allow-list for this one load, and the caller's own allow-list is restored after."""
    ser = torch.serialization
    data = _checkpoint_pickle(p)
    if data is None:
        raise CheckpointError(f"cannot read checkpoint {p}: not a torch zip archive")
    try:
        referenced = _pickle_globals(data)
    except Exception as e:  # noqa: BLE001 - a damaged pickle: re-raised naming the file
        raise CheckpointError(f"cannot read checkpoint {p}: {e}") from e
    wanted = sorted(g for g in referenced if g.rpartition(".")[0] in _STAND_IN_MODULES)
    try:  # torch's own allow-list, to name what is refused as the torch >= 2.6 path does
        from torch._weights_only_unpickler import _get_allowed_globals
        allowed = set(_get_allowed_globals())
    except (ImportError, AttributeError):
        allowed = None
    if allowed is not None:
        _refuse_code(p, sorted(g for g in referenced if g not in allowed and g not in wanted))
    named = []
    for g in wanted:
        module, _, name = g.rpartition(".")
        named.append(type(name, (_stand_in(g),), {"__module__": module, "__qualname__": name}))
    before = list(ser.get_safe_globals())
    ser.add_safe_globals(named)
    try:
        ck = torch.load(p, map_location=map_location, weights_only=True)
    finally:
        ser.clear_safe_globals()
        ser.add_safe_globals(before)
    return ck


def is_sgmse_checkpoint(path: str | os.PathLike) -> bool:
    """True where ``path`` looks like a Lightning checkpoint (``state_dict`` and
    ``hyper_parameters`` entries), without unpickling it."""
    strings = _pickle_strings(Path(path))
    return strings is not None and {"state_dict", "hyper_parameters"} <= strings


def read_sgmse_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The dict of a Lightning checkpoint, read with ``torch.load(weights_only=True)``.

    Classes the file references from :data:`_STAND_IN_MODULES` (sgmse's pickled data-module
    class) come back as inert stand-ins; any other reference to code is refused by name
    (:class:`CheckpointError`), so a checkpoint from someone else never runs code.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} does not exist")
    ser = torch.serialization
    if not hasattr(ser, "get_unsafe_globals_in_checkpoint") or not hasattr(ser, "safe_globals"):
        try:
            ck = _load_with_stand_ins_old_torch(p, map_location)
        except CheckpointError:
            raise
        except Exception as e:  # noqa: BLE001 - refused global, damaged file: re-raised naming the file
            raise CheckpointError(f"cannot read checkpoint {p}: {e}") from e
        if not isinstance(ck, dict):
            raise CheckpointError(f"{p} holds a {type(ck).__name__}, not a Lightning checkpoint dict")
        return ck
    try:
        unsafe = list(ser.get_unsafe_globals_in_checkpoint(p))
    except Exception as e:  # noqa: BLE001 - not a zip checkpoint, damaged: re-raised naming the file
        raise CheckpointError(f"cannot read checkpoint {p}: {e}") from e
    _refuse_code(p, [g for g in unsafe if g.rpartition(".")[0] not in _STAND_IN_MODULES])
    try:
        with ser.safe_globals([(_stand_in(g), g) for g in unsafe]):
            ck = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised naming the file
        raise CheckpointError(f"cannot read checkpoint {p}: {e}") from e
    if not isinstance(ck, dict):
        raise CheckpointError(f"{p} holds a {type(ck).__name__}, not a Lightning checkpoint dict")
    return ck


def _plain(v: Any) -> Any:
    """Hyper-parameters as plain data (stand-ins as the name they replace)."""
    if isinstance(v, type) and issubclass(v, _PickledClass):
        return v.qualified_name
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return repr(v)


# ----------------------------------------------------------------------------- hyper-parameters -> config
# sgmse 0.1.2's constructor defaults per backbone (backbones/ncsnpp*.py) for the options that
# change the architecture; a checkpoint's hyper-parameters override them
_NCSNPP_DEFAULTS: dict[str, Any] = dict(
    nf=128, ch_mult=(1, 1, 2, 2, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,), image_size=256,
    fir_kernel=(1, 3, 3, 1), skip_rescale=True, progressive="output_skip", progressive_input="input_skip",
    progressive_combine="sum", init_scale=0.0, fourier_scale=16.0, dropout=0.0, centered=True,
    scale_by_sigma=True)
_BACKBONE_DEFAULTS: dict[str, dict[str, Any]] = {
    "ncsnpp": _NCSNPP_DEFAULTS,
    "ncsnpp_48k": {**_NCSNPP_DEFAULTS, "attn_resolutions": (), "progressive": "none", "progressive_input": "none"},
    "ncsnpp_v2": {k: v for k, v in _NCSNPP_DEFAULTS.items() if k not in ("centered", "scale_by_sigma")},
}
# options sgmse's NCSN++ has that this implementation fixes: (name, the one value implemented)
_FIXED_OPTIONS = (("nonlinearity", "swish"), ("resamp_with_conv", True), ("conditional", True), ("fir", True),
                  ("resblock_type", "biggan"), ("embedding_type", "fourier"))
_SDE_DEFAULTS = {"ouve": {"theta": 1.5, "sigma_min": 0.05, "sigma_max": 0.5, "N": 30, "sampler_type": "pc"},
                 "sbve": {"k": 2.6, "c": 0.4, "N": 50, "eps": 1e-8, "sampler_type": "ode"}}
_DATA_DEFAULTS = {"n_fft": 510, "hop_length": 128, "window": "hann", "spec_factor": 0.15, "spec_abs_exponent": 0.5,
                  "transform_type": "exponent"}
_MODEL_DEFAULTS = {"t_eps": 0.03, "loss_type": "score_matching", "network_scaling": None, "c_in": "1",
                   "c_out": "1", "c_skip": "0"}


class _Unsupported(CheckpointError):
    pass


def _refuse(what: str) -> _Unsupported:
    return _Unsupported(f"{what} is not implemented by sgmse_cfg's SGMSE+ loader")


def sgmse_model_config(hparams: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(model config, extra)`` for an sgmse checkpoint's ``hyper_parameters``.

    The config is :meth:`ScoreModel.to_config`'s form (rebuild with
    :meth:`ScoreModel.from_config`). ``extra`` says what the weights and the sampler need:
    ``negate_output`` (sgmse's model output is ``+F`` where this package takes ``-F``: the
    output layer's weights are negated, which is exact), ``sampler_defaults`` (``sampler``,
    ``N`` where sgmse's enhancement takes it from the checkpoint, ``pad_mode``). An option
    that is not implemented raises :class:`CheckpointError` naming it.
    """
    backbone = hparams.get("backbone")
    sde_name = hparams.get("sde")
    if backbone not in SGMSE_BACKBONES:
        raise _refuse(f"backbone {backbone!r}") if backbone is not None else CheckpointError(
            "the checkpoint's hyper_parameters name no 'backbone'")
    if sde_name not in SGMSE_SDES:
        raise _refuse(f"SDE {sde_name!r}") if sde_name is not None else CheckpointError(
            "the checkpoint's hyper_parameters name no 'sde'")

    def hp(key: str, defaults: Mapping[str, Any]) -> Any:
        v = hparams.get(key)
        return defaults[key] if v is None else v

    for key, only in _FIXED_OPTIONS:
        if key in hparams and hparams[key] != only:
            raise _refuse(f"NCSN++ option {key}={hparams[key]!r} (only {only!r})")
    bdef = _BACKBONE_DEFAULTS[backbone]
    bcfg = {k: hparams[k] if hparams.get(k) is not None else v for k, v in bdef.items()}
    for k in ("ch_mult", "attn_resolutions", "fir_kernel"):
        bcfg[k] = tuple(bcfg[k])
    for key in ("progressive", "progressive_input"):
        if str(bcfg[key]).lower() == "residual":
            raise _refuse(f"NCSN++ option {key}='residual'")
        bcfg[key] = str(bcfg[key]).lower()

    # what sgmse's ScoreModel.forward returns, R, in terms of the network output F
    loss_type = hp("loss_type", _MODEL_DEFAULTS)
    negate = False
    if backbone == "ncsnpp_v2":
        bcfg["scale_by_sigma"] = False
        if hp("c_in", _MODEL_DEFAULTS) != "1":
            raise _refuse(f"ncsnpp_v2 input scaling c_in={hparams['c_in']!r} (only '1')")
        if hp("c_skip", _MODEL_DEFAULTS) != "0":
            raise _refuse(f"ncsnpp_v2 skip scaling c_skip={hparams['c_skip']!r} (only '0')")
        ns, c_out = hparams.get("network_scaling"), hp("c_out", _MODEL_DEFAULTS)
        if loss_type not in ("score_matching", "data_prediction"):
            raise _refuse(f"ncsnpp_v2 with loss_type={loss_type!r} (score = (F - x_t) / sigma^2)")
        scaling = {(None, "1"): "1", ("1/sigma", "1"): "1/sigma", (None, "1/sigma"): "1/sigma",
                   ("1/t", "1"): "1/t"}.get((ns, c_out))
        if scaling is None:
            raise _refuse(f"ncsnpp_v2 output scaling network_scaling={ns!r} with c_out={c_out!r}")
        # R = F * scaling; this package: score = -B ("none"), -B / std ("sigma"), x0 = B ("data")
        negate = True
        if scaling == "1/t":
            bcfg.update(scale_by_sigma=True, scale_after_output=True)
        out_scaling = "sigma" if scaling == "1/sigma" else "none"
    else:  # ncsnpp / ncsnpp_48k: R = -F (F divided by t inside, before / after the output layer)
        out_scaling = "none"
        if backbone == "ncsnpp_48k" and bcfg["scale_by_sigma"]:
            bcfg["scale_after_output"] = True
    if sde_name == "sbve":  # sgmse's bridge sampler takes R as the clean estimate x0
        if out_scaling == "sigma":
            raise _refuse("the Schroedinger bridge with its data estimate divided by sigma(t)")
        out_scaling = "data"
        negate = not negate  # R = -B -> x0 = B needs B' = -B; R = F -> B' = F
    sdef = _SDE_DEFAULTS[sde_name]
    if sde_name == "ouve":
        sde = {"name": "ouve", "theta": float(hp("theta", sdef)), "sigma_min": float(hp("sigma_min", sdef)),
               "sigma_max": float(hp("sigma_max", sdef))}
    else:
        sde = {"name": "sbve", "k": float(hp("k", sdef)), "c": float(hp("c", sdef))}
    ttype = hp("transform_type", _DATA_DEFAULTS)
    if ttype not in ("exponent", "none"):
        raise _refuse(f"spectrogram transform_type={ttype!r} (only 'exponent' and 'none')")
    window = hp("window", _DATA_DEFAULTS)
    if window not in ("hann", "sqrthann"):
        raise _refuse(f"STFT window={window!r}")
    sr = hparams.get("sr") or (48000 if backbone == "ncsnpp_48k" else 16000)  # enhancement.py's rule without 'sr'
    transform = {"sample_rate": int(sr), "n_fft": int(hp("n_fft", _DATA_DEFAULTS)),
                 "hop_length": int(hp("hop_length", _DATA_DEFAULTS)), "window": window,
                 "spec_factor": float(hp("spec_factor", _DATA_DEFAULTS)),
                 "spec_abs_exponent": float(hp("spec_abs_exponent", _DATA_DEFAULTS)), "transform_type": ttype}
    bins = transform["n_fft"] // 2 + 1
    if bcfg["attn_resolutions"] and bins != bcfg["image_size"]:
        raise CheckpointError(f"the network was built for image_size={bcfg['image_size']} frequency bins with "
                              f"attention at {list(bcfg['attn_resolutions'])}, but n_fft={transform['n_fft']} gives "
                              f"{bins} bins: sgmse itself cannot run this configuration")
    sampler_type = hp("sampler_type", sdef)
    if sde_name == "ouve":  # enhancement.py: PC (or sgmse's scipy ODE), its own --N 30
        defaults = {"sampler": "ode" if sampler_type == "ode" else "pc", "N": None}
    else:  # enhancement.py: the bridge ODE unless asked for the SDE, sde.N steps from the checkpoint
        defaults = {"sampler": "sb_sde" if sampler_type == "sde" else "sb_ode", "N": int(hp("N", sdef))}
    defaults["pad_mode"] = "zero" if backbone == "ncsnpp" else "reflect"
    config = {"backbone": "NCSNpp", "backbone_config": bcfg, "sde": sde, "transform": transform,
              "output_scaling": out_scaling, "t_eps": float(hp("t_eps", _MODEL_DEFAULTS))}
    extra = {"negate_output": negate, "sampler_defaults": defaults}
    return config, extra


# ----------------------------------------------------------------------------- weights
def _weights(ck: Mapping[str, Any], backbone: nn.Module, weights: str, path: Path, pesq_weight: float
             ) -> dict[str, Tensor]:
    sd = ck.get("state_dict")
    if not isinstance(sd, Mapping):
        raise CheckpointError(f"{path}: no 'state_dict' entry; not a Lightning checkpoint")
    ours = backbone.state_dict()
    live = {k[4:]: v for k, v in sd.items() if isinstance(k, str) and k.startswith("dnn.")}
    other = [k for k in sd if not (isinstance(k, str) and k.startswith(("dnn.", "pesq_loss.")))]
    if other:
        raise CheckpointError(f"{path}: the state_dict holds modules besides the backbone ('dnn.'): "
                              f"{', '.join(map(str, other[:5]))}{' ...' if len(other) > 5 else ''}; a fork's extra "
                              f"modules (a noise encoder, ...) are not implemented")
    missing = [k for k in ours if k not in live]
    unexpected = [k for k in live if k not in ours]
    if missing or unexpected:
        raise CheckpointError(f"{path}: the checkpoint's 'dnn.' weights do not fit the network its hyper_parameters "
                              f"describe: missing {['dnn.' + k for k in missing[:5]]}"
                              f"{' ...' if len(missing) > 5 else ''}, unexpected {['dnn.' + k for k in unexpected[:5]]}"
                              f"{' ...' if len(unexpected) > 5 else ''}")
    for k, v in live.items():
        if not isinstance(v, Tensor) or tuple(v.shape) != tuple(ours[k].shape):
            got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
            raise CheckpointError(f"{path}: dnn.{k} is {got}, the network its hyper_parameters describe needs "
                                  f"{tuple(ours[k].shape)}")
    if weights == "live":
        return dict(live)
    ema = ck.get("ema")
    if ema is None:
        raise CheckpointError(f"{path} has no 'ema' entry (sgmse then warns and evaluates with the live weights); "
                              f"load it with weights='live'")
    shadow = ema.get("shadow_params") if isinstance(ema, Mapping) else None
    if not isinstance(shadow, (list, tuple)):
        raise CheckpointError(f"{path}: its 'ema' entry holds no 'shadow_params' list (torch_ema's state)")
    # torch_ema keeps one tensor per parameter of sgmse's ScoreModel, in parameters() order: the
    # backbone's (which the state_dict lists in that order, buffers aside), then PesqLoss's, if any
    params = dict(backbone.named_parameters())
    order = [k for k in live if k in params]
    trainable = [k for k in order if params[k].requires_grad]
    if len(shadow) == len(order) or (pesq_weight > 0 and len(shadow) > len(order)):
        names = order
    elif len(shadow) == len(trainable):
        names = trainable
    else:
        raise CheckpointError(f"{path}: the EMA holds {len(shadow)} tensors, the backbone has {len(order)} "
                              f"parameters: the file is damaged or not of this configuration")
    out = dict(live)
    for name, s in zip(names, shadow):
        if not isinstance(s, Tensor) or tuple(s.shape) != tuple(live[name].shape):
            got = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
            raise CheckpointError(f"{path}: the EMA tensor for dnn.{name} is {got}, expected "
                                  f"{tuple(live[name].shape)}")
        out[name] = s
    return out


def load_sgmse_checkpoint(path: str | os.PathLike, *, weights: Literal["ema", "live"] = "ema",
                          map_location: str | torch.device = "cpu") -> ScoreModel:
    """A ready :class:`ScoreModel` from an official SGMSE+ checkpoint (``.ckpt``).

    Args:
        path: a checkpoint sgmse's ``ScoreModel`` saved through Lightning.
        weights: ``"ema"`` (default; the EMA weights sgmse's ``eval()`` evaluates with) or
            ``"live"`` (the optimised ones).
        map_location: device the model is put on.

    The hyper-parameters give the backbone (``ncsnpp``, ``ncsnpp_v2``, ``ncsnpp_48k``), the
    SDE (``ouve``, ``sbve``) and its parameters, the spectrogram (n_fft, hop, window, factor,
    exponent, transform type, sample rate) and ``t_eps``; the weights load strictly. The
    model's ``.info`` holds ``path``, ``weights``, ``format`` (``"sgmse-lightning"``),
    ``model_config``, ``sample_rate``, ``epoch``, ``step``, ``sampler_defaults`` (sgmse
    enhancement's sampler, ``N`` and padding for this checkpoint) and ``sgmse`` (its
    hyper-parameters as plain data, the Lightning version, whether the output layer was
    negated). The score equals sgmse's ``ScoreModel.forward`` to float32 precision.
    Anything not implemented (a backbone, SDE, NCSN++ option, output scaling, transform) is
    a :class:`CheckpointError` naming it, as is a missing or misshaped key.
    """
    if weights not in ("ema", "live"):
        raise ValueError(f"weights must be 'ema' or 'live', got {weights!r}")
    p = Path(path)
    ck = read_sgmse_checkpoint(p, map_location="cpu")
    hparams = ck.get("hyper_parameters")
    if not isinstance(hparams, Mapping):
        raise CheckpointError(f"{p}: no 'hyper_parameters' entry; not a checkpoint of sgmse's ScoreModel")
    try:
        config, extra = sgmse_model_config(hparams)
        model = ScoreModel.from_config(config)
    except _Unsupported as e:
        raise CheckpointError(f"{p}: {e}") from e
    except CheckpointError as e:
        raise CheckpointError(f"{p}: {e}") from e
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:  # a stored value torch cannot build
        raise CheckpointError(f"{p}: cannot build the model its hyper_parameters describe: {e}") from e
    pesq_weight = hparams.get("pesq_weight") or 0.0
    state = _weights(ck, model.backbone, weights, p, float(pesq_weight) if isinstance(pesq_weight, (int, float))
                     else 0.0)
    if extra["negate_output"]:  # R = +F where this package takes -F: exact in floating point
        state = dict(state)
        for k in ("output_layer.weight", "output_layer.bias"):
            state[k] = -state[k]
    model.backbone.load_state_dict(state, strict=True)
    info: dict[str, Any] = {
        "path": str(p), "weights": weights, "format": "sgmse-lightning", "tool": None, "model_config": config,
        "sample_rate": model.sample_rate, "epoch": ck.get("epoch"), "step": ck.get("global_step"),
        "sampler_defaults": extra["sampler_defaults"],
        "sgmse": {"hyper_parameters": _plain(hparams), "pytorch_lightning_version": ck.get("pytorch-lightning_version"),
                  "output_layer_negated": extra["negate_output"]}}
    model.info = info
    return model.to(map_location).eval()

"""Published audio-encoder checkpoints (BEATs, PANNs CNN14, LAION-CLAP) -> this package's modules.

Nothing is downloaded: the user fetches a file (see the package README for where each is
published) and passes its path. :func:`load_pretrained_encoder` reads it with
``torch.load(weights_only=True)`` (the tensors only; a file never runs code), finds the
encoder's tensors under any wrapper (``{"model": ...}`` of BEATs / PANNs, ``{"state_dict":
...}`` of CLAP and Lightning, a bare state dict, and prefixes such as ``module.``, ``model.``
or a training wrapper's attribute path), renames SpeechBrain's weight-norm names to BEATs'
own, infers the sizes from the tensors (and BEATs' stored ``cfg``), and loads them strictly
into :class:`~sgmse_cfg.BEATsEncoder`, :class:`~sgmse_cfg.Cnn14Encoder` or
:class:`~sgmse_cfg.ClapAudioEncoder`. A file that is not of the architecture asked for (or,
with ``arch="auto"``, of none of them) is an :class:`EncoderCheckpointError` (a
``ValueError``) naming the file, the architecture expected, the first missing and
unexpected keys and any shape that differs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from .beats_encoder import BEATS_CONFIG_DEFAULTS, BEATS_ITER3_CONFIG, BEATsEncoder
from .clap_encoder import ClapAudioEncoder
from ._audio_frontends import slaney_mel_filters
from .pann_encoder import PANNS_CNN14_CONFIG, Cnn14Encoder

__all__ = ["PRETRAINED_ENCODER_ARCHS", "EncoderCheckpointError", "check_encoder_checkpoint",
           "convert_encoder_checkpoint", "load_pretrained_encoder", "read_checkpoint"]

#: architectures a published checkpoint can be converted from, with what each file is
PRETRAINED_ENCODER_ARCHS: dict[str, str] = {
    "beats": "BEATs (microsoft/unilm BEATs_iter3*.pt, {cfg, model}; SpeechBrain's port)",
    "cnn14": "PANNs CNN14 (Cnn14_mAP=0.431.pth and its 16 / 8 kHz variants, {model, ...})",
    "clap": "LAION-CLAP audio branch + projection (630k-*.pt HTSAT-tiny, music_*.pt HTSAT-base, PANN-14; "
            "{state_dict} with module. prefixes)",
}

#: a key that only that architecture's state dict has (after any prefix), for detection
_ANCHORS = {
    "clap": "audio_projection.0.weight",
    "beats": "patch_embedding.weight",
    "cnn14": "conv_block1.conv1.weight",
}
_CONTAINERS = ("state_dict", "model", "model_state_dict", "module", "net", "weights")


class EncoderCheckpointError(ValueError):
    """A file that cannot be used as the pretrained encoder asked for."""


# ---------------------------------------------------------------------------- reading
def _numpy_safe_globals() -> list[Any]:
    """numpy's array/scalar reconstructors, which PANNs' and CLAP's files pickle beside the
    tensors (sampler state, scores); allowing them lets ``weights_only`` read the file and
    still run nothing else."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy ships with torch wheels
        return []
    out: list[Any] = [np.ndarray, np.dtype]
    multiarray = getattr(getattr(np, "_core", None), "multiarray", None)  # numpy 2
    if multiarray is None:
        import codecs

        multiarray = np.core.multiarray  # numpy 1.x, whose pickles also encode raw bytes with codecs.encode
        out.append(codecs.encode)
    for name in ("_reconstruct", "scalar"):
        f = getattr(multiarray, name, None)
        if f is not None:
            out.append(f)
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return out


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu", *,
                    mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` with numpy arrays allowed (and nothing else);
    a missing file is a ``FileNotFoundError``, an unreadable one an :class:`EncoderCheckpointError`.
    ``mmap=True`` maps a zip-format file instead of reading it (cheap checks of big files)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"audio-encoder checkpoint {p} does not exist (nothing is downloaded; pass the path "
                                f"of a local file)")
    kw: dict[str, Any] = dict(map_location=map_location, weights_only=True)
    try:
        if mmap:
            try:
                return torch.load(p, mmap=True, **kw)
            except RuntimeError as e:  # a legacy (non-zip) file cannot be mapped: read it whole
                if "mmap" not in str(e):
                    raise
        return torch.load(p, **kw)
    except Exception as first:  # noqa: BLE001 - retried / re-raised with the file named
        if "numpy" in str(first):
            allow = getattr(torch.serialization, "safe_globals", None)  # a scoped allow-list (torch >= 2.5)
            try:
                if allow is not None:
                    with allow(_numpy_safe_globals()):
                        return torch.load(p, **kw)
                if hasattr(torch.serialization, "add_safe_globals"):  # torch 2.4: the process-wide list
                    torch.serialization.add_safe_globals(_numpy_safe_globals())
                    return torch.load(p, **kw)
            except Exception as e:  # noqa: BLE001
                first = e
        raise EncoderCheckpointError(f"cannot read audio-encoder checkpoint {p} with torch.load(weights_only=True): "
                                     f"{first}") from first


# ---------------------------------------------------------------------------- finding the tensors
def _is_state_dict(d: Any) -> bool:
    return isinstance(d, Mapping) and len(d) > 0 and all(isinstance(k, str) for k in d) and \
        sum(isinstance(v, Tensor) for v in d.values()) >= max(1, len(d) // 2)


def _candidate_dicts(obj: Any) -> list[dict[str, Tensor]]:
    """Every tensor mapping in the file: the file itself, then its usual containers."""
    out: list[dict[str, Tensor]] = []
    if _is_state_dict(obj):
        out.append({k: v for k, v in obj.items() if isinstance(v, Tensor)})
    if isinstance(obj, Mapping):
        for name in _CONTAINERS:
            sub = obj.get(name)
            if _is_state_dict(sub):
                out.append({k: v for k, v in sub.items() if isinstance(v, Tensor)})
    return out


def _find(sd: Mapping[str, Tensor], arch: str) -> str | None:
    """The prefix under which ``arch``'s anchor key sits in ``sd`` (``""`` for none), or None."""
    anchor = _ANCHORS[arch]
    hits = sorted((k[: -len(anchor)] for k in sd if k == anchor or k.endswith("." + anchor)), key=len)
    if arch == "cnn14":  # a CLAP PANN branch is not a bare CNN14
        hits = [h for h in hits if not h.endswith("audio_branch.")]
    return hits[0] if hits else None


def _detect(cands: list[dict[str, Tensor]]) -> list[tuple[str, dict[str, Tensor], str]]:
    found = []
    for sd in cands:
        for arch in ("clap", "beats", "cnn14"):
            pre = _find(sd, arch)
            if pre is not None:
                found.append((arch, sd, pre))
    return found


def _first_keys(sd: Mapping[str, Any], n: int = 5) -> str:
    ks = list(sd)
    return ", ".join(ks[:n]) + (f", ... ({len(ks)} in all)" if len(ks) > n else "")


# ---------------------------------------------------------------------------- per architecture
def _beats_config(sd: Mapping[str, Tensor], stored: Any) -> dict[str, Any]:
    if isinstance(stored, Mapping) and stored:
        base = dict(BEATS_CONFIG_DEFAULTS)
        base.update({k: stored[k] for k in BEATS_CONFIG_DEFAULTS if k in stored})
        return base
    # no stored cfg (a state dict saved elsewhere): sizes from the tensors; deep_norm and
    # max_distance cannot be seen in them and are the released (iter1-iter3) models' values
    c = dict(BEATS_ITER3_CONFIG)
    pe = sd["patch_embedding.weight"]
    c.update(input_patch_size=int(pe.shape[-1]), embed_dim=int(pe.shape[0]), conv_bias="patch_embedding.bias" in sd)
    layers = {int(m.group(1)) for k in sd if (m := re.match(r"encoder\.layers\.(\d+)\.", k))}
    c["encoder_layers"] = len(layers)
    if "encoder.layers.0.fc1.weight" in sd:
        fc1 = sd["encoder.layers.0.fc1.weight"]
        c.update(encoder_embed_dim=int(fc1.shape[1]), encoder_ffn_embed_dim=int(fc1.shape[0]))
    v = sd.get("encoder.pos_conv.0.weight_v")
    if v is not None:
        c.update(conv_pos=int(v.shape[2]), conv_pos_groups=int(v.shape[0] // v.shape[1]))
    rel = sd.get("encoder.layers.0.self_attn.relative_attention_bias.weight")
    c["relative_position_embedding"] = rel is not None
    if rel is not None:
        c.update(num_buckets=int(rel.shape[0]), encoder_attention_heads=int(rel.shape[1]))
    grep = sd.get("encoder.layers.0.self_attn.grep_a")
    c["gru_rel_pos"] = grep is not None
    if grep is not None:
        c["encoder_attention_heads"] = int(grep.shape[1])
    pred = sd.get("predictor.weight")
    c["finetuned_model"] = pred is not None
    if pred is not None:
        c["predictor_class"] = int(pred.shape[0])
    return c


def _rename_beats(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    out = {}
    for k, v in sd.items():
        k = k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                                "weight_v")
        out[k] = v
    return out


def _match_front_end(sd: Mapping[str, Tensor], prefix: str, candidates: list[tuple[int, int, float]]
                     ) -> dict[str, Any]:
    """The torchlibrosa settings (of the published ones in ``candidates``: sample rate, hop,
    fmax; fmin 50 Hz) whose mel filters equal the file's ``melW``; ``{}`` where the file has
    no front-end tensors. The STFT size is the kernel's; the sample rate decides the
    resampling and cannot be seen otherwise, hence the check."""
    melw = sd.get(prefix + "logmel_extractor.melW")
    kern = sd.get(prefix + "spectrogram_extractor.stft.conv_real.weight")
    if melw is None or kern is None or melw.ndim != 2:
        return {}
    n_fft = int(kern.shape[-1])
    for sr, hop, fmax in candidates:
        ref = slaney_mel_filters(sr, n_fft, int(melw.shape[1]), 50.0, fmax).T
        if ref.shape == melw.shape and torch.allclose(melw.float().cpu(), ref, rtol=1e-4, atol=1e-7):
            return {"sample_rate": sr, "window_size": n_fft, "hop_size": hop, "fmax": fmax}
    raise EncoderCheckpointError(
        f"its mel filters ({prefix}logmel_extractor.melW {tuple(melw.shape)}) match none of the published front "
        f"ends (n_fft {n_fft}, fmin 50 Hz; sample rate / fmax tried: {[(s, f) for s, _, f in candidates]}); build "
        f"the module with its settings and load the converted tensors with load_state_dict yourself")


def _cnn14_config(sd: Mapping[str, Tensor]) -> dict[str, Any]:
    c = dict(PANNS_CNN14_CONFIG)
    kern = sd.get("spectrogram_extractor.stft.conv_real.weight")
    n_fft = int(kern.shape[-1]) if kern is not None else 1024
    # audioset_tagging_cnn's releases: 32 kHz (1024 / 320), 16 kHz (512 / 160), 8 kHz (256 / 80), fmax 14 kHz / Nyquist
    sr, hop = {1024: (32000, 320), 512: (16000, 160), 256: (8000, 80)}.get(n_fft, (32000, 320))
    c.update(_match_front_end(sd, "", [(sr, hop, min(14000.0, sr / 2)), (sr, hop, sr / 2)]))
    if "fc_audioset.weight" in sd:
        c["classes_num"] = int(sd["fc_audioset.weight"].shape[0])
    return c


def _clap_config(sd: Mapping[str, Tensor]) -> dict[str, Any]:
    if any(".fusion_model." in k or "mel_conv2d" in k or "mel_conv1d" in k for k in sd):
        raise EncoderCheckpointError("it is a feature-fusion CLAP model (fusion_model / mel_conv2d tensors); only "
                                     "non-fusion CLAP checkpoints (e.g. 630k-audioset-best.pt) are supported")
    # laion_clap's model_configs: 48 kHz, hop 480, fmax 14 kHz (PANN-14-fmax-18k / -8k variants)
    c: dict[str, Any] = _match_front_end(sd, "audio_branch.", [(48000, 480, f) for f in (14000.0, 18000.0, 8000.0)])
    c["joint_dim"] = int(sd["audio_projection.2.weight"].shape[0])
    if "audio_branch.patch_embed.proj.weight" in sd:
        pe = sd["audio_branch.patch_embed.proj.weight"]
        stages = sorted({int(m.group(1)) for k in sd if (m := re.match(r"audio_branch\.layers\.(\d+)\.", k))})
        depths, heads = [], []
        for s in stages:
            blocks = {int(m.group(1)) for k in sd
                      if (m := re.match(rf"audio_branch\.layers\.{s}\.blocks\.(\d+)\.", k))}
            depths.append(len(blocks))
            t = sd.get(f"audio_branch.layers.{s}.blocks.0.attn.relative_position_bias_table")
            heads.append(int(t.shape[1]) if t is not None else 1)
        table = sd.get("audio_branch.layers.0.blocks.0.attn.relative_position_bias_table")
        window = (int(round(table.shape[0] ** 0.5)) + 1) // 2 if table is not None else 8
        c.update(audio_model="htsat", embed_dim=int(pe.shape[0]), patch_size=int(pe.shape[-1]), depths=depths,
                 num_heads=heads, swin_window=window)
        if "audio_branch.head.weight" in sd:
            c["num_classes"] = int(sd["audio_branch.head.weight"].shape[0])
    else:
        c["audio_model"] = "cnn14"
        if "audio_branch.fc_audioset.weight" in sd:
            c["num_classes"] = int(sd["audio_branch.fc_audioset.weight"].shape[0])
    return c


def _check_and_build(cls: type[nn.Module], cfg: dict[str, Any], sd: dict[str, Tensor], arch: str,
                     where: str) -> nn.Module:
    try:
        enc = cls(**cfg)
    except (TypeError, ValueError) as e:
        raise EncoderCheckpointError(f"{where}: its tensors do not fit {cls.__name__}({cfg}): {e}") from e
    want = enc.state_dict()
    missing = [k for k in want if k not in sd]
    unexpected = [k for k in sd if k not in want]
    shapes = [f"{k} {tuple(sd[k].shape)} (expected {tuple(want[k].shape)})"
              for k in want if k in sd and tuple(sd[k].shape) != tuple(want[k].shape)]
    if missing or unexpected or shapes:
        raise EncoderCheckpointError(
            f"{where} is not a {arch} checkpoint ({PRETRAINED_ENCODER_ARCHS[arch]}) that {cls.__name__} can hold: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''} ({len(missing)}), "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''} ({len(unexpected)}), "
            f"shapes differ: {shapes[:3]}{'...' if len(shapes) > 3 else ''}")
    return enc


def convert_encoder_checkpoint(ckpt: Any, arch: str = "auto", *, source: str = "checkpoint"
                               ) -> tuple[str, dict[str, Any], dict[str, Tensor]]:
    """A loaded checkpoint object -> ``(arch, config, state_dict)`` such that
    ``{"beats": BEATsEncoder, "cnn14": Cnn14Encoder, "clap": ClapAudioEncoder}[arch](**config)``
    loads ``state_dict`` strictly. ``arch`` is ``"beats"``, ``"cnn14"``, ``"clap"`` or
    ``"auto"`` (detected from the key names); ``source`` names the file in errors."""
    if arch != "auto" and arch not in PRETRAINED_ENCODER_ARCHS:
        raise ValueError(f"arch must be 'auto' or one of {sorted(PRETRAINED_ENCODER_ARCHS)}, got {arch!r}")
    cands = _candidate_dicts(ckpt)
    if not cands:
        what = f"a dict with keys {_first_keys(ckpt)}" if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise EncoderCheckpointError(f"{source}: no state dict (a mapping of names to tensors, bare or under "
                                     f"{list(_CONTAINERS)}) in it; it holds {what}")
    found = _detect(cands)
    if arch != "auto":
        mine = [f for f in found if f[0] == arch]
        if not mine:
            other = sorted({f[0] for f in found})
            raise EncoderCheckpointError(
                f"{source} is not a {arch} checkpoint ({PRETRAINED_ENCODER_ARCHS[arch]}): no tensor is named "
                f"'{_ANCHORS[arch]}' (under any prefix); "
                + (f"it looks like {', '.join(other)} (use that architecture); " if other else "")
                + f"its first keys: {_first_keys(cands[0])}")
        found = mine
    if not found:
        raise EncoderCheckpointError(
            f"{source} is none of the known pretrained audio encoders {sorted(PRETRAINED_ENCODER_ARCHS)}: no tensor "
            f"is named like {sorted(_ANCHORS.values())}; its first keys: {_first_keys(cands[0])}")
    arch, sd, prefix = found[0]
    sub = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    where = f"{source}" + (f" (tensors under '{prefix}')" if prefix else "")
    try:
        if arch == "beats":
            sub = _rename_beats(sub)
            stored = ckpt.get("cfg") if isinstance(ckpt, Mapping) else None
            cfg, cls = _beats_config(sub, stored), BEATsEncoder
        elif arch == "cnn14":
            cfg, cls = _cnn14_config(sub), Cnn14Encoder
        else:  # CLAP: only the audio side; the text branch and heads stay in the file
            sub = {k: v for k, v in sub.items() if k.startswith(("audio_branch.", "audio_projection."))}
            cfg, cls = _clap_config(sub), ClapAudioEncoder
    except EncoderCheckpointError as e:
        raise EncoderCheckpointError(f"{where} is not a usable {arch} checkpoint: {e}") from e
    _check_and_build(cls, cfg, sub, arch, where)
    return arch, cfg, sub


_CLASSES: dict[str, type[nn.Module]] = {"beats": BEATsEncoder, "cnn14": Cnn14Encoder, "clap": ClapAudioEncoder}


def load_pretrained_encoder(path: str | os.PathLike, arch: str = "auto", *, map_location: str | torch.device = "cpu",
                            **overrides: Any) -> nn.Module:
    """The encoder in the published checkpoint file ``path`` (see the module docstring),
    weights loaded strictly, in eval mode. ``overrides`` replace config entries that the
    file does not fix (e.g. ``output="embedding"`` for CNN14 / CLAP tokens)."""
    ck = read_checkpoint(path, map_location)
    arch, cfg, sd = convert_encoder_checkpoint(ck, arch, source=str(path))
    cfg = {**cfg, **overrides}
    try:
        enc = _CLASSES[arch](**cfg)
    except (TypeError, ValueError) as e:
        raise EncoderCheckpointError(f"{path}: {e}") from e
    enc.load_state_dict(sd, strict=True)
    return enc.eval()


def check_encoder_checkpoint(path: str | os.PathLike, arch: str = "auto") -> str:
    """Validate ``path`` as ``arch`` without keeping the weights (memory-maps zip-format files):
    returns the detected architecture; raises as :func:`load_pretrained_encoder`."""
    ck = read_checkpoint(path, "cpu", mmap=True)
    from .pretrained_encoder import AUDIO_ENCODER_ARCHS
    if isinstance(ck, Mapping) and isinstance(ck.get("cfg"), Mapping) and ck["cfg"].get("arch") in AUDIO_ENCODER_ARCHS \
            and arch in ("auto", ck["cfg"]["arch"]):
        return str(ck["cfg"]["arch"])  # this package's own {cfg: {arch}, model} file
    return convert_encoder_checkpoint(ck, arch, source=str(path))[0]

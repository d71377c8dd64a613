"""Training a score model in your own loop: the pieces ``tools/train_sgmse.py`` composes.

* :func:`build_model` -- a :class:`ScoreModel` or :class:`NoiseCondScoreModel` from plain
  options (backbone, SDE, noise encoder, injection, NC head, condition dropout, k-NN bank);
* :func:`crops_to_specs` -- waveform crops ``[B, L]`` to the model's ``(x0, y)`` spectrograms;
* :class:`SeededLoss` -- the model's loss behind ``forward`` with its noise drawn from an int
  seed, the form ``DistributedDataParallel`` needs; :func:`step_seed` gives that seed per step;
* :func:`ema_decay` / :func:`ema_update` -- the exponential moving average of the weights;
* :func:`validate` -- DSM loss (and NC accuracy) on fixed validation crops with fixed noise;
* :func:`fit_bank_on_files` -- the k-NN bank of training noise embeddings, from whole files.

A minimal loop::

    model = build_model(sde="ouve", encoder="cnn", n_classes=5)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    loss_fn = SeededLoss(model, with_labels=True)
    for step, (noisy, clean, labels) in enumerate(batches):
        x0, y = crops_to_specs(model, noisy, clean, 16000)
        total, terms = loss_fn(x0, y, labels, step_seed(0, step))
        opt.zero_grad(); total.backward(); opt.step()
        ema_update(ema, model, ema_decay(0.999, step))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from se_data import load_audio

from .guidance import EmbeddingBank
from .ncsnpp import NCSNpp
from .noise_cond_model import NoiseCondScoreModel
from .noise_encoders import CNNNoiseEncoder, SequenceNoiseEncoder
from .pretrained_encoder import PretrainedNoiseEncoder, load_audio_encoder
from .score_model import LossTerms, ScoreModel
from .sdes import OUVESDE, SBVESDE
from .small_unet import SmallUNet
from .spec_transform import SpecTransform

__all__ = ["SeededLoss", "build_model", "crops_to_specs", "ema_decay", "ema_update", "fit_bank_on_files",
           "step_seed", "validate"]

_BACKBONE_NAMES = ("smallunet", "ncsnpp")
_SDE_NAMES = ("ouve", "sbve")
_ENCODER_NAMES = ("none", "cnn", "seq", "pretrained")


def build_model(*, sample_rate: int = 16000, sde: str = "ouve", backbone: str = "smallunet",
                unet_channels: Sequence[int] = (16, 32, 64, 64), ncsnpp_preset: str = "sgmse",
                encoder: str = "cnn", encoder_features: str = "reim_logmag",
                encoder_channels: Sequence[int] = (16, 32, 64, 64), embed_dim: int = 128, num_tokens: int = 16,
                encoder_ckpt: str | os.PathLike | None = None, encoder_arch: str = "auto",
                finetune_encoder: bool = False, inject: str = "input_add", n_classes: int = 0,
                class_names: Sequence[str] | None = None,
                nc_weight: float = 0.3, p_uncond: float = 0.1, bank_size: int = 4096,
                knn_k: int = 10) -> ScoreModel:
    """A new model to train, built from plain options (the defaults are ``train_sgmse.py``'s).

    Args:
        sample_rate: rate (Hz) of its :class:`SpecTransform` (SGMSE+'s 510/128 STFT).
        sde: ``"ouve"`` (SGMSE+'s OUVE SDE, score output) or ``"sbve"`` (Schroedinger bridge,
            data prediction: ``output_scaling="data"``).
        backbone: ``"smallunet"`` (:class:`SmallUNet` with ``unet_channels``) or ``"ncsnpp"``
            (:meth:`NCSNpp.preset` ``ncsnpp_preset``; with ``context_dim = embed_dim`` for
            cross-attention).
        encoder: ``"none"`` (a plain :class:`ScoreModel`), ``"cnn"`` (:class:`CNNNoiseEncoder`),
            ``"seq"`` (:class:`SequenceNoiseEncoder`, ``num_tokens`` tokens) or ``"pretrained"``
            (:class:`PretrainedNoiseEncoder` around :func:`load_audio_encoder` of the local file
            ``encoder_ckpt``, frozen unless ``finetune_encoder``). ``encoder_arch``: what that file
            must be, ``"beats"``, ``"cnn14"``, ``"clap"`` (a published checkpoint, see
            :func:`load_pretrained_encoder`) or ``"auto"`` (detected; also this package's own
            :func:`save_audio_encoder` files).
        encoder_features, encoder_channels, embed_dim: input features, conv widths and
            embedding width of the cnn / seq encoders (``embed_dim`` also for ``pretrained``).
        inject: ``"input_add"``, ``"film"`` or ``"xattn"`` (needs ``backbone="ncsnpp"`` and a
            token encoder, ``seq`` or ``pretrained``).
        n_classes, class_names: the NC head's classes (0: no head); ``nc_weight`` its CE weight.
        p_uncond: condition-dropout probability for classifier-free guidance. With 0 the
            learned null embedding is never used in training and is frozen
            (``requires_grad=False``), so data-parallel training finds no unused parameter.
        bank_size, knn_k: size and ``k`` of the k-NN :class:`EmbeddingBank` (filled after
            training, e.g. with :func:`fit_bank_on_files`).

    The parameters are initialised from torch's global generator (seed it first for a
    reproducible model). Unknown names or impossible combinations raise ``ValueError``; the
    pretrained encoder's file errors (``FileNotFoundError`` / ``ValueError``) pass through.
    """
    for what, value, names in (("sde", sde, _SDE_NAMES), ("backbone", backbone, _BACKBONE_NAMES),
                               ("encoder", encoder, _ENCODER_NAMES)):
        if value not in names:
            raise ValueError(f"{what} must be one of {names}, got {value!r}")
    if inject == "xattn" and encoder != "none" and (backbone != "ncsnpp" or encoder == "cnn"):
        raise ValueError("inject='xattn' needs backbone='ncsnpp' (SmallUNet has no cross-attention) and a token "
                         "encoder ('seq' or 'pretrained')")
    if encoder == "pretrained" and encoder_ckpt is None:
        raise ValueError("encoder='pretrained' needs encoder_ckpt (a local file; nothing is downloaded)")
    transform = SpecTransform(sample_rate=sample_rate)
    sde_obj = OUVESDE() if sde == "ouve" else SBVESDE()
    scaling = "data" if sde == "sbve" else None
    ctx = embed_dim if inject == "xattn" and encoder != "none" else None
    if backbone == "smallunet":
        net: nn.Module = SmallUNet(channels=tuple(unet_channels))
    else:
        net = NCSNpp.preset(ncsnpp_preset, **({"context_dim": ctx} if ctx else {}))
    if encoder == "none":
        return ScoreModel(net, sde_obj, transform, output_scaling=scaling)
    if encoder == "cnn":
        enc: nn.Module = CNNNoiseEncoder(encoder_features, tuple(encoder_channels), embed_dim)
    elif encoder == "seq":
        enc = SequenceNoiseEncoder(encoder_features, tuple(encoder_channels), embed_dim, num_tokens)
    else:
        audio = load_audio_encoder(encoder_ckpt, arch=encoder_arch)  # type: ignore[arg-type]
        enc = PretrainedNoiseEncoder(audio, embed_dim, num_tokens,
                                     freeze=not finetune_encoder, input_sample_rate=sample_rate)
    model = NoiseCondScoreModel(net, enc, inject=inject, n_classes=n_classes, class_names=class_names,
                                nc_weight=nc_weight, p_uncond=p_uncond, bank={"max_size": bank_size, "k": knn_k},
                                sde=sde_obj, transform=transform, output_scaling=scaling)
    if p_uncond == 0:
        model.null_embedding.requires_grad_(False)
    return model


def crops_to_specs(model: ScoreModel, noisy: Tensor, clean: Tensor, sample_rate: int) -> tuple[Tensor, Tensor]:
    """Waveform crops ``noisy``, ``clean`` ``[B, L]`` at ``sample_rate`` Hz -> the model's
    compressed spectrograms ``(x0, y)`` ``[B, 1, F, T]`` (clean, noisy), both normalised by
    ``max|noisy|`` per crop (SGMSE+'s ``normalize="noisy"``; a silent crop is divided by 1e-8
    and so stays 0, where :func:`normalize_by_noisy` would refuse it)."""
    normfac = noisy.abs().amax(dim=-1, keepdim=True).clamp_min(1e-8)
    tr = model.transform
    x0 = tr.wave_to_spec(clean / normfac, sample_rate)[:, None]
    return x0, tr.wave_to_spec(noisy / normfac, sample_rate)[:, None]


class SeededLoss(nn.Module):
    """``model.loss`` behind ``forward(x0, y, labels, seed, share=None) -> (total, terms)``, the
    noise (t, z, condition dropout) drawn from a ``torch.Generator`` seeded with ``seed`` on
    ``x0``'s device: the form ``DistributedDataParallel`` wraps. ``labels [B]`` reach the loss
    only ``with_labels`` (a model with an NC head); ``share=(rank, world)`` as in
    :meth:`ScoreModel.loss` (every rank passes the same seed and keeps its own items, so N
    processes train exactly as one with the global batch)."""

    def __init__(self, model: ScoreModel, with_labels: bool = False) -> None:
        super().__init__()
        self.model = model
        self.with_labels = with_labels

    def forward(self, x0: Tensor, y: Tensor, labels: Tensor | None, seed: int,
                share: tuple[int, int] | None = None) -> LossTerms:
        g = torch.Generator(device=x0.device).manual_seed(seed)
        return self.model.loss(x0, y, g, share=share, **({"labels": labels} if self.with_labels else {}))


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The seed of one training step's noise on one rank, ``(seed * 1_000_003 + step) * 1009 +
    rank``: a function of the run's seed and the step alone, so a resumed run redraws exactly
    what it would have drawn. Negative ``step`` values (``-1 - batch``) serve validation."""
    return (seed * 1_000_003 + step) * 1009 + rank


def ema_decay(decay: float, step: int, warmup: bool = True) -> float:
    """The EMA decay used after optimizer step ``step`` (0-based): ``decay`` itself without
    warm-up (SGMSE+'s torch_ema), else ``min(decay, (1 + step) / (10 + step))`` as
    TensorFlow's ``ExponentialMovingAverage(num_updates=step)``, so that a short run's average
    is not stuck at the initial weights (for ``decay`` = 0.999 the same from step 8990 on)."""
    return decay if not warmup else min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` in place, for every floating-point
    parameter (in ``parameters()`` order; buffers are not averaged)."""
    e = [p for p in ema.parameters() if p.dtype.is_floating_point]
    m = [p.detach() for p in model.parameters() if p.dtype.is_floating_point]
    torch._foreach_lerp_(e, m, 1.0 - decay)


@torch.no_grad()
def validate(model: ScoreModel, batches: Iterable[tuple[Tensor, Tensor, Tensor]], *, sample_rate: int,
             seed: int, rank: int = 0, with_labels: bool = False,
             reduce: Callable[[Tensor], Any] | None = None) -> dict[str, float]:
    """The validation row of a model (typically the EMA weights), put in eval mode:
    ``{"valid_dsm": mean DSM loss per crop[, "valid_nc_acc": NC accuracy over labelled crops]}``.

    ``batches`` yields ``(noisy [B, L], clean [B, L], labels [B])`` crops at ``sample_rate``
    Hz (``-1`` = no label); batch ``b``'s noise is drawn from ``step_seed(seed, -1 - b, rank)``,
    so the same model and crops always give the same numbers. The accuracy (only
    ``with_labels``, for a model with an NC head) counts labelled items. ``reduce`` is called
    on the float64 totals ``[DSM sum, crops, NC correct, labelled]`` before the means, in
    place (``torch.distributed.all_reduce`` under DDP, each rank passing its share).
    """
    model.eval()
    p0 = next(model.parameters())
    device = p0.device
    tot = torch.zeros(4, dtype=torch.float64)
    for b, (noisy, clean, labels) in enumerate(batches):
        x0, y = crops_to_specs(model, noisy.to(device, p0.dtype), clean.to(device, p0.dtype), sample_rate)
        g = torch.Generator(device=device).manual_seed(step_seed(seed, -1 - b, rank))
        _, terms = model.loss(x0, y, g, **({"labels": labels.to(device)} if with_labels else {}))
        if "nc_acc" in terms:  # accuracy over the labelled items: back to counts for the exact total
            n_labelled = int((labels >= 0).sum())
            tot[2] += round(float(terms["nc_acc"]) * n_labelled)
            tot[3] += n_labelled
        tot[0] += float(terms["dsm"]) * x0.shape[0]
        tot[1] += x0.shape[0]
    if reduce is not None:
        reduce(tot)
    row = {"valid_dsm": float(tot[0] / tot[1].clamp(min=1))}
    if with_labels and tot[3] > 0:
        row["valid_nc_acc"] = float(tot[2] / tot[3])
    return row


@torch.no_grad()
def fit_bank_on_files(model: NoiseCondScoreModel, noisy_files: Sequence[str | os.PathLike], *, sample_rate: int,
                      max_files: int = 4096, seed: int = 0, resample: bool = False,
                      progress: Callable[[Iterable[int]], Iterable[int]] | None = None) -> EmbeddingBank:
    """Fill ``model``'s k-NN bank with the pooled noise embeddings of whole noisy training
    files, computed exactly as enhancement computes a query's (:meth:`NoiseCondScoreModel.prepare`
    on the whole file), so that bank and queries compare like with like (not crops with files).

    ``max_files`` files are drawn with ``torch.randperm`` seeded ``seed`` and read in their
    list order (``se_data.load_audio`` at ``sample_rate``, mono, ``resample`` as there); a
    silent file or one shorter than ``n_fft`` is skipped; the bank is fitted with a generator
    seeded ``seed``. ``progress`` wraps the file indices (e.g. ``tqdm``). Returns the bank
    (``len(bank)`` embeddings, ``bank.tau``); ``ValueError`` when no file gives an embedding.
    """
    n = min(len(noisy_files), max_files)
    order = torch.randperm(len(noisy_files), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    device = next(model.parameters()).device
    embs = []
    indices: Iterable[int] = order.tolist()
    for i in progress(indices) if progress is not None else indices:
        noisy, _ = load_audio(noisy_files[i], sample_rate, resample=resample, mono=True)
        if noisy.abs().max() == 0 or noisy.shape[0] < model.transform.n_fft:
            continue  # silent or too short: no embedding
        embs.append(model.prepare(noisy.to(device), sample_rate)[1].pooled)
    if not embs:
        raise ValueError(f"none of the {n} noisy files drawn gives a noise embedding (all silent or shorter "
                         f"than n_fft = {model.transform.n_fft} samples)")
    return model.fit_bank(torch.cat(embs), generator=torch.Generator().manual_seed(seed))

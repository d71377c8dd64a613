"""``NoiseCondScoreModel``: a :class:`ScoreModel` conditioned on a noise embedding (NASE),
trained with condition dropout for classifier-free guidance, sampled with static or
uncertainty-adaptive guidance.

Pieces: a noise encoder (:mod:`.noise_encoders`, :mod:`.pretrained_encoder`), an optional
NC head (:mod:`.nc_head`), an injector (:mod:`.injection`), a learned null embedding (the
"unconditional" input of CFG) and an :class:`EmbeddingBank` of training embeddings (for the
k-NN reliability; a buffer, so it is saved with the weights).

The noise embedding depends only on the noisy input, so it is computed ONCE per utterance
(in :meth:`enhance` over the whole file, before any chunking; in :meth:`sample` once per
call) and bound into a :class:`GuidedCond` that every score evaluation reuses -- NASE
re-ran BEATs inside each of its 60 score evaluations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from se_data import keyword_alias

from ._registry import name_of, new_registry, register
from .conditioning import BackboneCond
from .guidance import (GUIDANCE_MODES, EmbeddingBank, GuidedCond, guidance_weights, nc_certainty,
                       nc_confidence, nc_entropy)
from .injection import INJECTIONS, NoiseInjector
from .nc_head import NC_WEIGHT, NoiseClassifier, nc_loss
from .noise_encoders import CNNNoiseEncoder, NoiseEncoding, SequenceNoiseEncoder
from .pretrained_encoder import PretrainedNoiseEncoder
from ._batch_random import share_rand
from .score_model import LossTerms, OutputScaling, ScoreModel, build_backbone
from .sdes import SDE, sde_from_dict
from .spec_transform import SpecTransform, normalize_by_noisy

__all__ = ["NoiseCondScoreModel", "NOISE_ENCODERS", "register_noise_encoder", "score_model_from_config"]

#: noise-encoder classes by the name stored in configs (a read-only view; add with
#: :func:`register_noise_encoder`)
_NOISE_ENCODERS, NOISE_ENCODERS = new_registry({
    "cnn": CNNNoiseEncoder,
    "seq": SequenceNoiseEncoder,
    "pretrained": PretrainedNoiseEncoder,
})


def register_noise_encoder(name: str, cls: type[nn.Module]) -> type[nn.Module]:
    """Make noise-encoder class ``cls`` savable in and rebuildable from model configs under
    ``name``. ``cls.from_config(config)`` (or ``cls(**config)``) must rebuild it from its
    ``config``; it has ``dim``, ``num_tokens`` and ``input_kind`` and returns a
    :class:`NoiseEncoding`. Returns ``cls``."""
    return register(_NOISE_ENCODERS, name, cls, kind="noise encoder", function="register_noise_encoder")


class NoiseCondScoreModel(ScoreModel):
    """Score model ``s(x_t, y, t | e(y))`` with a noise embedding ``e`` of the noisy input.

    Args:
        backbone: as :class:`ScoreModel` (for ``inject="xattn"`` an ``NCSNpp`` built with
            ``context_dim = encoder.dim``).
        encoder: a noise encoder (``CNNNoiseEncoder``, ``SequenceNoiseEncoder``,
            ``PretrainedNoiseEncoder``) with ``dim``, ``num_tokens``, ``input_kind``.
        inject: ``"input_add"`` (NASE), ``"film"`` or ``"xattn"``.
        n_classes: NC-head classes (0: no head; 10 for VoiceBank-DEMAND).
        class_names: names of those classes (stored in the config).
        nc_weight: weight of the NC cross-entropy (NASE: 0.3).
        p_uncond: probability of replacing an utterance's embedding by the learned null
            embedding in training (classifier-free guidance; 0 disables).
        bank: :class:`EmbeddingBank` options (``max_size``, ``k``, ``metric``, ``quantile``).
        sde, transform, output_scaling, t_eps: as :class:`ScoreModel`.
    """

    def __init__(self, backbone: nn.Module, encoder: nn.Module, *, inject: str = "input_add",
                 n_classes: int = 0, class_names: Sequence[str] | None = None,
                 nc_weight: float = NC_WEIGHT, p_uncond: float = 0.0,
                 bank: dict[str, Any] | None = None, sde: SDE | None = None,
                 transform: SpecTransform | None = None, output_scaling: OutputScaling | None = None,
                 t_eps: float = 0.03) -> None:
        super().__init__(backbone, sde, transform, output_scaling, t_eps)
        if inject not in INJECTIONS:
            raise ValueError(f"inject must be one of {INJECTIONS}, got {inject!r}")
        for attr in ("dim", "num_tokens", "input_kind"):
            if not hasattr(encoder, attr):
                raise TypeError(f"{type(encoder).__name__} is not a noise encoder (no {attr!r})")
        if not 0.0 <= p_uncond < 1.0:
            raise ValueError(f"p_uncond must be in [0, 1), got {p_uncond}")
        ctx = getattr(backbone, "context_dim", None)
        if inject == "xattn" and ctx != encoder.dim:
            raise ValueError(f"inject='xattn' needs a backbone with cross-attention of context_dim = "
                             f"encoder.dim = {encoder.dim} (e.g. NCSNpp(context_dim={encoder.dim})), "
                             f"got context_dim={ctx}")
        if inject != "xattn" and ctx is not None:
            raise ValueError(f"the backbone has cross-attention (context_dim={ctx}) but inject={inject!r}; "
                             f"use inject='xattn' or a backbone without context_dim")
        self.encoder = encoder
        self.inject = inject
        self.injector = NoiseInjector(inject, encoder.dim, freq_bins=self.transform.num_freqs,
                                      temb_dim=getattr(backbone, "temb_dim", None))
        self.nc_head = NoiseClassifier(encoder.dim, n_classes) if n_classes else None
        if class_names is not None and len(class_names) != n_classes:
            raise ValueError(f"{len(class_names)} class_names for n_classes={n_classes}")
        self.class_names = list(class_names) if class_names is not None else None
        self.nc_weight = float(nc_weight)
        self.p_uncond = float(p_uncond)
        n_null = encoder.num_tokens if inject == "xattn" else 1
        self.null_embedding = nn.Parameter(torch.zeros(n_null, encoder.dim))
        self.bank = EmbeddingBank(encoder.dim, **(bank or {}))

    # ---- config ------------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        cfg = super().to_config()
        cfg["noise_cond"] = {
            "encoder": name_of(NOISE_ENCODERS, self.encoder, kind="noise encoder",
                               function="register_noise_encoder"), "encoder_config": dict(self.encoder.config),
            "inject": self.inject, "n_classes": self.nc_head.n_classes if self.nc_head else 0,
            "class_names": self.class_names, "nc_weight": self.nc_weight, "p_uncond": self.p_uncond,
            "bank": dict(self.bank.config)}
        return cfg

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> NoiseCondScoreModel:
        """Rebuild a model (fresh weights) from :meth:`to_config`."""
        nc = cfg["noise_cond"]
        if nc["encoder"] not in NOISE_ENCODERS:
            raise ValueError(f"unknown noise encoder {nc['encoder']!r} in the model config; known: "
                             f"{sorted(NOISE_ENCODERS)} (register others with sgmse_cfg.register_noise_encoder "
                             f"before loading)")
        enc_cls = NOISE_ENCODERS[nc["encoder"]]
        encoder = (enc_cls.from_config(nc["encoder_config"]) if hasattr(enc_cls, "from_config")
                   else enc_cls(**nc["encoder_config"]))
        backbone = build_backbone(cfg)
        return cls(backbone, encoder, inject=nc["inject"], n_classes=nc["n_classes"],
                   class_names=nc["class_names"], nc_weight=nc["nc_weight"], p_uncond=nc["p_uncond"],
                   bank=nc["bank"], sde=sde_from_dict(cfg["sde"]),
                   transform=SpecTransform.from_dict(cfg["transform"]),
                   output_scaling=cfg["output_scaling"], t_eps=cfg["t_eps"])

    # ---- embeddings and conditions ---------------------------------------------------------------
    def encode(self, y: Tensor, noise_ref: Tensor | None = None, *, generator: torch.Generator | None = None,
               share: tuple[int, int] | None = None) -> NoiseEncoding:
        """Noise embedding of the noisy spectrogram ``y [B, 1, F, T]`` (or of ``noise_ref``:
        a ``[B, 1, F, T]`` spectrogram, or ``[B, L]`` waveform for a waveform encoder), with
        NC logits when the model has a head (its training dropout drawn from ``generator``)."""
        ref = y if noise_ref is None else noise_ref
        if self.encoder.input_kind == "wave":
            if ref.is_complex():
                ref = self.transform.spec_to_wave(ref[:, 0] if ref.ndim == 4 else ref)
        elif not ref.is_complex():
            raise ValueError(f"{type(self.encoder).__name__} takes a complex spectrogram [B, 1, F, T], "
                             f"got a real tensor {tuple(ref.shape)}")
        enc = self.encoder(ref)
        if self.nc_head is not None:
            enc.logits = self.nc_head(enc.pooled, generator, share)
        return enc

    def _null(self) -> tuple[Tensor, Tensor]:
        """Null embedding as ``(pooled [D], tokens [L, D])``."""
        return self.null_embedding.mean(dim=0), self.null_embedding

    def condition(self, enc: NoiseEncoding, drop: Tensor | None = None) -> BackboneCond:
        """:class:`BackboneCond` from an encoding; items with ``drop [B]`` True get the null
        embedding instead (condition dropout)."""
        pooled, tokens = enc.pooled, enc.tokens
        if self.inject == "xattn" and tokens.shape[1] != self.null_embedding.shape[0]:
            raise ValueError(f"the encoder gave {tokens.shape[1]} tokens, the null embedding has "
                             f"{self.null_embedding.shape[0]}")
        if drop is not None:
            null_p, null_t = self._null()
            pooled = torch.where(drop[:, None], null_p.to(pooled.dtype), pooled)
            if self.inject == "xattn":
                tokens = torch.where(drop[:, None, None], null_t.to(tokens.dtype), tokens)
            else:
                tokens = pooled[:, None]
        return self.injector(pooled, tokens)

    def null_condition(self) -> BackboneCond:
        """The unconditional input (batch 1)."""
        null_p, null_t = self._null()
        return self.injector(null_p[None], null_t[None])

    def guided_cond(self, enc: NoiseEncoding, guidance: str = "cond", w: float = 1.0,
                    alpha: float = 0.5, batched: bool = True) -> GuidedCond:
        """Bind an encoding and a guidance choice for a sampler (see :mod:`.guidance`).

        ``guidance``: ``"cond"`` (conditional score, 1 forward per evaluation), ``"uncond"``,
        ``"static"`` (``w``), ``"nc"`` / ``"nc_raw"`` / ``"knn"`` / ``"mix"`` (``w * u`` per
        utterance).
        ``"static"`` with ``w = 1`` (``0``) runs as ``"cond"`` (``"uncond"``): the same score
        with one forward instead of two. ``batched``: CFG halves in one forward of batch 2B
        (default) or two of batch B.
        """
        if guidance not in GUIDANCE_MODES:
            raise ValueError(f"guidance must be one of {GUIDANCE_MODES}, got {guidance!r}")
        weights = guidance_weights(guidance, w=w, logits=enc.logits, pooled=enc.pooled,
                                   bank=self.bank if guidance in ("knn", "mix") else None,
                                   alpha=alpha, batch=enc.batch_size)
        mode = {"cond": "cond", "uncond": "uncond"}.get(guidance, "cfg")
        if guidance == "static" and float(w) in (0.0, 1.0):
            mode = "cond" if float(w) == 1.0 else "uncond"
        return GuidedCond(self.condition(enc), self.null_condition(), weights, mode, batched)

    @torch.no_grad()
    def uncertainty(self, enc: NoiseEncoding) -> dict[str, Tensor]:
        """Per-utterance diagnostics ``[B]``: ``nc_certainty`` (the ``"nc"`` rule's rescaled
        confidence), ``nc_confidence`` (the raw maximum softmax, the ``"nc_raw"`` rule),
        ``nc_entropy`` (softmax entropy / log C) and ``nc_class`` (with a head),
        ``knn_distance`` and ``knn_reliability`` (with a fitted bank)."""
        out: dict[str, Tensor] = {}
        if enc.logits is not None:
            out["nc_certainty"] = nc_certainty(enc.logits)
            out["nc_confidence"] = nc_confidence(enc.logits)
            out["nc_entropy"] = nc_entropy(enc.logits)
            out["nc_class"] = enc.logits.argmax(dim=-1)
        if self.bank.is_fitted:
            out["knn_distance"] = self.bank.distance(enc.pooled)
            out["knn_reliability"] = 1.0 / (1.0 + out["knn_distance"] / self.bank.tau)
        return out

    @torch.no_grad()
    def fit_bank(self, embeddings: Tensor, generator: torch.Generator | None = None,
                 tau: float | None = None) -> EmbeddingBank:
        """Fill the k-NN bank with pooled training embeddings ``[N, D]``."""
        return self.bank.fit(embeddings, generator=generator, tau=tau)

    # ---- training ------------------------------------------------------------------------
    def loss(self, x0: Tensor, y: Tensor, generator: torch.Generator | None = None,
             cond: BackboneCond | None = None, *, share: tuple[int, int] | None = None,
             labels: Tensor | None = None, noise_ref: Tensor | None = None) -> LossTerms:
        """``(total, terms)``: ``total = dsm + nc_weight * nc``, ``terms = {"dsm", ["nc",
        "nc_acc"]}`` (detached; the NC terms when the model has a head and ``labels [B]`` are
        given, ``-1`` = no label).

        The embedding is encoded from ``y`` (or ``noise_ref``); in training mode each item's
        embedding is replaced by the null embedding with probability ``p_uncond`` (drawn
        from ``generator`` before the DSM noise). The NC term uses the un-dropped embedding.
        With an explicit ``cond`` the loss is :class:`ScoreModel`'s DSM under that condition
        (no encoding, no NC term). ``share=(rank, world)``: see :meth:`ScoreModel.loss` (the NC
        head's dropout and the condition dropout are drawn from ``generator`` the same way).
        """
        if cond is not None:
            return super().loss(x0, y, generator, cond, share=share)
        enc = self.encode(y, noise_ref, generator=generator, share=share)
        drop = None
        if self.training and self.p_uncond > 0:
            drop = share_rand(x0.shape[0], generator, x0.device, torch.float32, share) < self.p_uncond
        total, terms = super().loss(x0, y, generator, self.condition(enc, drop), share=share)
        if self.nc_head is not None and labels is not None and self.nc_weight > 0:
            assert enc.logits is not None
            ce, nc_terms = nc_loss(enc.logits, labels)
            total = total + self.nc_weight * ce
            terms.update(nc_terms)
        return total, terms

    # ---- sampling -------------------------------------------------------------------------
    def score_fn(self, cond: BackboneCond | GuidedCond | None = None):  # type: ignore[override]
        if isinstance(cond, GuidedCond):
            return lambda x, y, t: cond.score(self.forward, x, y, t)
        return super().score_fn(cond)

    def denoise_fn(self, cond: BackboneCond | GuidedCond | None = None):  # type: ignore[override]
        if isinstance(cond, GuidedCond):
            return lambda x, y, t: cond.score(self.denoise, x, y, t)
        return super().denoise_fn(cond)

    @torch.no_grad()
    def sample(self, y: Tensor, *, sampler: str = "pc", N: int = 30,
               cond: BackboneCond | GuidedCond | None = None, generator: torch.Generator | None = None,
               eps: float | None = None, guidance: str = "cond", w: float = 1.0, alpha: float = 0.5,
               noise_ref: Tensor | None = None, **kwargs: Any) -> tuple[Tensor, int]:
        """As :meth:`ScoreModel.sample`; without ``cond`` the noise embedding of ``y`` (or
        ``noise_ref``) is computed once here and bound with ``guidance`` / ``w`` / ``alpha``
        (see :meth:`guided_cond`). ``nfe`` counts score evaluations; with CFG each one is a
        single backbone forward of twice the batch."""
        if cond is None:
            cond = self.guided_cond(self.encode(y, noise_ref), guidance, w, alpha)
        return super().sample(y, sampler=sampler, N=N, cond=cond, generator=generator, eps=eps, **kwargs)

    @keyword_alias(sr="sample_rate")
    @torch.no_grad()
    def prepare(self, y_wave: Tensor, sample_rate: int, *, guidance: str = "cond",
                w: float = 1.0, alpha: float = 0.5, noise_ref: Tensor | None = None
                ) -> tuple[GuidedCond, NoiseEncoding]:
        """Encode one whole noisy waveform ``y_wave [L]`` at ``sample_rate`` Hz (normalised by
        ``max|y|`` as :meth:`enhance` does) and bind the guidance: ``(GuidedCond, encoding)``,
        batch 1. ``noise_ref [L']`` (optional, same rate) is a separate noise recording,
        scaled by the same factor as ``y``. ``sr`` is an older alias of ``sample_rate``."""
        y_wave = self._noisy_wave(y_wave, sample_rate)
        device = next(iter(self.parameters())).device
        y_norm, normfac = normalize_by_noisy(y_wave.to(device=device, dtype=torch.float32))
        if noise_ref is not None:
            ref_w = noise_ref.reshape(-1).to(device=device, dtype=torch.float32) / normfac
            ref = ref_w[None] if self.encoder.input_kind == "wave" else self.transform.wave_to_spec(ref_w, sample_rate)[None, None]
        elif self.encoder.input_kind == "wave":
            ref = y_norm[None]
        else:
            ref = self.transform.wave_to_spec(y_norm, sample_rate)[None, None]
        enc = self.encode(ref)
        return self.guided_cond(enc, guidance, w, alpha), enc

    @torch.no_grad()
    def prepare_batch(self, y_waves: Sequence[Tensor], sample_rate: int, *, guidance: str = "cond",
                      w: float = 1.0, alpha: float = 0.5, noise_refs: Sequence[Tensor | None] | None = None
                      ) -> tuple[GuidedCond, list[NoiseEncoding]]:
        """:meth:`prepare` of each waveform ``y_waves[b] [L_b]`` (its own normalisation, its own
        noise reference ``noise_refs[b] [L'_b]`` or ``None``), stacked into one
        :class:`GuidedCond` of batch ``B``: condition row ``b`` and guidance scale ``w[b]`` are
        item ``b``'s alone (adaptive rules per item), the null condition is shared (batch 1).
        Also returns the per-item encodings (batch 1 each, for :meth:`uncertainty`). The
        encoder runs once per file (files differ in length), not per sampler step."""
        refs = list(noise_refs) if noise_refs is not None else [None] * len(y_waves)
        if len(refs) != len(y_waves):
            raise ValueError(f"{len(refs)} noise references for {len(y_waves)} waveforms: give one per waveform "
                             f"(None where the noisy input itself is the reference)")
        prepared = [self.prepare(y, sample_rate, guidance=guidance, w=w, alpha=alpha, noise_ref=r)
                    for y, r in zip(y_waves, refs)]
        gcs = [gc for gc, _ in prepared]
        gc = GuidedCond(BackboneCond.cat([g.cond for g in gcs]), gcs[0].null,
                        torch.cat([g.w.reshape(1) for g in gcs]), gcs[0].mode)
        return gc, [enc for _, enc in prepared]

    @torch.no_grad()
    def enhance_batch(self, y_waves: list[Tensor], sample_rate: int, *, guidance: str = "cond",
                      w: float = 1.0, alpha: float = 0.5, noise_refs: Sequence[Tensor | None] | None = None,
                      cond: GuidedCond | None = None, **kwargs: Any) -> list[Tensor]:
        """As :meth:`ScoreModel.enhance_batch` (waveforms of one padded frame count, one
        generator each); each file's condition is computed as :meth:`enhance` computes it alone
        (:meth:`prepare_batch`: its own noise embedding from the whole file or from
        ``noise_refs[b]``, its own adaptive guidance scale) and the conditions are stacked, so
        item ``b`` equals the file enhanced alone to float rounding. CFG runs per item (one
        forward of batch ``2B`` by default)."""
        if not y_waves:
            return []
        if cond is None:
            cond, _ = self.prepare_batch(y_waves, sample_rate, guidance=guidance, w=w, alpha=alpha,
                                         noise_refs=noise_refs)
        return super().enhance_batch(y_waves, sample_rate, cond=cond, **kwargs)  # type: ignore[arg-type]

    @keyword_alias(sr="sample_rate")
    @torch.no_grad()
    def enhance(self, y_wave: Tensor, sample_rate: int, *, guidance: str = "cond",
                w: float = 1.0, alpha: float = 0.5, noise_ref: Tensor | None = None,
                cond: BackboneCond | GuidedCond | None = None, **kwargs: Any) -> Tensor:
        """As :meth:`ScoreModel.enhance` (normalisation, padding, chunking of long files);
        the noise embedding is computed once from the whole file (:meth:`prepare`) and
        shared by every chunk and every score evaluation. ``sr`` is an older alias of
        ``sample_rate``."""
        if cond is None:
            cond, _ = self.prepare(y_wave, sample_rate, guidance=guidance, w=w, alpha=alpha,
                                   noise_ref=noise_ref)
        return super().enhance(y_wave, sample_rate, cond=cond, **kwargs)  # type: ignore[arg-type]


def score_model_from_config(cfg: dict[str, Any]) -> ScoreModel:
    """Rebuild a :class:`ScoreModel` or :class:`NoiseCondScoreModel` from ``to_config()``."""
    if "noise_cond" in cfg:
        return NoiseCondScoreModel.from_config(cfg)
    return ScoreModel.from_config(cfg)


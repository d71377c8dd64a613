"""The model flags of tools/train_bsdt.py: the argument group, the checks that refuse flags a model
does not have, and the ``bandsplit.build_model`` config they make (not a public API)."""

from __future__ import annotations

import argparse
from typing import Any

import _argtypes as T

import bandsplit

MODELS = bandsplit.MODEL_NAMES


def add_model_args(p: argparse.ArgumentParser) -> None:
    """The "model" argument group."""
    g = p.add_argument_group("model")
    g.add_argument("--model", choices=MODELS, default="bsdt",
                   help="bsrnn: the BSRNN reimplementation; bsdt: band-split differential transformer with a "
                        "learnable inter-band graph (v2); bsdt-v1: with the fixed harmonic graph; erb-unet: "
                        "the ERB-grouped UNet at its own resolution (601 bins) behind the 257-bin adapter; "
                        "erb-unet-801: the same at 801 bins (n_fft 1600, hop 100); erb-unet-257: its 257-bin "
                        "redesign (default bsdt)")
    g.add_argument("--num-channel", type=T.positive_int(), default=None,
                   help="feature width N (ERB-UNets: base channels). Default: the model's demo size on the demo "
                        "corpus (N=32, L=2, 2 heads), its research size with --data (BSRNN 64/5; BSDT 128/1 with "
                        "4 heads; ERB-UNets the research size); BSDT: a multiple of 2 x --num-heads")
    g.add_argument("--num-layer", type=T.positive_int(), default=None,
                   help="number of blocks L (default: the demo or research size, see --num-channel)")
    g.add_argument("--num-heads", type=T.positive_int(), default=None,
                   help="attention heads (BSDT; default: the demo or research size, see --num-channel)")
    g.add_argument("--graph", choices=["fixed", "learned", "dense", "none"], default=None,
                   help="BSDT inter-band graph (default: learned for bsdt, fixed for bsdt-v1)")
    g.add_argument("--no-inter-band", action="store_true", help="BSDT ablation: drop the inter-band module")
    g.add_argument("--no-multiscale", action="store_true",
                   help="BSDT ablation: no multi-scale fusion at all (the same as --fusion none)")
    g.add_argument("--fusion", choices=bandsplit.FUSION_KINDS, default=None,
                   help="BSDT multi-scale fusion: adaptive (per-band weights from the input; the default), dynamic "
                        "(a per-frame gate with global scale weights), fixed (learned constants), equal (1/S, no "
                        "parameters), none")
    g.add_argument("--windows", type=T.int_list(1, 64, noun="window sizes in frames"), default=None,
                   help="BSDT fusion windows in frames, comma-separated (default 2,4,8); one window, e.g. 4, is "
                        "single-scale fusion that keeps the gate")
    g.add_argument("--top-k", type=T.int_range(1, 30), default=None,
                   help="BSDT learned graph (--graph learned): neighbours per band (default 5)")
    g.add_argument("--attention", choices=["differential", "standard", "adaptive"], default=None,
                   help="attention kind: differential (the default), standard (softmax with twice the heads), "
                        "adaptive (ERB-UNets only: multi-scale adaptive differential attention)")
    g.add_argument("--temporal", choices=["shared", "per-band"], default=None,
                   help="BSDT temporal attention: one module shared by every band (default) or one per band "
                        "(batched over bands)")
    g.add_argument("--conv", choices=["erb", "plain"], default=None,
                   help="ERB-UNets: ERB-grouped convolutions (default) or one plain convolution per layer")
    g.add_argument("--mask-resize", choices=["none", "nearest", "bilinear"], default=None,
                   help="ERB-UNets with ERB-grouped convs: where each level's soft group masks come from: its own "
                        "bins' frequencies (none, the default) or the input grid's masks resized by nearest "
                        "(the research's Net1) or bilinear interpolation (its Net2)")
    g.add_argument("--skip-align", choices=["exact", "adaptive-pool", "truncate"], default=None,
                   help="ERB-UNets: how a decoder level meets its skip connection: transposed convs built to the "
                        "skip's bin count (exact, the default), average-pooled to it (adaptive-pool, the "
                        "research's Net1) or cut to it (truncate, its Net2)")
    g.add_argument("--n-fft", type=T.int_range(64, 8192), default=None,
                   help="erb-unet / erb-unet-801: the net's own STFT size (defaults 1200 / 1600 at 16 kHz)")
    g.add_argument("--hop", type=T.int_range(16, 4096), default=None,
                   help="erb-unet / erb-unet-801: the net's own hop in samples (default 100)")
    g.add_argument("--diversity-weight", type=T.float_range(0.0, 100.0), default=0.0,
                   help="BSDT with adaptive or dynamic fusion, or an ERB-UNet with --attention adaptive: weight of "
                        "the scale-diversity loss (the mean |correlation| over time between the fusion scales' "
                        "gates; default 0 = off)")
    g.add_argument("--interleaved", action="store_true",
                   help="BSRNN: interleave time and frequency layers (the paper's order; the reference runs all "
                        "time layers first)")
    g.add_argument("--causal", action="store_true", help="BSRNN: causal norms and a unidirectional time LSTM")


BSDT_MODELS = ("bsdt", "bsdt-v1")
ERB_MODELS = ("erb-unet", "erb-unet-801", "erb-unet-257")
#: each model's (demo size, research size): bandsplit presets, or the ERB-UNets' constructor
#: defaults (None) and the research size of the notes
SIZES: dict[str, tuple[str | None, str | dict[str, Any]]] = {
    "bsrnn": ("bsrnn-demo", "bsrnn-published"),
    "bsdt": ("bsdt-demo", "bsdt-research"),
    "bsdt-v1": ("bsdt-v1-demo", "bsdt-v1-research"),
    "erb-unet": (None, "erb-unet-research"),
    "erb-unet-801": (None, "erb-unet-801-research"),
    "erb-unet-257": (None, dict(bandsplit.ERB_UNET_FULL_SIZE)),
}
#: flag -> the models it applies to (anything else is refused: a study row must never run an ablation that
#: silently does nothing)
MODEL_FLAGS: dict[str, tuple[str, ...]] = {
    "num_heads": BSDT_MODELS, "graph": BSDT_MODELS, "no_inter_band": BSDT_MODELS, "no_multiscale": BSDT_MODELS,
    "fusion": BSDT_MODELS, "windows": BSDT_MODELS, "top_k": BSDT_MODELS, "temporal": BSDT_MODELS,
    "attention": BSDT_MODELS + ERB_MODELS, "conv": ERB_MODELS, "mask_resize": ERB_MODELS,
    "skip_align": ERB_MODELS, "n_fft": ("erb-unet", "erb-unet-801"),
    "hop": ("erb-unet", "erb-unet-801"), "num_layer": ("bsrnn",) + BSDT_MODELS,
    "interleaved": ("bsrnn",), "causal": ("bsrnn",), "diversity_weight": BSDT_MODELS + ERB_MODELS,
}


def _check_model_flags(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse model flags the chosen --model does not have, and combinations that mean nothing."""
    for key, models in MODEL_FLAGS.items():
        v = getattr(args, key)
        if v not in (None, False, 0.0) and args.model not in models:
            p.error(f"--{key.replace('_', '-')} applies to --model {' / '.join(models)}, not {args.model}")
    if args.attention == "adaptive" and args.model in BSDT_MODELS:
        p.error("--attention adaptive applies to the ERB-UNets; BSDT's multi-scale adaptivity is --fusion")
    if args.no_multiscale and args.fusion not in (None, "none"):
        p.error(f"--no-multiscale means no fusion; it contradicts --fusion {args.fusion}")
    if args.top_k is not None and (args.graph or ("learned" if args.model == "bsdt" else "fixed")) != "learned":
        p.error("--top-k applies to the learned graph (--graph learned, the default of --model bsdt)")
    fusion = "none" if args.no_multiscale else (args.fusion or "adaptive")
    if args.diversity_weight > 0 and args.model in BSDT_MODELS and fusion not in ("adaptive", "dynamic"):
        p.error(f"--diversity-weight needs per-scale gates: --fusion adaptive or dynamic (this run: {fusion})")
    if args.diversity_weight > 0 and args.model in ERB_MODELS and args.attention != "adaptive":
        p.error("--diversity-weight needs per-scale gates: with an ERB-UNet, --attention adaptive")
    if args.diversity_weight > 0 and args.cuda_graphs:
        p.error("--diversity-weight reads the fusion gates from an eager forward; leave out --cuda-graphs")
    if args.mask_resize not in (None, "none") and args.conv == "plain":
        p.error(f"--mask-resize {args.mask_resize} resizes the ERB-grouped convs' masks; --conv plain has none")
    if args.windows is not None and len(set(args.windows)) != len(args.windows):
        p.error(f"--windows must be distinct, got {args.windows}")


def model_size(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """``(label, size keys)``: "demo" (the demo corpus) or "research" (--data) sizes, "custom" where
    --num-channel / --num-layer / --num-heads change them."""
    demo, research = SIZES[args.model]
    base = demo if args.data is None else research
    size = dict(bandsplit.preset_config(base) if isinstance(base, str) else (base or {}))
    size.pop("name", None)
    label = "demo" if args.data is None else "research"
    given = {"num_channel": args.num_channel, "num_layer": args.num_layer, "num_heads": args.num_heads}
    if args.model in ERB_MODELS:
        given = {"base_channels": args.num_channel}
    given = {k: v for k, v in given.items() if v is not None}
    if given:
        size.update(given)
        label = "custom"
    return label, size


def model_config(args: argparse.Namespace) -> dict[str, Any]:
    """The ``bandsplit.build_model`` config of the flags (see :func:`model_size` for the sizes)."""
    cfg: dict[str, Any] = {"name": args.model, **model_size(args)[1]}
    if args.model == "bsrnn":
        cfg.update(interleaved=args.interleaved, causal=args.causal)
    if args.model in BSDT_MODELS:
        cfg["graph"] = args.graph or ("learned" if args.model == "bsdt" else "fixed")
        cfg["use_inter_band"] = not args.no_inter_band
        cfg["use_multiscale"] = not args.no_multiscale
        optional = {"fusion": args.fusion, "windows": args.windows, "top_k": args.top_k,
                    "attention": args.attention,
                    "temporal_sharing": None if args.temporal is None else args.temporal.replace("-", "_")}
        cfg.update({k: v for k, v in optional.items() if v is not None})
    if args.model in ERB_MODELS:
        optional = {"attention": {"differential": "diff"}.get(args.attention, args.attention), "conv": args.conv,
                    "n_fft": args.n_fft, "hop": args.hop, "mask_resize": args.mask_resize,
                    "skip_align": None if args.skip_align is None else args.skip_align.replace("-", "_")}
        cfg.update({k: v for k, v in optional.items() if v is not None})
    return cfg


def check_model_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse model flags that mean nothing for ``--model``, and a BSDT width the heads do not divide."""
    _check_model_flags(p, args)
    cfg = model_config(args)
    if args.model in BSDT_MODELS and cfg["num_channel"] % (2 * cfg["num_heads"]):
        n = f"--num-channel {cfg['num_channel']}" if args.num_channel else f"the default width {cfg['num_channel']}"
        p.error(f"{n} must be a multiple of 2 x --num-heads = {2 * cfg['num_heads']} (differential attention "
                f"splits the width into two halves per head)")

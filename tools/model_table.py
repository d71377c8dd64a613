#!/usr/bin/env python
"""Print parameters and MACs per second of audio for BSRNN, every BSDT ablation and the ERB-UNets.

Each row is built with ``bandsplit.build_model`` exactly as ``tools/train_bsdt.py`` builds it,
so the numbers are those of the models you train. ``--num-channel`` / ``--num-layer`` /
``--num-heads`` set the BSDT and BSRNN sizes of the comparison rows (default: train_bsdt.py's
demo size, N=32, L=2, 2 heads); the published BSRNN (N=64, L=5) and every preset of
``bandsplit.PRESETS`` (demo and research sizes) are always listed.

MACs are counted by ``bandsplit.count_macs`` on ``--seconds`` of audio (batch 1) and divided by
that duration: torch's FlopCounterMode (one MAC = 2 FLOPs) plus analytic counts of the LSTM and
CPU attention kernels it does not price; differential attention in its explicit form. Not
counted: elementwise work and FFTs. Attention grows as T^2, so its MACs per second grow with
``--seconds``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import _argtypes as T
import bandsplit


#: train_bsdt.py's default model size (its BSDT demo preset): this table's default size
DEMO_SIZE = {k: bandsplit.PRESETS["bsdt-demo"][k] for k in ("num_channel", "num_layer", "num_heads")}


def rows(num_channel: int, num_layer: int, num_heads: int) -> list[tuple[str, dict]]:
    nl = {"num_channel": num_channel, "num_layer": num_layer}
    bsdt = {**nl, "num_heads": num_heads}
    return [
        ("BSRNN published (N=64, L=5)", bandsplit.preset_config("bsrnn-published")),
        ("BSRNN class defaults (N=128, L=6)", {"name": "bsrnn"}),
        (f"BSRNN (N={num_channel}, L={num_layer})", {"name": "bsrnn", **nl}),
        ("BSDT v2: learned graph", {"name": "bsdt", **bsdt}),
        ("BSDT v1: fixed harmonic graph", {"name": "bsdt-v1", **bsdt}),
        ("BSDT dense inter-band", {"name": "bsdt", **bsdt, "graph": "dense"}),
        ("BSDT w/o inter-band", {"name": "bsdt", **bsdt, "use_inter_band": False}),
        ("BSDT w/o multi-scale", {"name": "bsdt", **bsdt, "use_multiscale": False}),
        ("BSDT w/o both", {"name": "bsdt", **bsdt, "use_inter_band": False, "use_multiscale": False}),
        ("BSDT dynamic fusion (global scale weights)", {"name": "bsdt", **bsdt, "fusion": "dynamic"}),
        ("BSDT fixed fusion (learned constants)", {"name": "bsdt", **bsdt, "fusion": "fixed"}),
        ("BSDT equal-weight fusion", {"name": "bsdt", **bsdt, "fusion": "equal"}),
        ("BSDT single-scale fusion (window 4)", {"name": "bsdt", **bsdt, "windows": [4]}),
        ("BSDT standard attention", {"name": "bsdt", **bsdt, "attention": "standard"}),
        ("BSDT per-band temporal attention", {"name": "bsdt", **bsdt, "temporal_sharing": "per_band"}),
        ("ERB-UNet 601 bins + 257-bin adapter", {"name": "erb-unet"}),
        ("ERB-UNet 801 bins + 257-bin adapter", {"name": "erb-unet-801"}),
        ("ERB-UNet redesigned at 257 bins", {"name": "erb-unet-257"}),
        ("ERB-UNet 257 bins, plain conv", {"name": "erb-unet-257", "conv": "plain"}),
        *((f"preset {name} (train_bsdt.py's demo size)", bandsplit.preset_config(name))
          for name in bandsplit.PRESETS if name.endswith("-demo")),
        *((f"preset {name} (research size)", bandsplit.preset_config(name))
          for name in bandsplit.PRESETS if name.endswith("-research")),
    ]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="model_table.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-channel", type=T.positive_int(), default=DEMO_SIZE["num_channel"],
                   help=f"N of the BSDT/BSRNN comparison rows (default {DEMO_SIZE['num_channel']}, train_bsdt's demo "
                        f"size; a multiple of 2 x --num-heads)")
    p.add_argument("--num-layer", type=T.positive_int(), default=DEMO_SIZE["num_layer"],
                   help=f"L of the BSDT/BSRNN comparison rows (default {DEMO_SIZE['num_layer']})")
    p.add_argument("--num-heads", type=T.positive_int(), default=DEMO_SIZE["num_heads"],
                   help=f"differential heads of the BSDT rows (default {DEMO_SIZE['num_heads']})")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the table as JSON to FILE (new file)")
    p.add_argument("--seconds", type=T.seconds(), default=1.0,
                   help="audio duration the MACs are counted on, in seconds (default 1.0; MACs are per second)")
    return T.annotate_help(p)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    if args.num_channel % (2 * args.num_heads):
        p.error(f"--num-channel {args.num_channel} must be a multiple of 2 x --num-heads = {2 * args.num_heads} "
                f"(differential attention splits the width into two halves per head)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    path = Path(args.json) if args.json else None
    if path is not None and path.exists():
        sys.exit(f"error: {path} exists; nothing is overwritten")
    table = []
    for label, cfg in rows(args.num_channel, args.num_layer, args.num_heads):
        model = bandsplit.build_model(cfg)
        macs = bandsplit.count_macs(model, args.seconds)
        table.append({"model": label, "config": cfg, "parameters": sum(t.numel() for t in model.parameters()),
                      "macs_per_second": round(macs.per_second), "macs_seconds": args.seconds})
    ref = table[0]
    width = max(len(r["model"]) for r in table)
    print(f"{'model':{width}s} {'parameters':>12s} {'vs BSRNN N=64 L=5':>18s} {'GMACs/s':>9s} {'vs BSRNN':>9s}")
    print("-" * (width + 52))
    for r in table:
        print(f"{r['model']:{width}s} {r['parameters']:12,d} {r['parameters'] / ref['parameters']:17.2f}x "
              f"{r['macs_per_second'] / 1e9:9.3f} {r['macs_per_second'] / ref['macs_per_second']:8.2f}x")
    print(f"MACs per second of audio counted on {args.seconds:g} s (batch 1) by bandsplit.count_macs: matrix "
          f"products and convolutions (LSTM and CPU attention kernels priced analytically, differential attention "
          f"in its explicit form); elementwise work and FFTs are not counted; attention grows as T^2.")
    if path is not None:
        path.write_text(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

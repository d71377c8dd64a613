#!/usr/bin/env python
"""Print a parameter table for BSRNN, every BSDT configuration and the ERB-UNet variants.

Each row is built with ``bandsplit.build_model`` exactly as ``tools/train_bsdt.py`` builds it,
so the numbers are those of the models you train. ``--num-channel`` / ``--num-layer`` set the
BSDT and BSRNN sizes of the comparison rows (the published BSRNN, N=64 L=5, is always listed,
and so are the demo-size presets ``bandsplit.PRESETS`` that train_bsdt.py trains by default).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import _argtypes as T
import bandsplit


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
        ("ERB-UNet 601 bins + 257-bin adapter", {"name": "erb-unet"}),
        ("ERB-UNet redesigned at 257 bins", {"name": "erb-unet-257"}),
        *((f"preset {name} (train_bsdt.py's demo size)", bandsplit.preset_config(name))
          for name in bandsplit.PRESETS if name.endswith("-demo")),
    ]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="model_table.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-channel", type=T.positive_int(), default=64,
                   help="N of the BSDT/BSRNN comparison rows (default 64; a multiple of 2 x --num-heads)")
    p.add_argument("--num-layer", type=T.positive_int(), default=5,
                   help="L of the BSDT/BSRNN comparison rows (default 5)")
    p.add_argument("--num-heads", type=T.positive_int(), default=4,
                   help="differential heads of the BSDT rows (default 4)")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the table as JSON to FILE (new file)")
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
    table = []
    for label, cfg in rows(args.num_channel, args.num_layer, args.num_heads):
        model = bandsplit.build_model(cfg)
        table.append({"model": label, "config": cfg, "parameters": sum(t.numel() for t in model.parameters())})
    ref = table[0]["parameters"]
    width = max(len(r["model"]) for r in table)
    print(f"{'model':{width}s} {'parameters':>12s} {'vs BSRNN N=64 L=5':>18s}")
    print("-" * (width + 32))
    for r in table:
        print(f"{r['model']:{width}s} {r['parameters']:12,d} {r['parameters'] / ref:17.2f}x")
    if args.json:
        path = Path(args.json)
        if path.exists():
            sys.exit(f"error: {path} exists; nothing is overwritten")
        path.write_text(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

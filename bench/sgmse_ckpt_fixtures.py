"""Tiny SGMSE+ Lightning checkpoints and reference numbers, made by the ``sgmse`` package itself.

Writes, under ``--out`` (default ``packages/sgmse_cfg/tests/data``):

* one ``.ckpt`` per configuration below (by default the two committed ones; ``--configs all``
  adds the 48 kHz ``ncsnpp_48k`` recipe and ``ncsnpp_v2`` with score matching), trained for a
  few steps through a
  ``pytorch_lightning.Trainer`` by sgmse 0.1.2's own ``ScoreModel`` (its arguments collected
  from sgmse's argparse groups as its ``train.py`` does, so ``hyper_parameters`` holds what a
  real run records, the pickled ``SpecsDataModule`` class included) and saved with
  ``Trainer.save_checkpoint`` (the first with optimizer and loop state, the others
  ``weights_only`` to keep the fixtures small);
* ``sgmse_reference.pt`` (plain tensors, ``torch.load(weights_only=True)``): per
  configuration the score of sgmse's ``ScoreModel.forward`` at fixed inputs with the EMA
  weights (what sgmse evaluates with) and with the live ones, and the output of sgmse's
  ``enhancement.py`` steps (``torch.manual_seed(seed)`` once, then for each of two
  waveforms: normalise, STFT, ``pad_spec``, its sampler, ``to_audio`` over all padded
  frames, renormalise) for two waveforms that are stored too.

The weights are moved off sgmse's (partly zero) initialisation before training so every path
of the network matters. ``sgmse`` pins numpy<2 and would pull a torch that does not match
torchaudio, so it is never a workspace dependency: run this in an isolated environment,

    CUDA_VISIBLE_DEVICES= uv run --isolated --with sgmse==0.1.2 --with 'torch==2.11.0' \\
        --with 'torchaudio==2.11.0' python bench/sgmse_ckpt_fixtures.py

then compare with ``uv run python bench/sgmse_ckpt_fixtures.py --check [--out DIR]`` (the
workspace's loader and ``enhance_like_sgmse`` against the stored numbers; what
``packages/sgmse_cfg/tests/test_sgmse_cfg_lightning_ckpt.py`` asserts on the committed files).
Measured (sgmse 0.1.2, torch 2.11 CPU), relative max differences to sgmse's numbers:

    configuration     output (EMA)  live weights  --sgmse-compat  default path
    ncsnpp_ouve           2.79e-07      1.71e-01        2.79e-07      1.51e+00
    ncsnpp48k_ouve        2.79e-07      1.46e-01        2.74e-07      1.34e+00
    ncsnppv2_sbve         7.41e-07      1.55e-01        2.68e-06      5.16e-01
    ncsnppv2_ouve         2.43e-07      1.40e-01        4.39e-07      1.66e+00

(the default path draws its own random stream and, for the bridge, calls the network at
each state's own time, so it is another sample, not a rounding difference; the bridge's
first ODE step divides by sqrt(1e-8), which turns float32 rounding into ~1e-6).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch / sgmse are imported (sgmse compiles CUDA ops otherwise)

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "packages" / "sgmse_cfg" / "tests" / "data"
REFERENCE = "sgmse_reference.pt"
SEED = 1234

#: name -> (backbone, sde, sgmse CLI arguments, extra constructor kwargs, full Lightning save)
#: Sizes are tiny (nf 4, 32 or 64 frequency bins, two levels) so the committed files stay small and
#: the middle block's attention (over all positions of the lowest level) stays cheap; the
#: first is the plain SGMSE+ recipe (ncsnpp + OUVE), the others the 48 kHz EARS recipe's
#: backbone and SDE settings, the Schroedinger bridge (ncsnpp_v2, data prediction) and
#: ncsnpp_v2 with score matching.
COMMON = ["--base_dir", "/nonexistent", "--num_frames", "32", "--num_eval_files", "0", "--batch_size", "2",
          "--num_workers", "0", "--lr", "2e-3"]
STFT_16K = ["--n_fft", "62", "--hop_length", "32"]
CONFIGS: dict[str, tuple[str, str, list[str], dict, bool]] = {
    "ncsnpp_ouve": ("ncsnpp", "ouve", [*STFT_16K, "--ch_mult", "1", "2", "--num_res_blocks", "1", "--attn_resolutions", "16"],
                    {"nf": 4, "image_size": 32}, True),
    "ncsnpp48k_ouve": ("ncsnpp_48k", "ouve", ["--n_fft", "126", "--hop_length", "64", "--ch_mult", "1", "2",
                                              "--num_res_blocks", "1", "--nf", "4",
                                              "--theta", "2.0", "--sigma-min", "0.1", "--sigma-max", "1.0",
                                              "--spec_factor", "0.065", "--spec_abs_exponent", "0.667",
                                              "--sr", "48000"], {"image_size": 64}, False),
    "ncsnppv2_sbve": ("ncsnpp_v2", "sbve", [*STFT_16K, "--ch_mult", "1", "2", "--num_res_blocks", "1", "--nf", "4",
                                            "--attn_resolutions", "16", "--loss_type", "data_prediction",
                                            "--N", "4"], {"image_size": 32}, False),
    "ncsnppv2_ouve": ("ncsnpp_v2", "ouve", [*STFT_16K, "--ch_mult", "1", "2", "--num_res_blocks", "1", "--nf", "4",
                                            "--attn_resolutions", "16", "--N", "30"], {"image_size": 32}, False),
}
#: the configurations whose files are committed (about 0.7 MB together); the others are made
#: and compared with --configs all, e.g. into /tmp
COMMITTED = ("ncsnpp_ouve", "ncsnppv2_sbve")
#: enhancement.py's sampler settings (its defaults) for the OUVE configurations
N_PC, SNR, CORRECTOR_STEPS = 30, 0.5, 1


def waves(sr: int, hop: int) -> list[torch.Tensor]:
    """Two noisy test waveforms of 70 and 97 hops and a few samples (no multiple of the hop;
    0.14 s and 0.19 s at 16 kHz with hop 32: 71 and 98 frames, padded to 128)."""
    g = torch.Generator().manual_seed(7)
    out = []
    for n, f0 in ((70 * hop + 5, 220.0), (97 * hop + 11, 150.0)):
        t = torch.arange(n) / sr
        speech = 0.3 * torch.sin(2 * torch.pi * f0 * t) * (1 + 0.5 * torch.sin(2 * torch.pi * 3 * t))
        out.append((speech + 0.05 * torch.randn(n, generator=g)).float())
    return out


# --------------------------------------------------------------------------- making (isolated env)
def make(out: Path, steps: int, names: list[str]) -> None:
    import pytorch_lightning as pl
    import sgmse
    from sgmse.backbones import BackboneRegistry
    from sgmse.data_module import SpecsDataModule
    from sgmse.model import ScoreModel
    from sgmse.sdes import SDERegistry
    from sgmse.util.other import pad_spec
    from torch.utils.data import DataLoader, Dataset
    from torch_ema import ExponentialMovingAverage

    torch.set_num_threads(2)
    out.mkdir(parents=True, exist_ok=True)
    reference: dict = {"sgmse": getattr(sgmse, "__version__", "0.1.2"), "torch": str(torch.__version__),
                       "pytorch_lightning": str(pl.__version__), "seed": SEED, "N_pc": N_PC, "snr": SNR,
                       "corrector_steps": CORRECTOR_STEPS, "configs": {}}
    for name in names:
        backbone, sde, argv, extra, full = CONFIGS[name]
        # the arguments as sgmse's train.py collects them: one argparse group per class
        p = argparse.ArgumentParser()
        p.add_argument("--backbone", default=backbone)
        p.add_argument("--sde", default=sde)
        p.add_argument("--nolog", action="store_true")
        groups = {}
        for title, cls in (("ScoreModel", ScoreModel), ("SDE", SDERegistry.get_by_name(sde)),
                           ("Backbone", BackboneRegistry.get_by_name(backbone)), ("DataModule", SpecsDataModule)):
            groups[title] = p.add_argument_group(title)
            cls.add_argparse_args(groups[title])
        args = p.parse_args(COMMON + argv)
        kw = {a.dest: getattr(args, a.dest) for g in groups.values() for a in g._group_actions}
        torch.manual_seed(0)
        model = ScoreModel(backbone=args.backbone, sde=args.sde, data_module_cls=SpecsDataModule, **kw, **extra,
                           nolog=True)
        with torch.no_grad():  # off the (partly zero) init, so every path matters
            for q in model.dnn.parameters():
                if q.requires_grad:
                    q.add_(0.05 * torch.randn_like(q))
        model.ema = ExponentialMovingAverage(model.parameters(), decay=model.ema_decay)
        dm = model.data_module

        class Pairs(Dataset):
            def __len__(self) -> int:
                return 16

            def __getitem__(self, i: int):
                g = torch.Generator().manual_seed(100 + i)
                n = (dm.num_frames - 1) * dm.hop_length
                t = torch.arange(n) / model.sr
                x = 0.3 * torch.sin(2 * torch.pi * (180 + 40 * i) * t)[None]
                y = x + 0.1 * torch.randn(1, n, generator=g)
                fac = y.abs().max()
                return dm.spec_fwd(dm.stft(x / fac)), dm.spec_fwd(dm.stft(y / fac))

        trainer = pl.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, limit_val_batches=0, num_sanity_val_steps=0,
                             enable_model_summary=False)
        trainer.fit(model, train_dataloaders=DataLoader(Pairs(), batch_size=2, shuffle=False))
        path = out / f"sgmse_{name}.ckpt"
        trainer.save_checkpoint(path, weights_only=not full)
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {path.stat().st_size:,} bytes")

        # ---- reference numbers with sgmse's own code (the file is ours: unpickling it is fine)
        def load(ema: bool) -> ScoreModel:
            m = ScoreModel.load_from_checkpoint(path, map_location="cpu", weights_only=False)
            m.t_eps = 0.03  # enhancement.py: model.t_eps = args.t_eps (default 0.03)
            m.train(False, no_ema=not ema)
            return m

        m_ema, m_live = load(True), load(False)
        F = dm.n_fft // 2 + 1
        g = torch.Generator().manual_seed(11)
        x_t = torch.complex(torch.randn(2, 1, F, 8, generator=g), torch.randn(2, 1, F, 8, generator=g)) * 0.3
        y = torch.complex(torch.randn(2, 1, F, 8, generator=g), torch.randn(2, 1, F, 8, generator=g)) * 0.3
        t = torch.tensor([0.8, 0.1])
        with torch.no_grad():
            score_ema, score_live = m_ema(x_t, y, t), m_live(x_t, y, t)
        # enhancement.py, file by file after one torch.manual_seed
        target_sr = 48000 if backbone == "ncsnpp_48k" else 16000
        pad_mode = "zero_pad" if backbone == "ncsnpp" else "reflection"
        assert target_sr == m_ema.sr
        ws, enhanced = waves(target_sr, dm.hop_length), []
        torch.manual_seed(SEED)
        with torch.no_grad():
            for w in ws:
                yw = w[None]
                T_orig = yw.size(1)
                norm_factor = yw.abs().max()
                yw = yw / norm_factor
                Y = torch.unsqueeze(m_ema._forward_transform(m_ema._stft(yw)), 0)
                Y = pad_spec(Y, mode=pad_mode)
                if sde == "ouve":
                    sampler = m_ema.get_pc_sampler("reverse_diffusion", "ald", Y, N=N_PC,
                                                   corrector_steps=CORRECTOR_STEPS, snr=SNR)
                else:  # enhancement.py: sampler_type 'pc' is replaced by 'ode' for the bridge
                    sampler = m_ema.get_sb_sampler(sde=m_ema.sde, y=Y, sampler_type="ode")
                sample, _ = sampler()
                x_hat = m_ema.to_audio(sample.squeeze(), T_orig)
                enhanced.append((x_hat * norm_factor).float())
        reference["configs"][name] = {
            "file": path.name, "backbone": backbone, "sde": sde, "sample_rate": target_sr, "pad_mode": pad_mode,
            "x_t": x_t, "y": y, "t": t, "score_ema": score_ema, "score_live": score_live,
            "waves": ws, "enhanced": enhanced}
        rel = float((score_ema - score_live).abs().max() / score_ema.abs().max())
        print(f"  EMA vs live score: relative max difference {rel:.3g}")
    torch.save(reference, out / REFERENCE)
    print(f"{out / REFERENCE}: {(out / REFERENCE).stat().st_size:,} bytes")


# --------------------------------------------------------------------------- checking (workspace env)
def check(out: Path) -> int:
    sys.path.insert(0, str(ROOT / "packages" / "sgmse_cfg" / "src"))
    import sgmse_cfg

    ref = torch.load(out / REFERENCE, weights_only=True)
    print(f"reference made with sgmse {ref['sgmse']}, torch {ref['torch']}, lightning {ref['pytorch_lightning']}")
    print("relative max differences to sgmse's numbers: the model output (score, or the bridge's x0 estimate) with\n"
          "the EMA weights, the same through the live weights (the naive route), enhancement.py's output\n"
          "(--sgmse-compat) and this toolkit's default path (own random stream, trimmed spectrogram)")
    print(f"{'configuration':16s} {'output (EMA)':>13s} {'live weights':>13s} {'--sgmse-compat':>15s} "
          f"{'default path':>13s}")
    worst = 0.0
    for name, c in ref["configs"].items():
        if not (out / c["file"]).is_file():
            print(f"{name:16s} (no {c['file']})")
            continue
        model = sgmse_cfg.load_model(out / c["file"])
        live = sgmse_cfg.load_model(out / c["file"], weights="live")
        args = (c["x_t"], c["y"], c["t"])
        with torch.no_grad():  # sgmse's ScoreModel.forward: the score, or the bridge's x0 estimate
            s, s_live = ((model.denoise(*args), live.denoise(*args)) if c["sde"] == "sbve"
                         else (model(*args), live(*args)))
        scale = c["score_ema"].abs().max()
        rel = float((s - c["score_ema"]).abs().max() / scale)
        naive = float((s_live - c["score_ema"]).abs().max() / scale)
        N = ref["N_pc"] if c["sde"] == "ouve" else None  # the bridge: the checkpoint's N, as enhancement.py
        torch.manual_seed(ref["seed"])
        outs = [sgmse_cfg.enhance_like_sgmse(model, w, c["sample_rate"], N=N, snr=ref["snr"],
                                             corrector_steps=ref["corrector_steps"]) for w in c["waves"]]
        enh = max(float((o - e).abs().max() / e.abs().max()) for o, e in zip(outs, c["enhanced"]))
        proj = [sgmse_cfg.enhance(model, w, c["sample_rate"], N=N, generator=torch.Generator().manual_seed(ref["seed"]))
                for w in c["waves"]]
        pr = max(float((o - e).abs().max() / e.abs().max()) for o, e in zip(proj, c["enhanced"]))
        worst = max(worst, rel, enh)
        print(f"{name:16s} {rel:13.2e} {naive:13.2e} {enh:15.2e} {pr:13.2e}")
    print(f"\nworst relative difference of the model output and --sgmse-compat enhancement: {worst:.2e} (float32)")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for the files (default {DEFAULT_OUT})")
    p.add_argument("--steps", type=int, default=30, help="training steps per checkpoint (default 30)")
    p.add_argument("--configs", nargs="+", choices=[*CONFIGS, "all"], default=list(COMMITTED),
                   help=f"configurations to make (default: the committed ones, {' '.join(COMMITTED)}; all: "
                        f"{' '.join(CONFIGS)})")
    p.add_argument("--check", action="store_true",
                   help="compare the workspace's loader with the stored numbers (run in the workspace env)")
    args = p.parse_args()
    if args.check:
        return check(args.out)
    try:
        import sgmse  # noqa: F401
    except ImportError as e:
        sys.exit(f"error: cannot import sgmse ({e}); run in an isolated environment:\n  CUDA_VISIBLE_DEVICES= uv run "
                 f"--isolated --with sgmse==0.1.2 --with 'torch==2.11.0' --with 'torchaudio==2.11.0' python "
                 f"bench/sgmse_ckpt_fixtures.py")
    make(args.out, args.steps, list(CONFIGS) if "all" in args.configs else args.configs)
    return 0


if __name__ == "__main__":
    sys.exit(main())

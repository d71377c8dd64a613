"""SGMSE+ Lightning checkpoints from seeded recipes, and sgmse's own numbers for them, as JSON.

For each configuration below (by default the two the tests use; ``--configs all`` adds the
48 kHz ``ncsnpp_48k`` recipe and ``ncsnpp_v2`` with score matching), in an environment with
sgmse 0.1.2 and pytorch_lightning:

1. sgmse's own ``ScoreModel`` is built with the arguments collected from sgmse's argparse
   groups as its ``train.py`` does (so ``hyper_parameters`` holds what a real run records, the
   pickled ``SpecsDataModule`` class included), filled with the seeded weights of
   ``packages/sgmse_cfg/tests/sgmse_ckpt_recipe.py`` (live and EMA shadow; no training) and
   saved through a ``pytorch_lightning.Trainer`` (``fit`` for zero steps, then
   ``Trainer.save_checkpoint``: the first with optimizer and loop state, the others
   ``weights_only``), into a temporary folder removed at exit;
2. that recipe's ``write_checkpoint``, which the tests use without sgmse, must write a file
   equal to Lightning's: same entries in the same order, same types, equal tensors, the same
   pickled code references (the data-module class under ``sgmse.data_module``);
3. sgmse's numbers for the file: the output of ``ScoreModel.forward`` at seeded inputs with the
   EMA weights (what sgmse evaluates with) and with the live ones (every value), and the output
   of sgmse's ``enhancement.py`` steps (``torch.manual_seed(seed)`` once, then for each of two
   seeded waveforms: normalise, STFT, ``pad_spec``, its sampler, ``to_audio`` over all padded
   frames, renormalise), summarised (first and last 64 samples, every 16th, sum, sum of squares,
   max |value|; ``json_fixtures.summarize``).

Everything the tests need goes to ``--out``/``sgmse_ckpt.json`` (default
``packages/sgmse_cfg/tests/data``, about 110 kB of text: the arguments, the Lightning layout,
the state-dict keys and shapes, the numbers; no weights). ``sgmse`` pins numpy<2 and would pull
a torch that does not match torchaudio, so it is never a workspace dependency: run this in an
isolated environment,

    CUDA_VISIBLE_DEVICES= UV_CACHE_DIR=/tmp/cirun/uvcache uv run --isolated --with sgmse==0.1.2 \\
        --with 'torch==2.11.0' --with 'torchaudio==2.11.0' python bench/sgmse_ckpt_fixtures.py

then compare with ``uv run python bench/sgmse_ckpt_fixtures.py --check [--out DIR]`` (the
workspace's loader and ``enhance_like_sgmse`` on the recipe-written files against sgmse's
numbers; what ``packages/sgmse_cfg/tests/test_sgmse_cfg_lightning_ckpt.py`` asserts).
Measured (sgmse 0.1.2, torch 2.11 CPU), relative max differences to sgmse's numbers (the two
enhancement columns over the stored samples):

    configuration     output (EMA)  live weights  --sgmse-compat  default path
    ncsnpp_ouve           6.00e-07      7.29e-01        2.80e-07      1.28e+00
    ncsnppv2_sbve         4.61e-07      4.66e-01        2.18e-05      1.48e+00

and on torch 2.4.1 (the oldest the package supports) 7.63e-07 / 2.91e-07 (PC) and 5.00e-07 /
1.92e-04 (bridge). The default path draws its own random stream and, for the bridge, calls the
network at each state's own time, so it is another sample, not a rounding difference; the
bridge's first ODE step divides by sqrt(1e-8), which turns float32 rounding into ~1e-5 (~1e-4
on torch 2.4, whose kernels round differently).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import pickletools
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch / sgmse are imported (sgmse compiles CUDA ops otherwise)

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "packages" / "sgmse_cfg" / "tests"
sys.path.insert(0, str(TESTS))
from json_fixtures import dumps, stored_max_diff, summarize, summary_scale, tensor_from_json, tensor_to_json  # noqa: E402
from sgmse_ckpt_recipe import (  # noqa: E402
    DATA_MODULE,
    recipe_weights,
    score_inputs,
    to_json_value,
    waves,
    write_checkpoint,
)

DEFAULT_OUT = TESTS / "data"
REFERENCE = "sgmse_ckpt.json"
SEED = 1234  # enhancement.py's torch.manual_seed
WEIGHTS_SEED = 0

#: name -> (backbone, sde, sgmse CLI arguments, extra constructor kwargs, full Lightning save)
#: Sizes are tiny (nf 4, 32 or 64 frequency bins, two levels) so the tests' files stay small and
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
#: the configurations the tests use; the others are made and compared with --configs all
#: (--out elsewhere, e.g. /tmp)
COMMITTED = ("ncsnpp_ouve", "ncsnppv2_sbve")
#: enhancement.py's sampler settings (its defaults) for the OUVE configurations
N_PC, SNR, CORRECTOR_STEPS = 30, 0.5, 1
#: the enhanced waveforms' summaries: first and last EDGE samples and every STRIDE-th
EDGE, STRIDE = 64, 16


# --------------------------------------------------------------------------- the file layout
def code_references(path: Path) -> set[str]:
    """``module.name`` of every class or function a ``torch.save`` file pickles (protocol 2: GLOBAL)."""
    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))
    out = set()
    for op, arg, _ in pickletools.genops(data):
        if op.name == "STACK_GLOBAL":
            raise ValueError(f"{path}: pickle protocol 4 references are not read here")
        if op.name == "GLOBAL":
            out.add(arg.replace(" ", "."))
    return out


def storage_sizes(path: Path) -> list[int]:
    """Byte sizes of the tensor storages a ``torch.save`` file holds (tensors sharing one count once)."""
    with zipfile.ZipFile(path) as z:
        return sorted(i.file_size for i in z.infolist() if "/data/" in i.filename)


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two unpickled objects differ: type, entry order, tensor dtype / shape / strides / values."""
    if type(a) is not type(b):
        return [f"{where}: {type(a).__name__} vs {type(b).__name__}"]
    if isinstance(a, torch.Tensor):
        same = (a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride() and torch.equal(a, b))
        return [] if same else [f"{where}: tensors differ"]
    if isinstance(a, dict):
        if list(a) != list(b):
            return [f"{where}: keys {list(a)[:8]} vs {list(b)[:8]}"]
        out = differences(getattr(a, "_metadata", None), getattr(b, "_metadata", None), f"{where}._metadata")
        for k in a:
            out += differences(a[k], b[k], f"{where}[{k!r}]")
        return out
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def describe(ck: dict[str, Any], data_module_cls: type) -> dict[str, Any]:
    """What ``sgmse_ckpt_recipe.write_checkpoint`` needs besides the recipe weights, as JSON."""
    sd, hp = ck["state_dict"], ck["hyper_parameters"]
    assert hp["data_module_cls"] is data_module_cls
    name = ".".join(DATA_MODULE)
    return {
        "layout": list(ck),
        "entries": {k: to_json_value(v) for k, v in ck.items() if k not in ("state_dict", "hyper_parameters", "ema")},
        "hyper_parameters": {k: (name if k == "data_module_cls" else to_json_value(v)) for k, v in hp.items()},
        "ema": {k: ("recipe" if k == "shadow_params" else to_json_value(v)) for k, v in ck["ema"].items()},
        "state_dict": [[k, list(v.shape)] for k, v in sd.items()],
        "state_dict_metadata": {k: dict(v) for k, v in sd._metadata.items()},
    }


# --------------------------------------------------------------------------- making (isolated env)
def make(out: Path, names: list[str], tmp: Path) -> None:
    import pytorch_lightning as pl
    import sgmse
    from sgmse.backbones import BackboneRegistry
    from sgmse.data_module import SpecsDataModule
    from sgmse.model import ScoreModel
    from sgmse.sdes import SDERegistry
    from sgmse.util.other import pad_spec
    from torch.utils.data import DataLoader, TensorDataset

    torch.set_num_threads(2)
    reference: dict = {"sgmse": getattr(sgmse, "__version__", "0.1.2"), "torch": str(torch.__version__),
                       "pytorch_lightning": str(pl.__version__), "seed": SEED, "N_pc": N_PC, "snr": SNR,
                       "corrector_steps": CORRECTOR_STEPS,
                       "recipes": {"weights": "sgmse_ckpt_recipe.recipe_weights(state_dict, frozen, weights_seed)",
                                   "file": "sgmse_ckpt_recipe.write_checkpoint(path, config)",
                                   "score inputs": "sgmse_ckpt_recipe.score_inputs(n_fft // 2 + 1)",
                                   "waves": "sgmse_ckpt_recipe.waves(sample_rate, hop_length)",
                                   "enhanced": f"json_fixtures.summarize(wave, edge={EDGE}, stride={STRIDE})"},
                       "configs": {}}
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
        # parameters only, in state-dict order: what the recipe (and torch_ema's shadow list) assumes
        keys = [(k, list(v.shape)) for k, v in model.state_dict().items()]
        assert [k for k, _ in keys] == [n for n, _ in model.named_parameters()] and not list(model.buffers())
        frozen = [n for n, q in model.named_parameters() if not q.requires_grad]
        live, shadow = recipe_weights(keys, frozen, WEIGHTS_SEED)
        model.load_state_dict(live, strict=True)
        model.ema.shadow_params = [t.clone() for t in shadow]
        dm = model.data_module
        F = dm.n_fft // 2 + 1
        zeros = torch.zeros(2, 1, F, dm.num_frames, dtype=torch.complex64)
        trainer = pl.Trainer(max_steps=0, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, limit_val_batches=0, num_sanity_val_steps=0,
                             enable_model_summary=False)
        trainer.fit(model, train_dataloaders=DataLoader(TensorDataset(zeros, zeros), batch_size=2))  # no step
        path = tmp / f"sgmse_{name}.ckpt"
        trainer.save_checkpoint(path, weights_only=not full)
        ck = torch.load(path, map_location="cpu", weights_only=False)  # our own file
        assert all(torch.equal(ck["state_dict"][k], v) for k, v in live.items())
        assert all(torch.equal(a, b) for a, b in zip(ck["ema"]["shadow_params"], shadow))
        config = {"backbone": backbone, "sde": sde, "weights_seed": WEIGHTS_SEED, "frozen": frozen,
                  **describe(ck, SpecsDataModule)}

        # ---- the tests' writer against Lightning's file
        ours = write_checkpoint(tmp / f"recipe_{name}.ckpt", json.loads(json.dumps(config)))
        diff = differences(ck, torch.load(ours, map_location="cpu", weights_only=False), "checkpoint")
        refs, refs_ours = code_references(path), code_references(ours)
        if refs != refs_ours:
            diff.append(f"pickled code references {sorted(refs)} vs {sorted(refs_ours)}")
        if storage_sizes(path) != storage_sizes(ours):
            diff.append("tensor storages differ in number or size")
        if diff:
            sys.exit(f"error: sgmse_ckpt_recipe.write_checkpoint differs from Lightning's file for {name}:\n  "
                     + "\n  ".join(diff[:20]))
        print(f"{name}: Lightning's file ({path.stat().st_size:,} bytes) == the recipe writer's "
              f"(entries {list(ck)}; code references {sorted(refs)})")

        # ---- reference numbers with sgmse's own code (the file is ours: unpickling it is fine)
        def load(ema: bool) -> ScoreModel:
            m = ScoreModel.load_from_checkpoint(path, map_location="cpu", weights_only=False)
            m.t_eps = 0.03  # enhancement.py: model.t_eps = args.t_eps (default 0.03)
            m.train(False, no_ema=not ema)
            return m

        m_ema, m_live = load(True), load(False)
        x_t, y, t = score_inputs(F)
        with torch.no_grad():
            score_ema, score_live = m_ema(x_t, y, t), m_live(x_t, y, t)
        # enhancement.py, file by file after one torch.manual_seed
        target_sr = 48000 if backbone == "ncsnpp_48k" else 16000
        pad_mode = "zero_pad" if backbone == "ncsnpp" else "reflection"
        assert target_sr == m_ema.sr
        enhanced = []
        torch.manual_seed(SEED)
        with torch.no_grad():
            for w in waves(target_sr, dm.hop_length):
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
        config["sample_rate"], config["pad_mode"] = target_sr, pad_mode
        config["outputs"] = {"score_ema": tensor_to_json(score_ema), "score_live": tensor_to_json(score_live),
                             "enhanced": [summarize(e, edge=EDGE, stride=STRIDE) for e in enhanced]}
        reference["configs"][name] = config
        rel = float((score_ema - score_live).abs().max() / score_ema.abs().max())
        print(f"  EMA vs live output: relative max difference {rel:.3g}")
    out.mkdir(parents=True, exist_ok=True)
    (out / REFERENCE).write_text(dumps(reference) + "\n")
    print(f"{out / REFERENCE}: {(out / REFERENCE).stat().st_size:,} bytes")


# --------------------------------------------------------------------------- checking (workspace env)
def check(out: Path, tmp: Path) -> int:
    sys.path.insert(0, str(ROOT / "packages" / "sgmse_cfg" / "src"))
    import sgmse_cfg

    ref = json.loads((out / REFERENCE).read_text())
    print(f"reference made with sgmse {ref['sgmse']}, torch {ref['torch']}, lightning {ref['pytorch_lightning']}")
    print("relative max differences to sgmse's numbers: the model output (score, or the bridge's x0 estimate) with\n"
          "the EMA weights, the same through the live weights (the naive route), enhancement.py's output\n"
          "(--sgmse-compat) and this toolkit's default path (own random stream, trimmed spectrogram); the\n"
          f"enhanced waveforms over the stored samples (first / last {EDGE}, every {STRIDE}th)")
    print(f"{'configuration':16s} {'output (EMA)':>13s} {'live weights':>13s} {'--sgmse-compat':>15s} "
          f"{'default path':>13s}")
    worst = 0.0
    for name, c in ref["configs"].items():
        path = write_checkpoint(tmp / f"sgmse_{name}.ckpt", c)
        model = sgmse_cfg.load_model(path)
        live = sgmse_cfg.load_model(path, weights="live")
        hp = c["hyper_parameters"]
        args = score_inputs(hp["n_fft"] // 2 + 1)
        with torch.no_grad():  # sgmse's ScoreModel.forward: the score, or the bridge's x0 estimate
            s, s_live = ((model.denoise(*args), live.denoise(*args)) if c["sde"] == "sbve"
                         else (model(*args), live(*args)))
        want = tensor_from_json(c["outputs"]["score_ema"])
        scale = want.abs().max()
        rel = float((s - want).abs().max() / scale)
        naive = float((s_live - want).abs().max() / scale)
        N = ref["N_pc"] if c["sde"] == "ouve" else None  # the bridge: the checkpoint's N, as enhancement.py
        ws = waves(c["sample_rate"], hp["hop_length"])
        torch.manual_seed(ref["seed"])
        outs = [sgmse_cfg.enhance_like_sgmse(model, w, c["sample_rate"], N=N, snr=ref["snr"],
                                             corrector_steps=ref["corrector_steps"]) for w in ws]
        summ = c["outputs"]["enhanced"]
        enh = max(stored_max_diff(o, e) / summary_scale(e) for o, e in zip(outs, summ))
        proj = [sgmse_cfg.enhance(model, w, c["sample_rate"], N=N, generator=torch.Generator().manual_seed(ref["seed"]))
                for w in ws]
        pr = max(stored_max_diff(o, e) / summary_scale(e) for o, e in zip(proj, summ))
        worst = max(worst, rel, enh)
        print(f"{name:16s} {rel:13.2e} {naive:13.2e} {enh:15.2e} {pr:13.2e}")
    print(f"\nworst relative difference of the model output and --sgmse-compat enhancement: {worst:.2e} (float32)")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"folder of {REFERENCE} (default {DEFAULT_OUT.relative_to(ROOT)})")
    p.add_argument("--configs", nargs="+", choices=[*CONFIGS, "all"], default=list(COMMITTED),
                   help=f"configurations to make (default: the tests' ones, {' '.join(COMMITTED)}; all: "
                        f"{' '.join(CONFIGS)})")
    p.add_argument("--check", action="store_true",
                   help="compare the workspace's loader with the stored numbers (run in the workspace env)")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sgmse_ckpt_fixtures_"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    if args.check:
        return check(args.out, tmp)
    try:
        import sgmse  # noqa: F401
    except ImportError as e:
        sys.exit(f"error: cannot import sgmse ({e}); run in an isolated environment:\n  CUDA_VISIBLE_DEVICES= uv run "
                 f"--isolated --with sgmse==0.1.2 --with 'torch==2.11.0' --with 'torchaudio==2.11.0' python "
                 f"bench/sgmse_ckpt_fixtures.py")
    make(args.out, list(CONFIGS) if "all" in args.configs else args.configs, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())

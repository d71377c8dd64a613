"""Parity of sgmse_cfg's pretrained audio encoders with the peers' own code, and the fixture.

Peers (from PyPI; never workspace dependencies): ``panns-inference`` 0.1.1 (PANNs CNN14, MIT),
``laion-clap`` 1.1.7 (CLAP: HTSAT-tiny and PANN-14 audio branches, CC0) and ``speechbrain``
1.1.2 (``speechbrain.lobes.models.beats``, its port of microsoft/unilm's BEATs, Apache-2.0;
BEATs itself is not on PyPI). Run in an isolated environment::

    CUDA_VISIBLE_DEVICES= uv run --isolated --no-project --with panns-inference==0.1.1 \\
        --with laion-clap==1.1.7 --with speechbrain==1.1.2 --with torch==2.11.0 \\
        --with torchaudio==2.11.0 --with torchvision==0.26.0 \\
        python bench/pretrained_encoder_parity.py [--write-fixture]

For each architecture, at the published size:

1. a randomly initialised peer model (the peer's own constructor and initialisation, seed 0,
   then every weight moved by 0.02 randn so no path is trivial): its state dict converted by
   ``sgmse_cfg.convert_encoder_checkpoint`` (from the wrapper the published file uses) must
   have our module's keys and shapes, and our module's outputs must equal the peer's;
2. the fixed front-end tensors our modules build (torchlibrosa STFT kernels, librosa mel
   filters) against the peer's;
3. the fixture (``--write-fixture``): the peer filled with the deterministic weights of
   ``packages/sgmse_cfg/tests/encoder_parity_recipe.py``, its key list with shapes, the seeded
   inputs' recipe and a summary of its outputs (per output row: the first and last 16 values,
   sum, sum of squares, max |value|; ``json_fixtures.summarize``), written as JSON text to
   ``packages/sgmse_cfg/tests/data/encoder_parity.json`` (no weights: they are rebuilt from
   the recipe at test time), which ``test_sgmse_cfg_encoder_parity.py`` checks without any
   peer installed.

The peers try to download at import (panns_inference: AudioSet's label CSV; laion_clap: three
Hugging Face tokenizers): this script gives panns_inference a stand-in label file in a
temporary HOME and replaces the tokenizer loaders before the import, so nothing is fetched.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ["HF_HUB_OFFLINE"] = "1"
_HOME = Path(tempfile.mkdtemp(prefix="panns_home_"))
(_HOME / "panns_data").mkdir()
(_HOME / "panns_data" / "class_labels_indices.csv").write_text(
    "index,mid,display_name\n" + "".join(f"{i},/m/{i},class {i}\n" for i in range(527)))
os.environ["HOME"] = str(_HOME)

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "packages" / "sgmse_cfg" / "src"), str(ROOT / "packages" / "se_data" / "src"),
                str(ROOT / "packages" / "sgmse_cfg" / "tests")]

try:
    import transformers
    for _n in ("BertTokenizer", "RobertaTokenizer", "BartTokenizer"):
        getattr(transformers, _n).from_pretrained = classmethod(lambda cls, *a, **k: None)
    import laion_clap  # noqa: F401
    import panns_inference  # noqa: F401
    import speechbrain.lobes.models.beats as sb_beats
    from laion_clap.clap_module.model import CLAP, CLAPAudioCfp, CLAPTextCfg
    from laion_clap.training.data import get_audio_features
    from panns_inference.models import Cnn14 as PeerCnn14
except ImportError as e:  # pragma: no cover - depends on the environment
    sys.exit(f"error: cannot import the peers ({e}); run in the isolated environment given in this file's docstring")

from encoder_parity_recipe import make_input, recipe_state_dict  # noqa: E402
from json_fixtures import dumps, summarize  # noqa: E402
from sgmse_cfg import (  # noqa: E402
    BEATS_ITER3_CONFIG,
    BEATsEncoder,
    ClapAudioEncoder,
    Cnn14Encoder,
    convert_encoder_checkpoint,
)

FIXTURE = ROOT / "packages" / "sgmse_cfg" / "tests" / "data" / "encoder_parity.json"
CLAP_CONFIGS = Path(laion_clap.__file__).parent / "clap_module" / "model_configs"
TEXT = CLAPTextCfg(context_length=77, vocab_size=64, width=32, heads=2, layers=1, model_type="transformer")
SB_G, SB_V = "parametrizations.weight.original0", "parametrizations.weight.original1"


def _versions() -> dict[str, str]:
    from importlib.metadata import version
    return {p: version(p) for p in ("panns-inference", "laion-clap", "speechbrain", "torch", "torchaudio")}


def _perturb(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "extractor" not in n:
                p.add_(0.02 * torch.randn_like(p))


def _diff(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    d = float((a - b).abs().max())
    return d, d / max(float(b.abs().max()), 1e-30)


# ---------------------------------------------------------------------------- peers
def peer_cnn14() -> torch.nn.Module:
    return PeerCnn14(sample_rate=32000, window_size=1024, hop_size=320, mel_bins=64, fmin=50, fmax=14000,
                     classes_num=527).eval()


def peer_clap(name: str) -> tuple[torch.nn.Module, dict]:
    cfg = json.loads((CLAP_CONFIGS / f"{name}.json").read_text())
    return CLAP(cfg["embed_dim"], CLAPAudioCfp(**cfg["audio_cfg"]), TEXT).eval(), cfg["audio_cfg"]


def peer_beats(cfg: dict) -> torch.nn.Module:
    orig = sb_beats.BEATsConfig
    sb_beats.BEATsConfig = lambda c=None: orig(cfg)  # the peer's constructor, with the iter3 config
    try:
        return sb_beats.BEATs(freeze=True).eval()
    finally:
        sb_beats.BEATsConfig = orig


def clap_embed(peer: torch.nn.Module, audio_cfg: dict, x: torch.Tensor) -> torch.Tensor:
    data = [get_audio_features({}, x[i], 480000, data_truncating="rand_trunc", data_filling="repeatpad",
                               audio_cfg=audio_cfg) for i in range(x.shape[0])]
    return peer.get_audio_embedding(data)


# ---------------------------------------------------------------------------- cases
def case_cnn14(seed: int, write: bool, rows: list, fixture: dict) -> None:
    torch.manual_seed(seed)
    peer = peer_cnn14()
    _perturb(peer)
    arch, cfg, sd = convert_encoder_checkpoint({"iteration": 0, "model": peer.state_dict()}, "cnn14",
                                               source="panns_inference Cnn14")
    ours = Cnn14Encoder(**cfg).eval()
    for k in ("spectrogram_extractor.stft.conv_real.weight", "logmel_extractor.melW"):
        rows.append((f"CNN14 fixed {k} (ours built vs peer)", *_diff(ours.state_dict()[k], peer.state_dict()[k])))
    ours.load_state_dict(sd, strict=True)
    x = make_input(seed + 1, 2, 32000)
    with torch.no_grad():
        t0 = time.perf_counter()
        ref = peer(x)
        t1 = time.perf_counter()
        out = ours.clip_outputs(x)
        t2 = time.perf_counter()
    rows.append(("CNN14 (panns_inference, 1 s at 32 kHz) embedding", *_diff(out["embedding"], ref["embedding"])))
    rows.append(("CNN14 clipwise_output", *_diff(out["clipwise_output"], ref["clipwise_output"])))
    rows.append(("  seconds: peer / ours", t1 - t0, t2 - t1))
    if write:
        keys = [(k, list(v.shape)) for k, v in peer.state_dict().items()]
        peer.load_state_dict(recipe_state_dict(keys, peer.state_dict(), seed), strict=True)
        with torch.no_grad():
            r = peer(x)
        fixture["cnn14"] = {"peer": "panns_inference.models.Cnn14(32000, 1024, 320, 64, 50, 14000, 527)",
                            "wrapper": "{'iteration', 'model'}", "keys": keys, "input": [seed + 1, 2, 32000],
                            "outputs": {"embedding": summarize(r["embedding"]),
                                        "clipwise_output": summarize(r["clipwise_output"])}}


def case_clap(name: str, seed: int, write: bool, rows: list, fixture: dict) -> None:
    torch.manual_seed(seed)
    peer, audio_cfg = peer_clap(name)
    _perturb(peer)
    full = peer.state_dict()
    wrapped = {"epoch": 45, "state_dict": {"module." + k: v for k, v in full.items()}}
    arch, cfg, sd = convert_encoder_checkpoint(wrapped, "clap", source=f"laion_clap CLAP {name}")
    ours = ClapAudioEncoder(**cfg).eval()
    ours.load_state_dict(sd, strict=True)
    x = make_input(seed + 2, 2, 144000)  # 3 s at 48 kHz: repeated 3x and zero-padded to 10 s
    with torch.no_grad():
        t0 = time.perf_counter()
        ref = clap_embed(peer, audio_cfg, x)
        t1 = time.perf_counter()
        out = ours.embed(x)
        t2 = time.perf_counter()
    rows.append((f"CLAP {name} (laion_clap, 3 s at 48 kHz) audio embedding", *_diff(out, ref)))
    rows.append(("  seconds: peer / ours", t1 - t0, t2 - t1))
    if write:
        keys = [(k, list(v.shape)) for k, v in full.items() if k.startswith(("audio_branch.", "audio_projection."))]
        peer.load_state_dict(recipe_state_dict(keys, full, seed), strict=False)
        with torch.no_grad():
            r = clap_embed(peer, audio_cfg, x)
        fixture[f"clap_{name}"] = {
            "peer": f"laion_clap CLAP {name} (text branch: a 1-layer 'transformer'; roberta needs a download)",
            "wrapper": "{'epoch', 'state_dict': {'module.' + key}}", "keys": keys,
            "other_keys": [k for k in full if not k.startswith(("audio_branch.", "audio_projection."))],
            "input": [seed + 2, 2, 144000], "outputs": {"embedding": summarize(r)}}


def case_beats(seed: int, write: bool, rows: list, fixture: dict) -> None:
    cfg = dict(BEATS_ITER3_CONFIG, finetuned_model=True)
    torch.manual_seed(seed)
    peer = peer_beats(cfg)
    _perturb(peer)
    arch, ocfg, sd = convert_encoder_checkpoint({"cfg": cfg, "model": peer.state_dict()}, "beats",
                                                source="speechbrain BEATs")
    ours = BEATsEncoder(**ocfg).eval()
    ours.load_state_dict(sd, strict=True)
    x = make_input(seed + 3, 2, 9600)  # 0.6 s at 16 kHz: 58 fbank frames -> 3 x 8 patches
    with torch.no_grad():
        t0 = time.perf_counter()
        tok, probs, _ = peer(x, torch.ones(2))
        t1 = time.perf_counter()
        out = ours.clip_outputs(x)
        t2 = time.perf_counter()
    rows.append(("BEATs iter3 (speechbrain, 0.6 s at 16 kHz) tokens", *_diff(out["tokens"], tok)))
    rows.append(("BEATs predictor probabilities", *_diff(out["probs"], probs)))
    rows.append(("  seconds: peer / ours", t1 - t0, t2 - t1))
    if write:
        peer_keys = [(k, list(v.shape)) for k, v in peer.state_dict().items()]
        ours_names = [(k.replace(SB_G, "weight_g").replace(SB_V, "weight_v"), s) for k, s in peer_keys]
        rec = recipe_state_dict(ours_names, {}, seed)
        peer.load_state_dict({pk: rec[ok] for (pk, _), (ok, _) in zip(peer_keys, ours_names)}, strict=True)
        with torch.no_grad():
            tok, probs, _ = peer(x, torch.ones(2))
        fixture["beats"] = {"peer": "speechbrain.lobes.models.beats.BEATs with BEATs_iter3 cfg (finetuned, 527)",
                            "wrapper": "{'cfg', 'model'} (speechbrain's weight-norm names)", "cfg": cfg,
                            "keys": peer_keys, "input": [seed + 3, 2, 9600],
                            "outputs": {"tokens": summarize(tok), "probs": summarize(probs)}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write-fixture", action="store_true", help=f"(re)write {FIXTURE.relative_to(ROOT)}")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"peers: {_versions()}")
    rows: list = []
    fixture: dict = {"versions": _versions(), "seed": args.seed,
                     "recipes": {"weights": "encoder_parity_recipe.recipe_state_dict(keys, fixed, seed)",
                                 "input": "encoder_parity_recipe.make_input(*input): 0.1 * randn(batch, length)",
                                 "outputs": "json_fixtures.summarize(output), rows over the last dimension"}}
    case_cnn14(args.seed, args.write_fixture, rows, fixture)
    for name in ("HTSAT-tiny", "PANN-14"):
        case_clap(name, args.seed, args.write_fixture, rows, fixture)
    case_beats(args.seed, args.write_fixture, rows, fixture)
    print(f"\n{'peer-initialised model, same weights and input':64s} {'max |diff|':>11s} {'relative':>10s}")
    for name, a, b in rows:
        print(f"{name:64s} {a:11.3e} {b:10.3e}" if not name.startswith("  ") else f"{name:64s} {a:11.2f} {b:10.2f}")
    if args.write_fixture:
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        FIXTURE.write_text(dumps(fixture) + "\n")
        print(f"\nwrote {FIXTURE.relative_to(ROOT)} ({FIXTURE.stat().st_size / 1024:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

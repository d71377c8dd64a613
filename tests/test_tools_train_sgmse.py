"""tools/train_sgmse.py and tools/enhance_sgmse.py end to end (tiny settings): outputs and the
weights-only checkpoints with the k-NN bank inside, bit-exact resume on CPU, the sample-rate
guard, DDP under torchrun, and enhancing a folder (long file chunked, adaptive guidance)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import se_data

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: the helper beside this file
from _inproc import run_tool  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = ["--frames", "32", "--batch-size", "4", "--unet-channels", "4,8", "--encoder-channels", "4,8",
        "--embed-dim", "8", "--threads", "1", "--test-files", "1", "--test-N", "2", "--steps-per-epoch", "2"]


def _run(script: str, args: list[str], *, torchrun: int = 0, check: bool = True, timeout: int = 300,
         process: bool = True) -> subprocess.CompletedProcess:
    """tools/SCRIPT ARGS as a process (under torchrun with ``torchrun`` processes), or without
    ``process`` its main in this process (tests/_inproc.py: the same output and status without
    the seconds of start-up and imports)."""
    if not process:
        proc = run_tool(script, *args)
        if check and proc.returncode != 0:
            raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable]
    if torchrun:
        cmd += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(torchrun)]  # a free port
    cmd += [f"tools/{script}", *map(str, args)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sgdemo") / "corpus"
    se_data.make_demo_corpus(root, n_train=16, n_valid=4, n_test=2, seconds=(1.2, 1.8), seed=0)
    return root


@pytest.fixture(scope="module")
def trained(corpus: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "sgmse"
    _run("train_sgmse.py", ["--data", corpus, "--epochs", "2", *TINY, "--out", out])
    return out


def test_outputs_and_checkpoints(trained: Path) -> None:
    for rel in ("last.pt", "best.pt", "model.pt", "log.csv", "config.json", "results.json", "test_table.txt"):
        assert (trained / rel).is_file(), rel
    ck = torch.load(trained / "model.pt", map_location="cpu", weights_only=True)
    nc = ck["model_config"]["noise_cond"]
    assert ck["sample_rate"] == 16000 and ck["tool"] == "train_sgmse"
    assert nc["inject"] == "input_add" and nc["p_uncond"] == 0.1 and nc["nc_weight"] == 0.3
    assert ck["class_names"] == ["babble", "brown", "nonstationary", "pink", "white"] == nc["class_names"]
    assert ck["ema"]["bank.embeddings"].shape == (16, 8)  # the bank travels in the model
    assert float(ck["ema"]["bank.tau"]) > 0
    last = torch.load(trained / "last.pt", map_location="cpu", weights_only=True)
    for k in ("model", "ema", "optimizer", "rng", "versions", "history", "config"):
        assert k in last
    assert last["step"] == 4 and len(last["history"]) == 2
    # selection on validation, never on the test set
    assert last["best"]["key"] == "valid_dsm"
    assert last["best"]["value"] == pytest.approx(min(h["valid_dsm"] for h in last["history"]))
    rows = list(csv.DictReader(open(trained / "log.csv")))
    assert len(rows) == 2 and all(np.isfinite(float(r["train_loss"])) for r in rows)
    assert {"train_dsm", "train_nc", "valid_dsm", "valid_nc_acc"} <= set(rows[0])
    res = json.loads((trained / "results.json").read_text())
    assert set(res["test"]["mean"]) == {"noisy", "enhanced"} and res["test"]["count"] == 1
    assert res["bank"]["size"] == 16


def test_resume_is_bit_exact(trained: Path, corpus: Path, tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    _run("train_sgmse.py", ["--data", corpus, "--epochs", "3", *TINY, "--test-files", "0", "--out", straight])
    resumed = tmp_path / "resumed"
    shutil.copytree(trained, resumed)
    _run("train_sgmse.py", ["--data", corpus, "--epochs", "3", *TINY, "--test-files", "0", "--out", resumed,
                            "--resume", "--num-workers", "2"])  # the same batches from 2 DataLoader workers
    a = torch.load(straight / "last.pt", map_location="cpu", weights_only=True)
    b = torch.load(resumed / "last.pt", map_location="cpu", weights_only=True)
    assert a["step"] == b["step"] == 6
    for part in ("model", "ema"):  # bit-exact (the unfitted bank's tau is NaN in both)
        for k in a[part]:
            torch.testing.assert_close(a[part][k], b[part][k], rtol=0, atol=0, equal_nan=True, msg=f"{part} {k}")
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    # a mismatched configuration is refused
    bad = _run("train_sgmse.py", ["--data", corpus, "--epochs", "4", *TINY, "--embed-dim", "16", "--out", resumed,
                                  "--resume"], check=False, process=False)
    assert bad.returncode != 0 and "other settings (embed_dim: 8 -> 16)" in bad.stderr + bad.stdout


def test_wrong_sample_rate_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "d48"
    rng = np.random.default_rng(0)
    for split in ("train", "valid", "test"):
        for kind in ("clean", "noisy"):
            (root / split / kind).mkdir(parents=True)
            sf.write(root / split / kind / "a.wav", 0.1 * rng.standard_normal(24000), 48000)
    proc = _run("train_sgmse.py", ["--data", root, *TINY, "--out", tmp_path / "o"], check=False, process=False)
    assert proc.returncode != 0
    msg = proc.stderr + proc.stdout
    assert "48000 Hz" in msg and "resample" in msg


def test_ddp_two_processes_equal_one_process_with_the_global_batch(corpus: Path, tmp_path: Path) -> None:
    """Each rank draws t, z and the dropouts for the whole global batch from a seed
    shared by the ranks and keeps its own items, so 2 x 2 under torchrun trains exactly as one
    process with batch 4 (to ~1e-8), NC head included. SGD (Adam's first steps are +-lr whatever the
    gradient); condition dropout 0.5 so the dropout draws count."""
    common = ["--data", corpus, "--epochs", "1", *TINY, "--test-files", "0", "--optimizer", "sgd", "--lr", "1e-5",
              "--p-uncond", "0.5", "--valid-batches", "1", "--float64"]

    def weights(out: Path) -> dict[str, torch.Tensor]:
        ck = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
        assert ck["step"] == 2 and np.isfinite(ck["history"][0]["train_loss"])
        return ck["model"]

    single, ddp, half = tmp_path / "single", tmp_path / "ddp", tmp_path / "half"
    _run("train_sgmse.py", [*common, "--batch-size", "4", "--out", single], process=False)  # main in this process
    _run("train_sgmse.py", [*common, "--batch-size", "2", "--out", ddp], torchrun=2)
    assert (ddp / "model.pt").is_file()
    a, b = weights(single), weights(ddp)
    # float64: the two differ only in the order of the gradient reduction (a few ulps per step)
    for k in a:
        assert not a[k].is_floating_point() or a[k].dtype == torch.float64, k
        torch.testing.assert_close(b[k], a[k], rtol=1e-10, atol=1e-12, equal_nan=True, msg=k)  # bank.tau: NaN
    # not vacuous: one process on one rank's share of the data ends elsewhere
    _run("train_sgmse.py", [*common, "--batch-size", "2", "--out", half], process=False)
    c = weights(half)
    assert max(float((a[k] - c[k]).abs().max()) for k in a if a[k].numel()) > 1e-4


def test_enhance_folder_long_file_and_guidance(trained: Path, corpus: Path, tmp_path: Path) -> None:
    noisy = tmp_path / "noisy"
    (noisy / "sub").mkdir(parents=True)
    short, sr = sf.read(corpus / "test" / "noisy" / "demo_test_00000.wav", dtype="float32")
    long = np.concatenate([short] * 3)  # > --max-chunk-seconds: enhanced in chunks
    sf.write(noisy / "short.wav", short, sr)
    sf.write(noisy / "sub" / "long.wav", long, sr)
    out = tmp_path / "enh"
    proc = _run("enhance_sgmse.py", [noisy, "--ckpt", trained / "model.pt", "--out", out, "--N", "2",
                                     "--guidance", "mix", "--w", "1.5", "--max-chunk-seconds", "1.0",
                                     "--threads", "1"])
    assert "enhanced 2 of 2 files" in proc.stdout and "real-time factor" in proc.stdout
    for rel, ref in (("short.wav", short), ("sub/long.wav", long)):
        y, r = sf.read(out / "enhanced" / rel, dtype="float32")
        assert r == sr and len(y) == len(ref) and np.isfinite(y).all()
    rows = {r["file"]: r for r in csv.DictReader(open(out / "enhance.csv"))}
    assert set(rows) == {"short.wav", "sub/long.wav"}
    for r in rows.values():
        w = float(r["w"])
        assert 0.0 <= w <= 1.5 and float(r["rtf"]) > 0 and r["forwards_per_eval"] == "2"
        assert r["nc_class_name"] in ("babble", "brown", "nonstationary", "pink", "white")
    # refusing the wrong rate unless --resample
    d48 = tmp_path / "n48"
    d48.mkdir()
    sf.write(d48 / "x.wav", 0.1 * np.random.default_rng(0).standard_normal(24000), 48000)
    bad = _run("enhance_sgmse.py", [d48, "--ckpt", trained / "model.pt", "--out", tmp_path / "e48", "--N", "1"],
               check=False)
    assert bad.returncode == 1 and "48000 Hz" in bad.stdout
    assert "pass `--resample`" in bad.stdout and "resample=True" not in bad.stdout
    # a stereo file: a failure naming --downmix, enhanced as the channel mean with it
    d2 = tmp_path / "stereo"
    d2.mkdir()
    sf.write(d2 / "s.wav", np.stack([short, short], axis=1), sr)
    bad = _run("enhance_sgmse.py", [d2, "--ckpt", trained / "model.pt", "--out", tmp_path / "e2", "--N", "1"],
               check=False)
    assert bad.returncode == 1 and "pass `--downmix`" in bad.stdout and "mono=True" not in bad.stdout
    _run("enhance_sgmse.py", [d2, "--ckpt", trained / "model.pt", "--out", tmp_path / "e3", "--N", "1", "--downmix"])
    y, r = sf.read(tmp_path / "e3" / "enhanced" / "s.wav", dtype="float32")
    assert r == sr and y.ndim == 1 and len(y) == len(short)


def test_enhance_with_a_separate_noise_reference(trained: Path, corpus: Path, tmp_path: Path) -> None:
    """--noise-ref DIR: the noise encoder reads a noise-only recording of the same name, so the
    adaptive w and the NC posterior change with it; a file without a reference fails clearly."""
    noisy = tmp_path / "noisy"
    noisy.mkdir()
    wave, sr = sf.read(corpus / "test" / "noisy" / "demo_test_00000.wav", dtype="float32")
    sf.write(noisy / "a.wav", wave, sr)
    sf.write(noisy / "b.wav", wave, sr)
    refs = tmp_path / "refs"
    refs.mkdir()
    sf.write(refs / "a.wav", (0.3 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr)).astype(np.float32), sr)  # a tone
    common = ["--ckpt", trained / "model.pt", "--N", "2", "--guidance", "knn", "--threads", "1"]
    plain = _run("enhance_sgmse.py", [noisy, *common, "--out", tmp_path / "p"])
    with_ref = _run("enhance_sgmse.py", [noisy, *common, "--noise-ref", refs, "--out", tmp_path / "r"], check=False)
    assert "enhanced 2 of 2 files" in plain.stdout
    assert with_ref.returncode != 0 or "enhanced 1 of 2 files" in with_ref.stdout
    assert "no noise reference" in with_ref.stdout and "b.wav" in with_ref.stdout
    w_plain = {r["file"]: float(r["w"]) for r in csv.DictReader(open(tmp_path / "p" / "enhance.csv"))}
    w_ref = {r["file"]: float(r["w"]) for r in csv.DictReader(open(tmp_path / "r" / "enhance.csv"))}
    assert set(w_ref) == {"a.wav"} and abs(w_ref["a.wav"] - w_plain["a.wav"]) > 1e-4


@pytest.mark.parametrize("variant", ["pretrained-xattn", "plain"])
def test_other_model_variants(variant: str, corpus: Path, tmp_path: Path) -> None:
    """A pretrained-encoder adapter (tiny stand-in from a local file) read through cross-attention
    in NCSN++, and the plain SGMSE+ model without a noise encoder."""
    out = tmp_path / variant
    if variant == "plain":
        extra = ["--encoder", "none"]
    else:
        from sgmse_cfg import TransformerAudioEncoder, save_audio_encoder

        torch.manual_seed(0)
        save_audio_encoder(TransformerAudioEncoder(n_mels=32, embed_dim=16, depth=1, heads=2), tmp_path / "enc.pt")
        extra = ["--encoder", "pretrained", "--encoder-ckpt", tmp_path / "enc.pt", "--inject", "xattn",
                 "--backbone", "ncsnpp", "--ncsnpp-preset", "storm_6m", "--num-tokens", "4"]
    _run("train_sgmse.py", ["--data", corpus, "--epochs", "1", *TINY, "--steps-per-epoch", "1", "--out", out, *extra],
         process=False)
    ck = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    if variant == "plain":
        assert "noise_cond" not in ck["model_config"] and ck["model_config"]["backbone"] == "SmallUNet"
    else:
        nc = ck["model_config"]["noise_cond"]
        assert nc["encoder"] == "pretrained" and nc["inject"] == "xattn" and nc["encoder_config"]["freeze"]
        assert ck["model_config"]["backbone_config"]["context_dim"] == 8
        # the frozen encoder's weights are the file's
        ref = torch.load(tmp_path / "enc.pt", weights_only=True)["model"]
        assert torch.equal(ck["ema"]["encoder.encoder.patch_embed.weight"], ref["patch_embed.weight"])
    res = json.loads((out / "results.json").read_text())
    assert res["test"]["count"] == 1


def test_bridge_model_trains_and_enhances_with_the_bridge_sampler(corpus: Path, tmp_path: Path) -> None:
    """``--sde sbve`` (the built-in demo's default): the test table uses the bridge ODE, and
    enhance_sgmse picks sb_ode by itself and refuses the PC sampler with the fix named."""
    out = tmp_path / "sb"
    _run("train_sgmse.py", ["--data", corpus, "--epochs", "1", *TINY, "--sde", "sbve", "--out", out])
    ck = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    assert ck["model_config"]["sde"]["name"] == "sbve"
    res = json.loads((out / "results.json").read_text())
    assert res["test"]["count"] == 1 and np.isfinite(res["test"]["mean"]["enhanced"]["SI-SDR (dB)"])
    noisy_dir = corpus / "test" / "noisy"
    ok = _run("enhance_sgmse.py", [noisy_dir, "--ckpt", out / "model.pt", "--out", tmp_path / "e", "--N", "2",
                                   "--limit", "1"])
    settings = json.loads((tmp_path / "e" / "settings.json").read_text())
    assert settings["args"]["sampler"] == "sb_ode" and "enhanced 1 of 1 files" in ok.stdout
    bad = _run("enhance_sgmse.py", [noisy_dir, "--ckpt", out / "model.pt", "--out", tmp_path / "e2", "--sampler",
                                    "pc"], check=False)
    assert bad.returncode != 0 and "sb_ode" in (bad.stdout + bad.stderr)


def test_voicebank_demand_layout_gives_10_nc_classes(tmp_path: Path) -> None:
    """A miniature VoiceBank-DEMAND tree (16 kHz, with log_trainset_28spk.txt): NC labels from the
    log over the 10 training noise classes; validation speakers p226/p287 held out of training."""
    root = tmp_path / "vb"
    rng = np.random.default_rng(0)
    names = {"train": [f"{s}_{i:03d}" for s in ("p236", "p239", "p226", "p287") for i in range(1, 5)],
             "test": ["p232_001", "p257_001"]}
    noises = ["babble", "cafeteria", "car", "kitchen", "meeting", "metro", "restaurant", "ssn", "station", "traffic"]
    log = []
    for part, folder in (("train", "trainset_28spk"), ("test", "testset")):
        for kind in ("clean", "noisy"):
            (root / f"{kind}_{folder}_wav").mkdir(parents=True)
        for j, n in enumerate(names[part]):
            clean = 0.1 * rng.standard_normal(12000)
            sf.write(root / f"clean_{folder}_wav" / f"{n}.wav", clean, 16000)
            sf.write(root / f"noisy_{folder}_wav" / f"{n}.wav", clean + 0.05 * rng.standard_normal(12000), 16000)
            if part == "train":
                log.append(f"{n} {noises[j % 10]} 15")
    (root / "log_trainset_28spk.txt").write_text("\n".join(log) + "\n")
    out = tmp_path / "run"
    proc = _run("train_sgmse.py", ["--data", root, "--epochs", "1", *TINY, "--steps-per-epoch", "1",
                                   "--test-files", "0", "--out", out], process=False)
    assert "VoiceBank-DEMAND (8 train / 8 valid / 2 test)" in proc.stdout + proc.stderr
    ck = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert ck["class_names"] == noises and ck["model_config"]["noise_cond"]["n_classes"] == 10
    assert ck["history"][0]["train_nc"] > 0 and "valid_nc_acc" in ck["history"][0]

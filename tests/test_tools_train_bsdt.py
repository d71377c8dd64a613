"""tools/train_bsdt.py and tools/enhance.py end to end: learning, exact resume, NaN stop, DDP, enhancement."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

import se_data

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: the helper beside this file
from _inproc import run_tool  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = ["--model", "bsdt", "--num-channel", "8", "--num-layer", "1", "--num-heads", "2"]


def _run(args: list[str], *, torchrun: int = 0, check: bool = True, timeout: int = 600,
         process: bool = True) -> subprocess.CompletedProcess:
    """tools/train_bsdt.py --threads 1 ARGS as a process (under torchrun with ``torchrun``
    processes), or without ``process`` its main in this process (tests/_inproc.py: the same
    output and status without the seconds of start-up and imports)."""
    if not process:
        proc = run_tool("train_bsdt.py", "--threads", "1", *args)
        if check and proc.returncode != 0:
            raise AssertionError(f"train_bsdt.py {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        return proc
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable]
    if torchrun:
        cmd += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(torchrun)]  # a free port
    cmd += ["tools/train_bsdt.py", "--threads", "1", *args]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A small demo corpus (same generator as the default run, fewer and shorter files)."""
    root = tmp_path_factory.mktemp("demo") / "corpus"
    se_data.make_demo_corpus(root, n_train=48, n_valid=6, n_test=8, seconds=(2.0, 3.0), seed=0)
    return root


@pytest.fixture(scope="module")
def trained(corpus: Path, tmp_path_factory) -> Path:
    """A shortened default run: the default BSDT and recipe, fewer steps of 1 s crops (half the
    default's compute per step; the test set still improves on every metric: PESQ-WB 1.70 -> 2.29,
    ESTOI 0.793 -> 0.803, SI-SDR 4.1 -> 11.3 dB)."""
    out = tmp_path_factory.mktemp("run") / "bsdt"
    _run(["--data", str(corpus), "--epochs", "8", "--batch-size", "4", "--segment", "1.0",
          "--valid-pesq-files", "3", "--metric-workers", "0", "--out", str(out)])  # 96 steps
    # (--metric-workers 0: PESQ in the training process, no pool to start; the same scores as in
    # workers, bit for bit: tests/test_tools_train_bsdt_metric_pool.py)
    return out


def test_short_default_run_beats_noisy_on_every_metric(trained: Path) -> None:
    res = json.loads((trained / "results.json").read_text())
    mean = res["test"]["mean"]
    for metric in ("PESQ-WB", "ESTOI", "SI-SDR (dB)"):
        assert mean["enhanced"][metric] > mean["noisy"][metric], (metric, mean)
    assert res["test"]["count"] == 8
    # outputs a user expects
    for rel in ("best.pt", "last.pt", "log.csv", "config.json", "test_table.txt", "plots/loss_curves.png",
                "plots/spectrograms.png", "plots/fusion_weights.png", "plots/interband_graph.png"):
        assert (trained / rel).is_file(), rel
    assert len(list((trained / "enhanced").glob("*.wav"))) == 8
    table = (trained / "test_table.txt").read_text().splitlines()
    assert table[0].split()[:3] == ["PESQ-WB", "ESTOI", "SI-SDR"]
    assert table[2].startswith("noisy") and table[3].startswith("enhanced")


def test_checkpoint_is_weights_only_and_selected_on_validation(trained: Path) -> None:
    ck = torch.load(trained / "best.pt", map_location="cpu", weights_only=True)
    assert ck["sample_rate"] == 16000 and ck["stft"] == {"n_fft": 512, "hop": 128}
    assert ck["best"]["key"] == "valid_pesq"
    hist = ck["history"]
    best_val = max(h["valid_pesq"] for h in hist)
    assert ck["best"]["value"] == pytest.approx(best_val)
    for k in ("optimizer", "scheduler", "rng", "versions", "model_config", "config"):
        assert k in ck


def test_enhance_tool_matches_training_output(trained: Path, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "enh"
    proc = subprocess.run([sys.executable, "tools/enhance.py", "--ckpt", str(trained / "best.pt"),
                           str(corpus / "test" / "noisy"), str(out), "--device", "cpu"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for f in sorted((trained / "enhanced").glob("*.wav"))[:3]:
        a, sr = sf.read(f)
        b, sr2 = sf.read(out / f.name)
        assert sr == sr2 == 16000 and a.shape == b.shape
        assert abs(a - b).max() <= 2 / 32768  # same model, same computation (PCM_16 rounding)
    # a second run never overwrites (its main in this process: tests/_inproc.py)
    proc = run_tool("enhance.py", "--ckpt", trained / "best.pt", corpus / "test" / "noisy", out, "--device", "cpu")
    assert "skipped" in proc.stdout and " 8 (already" in proc.stdout


def test_bandsplit_alone_loads_the_checkpoint_and_reproduces_the_test_output(trained: Path, corpus: Path) -> None:
    """bandsplit.load_model + bandsplit.enhance (no tools/ on the path) give the trainer's enhanced files."""
    import bandsplit

    model = bandsplit.load_model(trained / "best.pt")
    assert not model.training and model.sample_rate == 16000 and model.stft.hop_length == 128
    assert model.info["weights"] == "live" and model.info["model_config"]["name"] == "bsdt"   # no EMA kept
    assert model.info["versions"]["bandsplit"] and model.info["config"]["model"] == "bsdt"
    for f in sorted((trained / "enhanced").glob("*.wav"))[:2]:
        noisy, sr = se_data.load_audio(corpus / "test" / "noisy" / f.name, 16000)
        enh = bandsplit.enhance(model, noisy, sr).clamp(-1, 1).numpy()
        ref, _ = sf.read(f)
        assert enh.shape == ref.shape and abs(enh - ref).max() <= 1 / 32768 + 1e-6   # PCM_16 rounding


def test_enhance_refuses_wrong_rate_and_handles_long_files(trained: Path, tmp_path: Path) -> None:
    import numpy as np

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    sf.write(src / "at48k.wav", 0.1 * rng.standard_normal(48000), 48000)
    sf.write(src / "long.wav", 0.1 * rng.standard_normal(16000 * 9), 16000)
    out = tmp_path / "out"
    proc = run_tool("enhance.py", "--ckpt", trained / "best.pt", src, out, "--chunk-seconds", "4", "--device", "cpu")
    assert proc.returncode == 1  # one failure
    assert "at48k.wav" in proc.stdout and "pass `--resample`" in proc.stdout
    assert "resample=True" not in proc.stdout  # the tool's flag, never the API keyword
    y, sr = sf.read(out / "long.wav")
    assert sr == 16000 and len(y) == 16000 * 9


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def test_resume_is_bit_exact(corpus: Path, tmp_path: Path) -> None:
    def common(epochs: int) -> list[str]:
        return [*TINY, "--data", str(corpus), "--epochs", str(epochs), "--steps-per-epoch", "2", "--batch-size", "2",
                "--valid-pesq-files", "0", "--no-test"]

    straight = tmp_path / "straight"
    _run([*common(2), "--out", str(straight)])
    # the resumed run reads its batches in 2 DataLoader workers, the straight one in-process: the
    # batches (crops from (seed, epoch, index)) and so the weights are the same bit for bit
    resumed = tmp_path / "resumed"
    _run([*common(1), "--out", str(resumed), "--num-workers", "2"])
    assert torch.load(resumed / "last.pt", weights_only=True)["epoch"] == 0
    _run([*common(2), "--out", str(resumed), "--resume", "--num-workers", "2"])
    a, b = _weights(straight / "last.pt"), _weights(resumed / "last.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the CSV log has one row per epoch, no duplicates after the resume
    rows = (resumed / "log.csv").read_text().strip().splitlines()
    assert len(rows) == 3


def test_existing_out_is_never_overwritten(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "precious.txt").write_text("keep")
    proc = _run([*TINY, "--data", str(corpus), "--epochs", "1", "--out", str(out)], check=False, process=False)
    assert proc.returncode != 0 and "not empty" in proc.stderr
    assert (out / "precious.txt").read_text() == "keep"


def test_non_finite_loss_stops_with_a_clear_message(corpus: Path, tmp_path: Path) -> None:
    proc = _run([*TINY, "--data", str(corpus), "--epochs", "1", "--steps-per-epoch", "8", "--batch-size", "2",
                 "--lr", "1e30", "--valid-pesq-files", "0", "--no-test", "--out", str(tmp_path / "nan")],
                check=False, process=False)
    assert proc.returncode != 0
    assert "non-finite loss" in proc.stderr and "training stopped" in proc.stderr


def test_amp_training_runs_and_logs_finite_losses(corpus: Path, tmp_path: Path) -> None:
    """--amp: the training forward under bf16 autocast (CPU autocast here; a GPU option)."""
    out = tmp_path / "amp"
    _run([*TINY, "--data", str(corpus), "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2",
          "--valid-pesq-files", "0", "--no-test", "--amp", "--out", str(out)], process=False)
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert rows and all(math.isfinite(float(r["train_loss"])) for r in rows)


def test_cuda_graphs_off_cuda_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    proc = _run([*TINY, "--cuda-graphs", "--device", "cpu", "--epochs", "1", "--out", str(tmp_path / "cg")],
                check=False, process=False)
    assert proc.returncode != 0
    assert "--cuda-graphs needs a single-process CUDA run" in proc.stderr and "on cpu" in proc.stderr
    assert not (tmp_path / "cg").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_cuda_graphs_training_equals_eager_training(corpus: Path, tmp_path: Path) -> None:
    """Same seed, same data: the captured forward/backward trains to the same weights (to float32
    rounding; SGD, as Adam's first steps would turn rounding-level gradients into +-lr)."""
    common = [*TINY, "--data", str(corpus), "--epochs", "1", "--steps-per-epoch", "4", "--batch-size", "2",
              "--valid-pesq-files", "0", "--no-test", "--device", "cuda", "--optimizer", "sgd", "--lr", "0.5"]
    _run([*common, "--out", str(tmp_path / "eager")])
    _run([*common, "--cuda-graphs", "--out", str(tmp_path / "graphed")])
    a, b = _weights(tmp_path / "eager" / "last.pt"), _weights(tmp_path / "graphed" / "last.pt")
    for k in a:   # (4 SGD steps move the weights by ~1e-2; a replay without gradients would show)
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6, msg=k)


def test_48k_data_is_refused_without_resample(tmp_path: Path) -> None:
    import numpy as np

    root = tmp_path / "tree"
    rng = np.random.default_rng(0)
    for split in ("train", "valid", "test"):
        for kind in ("clean", "noisy"):
            (root / split / kind).mkdir(parents=True)
            sf.write(root / split / kind / "a.wav", 0.1 * rng.standard_normal(48000 * 2), 48000)
    proc = _run([*TINY, "--data", str(root), "--epochs", "1", "--out", str(tmp_path / "o")], check=False,
                process=False)
    assert proc.returncode != 0
    assert "48000" in proc.stderr and "pass `--resample`" in proc.stderr and "resample=True" not in proc.stderr


def test_stereo_data_is_refused_without_downmix(tmp_path: Path) -> None:
    """A multi-channel corpus file is an error naming the file and `--downmix` (never the API's
    mono=True); with --downmix the channels are averaged and training runs."""
    import numpy as np

    root = tmp_path / "tree"
    rng = np.random.default_rng(0)
    for split in ("train", "valid", "test"):
        for kind in ("clean", "noisy"):
            (root / split / kind).mkdir(parents=True)
            sf.write(root / split / kind / "a.wav", 0.1 * rng.standard_normal((16000 * 2, 2)), 16000)
    proc = _run([*TINY, "--data", str(root), "--epochs", "1", "--out", str(tmp_path / "o")], check=False,
                process=False)
    assert proc.returncode != 0
    assert "a.wav" in proc.stderr and "pass `--downmix`" in proc.stderr and "mono=True" not in proc.stderr
    small = _run([*TINY, "--data", str(root), "--epochs", "1", "--downmix", "--out", str(tmp_path / "b")],
                 check=False, process=False)  # one training file: fewer than one batch, refused before training
    assert small.returncode != 0 and "--batch-size 6" in small.stderr and "1 item(s)" in small.stderr
    assert "Traceback" not in small.stderr
    _run([*TINY, "--data", str(root), "--epochs", "1", "--batch-size", "1", "--no-test", "--downmix",
          "--out", str(tmp_path / "mixed")], process=False)
    assert (tmp_path / "mixed" / "last.pt").is_file()


def test_ddp_two_processes_equal_one_process_with_the_global_batch(corpus: Path, tmp_path: Path) -> None:
    # SGD: Adam's first steps are ±lr whatever the gradient's size, so they would hide or invent differences
    common = [*TINY, "--data", str(corpus), "--epochs", "1", "--steps-per-epoch", "2", "--valid-pesq-files", "0",
              "--no-test", "--device", "cpu", "--optimizer", "sgd", "--lr", "0.5", "--float64"]
    single = tmp_path / "single"
    _run([*common, "--batch-size", "4", "--out", str(single)], process=False)  # main in this process
    ddp = tmp_path / "ddp"
    _run([*common, "--batch-size", "2", "--out", str(ddp)], torchrun=2)
    a, b = _weights(single / "last.pt"), _weights(ddp / "last.pt")
    # float64: the two differ only in the order of the gradient reduction (DDP's all-reduce of
    # two half-batch means vs one mean), a relative error of a few float64 ulps per step
    for k in a:
        assert a[k].dtype == torch.float64
        torch.testing.assert_close(a[k], b[k], rtol=1e-10, atol=1e-12, msg=k)
    # not vacuous: one process on one rank's share of the data ends elsewhere
    half = tmp_path / "half"
    _run([*common, "--batch-size", "2", "--out", str(half)], process=False)
    c = _weights(half / "last.pt")
    assert max(float((a[k] - c[k]).abs().max()) for k in a) > 1e-3


def test_voicebank_tree_at_48k_with_resample_bsrnn_and_gan(tmp_path: Path) -> None:
    """A VoiceBank-DEMAND layout at 48 kHz trains with --resample; validation comes from the
    held-out training speakers; the MetricGAN discriminator and generator terms are logged."""
    import numpy as np

    root = tmp_path / "vb"
    rng = np.random.default_rng(0)
    names = {"trainset_28spk": ["p226_001", "p226_002", "p287_001", "p230_001", "p230_002", "p230_003",
                                "p230_004", "p231_001", "p231_002"],
             "testset": ["p232_001", "p257_001"]}
    t = np.arange(int(48000 * 1.2)) / 48000
    for part, files in names.items():
        for kind in ("clean", "noisy"):
            (root / f"{kind}_{part}_wav").mkdir(parents=True)
        for i, name in enumerate(files):
            f0 = 120 + 15 * i
            clean = 0.3 * np.sin(2 * np.pi * f0 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
            clean += 0.1 * np.sin(2 * np.pi * 2.7 * f0 * t)
            noisy = clean + 0.05 * rng.standard_normal(t.size)
            sf.write(root / f"clean_{part}_wav" / f"{name}.wav", clean, 48000)
            sf.write(root / f"noisy_{part}_wav" / f"{name}.wav", noisy, 48000)
    out = tmp_path / "run"
    _run(["--model", "bsrnn", "--num-channel", "8", "--num-layer", "1", "--data", str(root), "--resample",
          "--segment", "1.0", "--batch-size", "2", "--epochs", "2", "--steps-per-epoch", "2", "--gan",
          "--gan-start", "0.5", "--valid-pesq-files", "1", "--metric-workers", "0", "--out", str(out)])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["data"]["kind"] == "VoiceBank-DEMAND"
    assert cfg["data"]["valid"] == 3 and cfg["data"]["train"] == 6 and cfg["data"]["test"] == 2
    rows = (out / "log.csv").read_text().strip().splitlines()
    header = rows[0].split(",")
    assert "train_d_loss" in header and "train_g_adv" in header
    first, second = (dict(zip(header, r.split(","))) for r in rows[1:3])
    assert first["train_g_adv"] == "" and float(second["train_g_adv"]) > 0  # generator term from epoch 2 on
    assert float(first["train_d_loss"]) > 0
    res = json.loads((out / "results.json").read_text())
    assert res["test"]["count"] == 2
    y, sr = sf.read(out / "enhanced" / "p232_001.wav")
    assert sr == 16000 and len(y) == int(16000 * 1.2)

"""train_sgmse.py --encoder-ckpt / --encoder-arch: a file that is not the architecture asked for
(or no known one) is refused when the command line is parsed, exit status 2, the message naming
the flag, the file and what it holds, and no run folder is made. Nothing is downloaded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _parse(args: list) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "tools/train_sgmse.py", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sgmse_cfg import BEATsEncoder, Cnn14Encoder

    d = tmp_path_factory.mktemp("enc")
    torch.manual_seed(0)
    torch.save({"iteration": 1, "model": Cnn14Encoder().state_dict()}, d / "Cnn14_mAP=0.431.pth")
    beats = BEATsEncoder(encoder_layers=1, embed_dim=16, encoder_embed_dim=16, encoder_ffn_embed_dim=32,
                         encoder_attention_heads=2, conv_pos=8, conv_pos_groups=2, finetuned_model=True)
    torch.save({"cfg": beats.config, "model": beats.state_dict()}, d / "BEATs_iter3_plus_AS2M.pt")
    (d / "junk.pt").write_bytes(b"not a checkpoint")
    return d


@pytest.mark.parametrize("name,arch,expect", [
    ("Cnn14_mAP=0.431.pth", "beats", "is not a beats checkpoint"),
    ("BEATs_iter3_plus_AS2M.pt", "clap", "is not a clap checkpoint"),
    ("junk.pt", "auto", "cannot read"),
    ("missing.pt", "auto", "does not exist"),
])
def test_wrong_encoder_file_is_a_usage_error_naming_the_flag(files: Path, tmp_path: Path, name: str, arch: str,
                                                             expect: str) -> None:
    out = tmp_path / "run"
    proc = _parse(["--encoder", "pretrained", "--encoder-ckpt", files / name, "--encoder-arch", arch, "--out", out])
    assert proc.returncode == 2, proc.stderr
    assert "argument --encoder-ckpt" in proc.stderr and name in proc.stderr and expect in proc.stderr
    assert not out.exists()


def test_encoder_flags_need_the_pretrained_encoder(files: Path, tmp_path: Path) -> None:
    proc = _parse(["--encoder-ckpt", files / "BEATs_iter3_plus_AS2M.pt", "--out", tmp_path / "run"])
    assert proc.returncode == 2 and "--encoder pretrained" in proc.stderr

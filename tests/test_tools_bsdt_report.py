"""train_bsdt's plots (tools/_bsdt_report.write_plots) in-process: a tiny BSDT and a tiny adaptive
ERB-UNet on a one-utterance demo corpus write the research notes' analysis figures (attention maps
per band, inter-band attention, band embeddings in 2-D, fusion scale against frequency; the
ERB-UNet's alpha, scale weights and λ) next to the existing ones."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import bandsplit
import se_data

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "tools") not in sys.path:
    sys.path.insert(0, str(REPO / "tools"))  # the tools import their helpers by plain name

import _bsdt_figures  # noqa: E402
import _bsdt_report  # noqa: E402

HISTORY = [{"epoch": e, "train_loss": 1.0 - 0.1 * e, "valid_loss": 1.1 - 0.1 * e, "valid_pesq": 1.5 + 0.1 * e}
           for e in range(2)]
BSDT_PLOTS = {"loss_curves.png", "spectrograms.png", "fusion_weights.png", "interband_graph.png",
              "fusion_vs_frequency.png", "temporal_attention.png", "interband_attention.png", "band_embeddings.png"}
ERB_PLOTS = {"loss_curves.png", "spectrograms.png", "erb_alpha.png", "erb_scale_weights.png", "erb_lambda.png",
             "erb_masks.png", "erb_attention.png"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("report") / "corpus"
    se_data.make_demo_corpus(root, n_train=1, n_valid=1, n_test=1, seconds=1.0, seed=0)
    return se_data.open_training_corpus(root, sample_rate=16000, segment=1.0, build_demo=False)


def _png_ok(path: Path) -> None:
    """A real PNG with more than one colour (not an empty canvas)."""
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    img = mpimg.imread(path)
    assert img.ndim == 3 and min(img.shape[:2]) >= 40, (path, img.shape)
    assert len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 8, path


def _write(model: torch.nn.Module, data: Any, out: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(_bsdt_figures, "DPI", 40)   # small files, fast; the content is the same
    torch.manual_seed(0)
    return _bsdt_report.write_plots(model, model.stft, data, out, HISTORY, torch.device("cpu"))


def test_bsdt_writes_attention_embedding_and_fusion_figures(data: Any, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = bandsplit.build_model({"name": "bsdt", "num_channel": 8, "num_layer": 2, "num_heads": 2})
    names = _write(model, data, tmp_path, monkeypatch)
    assert set(names) == BSDT_PLOTS
    for n in names:
        _png_ok(tmp_path / "plots" / n)


def test_adaptive_erb_unet_writes_alpha_scale_weight_and_lambda_figures(data: Any, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = bandsplit.build_model({"name": "erb-unet-257", "attention": "adaptive", "base_channels": 4, "depth": 2,
                                   "d_model": 16, "transformer_layers": 2, "num_heads": 2})
    names = _write(model, data, tmp_path, monkeypatch)
    assert set(names) == ERB_PLOTS
    for n in names:
        _png_ok(tmp_path / "plots" / n)


def test_band_choice_and_symmetric_limits() -> None:
    centres = bandsplit.band_centres_hz(bandsplit.BSRNN_BAND_WIDTHS, 16000, 512)
    picked = _bsdt_figures._pick_bands(centres)
    assert len(picked) == 3 and picked == sorted(picked)
    for k, f in zip(picked, _bsdt_figures.ATTENTION_BAND_TARGETS_HZ):
        others = torch.log(centres.double()) - np.log(f)
        assert abs(float(others[k])) == pytest.approx(float(others.abs().min()))
    assert _bsdt_figures._sym(torch.tensor([-0.3, 0.1])) == pytest.approx(0.3)
    assert _bsdt_figures._sym(torch.zeros(3)) > 0

"""Parity with NAM's own PyTorch implementation (``neural-amp-modeler`` 0.12.3, the workspace's
optional ``nam-peer`` dependency group; CI installs it). Every real ``.nam`` file in
``../shared/data/nam`` must give NAM's output, and a student we export must load in NAM."""

from __future__ import annotations

import json

import pytest
import torch

from aa_distill import load_nam, nam_document, student_wavenet

nam_models = pytest.importorskip("nam.models", reason="neural-amp-modeler not installed: "
                                 "uv sync --all-packages --group nam-peer")

FILES = ["core_wavenet_tiny.nam", "core_lstm_tiny.nam", "core_wavenet_standard.nam", "boss_sd1_feather.nam"]


@pytest.mark.parametrize("name", FILES)
def test_real_files_match_nam_package(shared_data, name):
    path = shared_data / "nam" / name
    peer = nam_models.init_from_nam(json.loads(path.read_text())).eval()
    ours = load_nam(path).eval()
    g = torch.Generator().manual_seed(0)
    x = 0.3 * torch.randn(2, 9600, generator=g)
    x[1] *= 3.0  # a louder item: the nonlinearities matter
    with torch.no_grad():
        want = torch.stack([peer(x[i], pad_start=True) for i in range(2)])  # NAM: one item at a time
        got = ours(x)
    assert got.shape == want.shape == (2, 9600)
    assert float(want.abs().max()) > 0.05
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)


def test_exported_student_runs_in_nam_package():
    student = student_wavenet("feather", sample_rate=48_000, seed=3)
    with torch.no_grad():  # move the weights off the init, so every layer matters
        for p in student.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    peer = nam_models.init_from_nam(nam_document(student)).eval()
    x = 0.5 * torch.randn(1, 4800, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(student.eval()(x)[0], peer(x[0], pad_start=True), rtol=1e-5, atol=1e-6)

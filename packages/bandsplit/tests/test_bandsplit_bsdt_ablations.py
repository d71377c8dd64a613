"""BSDT ablation options: fusion kinds and windows, top-k, standard attention, per-band temporal
attention, the diversity-loss outputs; each builds from a config and survives a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import bandsplit
from bandsplit import BSDT, BSRNN_BAND_WIDTHS, CHECKPOINT_FORMAT, build_model, load_model
from diffattn import BandwiseAttention, DifferentialAttention, ScaleDiversityLoss, StandardAttention

K = len(BSRNN_BAND_WIDTHS)
N, L, H = 16, 2, 2


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _spec(b: int, t: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 257, t, dtype=torch.complex64, generator=torch.Generator().manual_seed(seed))


def _bsdt(**kw: Any) -> BSDT:
    torch.manual_seed(0)
    return BSDT(N, L, H, **kw)


# frequency-adaptive gate: band embedding K×16, MLP (2·8 + 16)-64-LN-32-LN-S
def _freq_gate_params(s: int) -> int:
    return K * 16 + (32 * 64 + 64) + 2 * 64 + (64 * 32 + 32) + 2 * 32 + (32 * s + s)


_SCALE_MLP = (8 * 32 + 32) + (32 * 16 + 16) + (16 + 1)       # one scale's gate MLP 8-32-16-1
_STATS = 8 * N + 8                                             # Linear(N, 8) feeding the gates


def test_fusion_kinds_have_the_expected_parameters() -> None:
    none = _params(_bsdt(fusion="none"))
    assert none == _params(_bsdt(use_multiscale=False))
    assert _params(_bsdt(fusion="equal")) == none                               # no parameters
    assert _params(_bsdt(fusion="fixed")) == none + L * (3 + 1)                  # 3 scale logits + gate logit
    assert _params(_bsdt(fusion="fixed", windows=(4,))) == none + L * 1
    assert _params(_bsdt(fusion="dynamic")) == none + L * (_STATS + 3 * _SCALE_MLP + 3)
    assert _params(_bsdt()) == none + L * (_STATS + 3 * _SCALE_MLP + _freq_gate_params(3))
    assert _bsdt().fusion == "adaptive"
    # single scale keeps the gate, and no parameter holds the (trivial) scale weights
    assert _params(_bsdt(windows=(4,))) == none + L * (_STATS + _SCALE_MLP)
    assert _params(_bsdt(fusion="dynamic", windows=(4,))) == none + L * (_STATS + _SCALE_MLP)
    # a wider window set adds one gate MLP (and one output of the band gate) per scale
    assert _params(_bsdt(windows=(2, 4, 8, 16))) == none + L * (_STATS + 4 * _SCALE_MLP + _freq_gate_params(4))


def test_option_errors() -> None:
    with pytest.raises(ValueError, match="fusion must be one of"):
        BSDT(N, 1, H, fusion="static")
    with pytest.raises(ValueError, match="use_multiscale=False means fusion='none'"):
        BSDT(N, 1, H, use_multiscale=False, fusion="fixed")
    with pytest.raises(ValueError, match="windows"):
        BSDT(N, 1, H, windows=())
    with pytest.raises(ValueError, match="windows"):
        BSDT(N, 1, H, windows=(2, 0))
    with pytest.raises(ValueError, match="attention must be one of"):
        BSDT(N, 1, H, attention="linear")
    with pytest.raises(ValueError, match="temporal_sharing must be one of"):
        BSDT(N, 1, H, temporal_sharing="grouped")
    with pytest.raises(ValueError, match="1 <= k < num_bands"):
        BSDT(N, 1, H, top_k=K)


@pytest.mark.parametrize("fusion", ["fixed", "equal"])
def test_fixed_fusion_does_not_depend_on_the_input(fusion: str) -> None:
    m = _bsdt(fusion=fusion).eval()
    with torch.no_grad():
        _, a1 = m(_spec(1, 16, seed=1), return_analysis=True)
        _, a2 = m(_spec(2, 16, seed=2), return_analysis=True)
    torch.testing.assert_close(a1["fusion_weights"], a2["fusion_weights"], rtol=0, atol=0)
    assert a1["fusion_weights"].shape == (L, K, 3)
    # the same weights for every band, and one gate value for every frame
    assert torch.equal(a1["fusion_weights"], a1["fusion_weights"][:, :1].expand(-1, K, -1))
    assert a2["frame_gate"].shape == (L, 2, K, 16) and a2["frame_gate"].unique().numel() <= L
    assert "scale_gates" not in a1
    if fusion == "equal":
        assert torch.all(a1["fusion_weights"] == 1 / 3) and torch.all(a2["frame_gate"] == 0.5)


def test_adaptive_fusion_depends_on_the_input_and_the_band() -> None:
    m = _bsdt().eval()
    with torch.no_grad():
        _, a1 = m(_spec(1, 16, seed=1), return_analysis=True)
        _, a2 = m(_spec(1, 16, seed=2), return_analysis=True)
    assert not torch.allclose(a1["fusion_weights"], a2["fusion_weights"])
    assert not torch.allclose(a1["fusion_weights"][:, 0], a1["fusion_weights"][:, -1])


def test_single_scale_fusion_keeps_the_gate() -> None:
    torch.manual_seed(0)
    m = BSDT(N, 1, H, windows=(4,)).eval()
    with torch.no_grad():   # make the gate depend on the statistics (its last layer starts at 0)
        m.blocks[0].fusion.frame_gate.mlp.weights[-1].normal_(0, 1.0)
    x = _spec(1, 20)
    with torch.no_grad():
        y, an = m(x, return_analysis=True)
        assert an["fusion_weights"].shape == (1, K, 1) and torch.all(an["fusion_weights"] == 1)
        g = an["frame_gate"]
        assert ((g > 0) & (g < 1)).all() and g.std() > 1e-3
        fusion = m.blocks[0].fusion
        m.blocks[0].fusion = None                 # the same model without fusion gives another output
        assert not torch.allclose(m(x), y)
        m.blocks[0].fusion = fusion
    assert an["windows"] == (4,) and an["fusion"] == "adaptive"


def test_top_k_sets_the_learned_graph_sparsity() -> None:
    def degree(k: int) -> torch.Tensor:
        torch.manual_seed(0)
        return (BSDT(N, 1, H, top_k=k).get_learned_graph()[0] > 0).sum(-1)
    d2, d8 = degree(2), degree(8)
    assert (d2 >= 3).all() and (d8 >= 9).all()           # self-loop + k neighbours, + symmetrisation
    assert int(d2.sum()) < int(d8.sum())


def test_standard_attention_has_no_lambda() -> None:
    diff, std = _bsdt(), _bsdt(attention="standard")
    assert not any("lambda" in n or "subln" in n for n, _ in std.named_parameters())
    assert all(isinstance(b.attn_t, StandardAttention) and isinstance(b.inter_band.attn, StandardAttention)
               for b in std.blocks)
    assert std.blocks[0].attn_t.num_heads == 2 * H
    d = N // (2 * H)
    # per differential attention: 4 λ vectors of d and the per-head norm's 2d; L temporal + L inter-band
    assert _params(diff) - _params(std) == 2 * L * 6 * d
    _, an = std.eval()(_spec(1, 12), return_analysis=True)
    assert "lambda" not in an and an["graph"].shape == (L, K, K)
    _, an_d = diff.eval()(_spec(1, 12), return_analysis=True)
    assert an_d["lambda"].shape == (L,)


@pytest.mark.parametrize("attention", ["differential", "standard"])
def test_per_band_temporal_attention_has_k_times_the_parameters(attention: str) -> None:
    shared, per = _bsdt(attention=attention), _bsdt(attention=attention, temporal_sharing="per_band")
    assert all(isinstance(b.attn_t, BandwiseAttention) for b in per.blocks)
    one = _params(shared.blocks[0].attn_t)
    assert _params(per.blocks[0].attn_t) == K * one
    assert _params(per) - _params(shared) == L * (K - 1) * one
    if attention == "differential":
        _, an = per.eval()(_spec(1, 10), return_analysis=True)
        assert an["lambda"].shape == (L, K)


def test_per_band_with_one_modules_weights_everywhere_is_the_shared_model() -> None:
    shared = _bsdt().eval()
    per = _bsdt(temporal_sharing="per_band").eval()
    state = {k: v for k, v in shared.state_dict().items() if ".attn_t." not in k}
    missing, unexpected = per.load_state_dict(state, strict=False)
    assert not unexpected and all(".attn_t." in k for k in missing)
    for bp, bs in zip(per.blocks, shared.blocks):
        bp.attn_t = BandwiseAttention.from_modules([bs.attn_t] * K)
    x = _spec(2, 15)
    with torch.no_grad():
        torch.testing.assert_close(per(x), shared(x), rtol=1e-4, atol=1e-5)
        # ... and different band weights give a different model
        per.blocks[0].attn_t.q_proj[3].mul_(2.0)
        assert not torch.allclose(per(x), shared(x), rtol=1e-4, atol=1e-5)


CONFIGS: dict[str, dict[str, Any]] = {
    "fixed fusion": {"fusion": "fixed"},
    "equal fusion": {"fusion": "equal"},
    "dynamic fusion": {"fusion": "dynamic"},
    "single-scale fusion": {"windows": [4]},
    "window set 2-4-8-16": {"windows": [2, 4, 8, 16]},
    "top-k 3": {"top_k": 3},
    "standard attention": {"attention": "standard"},
    "per-band temporal": {"temporal_sharing": "per_band"},
    "per-band standard, fixed graph": {"temporal_sharing": "per_band", "attention": "standard", "graph": "fixed"},
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_gradients_reach_every_parameter(name: str) -> None:
    torch.manual_seed(0)
    m = BSDT(N, L, H, **CONFIGS[name])
    x, target = _spec(2, 24), _spec(2, 24, seed=1)
    opt = torch.optim.SGD(m.parameters(), lr=1e-2)
    (m(x) - target).abs().mean().backward()     # gates start neutral: take one step first
    opt.step()
    opt.zero_grad(set_to_none=True)
    y, an = m(x, return_analysis=True)
    loss = (y - target).abs().mean()
    if "scale_gates" in an:
        loss = loss + 0.1 * ScaleDiversityLoss()(an["scale_gates"])[0]
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing
    zero = [n for n, p in m.named_parameters() if float(p.grad.abs().sum()) == 0.0]
    assert all("logits" in n for n in zero), zero   # only top-k pruned logits of the learned graph
    for blk in m.blocks:
        if isinstance(blk.attn_t, BandwiseAttention):   # every band's own weights are trained
            assert all((p.grad.flatten(1).abs().sum(1) > 0).all() for p in blk.attn_t.parameters())


@pytest.mark.parametrize("fusion", ["adaptive", "dynamic"])
def test_diversity_loss_trains_the_scale_gates(fusion: str) -> None:
    torch.manual_seed(0)
    m = BSDT(N, L, H, fusion=fusion)
    with torch.no_grad():   # non-constant gates (the last layers start at zero: constant 0.5)
        for blk in m.blocks:
            blk.fusion.frame_gate.mlp.weights[-1].normal_(0, 0.5)
    y, an = m(_spec(1, 30), return_analysis=True)
    sg = an["scale_gates"]
    assert sg.shape == (L, 3, 1, K, 30) and sg.requires_grad
    # the frame gate is the scale gates mixed with the scale weights (one utterance: no batch mean)
    torch.testing.assert_close(an["frame_gate"], torch.einsum("lsbkt,lks->lbkt", sg.detach(), an["fusion_weights"]),
                               rtol=1e-5, atol=1e-6)
    div, terms = ScaleDiversityLoss()(sg)
    assert 0 < float(div.detach()) <= 1 and terms["per_layer"].shape == (L,)
    div.backward()
    for blk in m.blocks:
        for w in blk.fusion.frame_gate.mlp.weights:
            assert w.grad is not None and float(w.grad.abs().sum()) > 0


@pytest.mark.parametrize("name", list(CONFIGS))
def test_configs_round_trip_through_a_checkpoint(name: str, tmp_path: Path) -> None:
    cfg = {"name": "bsdt", "num_channel": 8, "num_layer": 1, "num_heads": 2, **CONFIGS[name]}
    torch.manual_seed(0)
    model = build_model(cfg)
    assert model.config == cfg and _params(build_model(model.config)) == _params(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "best.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "tool": "train_bsdt", "model_config": dict(model.config),
                "sample_rate": 16000, "stft": {"n_fft": 512, "hop": 128}, "model": model.state_dict()}, path)
    loaded = load_model(path)
    assert loaded.config == cfg
    x = _spec(1, 11)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)
    for key, value in CONFIGS[name].items():
        got = getattr(loaded, {"top_k": "graph"}.get(key, key), None)
        if key == "windows":
            assert got == tuple(value)
        elif key in ("fusion", "attention", "temporal_sharing", "graph"):
            assert got == value
    assert isinstance(loaded, bandsplit.BSDT)

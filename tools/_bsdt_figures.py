"""train_bsdt's analysis figures (not a public API): the fusion weights, inter-band graphs,
attention maps and band embeddings of BSDT, and the ERB-UNet's masks, lambda and adaptive-
attention patterns, drawn from a model's ``return_analysis`` output by
``_bsdt_report.write_plots``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

#: resolution of every figure (the tests lower it)
DPI = 110

#: bands shown in the temporal-attention figure: the bands nearest these centres (low / mid / high)
ATTENTION_BAND_TARGETS_HZ = (250.0, 1000.0, 4000.0)


def plot_analysis(analysis: dict[str, Any], plots: Path, plt: Any, *, centres_hz: torch.Tensor | None = None,
                  frame_s: float | None = None) -> None:
    """Figures of the cheap analysis level (``return_analysis=True``).

    BSDT: ``fusion_weights.png`` (each scale's weight per band, per block), ``interband_graph.png``
    (each block's inter-band graph, edge weights), ``fusion_vs_frequency.png`` (needs
    ``centres_hz``: the expected fusion window ``Σ_s w_s·window_s`` and each scale's weight
    against the band's centre frequency, log axis). ERB-UNet: ``erb_alpha.png``,
    ``erb_scale_weights.png``, ``erb_lambda.png``, ``erb_masks.png`` (see :func:`_plot_erb`).
    ``frame_s``: seconds per frame of the model's STFT (the ERB-UNet's own hop is read from the
    analysis).
    """
    fw = analysis.get("fusion_weights")  # [L, K, S], mean over the batch
    if fw is not None:
        fw = fw.detach().cpu().float()
        fig, axes = plt.subplots(1, fw.shape[0], figsize=(4.5 * fw.shape[0], 3.6), squeeze=False)
        for i, a in enumerate(axes[0]):
            im = a.imshow(fw[i].T.numpy(), aspect="auto", origin="lower", cmap="viridis", vmin=0, vmax=1)
            a.set(title=f"block {i}: fusion weight per band", xlabel="band", ylabel="scale")
            windows = analysis.get("windows")
            if windows is not None:
                a.set_yticks(range(len(windows)), [f"w={w}" for w in windows])
        fig.colorbar(im, ax=axes[0].tolist())
        fig.savefig(plots / "fusion_weights.png", dpi=DPI)
        plt.close(fig)
    graph = analysis.get("graph")
    if graph is not None:
        g = graph.detach().cpu().float()
        if g.dim() == 2:
            g = g[None]
        fig, axes = plt.subplots(1, g.shape[0], figsize=(4.6 * g.shape[0], 4.0), squeeze=False)
        for i, a in enumerate(axes[0]):
            im = a.imshow(g[i].numpy(), cmap="Blues", origin="lower", vmin=0)
            a.set(title=f"block {i}: {analysis.get('graph_kind', '')} inter-band graph", xlabel="band",
                  ylabel="band")
        fig.colorbar(im, ax=axes[0].tolist())
        fig.savefig(plots / "interband_graph.png", dpi=DPI)
        plt.close(fig)
    if fw is not None and centres_hz is not None and analysis.get("windows") is not None:
        _plot_fusion_vs_frequency(fw.detach().cpu().float(), tuple(analysis["windows"]),
                                  centres_hz.detach().cpu().double(), plots, plt, frame_s)
    if "conv" in analysis:   # the ERB-UNet's analysis (its "conv" kind: erb | plain)
        _plot_erb(analysis, plots, plt)


def _plot_fusion_vs_frequency(fw: torch.Tensor, windows: tuple[int, ...], centres: torch.Tensor, plots: Path,
                              plt: Any, frame_s: float | None) -> None:
    """``fusion_vs_frequency.png``: per band (x: centre frequency, log) the expected window
    ``Σ_s w_s·window_s`` in frames (one line per block; right axis in ms) and each scale's weight."""
    n_layers, _, n_scales = fw.shape
    expected = fw @ torch.tensor(windows, dtype=fw.dtype)             # [L, K]
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
    x = centres.numpy()
    for i in range(n_layers):
        ax[0].plot(x, expected[i].numpy(), marker="o", ms=3, label=f"block {i}")
    ax[0].set(xscale="log", xlabel="band centre (Hz)", ylabel="expected window (frames)",
              title="fusion scale per band: Σ_s w_s·window_s")
    ax[0].set_ylim(min(windows) - 0.2, max(windows) + 0.2)
    if frame_s:
        sec = ax[0].secondary_yaxis("right", functions=(lambda f: f * frame_s * 1e3, lambda ms: ms / (frame_s * 1e3)))
        sec.set_ylabel("ms")
    ax[0].legend(fontsize=8)
    styles = ("-", "--", ":", "-.")
    for i in range(n_layers):
        for s in range(n_scales):
            ax[1].plot(x, fw[i, :, s].numpy(), color=f"C{s}", ls=styles[i % len(styles)],
                       label=f"w={windows[s]}" + (f", block {i}" if n_layers > 1 else ""))
    ax[1].set(xscale="log", xlabel="band centre (Hz)", ylabel="scale weight", ylim=(0, 1),
              title="each scale's weight per band")
    ax[1].legend(fontsize=7, ncol=max(1, n_layers))
    fig.tight_layout()
    fig.savefig(plots / "fusion_vs_frequency.png", dpi=DPI)
    plt.close(fig)


def _pick_bands(centres: torch.Tensor, targets: tuple[float, ...] = ATTENTION_BAND_TARGETS_HZ) -> list[int]:
    """The bands whose centres are nearest ``targets`` (log distance), in order, without repeats."""
    logc = torch.log(centres.double().clamp_min(1.0))
    picked: list[int] = []
    for f in targets:
        k = int((logc - np.log(f)).abs().argmin())
        if k not in picked:
            picked.append(k)
    return picked


def _sym(v: torch.Tensor) -> float:
    """Symmetric colour limit for a signed map (at least a tiny positive number)."""
    return max(float(v.abs().max()), 1e-6)


def plot_full_analysis(full: dict[str, Any], plots: Path, plt: Any, *, frame_s: float) -> None:
    """Figures of ``return_analysis="full"``.

    BSDT: ``temporal_attention.png`` (the temporal differential map ``attn1 − λ·attn2``, averaged
    over heads, of the first item, for the bands nearest 250 Hz / 1 kHz / 4 kHz, one row per
    block; query frame against key frame), ``interband_attention.png`` (the inter-band map per
    block, query band against key band, averaged over frames and heads), ``band_embeddings.png``
    (the frequency-adaptive fusion gate's learned band embedding projected on its first two
    principal components, one point per band coloured by its centre frequency). ERB-UNet:
    ``erb_attention.png`` (each bottleneck layer's map over the net's frames).
    """
    from matplotlib.colors import LogNorm

    centres = full.get("band_centres_hz")
    ta = full.get("temporal_attention")   # [L, B, K, T, T]
    if ta is not None and centres is not None:
        ta = ta.detach().cpu().float()
        bands = _pick_bands(centres.detach().cpu())
        n_layers, t = ta.shape[0], ta.shape[-1]
        fig, axes = plt.subplots(n_layers, len(bands), figsize=(3.6 * len(bands) + 1, 3.2 * n_layers),
                                 squeeze=False)
        lam = full.get("lambda")
        for i in range(n_layers):
            for j, k in enumerate(bands):
                m = ta[i, 0, k]
                v = _sym(m)
                a = axes[i][j]
                im = a.imshow(m.numpy(), origin="lower", aspect="auto", cmap="RdBu_r", vmin=-v, vmax=v,
                              extent=(0, t * frame_s, 0, t * frame_s), interpolation="nearest")
                lam_s = ""
                if isinstance(lam, torch.Tensor):
                    lv = lam[i] if lam.ndim == 1 else lam[i, k]
                    lam_s = f", λ={float(lv):.2f}"
                a.set(title=f"block {i}, band {k} ({float(centres[k]):.0f} Hz){lam_s}", xlabel="key (s)",
                      ylabel="query (s)" if j == 0 else None)
                fig.colorbar(im, ax=a, fraction=0.046)
        fig.tight_layout()
        fig.savefig(plots / "temporal_attention.png", dpi=DPI)
        plt.close(fig)
    ib = full.get("interband_attention")   # [L, K, K]
    if ib is not None:
        ib = ib.detach().cpu().float()
        n_layers, k = ib.shape[0], ib.shape[-1]
        fig, axes = plt.subplots(1, n_layers, figsize=(4.8 * n_layers, 4.2), squeeze=False)
        ticks = list(range(0, k, max(1, k // 6)))
        for i, a in enumerate(axes[0]):
            v = _sym(ib[i])
            im = a.imshow(ib[i].numpy(), origin="lower", cmap="RdBu_r", vmin=-v, vmax=v)
            lam = full.get("interband_lambda")
            a.set(title=f"block {i}: inter-band attention" + (f" (λ={float(lam[i]):.2f})" if lam is not None else ""),
                  xlabel="key band (centre kHz)", ylabel="query band (centre kHz)")
            if centres is not None:
                labels = [f"{float(centres[t]) / 1000:.1f}" for t in ticks]
                a.set_xticks(ticks, labels, fontsize=7)
                a.set_yticks(ticks, labels, fontsize=7)
            fig.colorbar(im, ax=a, fraction=0.046)
        fig.tight_layout()
        fig.savefig(plots / "interband_attention.png", dpi=DPI)
        plt.close(fig)
    pca = full.get("band_embedding_pca")   # [L, K, 2]
    if pca is not None and centres is not None:
        pca = pca.detach().cpu().float()
        expl = full.get("band_embedding_pca_explained")
        c = centres.detach().cpu().double().clamp_min(1.0).numpy()
        n_layers = pca.shape[0]
        fig, axes = plt.subplots(1, n_layers, figsize=(4.8 * n_layers + 0.8, 4.2), squeeze=False,
                                 layout="constrained")
        norm = LogNorm(vmin=float(c.min()), vmax=float(c.max()))
        for i, a in enumerate(axes[0]):
            xy = pca[i].numpy()
            a.plot(xy[:, 0], xy[:, 1], color="0.8", lw=0.8, zorder=1)   # bands in frequency order
            sc = a.scatter(xy[:, 0], xy[:, 1], c=c, cmap="viridis", norm=norm, s=28, zorder=2)
            for b, (px, py) in enumerate(xy):
                a.annotate(str(b), (px, py), fontsize=6, xytext=(2, 2), textcoords="offset points")
            pc = [f"PC{j + 1}" + (f" ({100 * float(expl[i, j]):.0f}%)" if expl is not None else "") for j in range(2)]
            a.set(title=f"block {i}: band embedding (PCA)", xlabel=pc[0], ylabel=pc[1])
        fig.colorbar(sc, ax=axes[0].tolist(), label="band centre (Hz)")
        fig.savefig(plots / "band_embeddings.png", dpi=DPI)
        plt.close(fig)
    am = full.get("attention_maps")   # ERB-UNet bottleneck [Lb, B, T, T]
    if am is not None:
        am = am.detach().cpu().float()
        hop_s = _erb_frame_s(full)
        n_layers, t = am.shape[0], am.shape[-1]
        fig, axes = plt.subplots(1, n_layers, figsize=(4.4 * n_layers, 3.8), squeeze=False)
        for i, a in enumerate(axes[0]):
            v = _sym(am[i, 0])
            im = a.imshow(am[i, 0].numpy(), origin="lower", aspect="auto", cmap="RdBu_r", vmin=-v, vmax=v,
                          extent=(0, t * hop_s, 0, t * hop_s), interpolation="nearest")
            a.set(title=f"bottleneck layer {i} ({full.get('attention')})", xlabel="key (s)", ylabel="query (s)")
            fig.colorbar(im, ax=a, fraction=0.046)
        fig.tight_layout()
        fig.savefig(plots / "erb_attention.png", dpi=DPI)
        plt.close(fig)


def _erb_frame_s(analysis: dict[str, Any]) -> float:
    """Seconds per frame of the ERB-UNet's own STFT (its analysis carries hop and rate)."""
    return float(analysis.get("hop_length", 100)) / float(analysis.get("sample_rate", 16000))


def _plot_erb(analysis: dict[str, Any], plots: Path, plt: Any) -> None:
    """ERB-UNet figures: ``erb_alpha.png`` (adaptive: the gate alpha per head over the net's frames,
    one panel per bottleneck layer; 0.5 is plain differential attention, ``λ_eff = 2·alpha·λ``),
    ``erb_scale_weights.png`` (adaptive: the learned weight of each gate window per layer),
    ``erb_lambda.png`` (λ per layer; adaptive: with the mean and range of ``λ_eff`` over heads and
    frames), ``erb_masks.png`` (ERB conv: the soft group masks of each encoder level against
    frequency)."""
    hop_s = _erb_frame_s(analysis)
    alpha = analysis.get("alpha")   # [Lb, B, H, T]
    if alpha is not None:
        alpha = alpha.detach().cpu().float()
        n_layers, _, heads, t = alpha.shape
        fig, axes = plt.subplots(n_layers, 1, figsize=(9, 2.2 * n_layers + 0.6), squeeze=False, sharex=True)
        time = np.arange(t) * hop_s
        for i in range(n_layers):
            a = axes[i][0]
            for h in range(heads):
                a.plot(time, alpha[i, 0, h].numpy(), lw=1, label=f"head {h}")
            a.plot(time, alpha[i, 0].mean(0).numpy(), color="k", lw=1.6, label="mean")
            a.axhline(0.5, color="0.5", ls="--", lw=0.8)
            a.set(ylim=(0, 1), ylabel=f"layer {i}: alpha")
        axes[0][0].set_title("adaptive gate alpha per frame (0.5 = plain differential attention; "
                             "λ_eff = 2·alpha·λ)")
        axes[0][0].legend(fontsize=7, ncol=heads + 1, loc="upper right")
        axes[-1][0].set_xlabel("time (s)")
        fig.tight_layout()
        fig.savefig(plots / "erb_alpha.png", dpi=DPI)
        plt.close(fig)
    sw = analysis.get("scale_weights")   # [Lb, S]
    if sw is not None:
        sw = sw.detach().cpu().float()
        n_layers, n_scales = sw.shape
        windows = analysis.get("windows") or tuple(range(n_scales))
        fig, ax = plt.subplots(figsize=(1.6 * n_layers + 3, 3.4))
        width = 0.8 / n_scales
        for s in range(n_scales):
            ax.bar(np.arange(n_layers) + (s - (n_scales - 1) / 2) * width, sw[:, s].numpy(), width,
                   label=f"window {windows[s]}")
        ax.axhline(1 / n_scales, color="0.5", ls="--", lw=0.8)
        ax.set(xticks=range(n_layers), xlabel="bottleneck layer", ylabel="scale weight", ylim=(0, 1),
               title="learned weights of the gate's windows")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(plots / "erb_scale_weights.png", dpi=DPI)
        plt.close(fig)
    lam = analysis.get("lambda")   # [Lb]
    if lam is not None:
        lam = lam.detach().cpu().float().reshape(lam.shape[0], -1)[:, 0]
        n_layers = lam.shape[0]
        fig, ax = plt.subplots(figsize=(1.2 * n_layers + 3.5, 3.4))
        ax.plot(range(n_layers), lam.numpy(), "o-", label="λ")
        le = analysis.get("lambda_eff")   # [Lb, B, H, T]
        if le is not None:
            le = le.detach().cpu().float().reshape(n_layers, -1)
            mean = le.mean(1).numpy()
            yerr = np.clip([mean - le.min(1).values.numpy(), le.max(1).values.numpy() - mean], 0, None)
            ax.errorbar(range(n_layers), mean, yerr=yerr, fmt="s", color="C1", capsize=3,
                        label="λ_eff (mean, range)")
        ax.set(xticks=range(n_layers), xlabel="bottleneck layer", ylabel="λ", title="differential λ per layer")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(plots / "erb_lambda.png", dpi=DPI)
        plt.close(fig)
    masks = analysis.get("erb_masks_enc")   # list over levels of [G, F_l]
    if masks:
        n_fft = float(analysis.get("n_fft", 2 * (masks[0].shape[-1] - 1)))
        sr = float(analysis.get("sample_rate", 16000))
        fig, axes = plt.subplots(1, len(masks), figsize=(3.4 * len(masks), 3.0), squeeze=False, sharey=True)
        for lv, (a, m) in enumerate(zip(axes[0], masks)):
            m = m.detach().cpu().float()
            f = np.arange(m.shape[-1]) * (2 ** lv) * sr / n_fft / 1000
            for g in range(m.shape[0]):
                a.plot(f, m[g].numpy(), label=f"group {g}")
            a.set(title=f"encoder level {lv}", xlabel="kHz", ylim=(0, 1.02))
        axes[0][0].set_ylabel("soft ERB group mask")
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(plots / "erb_masks.png", dpi=DPI)
        plt.close(fig)

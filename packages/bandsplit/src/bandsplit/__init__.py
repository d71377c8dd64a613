"""bandsplit: band-split layers and models for speech enhancement.

Public API (everything else is private):
- band tables: ``BSRNN_BAND_WIDTHS``, ``check_band_widths``, ``band_edges``, ``band_centres_hz``
- layers: ``BandSplit``, ``MaskDecoder``, ``apply_fir_mask``, ``HarmonicAwareGroupedConv``
- models (complex STFT ``[B, 257, T]`` in and out, each carrying ``.stft`` and ``.sample_rate``):
  ``BSRNN``, ``BSDT`` (v1: ``graph="fixed"``, v2: ``graph="learned"``), ``ERBUNet`` (the "Net2"
  ERB-UNet at its own 601-bin resolution) with ``ERBUNetAdapter`` (exact, through the
  waveform), ``ERBUNet257`` (the 257-bin redesign); ``build_model`` / ``MODEL_NAMES`` /
  ``PRESETS`` / ``preset_config``
- STFT, loading and inference: ``SpectrogramTransform``, ``SampleRateMismatchError`` (an
  ``se_data.SampleRateError``), ``load_model`` / ``CHECKPOINT_FORMAT``, ``enhance``
  (``enhance_waveform`` is its earlier name; a list of different-length waveforms is one padded
  batch where ``supports_lengths(model)``: ``model(spec, lengths=...)``)
- streaming (causal BSRNN): ``BSRNN.streamer()`` -> ``BSRNNStreamer`` (``push`` / ``flush``)
- ONNX (needs ``bandsplit[onnx]``): ``export_onnx``, ``load_onnx`` -> ``OnnxModel`` /
  ``OnnxStreamer``, ``quantize_onnx``, ``RealSpectrogramModel`` (the real ``[B, 2, F, T]`` form)
- training speed: ``GraphedTrainingForward`` (forward + backward replayed as CUDA graphs)
- cost: ``count_macs(model, seconds=1.0)`` -> ``MacCount`` (MACs per second of audio, by op),
  ``op_macs(fn, *inputs)`` (MACs of any call by op)
- the BSRNN training recipe: ``BSRNNLoss``, ``MetricDiscriminator``, ``compress_magnitude``,
  ``pesq_to_target``, and the MetricGAN terms ``metric_generator_loss``,
  ``metric_discriminator_loss``, ``metric_discriminator_step``, ``score_batch`` and
  ``submit_score_batch`` (the scores on a process pool while the caller works on)
"""

from .band_split import BandSplit
from .bands import BSRNN_BAND_WIDTHS, band_centers_hz, band_centres_hz, band_edges, check_band_widths
from .bsdt import BSDT, FUSION_KINDS, BSDTBlock
from .bsrnn import BSRNN
from .erb_adapter import ERBUNetAdapter
from .erb_conv import (
    HarmonicAwareGroupedConv,
    erb_group_bin_edges,
    erb_group_edges_hz,
    erb_rate,
    erb_rate_to_hz,
)
from .cuda_graphs import GraphedTrainingForward
from .erb_unet import ERB_UNET_FULL_SIZE, ERB_UNET_SEED_SIZE, ERBUNet, ERBUNet257
from .checkpoint import CHECKPOINT_FORMAT, load_model
from .inference import enhance, enhance_waveform, supports_lengths
from ._real_forward import RealSpectrogramModel
from .onnx_export import OnnxModel, OnnxStreamer, export_onnx, load_onnx, quantize_onnx
from .streaming import BSRNNStreamer
from .macs import MacCount, count_macs, op_macs
from .mask_decoder import MaskDecoder, apply_fir_mask
from .recipe import BSRNNLoss, MetricDiscriminator, compress_magnitude, pesq_to_target
from .metricgan import (PendingBatchScores, metric_discriminator_loss, metric_discriminator_step, metric_generator_loss,
                        score_batch, submit_score_batch)
from .registry import MODEL_NAMES, PRESETS, build_model, preset_config
from .stft import SampleRateMismatchError, SpectrogramTransform

__all__: list[str] = [
    "FUSION_KINDS",
    # band tables
    "BSRNN_BAND_WIDTHS",
    "check_band_widths",
    "band_edges",
    "band_centers_hz",
    "band_centres_hz",
    # layers
    "BandSplit",
    "MaskDecoder",
    "apply_fir_mask",
    "HarmonicAwareGroupedConv",
    "erb_rate",
    "erb_rate_to_hz",
    "erb_group_edges_hz",
    "erb_group_bin_edges",
    # models
    "BSRNN",
    "BSDT",
    "BSDTBlock",
    "ERBUNet",
    "ERBUNet257",
    "ERBUNetAdapter",
    "ERB_UNET_FULL_SIZE",
    "ERB_UNET_SEED_SIZE",
    "MODEL_NAMES",
    "PRESETS",
    "build_model",
    "preset_config",
    # STFT, inference and the training recipe
    "SpectrogramTransform",
    "SampleRateMismatchError",
    "CHECKPOINT_FORMAT",
    "load_model",
    "enhance",
    "enhance_waveform",
    "supports_lengths",
    "BSRNNLoss",
    "MetricDiscriminator",
    "compress_magnitude",
    "pesq_to_target",
    "metric_generator_loss",
    "metric_discriminator_loss",
    "metric_discriminator_step",
    "score_batch",
    "submit_score_batch",
    "PendingBatchScores",
    "GraphedTrainingForward",
    # streaming and ONNX
    "BSRNNStreamer",
    "RealSpectrogramModel",
    "export_onnx",
    "load_onnx",
    "quantize_onnx",
    "OnnxModel",
    "OnnxStreamer",
    "MacCount",
    "count_macs",
    "op_macs",
]
__version__ = "0.1.0"

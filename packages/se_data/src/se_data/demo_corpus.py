"""A deterministic, offline demo corpus of paired clean/noisy speech-like audio.

:func:`make_demo_corpus` writes::

    OUT/{train,valid,test}/{clean,noisy}/demo_<split>_<index>.wav   (16 kHz PCM_16 by default)
    OUT/manifest.json   settings, settings hash, generator version, counts, per-file SNR/noise

in the paired-folder layout that :class:`se_data.PairedFolders` loads. Clean signals come
from :func:`se_data.speechlike.synth_speech` (a source-filter model); noises are white /
pink / brown / babble (summed speech-like talkers from a per-split bank) and
non-stationary mixtures of them (crossfaded types, sudden events and a ±6 dB time-varying
level), mixed at an exact SNR drawn uniformly from ``snr_range`` (default [−5, 15] dB).

Difficulty: with the defaults the test split's mean noisy PESQ-WB is about 1.9
(VoiceBank-DEMAND's test set: 1.97); a test checks it stays in [1.5, 2.2].

Determinism: item ``i`` of a split is generated from ``SeedSequence([seed, split, i])``
alone, so the same seed gives byte-identical files, and a split does not depend on the
sizes of the others (``n_train=0, n_valid=0`` writes exactly the default test split).

Idempotence: the folder is generated into a temporary sibling and renamed when complete.
If ``OUT/manifest.json`` exists with the same settings hash the corpus is reused; a
different hash raises ``FileExistsError`` (use :func:`demo_corpus_dir` for one folder per
settings). Nothing is ever mixed or overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ._rng import check_sample_rate
from .audio_io import save_audio
from .mixing import mix_at_snr
from .nonstationary import compose_nonstationary, snr_trajectory
from .speechlike import random_speaker, synth_speech
from .synthetic_noise import babble_noise, colored_noise

DEMO_GENERATOR_VERSION = "1.0"
SPLITS = ("train", "valid", "test")
#: default probability of each noise kind
DEFAULT_NOISE_WEIGHTS: dict[str, float] = {"white": 0.05, "pink": 0.10, "brown": 0.60, "babble": 0.15,
                                           "nonstationary": 0.10}
_BLOCK = 20  # kinds and SNRs are stratified over blocks of 20 consecutive items
_BANK_TALKERS, _BANK_SECONDS = 10, 4.0


@dataclass(frozen=True)
class DemoSettings:
    """Everything that determines the corpus bytes (hashed into ``settings_hash``)."""

    n_train: int = 400
    n_valid: int = 40
    n_test: int = 40
    seconds: tuple[float, float] = (2.0, 4.0)
    seed: int = 0
    sample_rate: int = 16000
    snr_range: tuple[float, float] = (-5.0, 15.0)
    noise_weights: dict = field(default_factory=lambda: dict(DEFAULT_NOISE_WEIGHTS))
    level_db: tuple[float, float] = (-32.0, -20.0)
    subtype: str = "PCM_16"
    generator_version: str = DEMO_GENERATOR_VERSION

    def counts(self) -> dict[str, int]:
        return {"train": self.n_train, "valid": self.n_valid, "test": self.n_test}

    def as_dict(self) -> dict:
        d = asdict(self)
        d["seconds"], d["snr_range"], d["level_db"] = list(self.seconds), list(self.snr_range), list(self.level_db)
        return d

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:16]


def _settings(n_train, n_valid, n_test, seconds, seed, sample_rate, snr_range, noise_weights) -> DemoSettings:
    for name, v in (("n_train", n_train), ("n_valid", n_valid), ("n_test", n_test)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
    if n_train + n_valid + n_test == 0:
        raise ValueError("the demo corpus would be empty: n_train + n_valid + n_test == 0")
    sec = (float(seconds), float(seconds)) if isinstance(seconds, (int, float)) else tuple(map(float, seconds))
    if len(sec) != 2 or not 0.5 <= sec[0] <= sec[1]:
        raise ValueError(f"seconds must be a duration >= 0.5 s or a (min, max) range, got {seconds!r}")
    lo, hi = map(float, snr_range)
    if not hi >= lo:
        raise ValueError(f"snr_range must be (low, high) dB with high >= low, got {snr_range!r}")
    w = dict(DEFAULT_NOISE_WEIGHTS if noise_weights is None else noise_weights)
    unknown = set(w) - set(DEFAULT_NOISE_WEIGHTS)
    if unknown or not w or any(v < 0 for v in w.values()) or sum(w.values()) <= 0:
        raise ValueError(f"noise_weights must map some of {sorted(DEFAULT_NOISE_WEIGHTS)} to weights >= 0 "
                         f"(not all zero), got {noise_weights!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return DemoSettings(int(n_train), int(n_valid), int(n_test), sec, int(seed),
                        check_sample_rate("sample_rate", sample_rate), (lo, hi),
                        {k: float(w[k]) for k in sorted(w)})


def demo_corpus_dir(root: str | os.PathLike, *, n_train: int = 400, n_valid: int = 40, n_test: int = 40,
                    seconds: float | tuple[float, float] = (2.0, 4.0), seed: int = 0, sample_rate: int = 16000,
                    snr_range: tuple[float, float] = (-5.0, 15.0), noise_weights: dict | None = None) -> Path:
    """``root / "demo-<settings hash>"``: one folder per settings, so corpora never mix."""
    s = _settings(n_train, n_valid, n_test, seconds, seed, sample_rate, snr_range, noise_weights)
    return Path(root) / f"demo-{s.hash()}"


def _babble_bank(s: DemoSettings, split_id: int) -> list[torch.Tensor]:
    rng = np.random.default_rng(np.random.SeedSequence([s.seed, split_id, 1_000_003]))
    return [synth_speech(_BANK_SECONDS, seed=rng, sample_rate=s.sample_rate, pad_silence=False)
            for _ in range(_BANK_TALKERS)]


def _fmin(rng: np.random.Generator, lo: float = 0.5, hi: float = 10.0) -> float:
    """Lower corner (Hz) of coloured noise, log-uniform in [lo, hi] Hz: the lower, the more of
    a brown noise's power is rumble below PESQ's 100 Hz high-pass."""
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _noise(kind: str, n: int, rng: np.random.Generator, sr: int, bank: list[torch.Tensor]) -> torch.Tensor:
    if kind == "white":
        return colored_noise(n, 0.0, seed=rng, sample_rate=sr, f_min=0.0)
    if kind == "pink":
        return colored_noise(n, -1.0, seed=rng, sample_rate=sr, f_min=_fmin(rng))
    if kind == "brown":
        return colored_noise(n, -2.0, seed=rng, sample_rate=sr, f_min=_fmin(rng))
    if kind == "babble":
        return babble_noise(n, seed=rng, sample_rate=sr, speech=bank, n_talkers=int(rng.integers(3, 9)))
    if kind == "nonstationary":
        pool = [colored_noise(n, e, seed=rng, sample_rate=sr, f_min=_fmin(rng)) for e in (-2.0, -2.0, -1.0)]
        pool.append(babble_noise(n, seed=rng, sample_rate=sr, speech=bank, n_talkers=int(rng.integers(3, 9))))
        x, _ = compose_nonstationary(pool, n, sr, seed=rng, labels=["brown", "brown", "pink", "babble"])
        env = snr_trajectory(n, sr, seed=rng, snr_range=(-6.0, 6.0), kind="random_walk").numpy()
        return torch.from_numpy((x.numpy() * 10 ** (-(env - env.mean()) / 20)).astype(np.float32))
    raise ValueError(f"unknown demo noise kind {kind!r}")


def _kind_slots(weights: dict[str, float]) -> list[str]:
    """_BLOCK slots filled with the kinds in proportion to their weights (largest remainder)."""
    kinds = sorted(weights)
    w = np.array([weights[k] for k in kinds]) / sum(weights.values()) * _BLOCK
    n = np.floor(w).astype(int)
    for j in np.argsort(-(w - n), kind="stable")[: _BLOCK - n.sum()]:
        n[j] += 1
    return [k for k, c in zip(kinds, n) for _ in range(c)]


def _block_plan(s: DemoSettings, split_id: int, i: int) -> tuple[str, int]:
    """Noise kind and SNR stratum of item i: within each block of _BLOCK items the kinds occur in
    exact proportion and every SNR stratum once (seeded permutations per block, independent of n)."""
    rng = np.random.default_rng(np.random.SeedSequence([s.seed, split_id, 2_000_003, i // _BLOCK]))
    slots = _kind_slots(s.noise_weights)
    kind_perm, snr_perm = rng.permutation(_BLOCK), rng.permutation(_BLOCK)
    return slots[kind_perm[i % _BLOCK]], int(snr_perm[i % _BLOCK])


def _make_item(s: DemoSettings, split_id: int, i: int, bank: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray, dict]:
    sr = s.sample_rate
    rng = np.random.default_rng(np.random.SeedSequence([s.seed, split_id, i]))
    dur = float(rng.uniform(*s.seconds))
    spk = random_speaker(rng)
    level = float(rng.uniform(*s.level_db))
    clean = synth_speech(dur, seed=rng, sample_rate=sr, speaker=spk, level_db=level).numpy().astype(np.float64)
    # a recording's own floor (pink, 30-40 dB below the speech level), as real "clean" speech has
    floor_db = level - float(rng.uniform(30.0, 40.0))
    clean += 10 ** (floor_db / 20) * colored_noise(clean.size, -1.0, seed=rng, sample_rate=sr).numpy()
    kind, stratum = _block_plan(s, split_id, i)
    noise = _noise(kind, clean.size, rng, sr, bank)
    lo, hi = s.snr_range
    snr = lo + (hi - lo) * (stratum + float(rng.uniform())) / _BLOCK
    noisy, info = mix_at_snr(clean, noise.numpy().astype(np.float64), snr, offset=0)
    c, y = clean, noisy.numpy()
    peak = float(np.max(np.abs(y)))
    gain = 1.0 if peak <= 0.99 else 0.99 / peak
    return c * gain, y * gain, {"seconds": clean.size / sr, "snr_db": snr, "noise": kind,
                                "f0_hz": spk.f0_hz, "gain": gain, "si_sdr_db": info.si_sdr_db}


def _reuse(out: Path, s: DemoSettings) -> dict | None:
    mpath = out / "manifest.json"
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None
    if not mpath.is_file():
        raise FileExistsError(f"{out}: exists but holds no demo-corpus manifest.json; nothing is overwritten. "
                              f"Choose an empty or new folder (e.g. se_data.demo_corpus_dir(ROOT)).")
    m = json.loads(mpath.read_text(encoding="utf-8"))
    if m.get("settings_hash") != s.hash():
        raise FileExistsError(f"{out}: holds a demo corpus with other settings (hash {m.get('settings_hash')}, "
                              f"requested {s.hash()}); corpora are never mixed. Use another folder, e.g. "
                              f"se_data.demo_corpus_dir(ROOT, ...) gives one folder per settings.")
    missing = [f for f in m["files"] for sub in ("clean", "noisy")
               if not (out / f["split"] / sub / f["name"]).is_file()]
    if missing:
        raise FileExistsError(f"{out}: the demo corpus is incomplete ({len(missing)} files missing, first "
                              f"{missing[0]['split']}/{missing[0]['name']}); delete the folder and generate again")
    return {**m, "root": str(out), "reused": True}


def make_demo_corpus(out_dir: str | os.PathLike, *, n_train: int = 400, n_valid: int = 40, n_test: int = 40,
                     seconds: float | tuple[float, float] = (2.0, 4.0), seed: int = 0, sample_rate: int = 16000,
                     snr_range: tuple[float, float] = (-5.0, 15.0), noise_weights: dict | None = None,
                     progress: bool = False) -> dict:
    """Generate (or reuse) the demo corpus in ``out_dir``; returns its manifest as a dict.

    ``n_train`` / ``n_valid`` / ``n_test``: utterances per split (0 skips a split);
    ``seconds``: duration, fixed or a uniform (min, max) range; ``seed``: the only source of
    randomness; ``sample_rate`` in Hz; ``snr_range`` (dB) the uniform SNR range;
    ``noise_weights``: probability of each noise kind (default :data:`DEFAULT_NOISE_WEIGHTS`).
    The returned dict has ``root``, ``settings``, ``settings_hash``, ``counts``, ``files``
    (name, split, seconds, snr_db, noise, f0_hz, gain, si_sdr_db), ``snr_db_mean`` per
    split, ``reused`` and ``generation_s``.
    """
    s = _settings(n_train, n_valid, n_test, seconds, seed, sample_rate, snr_range, noise_weights)
    out = Path(out_dir)
    reused = _reuse(out, s)
    if reused is not None:
        return reused
    t0 = time.perf_counter()
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    files = []
    try:
        for split_id, split in enumerate(SPLITS):
            n = s.counts()[split]
            if n == 0:
                continue
            bank = _babble_bank(s, split_id)
            it = range(n)
            if progress:
                from tqdm import tqdm

                it = tqdm(it, desc=f"demo {split}", unit="utt")
            for i in it:
                clean, noisy, info = _make_item(s, split_id, i, bank)
                name = f"demo_{split}_{i:05d}.wav"
                save_audio(tmp / split / "clean" / name, clean, s.sample_rate, subtype=s.subtype)
                save_audio(tmp / split / "noisy" / name, noisy, s.sample_rate, subtype=s.subtype)
                files.append({"name": name, "split": split, **info})
        snr_mean = {sp: float(np.mean([f["snr_db"] for f in files if f["split"] == sp]))
                    for sp in SPLITS if s.counts()[sp] > 0}
        manifest = {"generator": "se_data.demo_corpus", "generator_version": DEMO_GENERATOR_VERSION,
                    "seed": s.seed, "sample_rate": s.sample_rate, "counts": s.counts(),
                    "settings": s.as_dict(), "settings_hash": s.hash(), "snr_db_mean": snr_mean, "files": files}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            if out.exists():
                out.rmdir()  # _reuse() allowed only an empty folder here; fails if someone filled it since
            os.replace(tmp, out)
        except OSError:
            # another process finished the same folder first: reuse it if it has our settings
            shutil.rmtree(tmp, ignore_errors=True)
            reused = _reuse(out, s)
            if reused is None:
                raise
            return reused
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    gen_s = time.perf_counter() - t0
    return {**manifest, "root": str(out), "reused": False, "generation_s": gen_s}

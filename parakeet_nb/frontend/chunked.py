"""The chunked, ANE-safe waveform -> mel preprocessor with NeMo 3.0 parity.

The Apple Neural Engine rejects a tensor with any axis over 16384, so the 15 s waveform
``[1, 240000]`` cannot enter it. :class:`ChunkedPreprocessor` takes the same samples as
``audio_chunks [B, 15, 16000]`` and computes NeMo's mel (recipe in
NeMo 3.0's ``FilterbankFeatures`` in
``nemo/collections/asr/parts/preprocessing/features.py``, https://github.com/NVIDIA/NeMo; an independent float64 version is
:func:`parakeet_nb.frontend.mel_reference.mel_float64`) with no tensor wider than 1664.

Design (every shape for ``B`` clips):

1. **Hop-sized blocks.** ``[B, 15, 16000] -> [B, 1500, 160]``: block ``b`` holds samples
   ``160 b .. 160 b + 159``. The chunk seams (every 100 blocks) are ordinary block
   boundaries from here on, so nothing is special at a seam.
2. **Preemphasis across blocks.** ``y[n] = x[n] - 0.97 x[n-1]``: the previous sample of
   a block's first sample is the last sample of the block before (zero for block 0);
   then ``y[n >= length] = 0`` (after preemphasis, as NeMo).
3. **Frames without a frame gather.** Frame ``f`` (centred on sample ``160 f``, window
   taps on ``[160 f - 200, 160 f + 200)``) touches the last 40 samples of block
   ``f - 2``, blocks ``f - 1`` and ``f``, and the first 40 samples of block ``f + 1``.
   The symmetric Hann window is centred on ``160 f - 0.5``, so the 400 taps pair up:
   ``e_j = y[160 f + j] + y[160 f - 1 - j]`` and ``o_j = y[160 f + j] - y[160 f - 1 - j]``
   for ``j = 0..199``. ``e`` and ``o`` (``[B, 1501, 200]`` each) are sums of shifted
   block views (a reversed copy of the blocks supplies the mirrored half). The centre
   padding of 256 zeros is two zero blocks at each end.
4. **DFT as two matmuls with the window folded in.** With the phase measured from the
   window centre, ``Re X_k = sum_j w_j cos(2 pi k (j + 1/2) / 512) e_j`` and
   ``Im X_k = -sum_j w_j sin(...) o_j``: ``[B, 1501, 200] @ [200, 256]`` each (bins
   1..256; bin 0 has no mel weight). The even/odd pairing halves the multiply count of
   a plain ``[frames, 400] @ [400, 514]`` DFT, and needs no ``[frames, 512]`` gather.
   A plain float32 matmul errs by ~eps times its largest partial sum, which on a
   full-scale tone is hundreds of ulps of the quiet bins (sine_440: 4.9e-3 in the
   normalised mel vs NeMo's FFT 1.1e-3). So bins 1..72 (``EXACT_COLUMNS``) are computed
   exactly: per frame ``x = x_hi + x_lo`` with ``x_hi = (x + c) - c``, ``c = max |x| *
   2**16`` (``x_hi`` on a power-of-two grid, at most 2**8 steps), ``W = W_hi + W_lo`` with
   ``W_hi`` on the grid 2**-8; every partial sum of ``x_hi @ W_hi`` then fits in 24 bits
   (``sum |W_hi| <= 70``), so it is exact in any order (on any backend), and
   ``x_hi @ W_lo + x_lo @ W`` is ~2**-8 of the result, its rounding negligible. That
   costs ``[200, 144] + [200, 72]`` more per transform (about +60% DFT time); bins 73..256
   stay one ``[200, 184]`` matmul (the exact columns are needed up to ~bin 68 for the
   steady tones of the parity study). Result: within ~1 ulp of a float64 DFT of the same
   taps; the remaining error vs float64 is the float32 taps and normalisation.
5. **Power, mel, log, normalisation** as NeMo: ``|X|^2``, Slaney filterbank (as four
   banded matmuls: filters ``32 g .. 32 g + 31`` only read the bins they cover),
   ``log(mel + 2**-24)``, per-feature mean and unbiased std over valid frames,
   ``(v - mean) / (std + 1e-5)``, frames at and after ``length // 160`` set to 0.

``fp16_safe=True`` builds a variant for float16 execution (convert with
``compute_precision=fp16_compute_precision()``). Plain float16 ruins this pipeline: the
input itself rounded to float16 already costs 0.17 (speech) to 8 (full-scale tones) in
the normalised mel, the power spectrum spans ~1e13 (float16 spans ~1e9 normal), and
``2**-24`` is float16's smallest subnormal. The variant therefore:

* runs steps 2-3 in a float32 **island** (elementwise ops on ``[B, 1500, 160]`` and
  ``[B, 1501, 200]``; Core ML keeps them float32, i.e. on the CPU) that ends by splitting
  ``16 e`` and ``16 o`` into high and low float16 parts;
* computes ``X = W_hi e_hi + (W_hi e_lo' + W_lo' e_hi) / 2**11`` (the low parts of data
  and of the DFT matrices carried times ``2**11`` so they never need subnormals): the
  spectrum is then good to ~``2**-22`` relative, like float32;
* computes the mel in **extended precision** where it is loud: the residual
  ``2**11 (X - fl16(X))`` comes from one more matmul (over ``[e_hi, fl16(X), e_lo', e_hi]``
  with a ``-2**11`` identity block), ``X`` is scaled by a power of two from the clip's peak
  (a table max, exact) and split (Veltkamp) into parts whose squares are exact float16
  numbers, the mel is a matmul over those square channels (plus the guard), its rounding
  error again comes from a matmul with a ``-2**11`` identity, and the log is taken
  relative to the feature's maximum over frames, ``log(1 + u) = 2 atanh(u / (2 + u))``
  by a short series (a per-feature constant cancels in the normalisation). Plain float16
  storage of ``X`` or of the mel costs ~0.7 on a steady 100 Hz tone, whose features can
  have a std of 0.0015 over frames;
* elsewhere (below ``FP16_EXT_MIN`` or more than 6 dB below the feature's maximum) works
  in the **log domain**: ``log |X|^2 = 2 log max + log(1 + (min/max)^2)`` of ``|Re|, |Im|``,
  and each mel filter is a log-sum-exp over its bins with the guard ``2**-24`` as one more
  term, in the same per-feature units (loud bins use a single ``log`` of the linear
  product for precision);
* normalises with matmul reductions, a two-pass mean and a max-scaled std, so nothing
  over- or underflows (with or without subnormal flushing).

The data scalings are powers of two, and the per-feature offsets of the log (the
feature's maximum over frames) are constants that the normalisation removes exactly. On
CPU in float32 the variant is ~14x slower (five DFT-sized matmuls, two mel matmuls over
~1,600-2,200 channels, a gather and ~15 elementwise ops over ``[B, 1501, 128, 14]``) and
a little less exact, and it needs the float32 island on the CPU anyway, so the default
module is the float32 design and ``export --precision fp16`` uses the variant.
Conversely the float32 design is float32-only: its exact split (step 4) adds
``max |x| * 2**16``, which overflows float16, so rounded op by op to float16 it gives
non-finite values. Do not convert it with ``FLOAT16``.

Lengths: ``audio_length`` is a tensor input, used only through masks, so one trace
serves every length; nothing in the graph branches on tensor values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from parakeet_nb.frontend import fp16 as _fp16
from parakeet_nb.frontend import mel_reference as _ref
from parakeet_nb.frontend.recipe import HOP, MEL_FRAMES, N_MELS, WINDOW_SAMPLES

#: Chunks per window and samples per chunk: ``audio_chunks [B, 15, 16000]``.
N_CHUNKS = 15
CHUNK_SAMPLES = 16000
#: Hop-sized blocks per window.
N_BLOCKS = WINDOW_SAMPLES // HOP  # 1500
#: Window taps on each side of a frame centre.
HALF_TAPS = _ref.WIN_LENGTH // 2  # 200
#: Taps a frame takes from each of its two outer blocks (f - 2 and f + 1).
EDGE_TAPS = HALF_TAPS - HOP  # 40
#: Zero blocks added at each end: the 256-sample centre padding rounded up to blocks.
PAD_BLOCKS = 2
#: Frequency bins computed: 1..256. Slaney filters give bins 0 and 256 zero weight, so bin 0
#: is dropped; bin 256 is kept only because 256 output columns run ~25% faster than 255.
BINS = np.arange(1, _ref.N_BINS)
#: Mel filters per group of the banded filterbank matmul (each group only touches the
#: bins its filters cover: a quarter of the dense multiply count).
MEL_GROUP = 32

# float32 design, exact low-bin DFT (see design step 4):
#: Output columns (bins 1..72, up to 2.25 kHz) whose DFT is computed with an exact split
#: product; the other 184 columns are a plain float32 matmul.
EXACT_COLUMNS = 72
#: ``e_hi`` is ``e`` rounded to the grid ``ulp(max |e| * 2**16)`` of its frame: at most
#: 2**8 grid steps, so ``e_hi * W_hi`` needs 16 bits and a 200-term sum of them 24.
SPLIT_SCALE = 2.0**16
#: Grid of the high part ``W_hi`` of the DFT matrices (``|W| <= 1``: 8 bits).
DFT_HI_GRID = 2.0**-8

# float16 variant scalings (powers of two, exact in every format):
#: The float32 island multiplies ``e, o`` by this before the hi/lo split, so quiet
#: samples stay above the smallest normal float16 (``2**-14``) even with flushing.
FP16_DATA_SCALE = 2.0**4
#: The DFT outputs ``|X|`` times this (max ``393 * 64 = 25152 < 65504`` for samples in
#: [-1, 1], so up to about 2.6x full scale fits), keeping small bins and the weights'
#: high parts normal float16 numbers.
FP16_SPEC_SCALE = 2.0**6
#: The low parts (of the data and of the weights) are carried times this and the
#: correction product is scaled back by its inverse, so they never become subnormal.
FP16_LO_SCALE = 2.0**11
#: Logs are taken of ``|X|`` times this: the log-mel then carries ``+ 2 log 2``
#: (removed exactly by the normalisation) and spans about -15.3 (the guard) to +7.5
#: (a full-scale tone), where float16 resolves log values to 0.004-0.008.
FP16_LOG_SCALE = 2.0**1
#: Smallest per-feature-scaled linear term taken through one ``log`` (below: the sum of logs).
FP16_LINEAR_MIN = 2.0**-10
#: Powers of two the clip's peak ``|Re|, |Im|`` is rounded down to (a table: exact, no ``log2``).
FP16_PEAK_POWERS = 2.0 ** np.arange(-2, 16)
#: The extended-precision mel is used where its value (peak-scaled units) is at least this
#: and at least half the feature's maximum; elsewhere the log-sum-exp mel.
FP16_EXT_MIN = 2.0**-2
FP16_EXT_RATIO_MIN = -0.5


def dft_matrices_f64() -> tuple[np.ndarray, np.ndarray]:
    """Window-folded half-DFT matrices ``(cos [200, 256], sin [200, 256])`` in float64.

    Row ``j`` is the tap pair at ``+-(j + 1/2)`` samples from the window centre; column
    ``i`` is bin ``k = i + 1``. ``Re X_k = e @ cos``, ``Im X_k = o @ sin``.
    """
    j = np.arange(HALF_TAPS)
    w = _ref.hann_window_f64()[HALF_TAPS + j]
    theta = 2.0 * np.pi * np.outer(j + 0.5, BINS) / _ref.N_FFT
    return w[:, None] * np.cos(theta), -w[:, None] * np.sin(theta)


def _split_f16(a: np.ndarray, lo_scale: float = FP16_LO_SCALE) -> tuple[np.ndarray, np.ndarray]:
    """``a ~= hi + lo / lo_scale`` with ``hi`` and ``lo`` float16 values (as float32 arrays)."""
    hi = a.astype(np.float16).astype(np.float64)
    lo = ((a - hi) * lo_scale).astype(np.float16).astype(np.float64)
    return hi.astype(np.float32), lo.astype(np.float32)


def _lse_tables(fb: np.ndarray, guard_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gather tables for the log-sum-exp mel of the float16 variant.

    ``fb [128, 256]`` over the computed bins. Each filter's row lists its non-zero bins, then
    the guard column ``guard_index`` (weight 1), then padding (index 0, weight 0). Returns
    ``index [128 * K]`` int64, ``sqrt_weight [128, K]`` and ``log_weight [128, K]``
    float32 (padding: 0 and -30000, which ``exp`` turns into exactly 0).
    """
    supports = [np.nonzero(row > 0)[0] for row in fb]
    k = max(len(s) for s in supports) + 1
    index = np.zeros((fb.shape[0], k), dtype=np.int64)
    weight = np.zeros((fb.shape[0], k))
    for m, s in enumerate(supports):
        index[m, : len(s)] = s
        weight[m, : len(s)] = fb[m, s]
        index[m, len(s)] = guard_index
        weight[m, len(s)] = 1.0
    log_weight = np.where(weight > 0, np.log(np.where(weight > 0, weight, 1.0)), -30000.0)
    return index.reshape(-1), np.sqrt(weight).astype(np.float32), log_weight.astype(np.float32)


class ChunkedPreprocessor(torch.nn.Module):
    """NeMo 3.0's waveform -> mel on ``[B, 15, 16000]`` chunks, every axis <= 16384.

    In: ``audio_chunks [B, 15, 16000]`` float32 (the 240000-sample window, chunk-major,
    zero beyond the valid samples is not required), ``audio_length [B]`` int32 (or int64),
    valid samples, ``1 <= length <= 240000``.
    Out: ``mel [B, 128, 1501]`` float32 and ``mel_length [B]`` int32 (``length // 160``).

    ``fp16_safe``: build the float16-robust variant (see the module docstring); it is
    much slower on CPU and a little less exact in float32, so it is off by default.
    In eager mode every call is checked by :meth:`validate` (not while tracing).
    """

    def __init__(self, fp16_safe: bool = False) -> None:
        super().__init__()
        self.fp16_safe = bool(fp16_safe)
        cos, sin = dft_matrices_f64()
        fb = _ref.slaney_mel_filterbank_f64()[:, BINS]  # [128, 256]
        self.register_buffer(
            "sample_index", torch.arange(WINDOW_SAMPLES, dtype=torch.int32).reshape(1, N_BLOCKS, HOP), persistent=False
        )
        self.register_buffer("frame_index", torch.arange(MEL_FRAMES, dtype=torch.int32), persistent=False)
        if not self.fp16_safe:
            # dft_{cos,sin}_exact = [W_hi | W_lo] and dft_{cos,sin}_low = W over the exact
            # columns (W = W_hi + W_lo, W_hi on the grid 2**-8); dft_{cos,sin}_rest: the others.
            n = EXACT_COLUMNS
            for name, w in (("cos", cos), ("sin", sin)):
                w_hi = np.round(w[:, :n] / DFT_HI_GRID) * DFT_HI_GRID
                exact = np.concatenate([w_hi, w[:, :n] - w_hi], axis=1)
                self.register_buffer(f"dft_{name}_exact", torch.from_numpy(exact).float(), persistent=False)
                self.register_buffer(f"dft_{name}_low", torch.from_numpy(w[:, :n].copy()).float(), persistent=False)
                self.register_buffer(f"dft_{name}_rest", torch.from_numpy(w[:, n:].copy()).float(), persistent=False)
            # banded filterbank: filters 32 g .. 32 g + 31 only see bins lo_g .. hi_g - 1
            self.mel_bands: list[tuple[int, int]] = []
            for g in range(N_MELS // MEL_GROUP):
                rows = fb[g * MEL_GROUP : (g + 1) * MEL_GROUP]
                cols = np.nonzero(rows.any(axis=0))[0]
                lo, hi = int(cols.min()), int(cols.max()) + 1
                self.mel_bands.append((lo, hi))
                self.register_buffer(f"mel_fb_{g}", torch.from_numpy(rows[:, lo:hi]).float(), persistent=False)
        else:
            scale = FP16_SPEC_SCALE / FP16_DATA_SCALE
            c_hi, c_lo = _split_f16(cos * scale)
            s_hi, s_lo = _split_f16(sin * scale)
            # X = W_hi e_hi + (W_hi e_lo' + W_lo' e_hi) / 2**11, e_lo' = 2**11 e_lo, W_lo' = 2**11 W_lo
            self.register_buffer("dft_cos", torch.from_numpy(c_hi), persistent=False)
            self.register_buffer("dft_sin", torch.from_numpy(s_hi), persistent=False)
            self.register_buffer("dft_cos_corr", torch.from_numpy(np.concatenate([c_hi, c_lo])), persistent=False)
            self.register_buffer("dft_sin_corr", torch.from_numpy(np.concatenate([s_hi, s_lo])), persistent=False)
            index, sqrt_weight, log_weight = _lse_tables(fb, guard_index=len(BINS))
            self.register_buffer("lse_index", torch.from_numpy(index), persistent=False)
            self.register_buffer("lse_sqrt_weight", torch.from_numpy(sqrt_weight), persistent=False)
            self.register_buffer("lse_log_weight", torch.from_numpy(log_weight), persistent=False)
            # extended precision: 2**11 (X - fl(X)) in one matmul over [e_hi, fl(X), e_lo', e_hi]
            eye = np.eye(len(BINS))
            for name, hi, lo in (("cos", c_hi, c_lo), ("sin", s_hi, s_lo)):
                resid = np.concatenate([FP16_LO_SCALE * hi, -FP16_LO_SCALE * eye, hi, lo])
                self.register_buffer(f"dft_{name}_resid", torch.from_numpy(resid).float(), persistent=False)
            # mel over the exact square channels [h1^2, 2 h1 h2, h2^2] x (Re, Im) plus the guard
            # channel; and 2**11 (mel - fl(mel)) over [channels, guard, fl(mel), 2**11 2 x dx (Re, Im)]
            fbt, ones = fb.T, np.ones((1, N_MELS))
            self.register_buffer("mel_ext", torch.from_numpy(np.concatenate([fbt] * 6 + [ones])).float(), persistent=False)
            resid = np.concatenate([FP16_LO_SCALE * fbt] * 6 + [FP16_LO_SCALE * ones, -FP16_LO_SCALE * np.eye(N_MELS)]
                                   + [2.0 * fbt] * 2)
            self.register_buffer("mel_ext_resid", torch.from_numpy(resid).float(), persistent=False)
            self.register_buffer("peak_powers", torch.from_numpy(FP16_PEAK_POWERS).float(), persistent=False)

    # ------------------------------------------------------------------ checks
    @staticmethod
    def validate(audio_chunks: Any, audio_length: Any) -> None:
        """Raise ``ValueError`` with a one-line reason unless the inputs fit the contract.

        ``audio_chunks``: a float32 tensor ``[B, 15, 16000]`` of finite values;
        ``audio_length``: an int32/int64 tensor ``[B]`` with ``1 <= length <= 240000``.
        """
        if not isinstance(audio_chunks, torch.Tensor):
            raise ValueError(f"audio_chunks must be a torch.Tensor, got {type(audio_chunks).__name__}")
        if not isinstance(audio_length, torch.Tensor):
            raise ValueError(f"audio_length must be a torch.Tensor, got {type(audio_length).__name__}")
        if audio_chunks.dim() != 3 or tuple(audio_chunks.shape[1:]) != (N_CHUNKS, CHUNK_SAMPLES):
            raise ValueError(
                f"audio_chunks must have shape [B, {N_CHUNKS}, {CHUNK_SAMPLES}], got {list(audio_chunks.shape)}"
            )
        if audio_chunks.dtype != torch.float32:
            raise ValueError(f"audio_chunks must be float32, got {audio_chunks.dtype}")
        batch = audio_chunks.shape[0]
        if audio_length.dim() != 1 or audio_length.shape[0] != batch:
            raise ValueError(f"audio_length must have shape [{batch}] (one per clip), got {list(audio_length.shape)}")
        if audio_length.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"audio_length must be int32 (or int64), got {audio_length.dtype}")
        if batch > 0:
            lo, hi = int(audio_length.min()), int(audio_length.max())
            if lo < 1 or hi > WINDOW_SAMPLES:
                bad = lo if lo < 1 else hi
                raise ValueError(f"audio_length must be in [1, {WINDOW_SAMPLES}] samples, got {bad}")
            if audio_chunks.numel():
                lo_value, hi_value = torch.aminmax(audio_chunks)  # NaN propagates; one pass
                if not (math.isfinite(float(lo_value)) and math.isfinite(float(hi_value))):
                    raise ValueError("audio_chunks contains NaN or inf")

    # ------------------------------------------------------------------ stages
    def _preemphasis(self, audio_chunks: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        """``[B, 15, 16000]`` -> preemphasised, length-masked blocks ``[B, 1500, 160]``."""
        b = audio_chunks.shape[0]
        x = audio_chunks.reshape(b, N_BLOCKS, HOP)
        # the sample before each sample: last sample of the previous block for j = 0
        carry = torch.nn.functional.pad(x[:, :-1, HOP - 1 :], (0, 0, 1, 0))
        prev = torch.cat([carry, x[:, :, : HOP - 1]], dim=2)
        y = x - _ref.PREEMPH * prev  # as NeMo (torch.sub(..., alpha=) does not convert)
        return torch.where(self.sample_index < length.reshape(b, 1, 1), y, 0.0)

    @staticmethod
    def _fold(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Blocks ``[B, 1500, 160]`` -> even and odd tap sums ``e, o [B, 1501, 200]``.

        ``e[f, j] = y[160 f + j] + y[160 f - 1 - j]``, ``o[f, j] = y[160 f + j] - y[160 f - 1 - j]``
        with ``y`` zero outside ``[0, 240000)``.
        """
        n = MEL_FRAMES
        yp = torch.nn.functional.pad(y, (0, 0, PAD_BLOCKS, PAD_BLOCKS))  # block i of yp is block i - 2
        rev = torch.flip(yp, dims=[2])
        upper = torch.cat([yp[:, 2 : 2 + n], yp[:, 3 : 3 + n, :EDGE_TAPS]], dim=2)  # y[160 f + j]
        lower = torch.cat([rev[:, 1 : 1 + n], rev[:, 0:n, :EDGE_TAPS]], dim=2)  # y[160 f - 1 - j]
        return upper + lower, upper - lower

    def _normalize(self, logmel: torch.Tensor, mel_length: torch.Tensor) -> torch.Tensor:
        """NeMo's per-feature normalisation of ``logmel [B, 128, 1501]``, in NeMo's float32 order."""
        valid = (self.frame_index.reshape(1, 1, -1) < mel_length.reshape(-1, 1, 1))  # [B, 1, T]
        n = mel_length.to(logmel.dtype).reshape(-1, 1)  # [B, 1]
        mean = torch.where(valid, logmel, 0.0).sum(dim=2) / n.clamp(min=1.0)
        centred = torch.where(valid, logmel - mean.unsqueeze(2), 0.0)
        var = (centred * centred).sum(dim=2) / (n - 1.0).clamp(min=1.0)
        std = torch.sqrt(var) + _ref.STD_EPS
        return centred / std.unsqueeze(2)  # 0 / std = 0 on the masked frames

    def _normalize_fp16(self, logmel: torch.Tensor, mel_length: torch.Tensor) -> torch.Tensor:
        """The same normalisation arranged for float16 (with or without subnormals).

        * The means are matmuls with the weights ``valid / n``, done in two passes: a
          rounded mean, then the mean of the residuals ``v - mean`` (float16 cannot place
          a mean of values near 5 closer than ~0.002, which matters for features whose
          std is ~0.01, e.g. a steady tone's own band).
        * The std is taken of ``q = d / m`` with ``m = max |d|`` per feature, so the sum of
          squares (a dot product of ``q`` with itself, ``<= n``) neither overflows nor
          flushes to zero: ``d / (std + 1e-5) = q / (sqrt(q.q / (n - 1)) + 1e-5 / m)``.
        """
        valid = (self.frame_index.reshape(1, 1, -1) < mel_length.reshape(-1, 1, 1))  # [B, 1, T]
        n = mel_length.to(logmel.dtype).reshape(-1, 1, 1)
        weights = torch.where(valid, 1.0 / n.clamp(min=1.0), 0.0).transpose(1, 2)  # [B, T, 1]
        mean = torch.matmul(logmel, weights)  # [B, 128, 1]
        resid = torch.where(valid, logmel - mean, 0.0)
        centred = torch.where(valid, resid - torch.matmul(resid, weights), 0.0)
        peak = centred.abs().amax(dim=2, keepdim=True).clamp(min=_fp16.FP16_TINY)
        unit = centred / peak  # [B, 128, T], in [-1, 1]
        sum_sq = torch.matmul(unit.unsqueeze(2), unit.unsqueeze(3)).squeeze(3)  # [B, 128, 1]
        std_unit = torch.sqrt(sum_sq / (n - 1.0).clamp(min=1.0))
        return unit / (std_unit + _ref.STD_EPS / peak)

    @staticmethod
    def _dft_fp32(
        x: torch.Tensor, w_exact: torch.Tensor, w_low: torch.Tensor, w_rest: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Taps ``x [B, 1501, 200]`` -> ``(x @ W[:, :72], x @ W[:, 72:])`` (see design step 4).

        The first 72 columns are exact to a few float32 roundings: ``x = x_hi + x_lo`` with
        ``x_hi`` on a per-frame power-of-two grid (``(x + c) - c``, ``c = max |x| * 2**16``),
        ``x_hi @ W_hi`` is then exact in any summation order, and the remainder
        ``x_hi @ W_lo + x_lo @ W`` is ~2**-8 of the result, so its rounding is negligible.
        """
        n = EXACT_COLUMNS
        c = x.abs().amax(dim=2, keepdim=True) * SPLIT_SCALE  # [B, 1501, 1]
        x_hi = (x + c) - c
        x_lo = x - x_hi  # exact
        p = torch.matmul(x_hi, w_exact)  # [B, 1501, 160]: x_hi @ W_hi (exact) | x_hi @ W_lo
        low = p[:, :, :n] + (p[:, :, n:] + torch.matmul(x_lo, w_low))
        return low, torch.matmul(x, w_rest)

    def _logmel_fp32(self, e: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """``e, o [B, 1501, 200]`` -> ``log(mel + 2**-24) [B, 128, 1501]``."""
        re_low, re_rest = self._dft_fp32(e, self.dft_cos_exact, self.dft_cos_low, self.dft_cos_rest)
        im_low, im_rest = self._dft_fp32(o, self.dft_sin_exact, self.dft_sin_low, self.dft_sin_rest)
        power = torch.cat([re_low * re_low + im_low * im_low, re_rest * re_rest + im_rest * im_rest], dim=2)
        power = power.transpose(1, 2)  # [B, 256, 1501] (a view)
        mel = torch.cat(
            [torch.matmul(getattr(self, f"mel_fb_{g}"), power[:, lo:hi]) for g, (lo, hi) in enumerate(self.mel_bands)],
            dim=1,
        )  # [B, 128, 1501]
        return torch.log(mel + _ref.LOG_GUARD)

    def _logmel_fp16(self, e: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """The float16 variant: ``e, o [B, 1501, 200]`` -> ``log(mel + 2**-24) - c_m``, ``[B, 128, 1501]``.

        In a float32 island, ``16 e`` is split into ``e_hi + e_lo / 2**11`` (float16
        parts). The DFT is ``X = W_hi e_hi + (W_hi e_lo' + W_lo' e_hi) / 2**11`` (primes:
        the low parts carried times ``2**11``), exact to about ``2**-22`` without ever
        needing a subnormal. Then, with ``a = max(|Re|, |Im|)`` at scale 2 and
        ``q = 1 + (min / max)**2``, each filter ``m`` is a log-sum-exp over its bins ``k``
        and the guard term ``log(4 * 2**-24)`` of
        ``t = log((a sqrt(w_mk))**2 q)`` when that product is at least ``2**-10`` (one
        rounding: precise for the loud bins that set the value), else
        ``2 log a + log q + log w_mk`` (no underflow for quiet bins).

        Where the mel is loud (see the module docstring) the extended-precision mel replaces
        the log-sum-exp. Both are returned as ``log(mel / ref_m)`` up to a per-feature
        constant (``ref_m``: the feature's maximum over all 1501 frames), which the
        normalisation removes; the output is therefore not ``log(mel + 2**-24)`` itself.
        """
        with _fp16.fp32_island():
            # the names island_* mark the island's outputs for fp16_compute_precision()
            e = e * FP16_DATA_SCALE
            o = o * FP16_DATA_SCALE
            island_e_hi = e.to(torch.float16).to(torch.float32)
            island_e_lo = ((e - island_e_hi) * FP16_LO_SCALE).to(torch.float16).to(torch.float32)
            island_o_hi = o.to(torch.float16).to(torch.float32)
            island_o_lo = ((o - island_o_hi) * FP16_LO_SCALE).to(torch.float16).to(torch.float32)
        re_corr = torch.matmul(torch.cat([island_e_lo, island_e_hi], dim=2), self.dft_cos_corr)
        im_corr = torch.matmul(torch.cat([island_o_lo, island_o_hi], dim=2), self.dft_sin_corr)
        re = torch.matmul(island_e_hi, self.dft_cos) + re_corr * (1.0 / FP16_LO_SCALE)
        im = torch.matmul(island_o_hi, self.dft_sin) + im_corr * (1.0 / FP16_LO_SCALE)
        # ---- extended-precision mel (fp16 storage of X or of the mel alone costs ~0.7 on steady tones)
        re_res = torch.matmul(torch.cat([island_e_hi, re, island_e_lo, island_e_hi], dim=2), self.dft_cos_resid)
        im_res = torch.matmul(torch.cat([island_o_hi, im, island_o_lo, island_o_hi], dim=2), self.dft_sin_resid)
        peak = torch.maximum(re.abs(), im.abs()).amax(dim=2, keepdim=True).amax(dim=1, keepdim=True)  # [B, 1, 1]
        gain = 64.0 / torch.where(self.peak_powers <= peak, self.peak_powers, 0.25).amax(dim=2, keepdim=True)
        squares, corrections = [], []
        for part, res in ((re, re_res), (im, im_res)):
            x = part * gain  # exact (a power of two), |x| < 128
            c = x * 65.0  # Veltkamp split: h1 has 5 significant bits, h2 the other 6
            h1 = c - (c - x)
            h2 = x - h1
            squares += [h1 * h1, (h1 * h2) * 2.0, h2 * h2]  # the first two exact
            corrections.append(x * (res * gain))  # 2**11 x dx (weights 2 fb: 2**11 2 x dx)
        guard = torch.zeros_like(re[:, :, :1]) + (gain * 2.0**-6) * (gain * 2.0**-6)  # 2**-24 in these units
        channels = torch.cat(squares + [guard], dim=2)  # [B, 1501, 1537]
        mel_hi = torch.matmul(channels, self.mel_ext)  # [B, 1501, 128]: 4096 gain^2 (mel + 2**-24)
        mel_lo = torch.matmul(torch.cat([channels, mel_hi] + corrections, dim=2), self.mel_ext_resid)
        ref = mel_hi.amax(dim=1, keepdim=True).clamp(min=FP16_EXT_MIN)  # [B, 1, 128]
        u = (mel_hi - ref) / ref + (mel_lo / ref) * (1.0 / FP16_LO_SCALE)  # mel / ref - 1
        s = u / (2.0 + u)  # log(1 + u) = 2 atanh(s)
        s2 = s * s
        log_ext = 2.0 * s * (1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0)))))
        use_ext = (mel_hi >= FP16_EXT_MIN) & (u >= FP16_EXT_RATIO_MIN)
        # ---- log-sum-exp mel, in the same units (log(mel_hi / ref))
        re_abs, im_abs = re.abs(), im.abs()
        big = torch.maximum(re_abs, im_abs)
        ratio = torch.minimum(re_abs, im_abs) / big.clamp(min=_fp16.FP16_TINY)
        q = 1.0 + ratio * ratio  # [B, 1501, 256], in [1, 2]
        a = (big * (FP16_LOG_SCALE / FP16_SPEC_SCALE)).clamp(min=_fp16.FP16_TINY)
        # the guard as one more "bin": a = sqrt(4 * 2**-24) = 2**-11, q = 1, weight 1
        a = torch.cat([a, torch.zeros_like(a[:, :, :1]) + FP16_LOG_SCALE * 2.0**-12], dim=2)
        q = torch.cat([q, torch.ones_like(q[:, :, :1])], dim=2)
        shape = (a.shape[0], MEL_FRAMES, N_MELS, -1)
        a_g = torch.index_select(a, 2, self.lse_index).reshape(shape)  # [B, 1501, 128, K]
        q_g = torch.index_select(q, 2, self.lse_index).reshape(shape)
        # sum_k (a sqrt(w))^2 q = 4 mel; times (32 gain)^2 / ref gives mel_hi's units over ref
        scale = ((32.0 * gain) / torch.sqrt(ref)).unsqueeze(3)  # [B, 1, 128, 1], <= 2**15
        root = a_g * (self.lse_sqrt_weight * scale)
        linear = root * root * q_g
        log_scale = (torch.log(ref) - 2.0 * torch.log(32.0 * gain)).unsqueeze(3)
        t_log = 2.0 * torch.log(a_g) + torch.log(q_g) + (self.lse_log_weight - log_scale)
        terms = torch.where(linear >= FP16_LINEAR_MIN, torch.log(linear.clamp(min=FP16_LINEAR_MIN)), t_log)
        top = terms.amax(dim=3, keepdim=True)
        # clamp at -60: exp(-60) ~ 1e-26 is negligible and stays a normal float32 (no slow denormals)
        log_lse = top.squeeze(3) + torch.log(torch.exp((terms - top).clamp(min=-60.0)).sum(dim=3))  # [B, 1501, 128]
        return torch.where(use_ext, log_ext, log_lse).transpose(1, 2)

    def forward(self, audio_chunks: torch.Tensor, audio_length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``audio_chunks [B, 15, 16000]``, ``audio_length [B]`` -> ``mel [B, 128, 1501]``, ``mel_length [B]`` int32."""
        if not torch.jit.is_tracing() and not torch.jit.is_scripting():
            self.validate(audio_chunks, audio_length)
        length = audio_length.to(torch.int32)
        mel_length = length // HOP  # int32 floor_div in Core ML (torch.div(..., "floor") would go via float)
        if self.fp16_safe:
            with _fp16.fp32_island():
                e, o = self._fold(self._preemphasis(audio_chunks, length))
            return self._normalize_fp16(self._logmel_fp16(e, o), mel_length), mel_length
        e, o = self._fold(self._preemphasis(audio_chunks, length))
        return self._normalize(self._logmel_fp32(e, o), mel_length), mel_length


def to_chunks(waveform: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A 1-D waveform of 1..240000 samples -> ``(audio_chunks [1, 15, 16000] float32, audio_length [1] int32)``.

    The waveform (float samples, nominally in [-1, 1]) is zero-padded to 240000 and laid
    out chunk-major. Raises ``ValueError`` for a non-1-D input, an empty or too long one,
    a non-float dtype (convert PCM integers to float first), or NaN/inf.
    """
    if isinstance(waveform, torch.Tensor):
        if waveform.is_complex() or not waveform.is_floating_point():
            raise ValueError(f"waveform must hold float samples, got {waveform.dtype}")
        samples = waveform.detach().to("cpu", torch.float32)
    elif isinstance(waveform, np.ndarray):
        if not np.issubdtype(waveform.dtype, np.floating):
            raise ValueError(f"waveform must hold float samples, got {waveform.dtype} (convert PCM to float first)")
        samples = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
    else:
        raise ValueError(f"waveform must be a numpy array or torch tensor, got {type(waveform).__name__}")
    if samples.dim() != 1:
        raise ValueError(f"waveform must be 1-D (mono samples), got shape {list(samples.shape)}")
    n = samples.shape[0]
    if n < 1 or n > WINDOW_SAMPLES:
        raise ValueError(f"waveform must have 1..{WINDOW_SAMPLES} samples (15 s at 16 kHz), got {n}")
    padded = torch.zeros(WINDOW_SAMPLES, dtype=torch.float32)
    padded[:n] = samples
    chunks = padded.reshape(1, N_CHUNKS, CHUNK_SAMPLES)
    length = torch.tensor([n], dtype=torch.int32)
    ChunkedPreprocessor.validate(chunks, length)
    return chunks, length


#: Prefix of the variable names that end the float32 island of the float16 variant.
ISLAND_PREFIX = "island_"


def island_op_names(function: Any) -> set[str]:
    """Names of the ops of a MIL function that belong to the float32 island.

    The island is every op the outputs named ``island_*`` depend on (the preemphasis,
    mask, tap folding and hi/lo split of the float16 variant). ``function`` is a
    ``coremltools`` MIL ``Function`` (``program.functions["main"]``). Meant for the
    program as the converter hands it to the precision pass; in a finished program the
    ``island_*_lo`` casts back to float32 are folded into the float16 consumers, so only
    the high halves' ancestors are found.
    """
    ends = [op for op in function.operations if any(v.name.startswith(ISLAND_PREFIX) for v in op.outputs)]
    seen: set[str] = set()
    stack = list(ends)
    while stack:
        op = stack.pop()
        if op is None or op.name in seen:
            continue
        seen.add(op.name)
        for value in op.inputs.values():
            for var in value if isinstance(value, (list, tuple)) else [value]:
                stack.append(getattr(var, "op", None))
    return seen


def fp16_compute_precision() -> Any:
    """``compute_precision`` for converting the float16 variant: fp16 except the island.

    Returns ``coremltools.transform.FP16ComputePrecision`` whose ``op_selector`` keeps the
    ops of :func:`island_op_names` in float32 (Core ML then runs that small elementwise
    prefix on the CPU and the rest where the compute units allow). Use with
    ``ChunkedPreprocessor(fp16_safe=True)``; with plain ``FLOAT16`` the island's casts
    are folded away, the low parts become 0 and the input is simply rounded to fp16.
    """
    import coremltools as ct

    cache: dict[int, set[str]] = {}

    def selector(op: Any) -> bool:
        block = op.enclosing_block
        while getattr(block, "outer_op", None) is not None:
            block = block.outer_op.enclosing_block
        key = id(block)
        if key not in cache:
            cache[key] = island_op_names(block)
        return op.name not in cache[key]

    return ct.transform.FP16ComputePrecision(op_selector=selector)

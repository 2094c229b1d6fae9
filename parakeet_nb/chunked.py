"""The chunked, ANE-safe waveform -> mel preprocessor with NeMo 3.0 parity.

The Apple Neural Engine rejects a tensor with any axis over 16384, so the 15 s waveform
``[1, 240000]`` cannot enter it. :class:`ChunkedPreprocessor` takes the same samples as
``audio_chunks [B, 15, 16000]`` and computes NeMo's mel (recipe in
``shared/reference/nemo-preprocessor.md, beside the project``; an independent float64 version is
:func:`parakeet_nb.mel_reference.mel_float64`) with no tensor wider than 1664.

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
* works in the **log domain** from there: ``log |X|^2 = 2 log max + log(1 + (min/max)^2)``
  of ``|Re|, |Im|``, and each mel filter is a log-sum-exp over its bins with the guard
  ``2**-24`` as one more term (loud bins use a single ``log`` of the linear product for
  precision);
* normalises with matmul reductions, a two-pass mean and a max-scaled std, so nothing
  over- or underflows (with or without subnormal flushing).

All scalings are powers of two and cancel exactly in the normalisation. On CPU in
float32 the variant is 10-20x slower (three DFT matmuls, a gather and ~15 elementwise ops
over ``[B, 1501, 128, 14]``) and a little less exact, and it needs the float32 island
on the CPU anyway, so the default (exported) module is the float32 design; use the
variant only for a float16 export.

Lengths: ``audio_length`` is a tensor input, used only through masks, so one trace
serves every length; nothing in the graph branches on tensor values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from parakeet_nb import fp16 as _fp16
from parakeet_nb import mel_reference as _ref
from parakeet_nb.models import HOP, MEL_FRAMES, N_MELS, WINDOW_SAMPLES

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
            self.register_buffer("dft_cos", torch.from_numpy(cos).float(), persistent=False)
            self.register_buffer("dft_sin", torch.from_numpy(sin).float(), persistent=False)
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

    def _logmel_fp32(self, e: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """``e, o [B, 1501, 200]`` -> ``log(mel + 2**-24) [B, 128, 1501]``."""
        re = torch.matmul(e, self.dft_cos)  # [B, 1501, 256]
        im = torch.matmul(o, self.dft_sin)
        power = (re * re + im * im).transpose(1, 2)  # [B, 256, 1501] (a view)
        mel = torch.cat(
            [torch.matmul(getattr(self, f"mel_fb_{g}"), power[:, lo:hi]) for g, (lo, hi) in enumerate(self.mel_bands)],
            dim=1,
        )  # [B, 128, 1501]
        return torch.log(mel + _ref.LOG_GUARD)

    def _logmel_fp16(self, e: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """The float16 variant: ``e, o [B, 1501, 200]`` -> ``log(mel + 2**-24) + 2 log 2``, ``[B, 128, 1501]``.

        In a float32 island, ``16 e`` is split into ``e_hi + e_lo / 2**11`` (float16
        parts). The DFT is ``X = W_hi e_hi + (W_hi e_lo' + W_lo' e_hi) / 2**11`` (primes:
        the low parts carried times ``2**11``), exact to about ``2**-22`` without ever
        needing a subnormal. Then, with ``a = max(|Re|, |Im|)`` at scale 2 and
        ``q = 1 + (min / max)**2``, each filter ``m`` is a log-sum-exp over its bins ``k``
        and the guard term ``log(4 * 2**-24)`` of
        ``t = log((a sqrt(w_mk))**2 q)`` when that product is at least ``2**-10`` (one
        rounding: precise for the loud bins that set the value), else
        ``2 log a + log q + log w_mk`` (no underflow for quiet bins).
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
        root = a_g * self.lse_sqrt_weight
        linear = root * root * q_g
        t_log = 2.0 * torch.log(a_g) + torch.log(q_g) + self.lse_log_weight
        terms = torch.where(linear >= 2.0**-10, torch.log(linear.clamp(min=2.0**-10)), t_log)
        top = terms.amax(dim=3, keepdim=True)
        # clamp at -60: exp(-60) ~ 1e-26 is negligible and stays a normal float32 (no slow denormals)
        logmel = top.squeeze(3) + torch.log(torch.exp((terms - top).clamp(min=-60.0)).sum(dim=3))  # [B, 1501, 128]
        return logmel.transpose(1, 2)

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

"""Trace a component wrapper and convert it to a Core ML ML Program with coremltools.

The table :data:`COMPONENTS` is the export contract (``design.md``): file name, input
and output names, and how to make example inputs of the right shapes for a model.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from parakeet_nb import _quiet
from parakeet_nb.frontend.chunked import fp16_compute_precision
from parakeet_nb.frontend.recipe import MEL_FRAMES, N_MELS, WINDOW_SAMPLES
from parakeet_nb.model.presets import ParakeetModules

_quiet.import_heavy()

import coremltools as ct  # noqa: E402

Precision = Literal["fp32", "fp16"]
#: Export precision profiles: ``auto`` (the deployable default), ``fp32``, ``fp16``.
Profile = Literal["auto", "fp32", "fp16"]
PROFILES: tuple[str, ...] = ("auto", "fp32", "fp16")

#: Components that stay float32 under ``auto``: the waveform-in programs, whose
#: ``[1, 240000]`` input is over the ANE axis limits (so they run on CPU/GPU whatever their
#: type) and whose NeMo STFT recipe is not float16-safe.
FP32_UNDER_AUTO = frozenset({"preprocessor", "mel_encoder"})


def component_precision(profile: str, name: str) -> Precision:
    """The compute precision a component is converted with under an export profile.

    ``fp32``: every component in float32 (the parity reference; Core ML runs float32-typed
    ops on CPU/GPU only). ``fp16``: every component in float16. ``auto``: float16 for every
    component the ANE may take (encoder, chunked front ends, decoder, joints), float32 for
    :data:`FP32_UNDER_AUTO`. Float16 chunked components are built from the fp16-safe
    design (:func:`parakeet_nb.model.components.wrappers`).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown precision {profile!r}: expected one of {', '.join(PROFILES)}")
    if profile == "auto":
        return "fp32" if name in FP32_UNDER_AUTO else "fp16"
    return profile  # type: ignore[return-value]

#: The iOS version the programs target (ML Program opset ``CoreML7``).
DEPLOYMENT_TARGET = ct.target.iOS17


@dataclass(frozen=True)
class TensorSpec:
    """One named input: its shape for a given model and its dtype."""

    name: str
    shape: Callable[[ParakeetModules], tuple[int, ...]]
    dtype: type = np.float32

    def example(self, modules: ParakeetModules, generator: torch.Generator) -> torch.Tensor:
        """A deterministic example tensor (lengths and labels are filled with valid values)."""
        shape = self.shape(modules)
        if self.dtype == np.int32:
            return torch.full(shape, _EXAMPLE_INT[self.name](modules), dtype=torch.int32)
        return torch.randn(shape, generator=generator)


#: Contract tensors that are int32 (lengths, labels, decisions); every other one is fp32.
INT32_TENSORS = frozenset(
    {"audio_length", "mel_length", "encoder_length", "targets", "target_length", "token_id", "duration",
     "top_k_ids"}
)


def contract_dtype(name: str) -> str:
    """The contract dtype of an input or output, as coremltools names it (``int32``/``fp32``)."""
    return "int32" if name in INT32_TENSORS else "fp32"


_EXAMPLE_INT: dict[str, Callable[[ParakeetModules], int]] = {
    "audio_length": lambda m: WINDOW_SAMPLES,
    "mel_length": lambda m: MEL_FRAMES - 1,
    "targets": lambda m: m.blank_id,
    "target_length": lambda m: 1,
}


@dataclass(frozen=True)
class Component:
    """A component of the export contract."""

    name: str
    file: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[str, ...]
    summary: str
    #: Exported when no ``--only`` is given (``False``: only on request or by a layout that needs it).
    default: bool = True


def _encoder_frames(m: ParakeetModules) -> int:
    return m.preset.encoder_frames if m.preset else 188


COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component(
            "preprocessor", "parakeet_preprocessor.mlpackage",
            (TensorSpec("audio_signal", lambda m: (1, WINDOW_SAMPLES)),
             TensorSpec("audio_length", lambda m: (1,), np.int32)),
            ("mel", "mel_length"),
            "waveform -> mel (NeMo's preprocessor)",
        ),
        Component(
            "encoder", "parakeet_encoder.mlpackage",
            (TensorSpec("mel", lambda m: (1, N_MELS, MEL_FRAMES)),
             TensorSpec("mel_length", lambda m: (1,), np.int32)),
            ("encoder", "encoder_length"),
            "mel -> encoder frames (FastConformer)",
        ),
        Component(
            "mel_encoder", "parakeet_mel_encoder.mlpackage",
            (TensorSpec("audio_signal", lambda m: (1, WINDOW_SAMPLES)),
             TensorSpec("audio_length", lambda m: (1,), np.int32)),
            ("encoder", "encoder_length"),
            "waveform -> mel -> encoder, fused",
        ),
        Component(
            "preprocessor_chunked", "parakeet_preprocessor_chunked.mlpackage",
            (TensorSpec("audio_chunks", lambda m: (1, 15, 16000)),
             TensorSpec("audio_length", lambda m: (1,), np.int32)),
            ("mel", "mel_length"),
            "chunked waveform -> mel, no axis over 16384",
        ),
        Component(
            "mel_encoder_chunked", "parakeet_mel_encoder_chunked.mlpackage",
            (TensorSpec("audio_chunks", lambda m: (1, 15, 16000)),
             TensorSpec("audio_length", lambda m: (1,), np.int32)),
            ("encoder", "encoder_length"),
            "chunked waveform -> mel -> encoder, fused, ANE-safe",
        ),
        Component(
            "decoder", "parakeet_decoder.mlpackage",
            (TensorSpec("targets", lambda m: (1, 1), np.int32),
             TensorSpec("target_length", lambda m: (1,), np.int32),
             TensorSpec("h_in", lambda m: (m.pred_rnn_layers, 1, m.pred_hidden)),
             TensorSpec("c_in", lambda m: (m.pred_rnn_layers, 1, m.pred_hidden))),
            ("decoder", "h_out", "c_out"),
            "one LSTM prediction-net step",
        ),
        Component(
            "joint", "parakeet_joint.mlpackage",
            (TensorSpec("encoder", lambda m: (1, m.d_model, _encoder_frames(m))),
             TensorSpec("decoder", lambda m: (1, m.pred_hidden, 1))),
            ("logits",),
            "joint over all frames: token, blank and duration logits",
        ),
        Component(
            "joint_decision", "parakeet_joint_decision.mlpackage",
            (TensorSpec("encoder_step", lambda m: (1, m.d_model, 1)),
             TensorSpec("decoder_step", lambda m: (1, m.pred_hidden, 1))),
            ("token_id", "token_prob", "duration"),
            "joint at one frame plus the greedy TDT decision",
        ),
        Component(
            "joint_decision_topk", "parakeet_joint_decision_topk.mlpackage",
            (TensorSpec("encoder_step", lambda m: (1, m.d_model, 1)),
             TensorSpec("decoder_step", lambda m: (1, m.pred_hidden, 1))),
            ("token_id", "token_prob", "duration", "top_k_ids", "top_k_logits"),
            "joint_decision plus the K best token candidates (FluidAudio's JointDecisionv3)",
            default=False,
        ),
    )
}


def example_inputs(component: Component, modules: ParakeetModules, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Seeded example inputs with the component's contract shapes."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(spec.example(modules, generator) for spec in component.inputs)


#: coremltools module attributes holding the ``tqdm`` used for its progress bars.
_PROGRESS_BARS = (
    ("coremltools.converters.mil.frontend.torch.ops", "_tqdm"),
    ("coremltools.converters.mil.mil.passes.pass_pipeline", "tqdm"),
)
#: Conversion log lines that are expected for every model here and carry no information.
_ROUTINE_LOGS = (
    "Saving value type of int64 into a builtin type of int32",
    "Saving value type of float64 into a builtin type of fp32",
    "Tuple detected at graph output",
    # coremltools' torch ``embedding`` op (frontend/torch/ops.py) warns when the call
    # carries ``padding_idx``; NeMo's decoder embedding sets it to the blank id. It only
    # zeroes that row's gradient in training: the forward lookup is the same ``gather``.
    "Core ML embedding (gather) layer does not support any inputs besides the weights",
)


class _RoutineLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_ROUTINE_LOGS)


@contextlib.contextmanager
def quiet_conversion(progress: bool = False) -> Iterator[None]:
    """Hide coremltools' per-pass progress bars and routine log lines during a conversion.

    Also hidden: numpy's "overflow encountered in cast" from coremltools' constant folding
    in float16 conversions. It comes from ``clamp(min=...)``, whose missing upper bound
    coremltools writes as float32's maximum; in float16 that bound becomes ``inf``, the same
    clip. :func:`to_coreml` checks that every non-finite constant is such a bound.
    Warnings that are not routine (anything else coremltools or torch logs) still show.
    """
    import importlib

    patched = []
    if not progress:
        for module_name, attr in _PROGRESS_BARS:
            module = importlib.import_module(module_name)
            original = getattr(module, attr, None)
            if original is not None:
                setattr(module, attr, functools.partial(original, disable=True))
                patched.append((module, attr, original))
    log_filter = _RoutineLogFilter()
    handlers = [logging.lastResort, *logging.getLogger().handlers]
    for handler in handlers:
        handler.addFilter(log_filter)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "overflow encountered in cast", RuntimeWarning, "coremltools")
            yield
    finally:
        for handler in handlers:
            handler.removeFilter(log_filter)
        for module, attr, original in patched:
            setattr(module, attr, original)


@contextlib.contextmanager
def exact_dft_basis() -> Iterator[None]:
    """Convert ``torch.stft`` with an exactly rounded DFT basis (coremltools 9.0 fix-up).

    coremltools lowers ``torch.stft`` to a ``conv`` with the basis ``cos/sin(2 pi k n / N)``
    built by MIL ops in float32 (``lower_complex_dialect_ops._calculate_dft_matrix``): the
    angle ``2 pi k n`` reaches ~8e5 rad before it is divided by ``N``, so coefficients are off
    by up to ~5e-5 and NeMo's preprocessor program misses the low-energy mel bins by ~2e-3
    (measured with :mod:`parakeet_nb.mlprogram.milexec`). Inside this context the basis is computed in
    float64 with ``k n`` reduced modulo ``N`` and rounded once to float32 (constant ``n_fft``
    only; anything else falls back to coremltools' own).
    """
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil.passes.defs import lower_complex_dialect_ops as lowering

    original = lowering._calculate_dft_matrix

    def exact(n_fft, onesided=False):
        if n_fft.val is None:
            return original(n_fft, onesided=onesided)
        n = int(n_fft.val)
        k = np.arange(n // 2 + 1 if onesided else n)
        angle = 2.0 * np.pi * (np.outer(k, np.arange(n)) % n) / n
        return mb.const(val=np.cos(angle).astype(np.float32)), mb.const(val=np.sin(angle).astype(np.float32))

    lowering._calculate_dft_matrix = exact
    try:
        yield
    finally:
        lowering._calculate_dft_matrix = original


def trace(wrapper: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> torch.jit.ScriptModule:
    """``torch.jit.trace`` in ``no_grad`` mode, tolerating NeMo's tuple outputs."""
    with torch.no_grad(), warnings.catch_warnings():
        # NeMo checks shapes with Python ifs; the shapes are fixed by the contract.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(wrapper.eval(), inputs, strict=False, check_trace=False)


def to_coreml(
    traced: torch.jit.ScriptModule,
    component: Component,
    modules: ParakeetModules,
    precision: Precision = "fp32",
) -> ct.models.MLModel:
    """Convert a traced wrapper to an ML Program with float32 (or int32) inputs and outputs.

    ``precision`` selects the compute precision recorded in the program: ``fp32`` keeps
    every op in float32; ``fp16`` lets coremltools cast internal tensors to float16 (the
    interface stays float32, so callers need not change), except the float32 island of
    ``ChunkedPreprocessor(fp16_safe=True)`` (:func:`parakeet_nb.frontend.chunked.fp16_compute_precision`;
    a program without an island is plain ``FLOAT16``).
    """
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"unknown precision {precision!r}: expected 'fp32' or 'fp16'")
    if precision == "fp16":
        refuse_fp32_only_design(traced, component.name)
    inputs = [
        ct.TensorType(name=spec.name, shape=spec.shape(modules), dtype=spec.dtype)
        for spec in component.inputs
    ]
    # Declared dtypes keep the interface fp32/int32 even when the program computes in fp16.
    outputs = [
        ct.TensorType(name=name, dtype=np.int32 if contract_dtype(name) == "int32" else np.float32)
        for name in component.outputs
    ]
    with quiet_conversion(), exact_dft_basis():
        mlmodel = ct.convert(
            traced,
            inputs=inputs,
            outputs=outputs,
            convert_to="mlprogram",
            minimum_deployment_target=DEPLOYMENT_TARGET,
            compute_precision=ct.precision.FLOAT32 if precision == "fp32" else fp16_compute_precision(),
            skip_model_load=True,
        )
    overflowed = nonfinite_constants(mlmodel._mil_program)
    if overflowed:
        raise ValueError(
            f"{component.name}: {precision} conversion left non-finite constants at "
            f"{', '.join(overflowed[:5])}{' ...' if len(overflowed) > 5 else ''}: values beyond the "
            "format's range (float16: 65504); keep those ops in float32 or rescale them"
        )
    return mlmodel


class Fp32OnlyDesignError(ValueError):
    """A float32-only design was asked to be converted to a float16 program."""


def refuse_fp32_only_design(module: torch.nn.Module, name: str) -> None:
    """Raise :class:`Fp32OnlyDesignError` when ``module`` (eager or traced) contains the
    float32-only chunked front end, ``ChunkedPreprocessor(fp16_safe=False)``.

    That design splits its DFT into float32 high and low parts and sums a power spectrum
    spanning ~1e13: typed float16 it overflows to inf/NaN (module docstring of
    :mod:`parakeet_nb.frontend.chunked`). A traced module keeps the class name
    (``original_name``) and the buffers; the float32-only design is the one with
    ``dft_cos_exact``.
    """
    for sub in module.modules():
        if getattr(sub, "original_name", type(sub).__name__) != "ChunkedPreprocessor":
            continue
        fp16_safe = getattr(sub, "fp16_safe", None)
        if fp16_safe is None:  # traced: only buffers and the class name survive
            fp16_safe = "dft_cos_exact" not in dict(sub.named_buffers(recurse=False))
        if not fp16_safe:
            raise Fp32OnlyDesignError(
                f"{name}: ChunkedPreprocessor(fp16_safe=False) is the float32-only design and overflows "
                "(inf/NaN) as a float16 program; convert ChunkedPreprocessor(fp16_safe=True), the fp16-safe "
                "design with its float32 island, at fp16 (or this one at fp32)"
            )


def nonfinite_constants(program) -> list[str]:
    """Op inputs of a MIL program that are constants holding inf or NaN, as ``"op_type op.param"``.

    The upper (``beta``) or lower (``alpha``) bound of a ``clip`` is exempt: an unbounded
    ``clamp`` carries float32's maximum, which is ``inf`` in float16, the same clip.
    """
    found = []
    for function in program.functions.values():
        for op in function.operations:
            for param, value in op.inputs.items():
                if op.op_type == "clip" and param in ("alpha", "beta"):
                    continue
                for var in value if isinstance(value, (list, tuple)) else [value]:
                    val = getattr(var, "val", None)
                    if val is None:
                        continue
                    array = np.asarray(val)
                    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
                        found.append(f"{op.op_type} {op.name}.{param}")
    return found


def convert(
    name: str, wrapper: torch.nn.Module, modules: ParakeetModules, precision: Precision = "fp32"
) -> ct.models.MLModel:
    """Trace ``wrapper`` on the component's example inputs and convert it."""
    component = COMPONENTS[name]
    return to_coreml(trace(wrapper, example_inputs(component, modules)), component, modules, precision)

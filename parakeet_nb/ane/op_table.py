"""Which MIL op types the Apple Neural Engine takes: a table, as data, with its sources.

Apple publishes no list of the ops the ANE runs. An Apple engineer put it plainly in
coremltools issue 1780: "There is no static documentation, as it changes based on device
generation, operating system version, tensor sizes etc." This table is therefore a
*model* assembled from public reports; every entry names its class, its sources (keys of
:data:`SOURCES`) and how sure we are (:data:`Confidence`). The partition planner
(:mod:`parakeet_nb.ane.planner`) reads it; nothing else in it is hidden.

Classes (:data:`OpClass`):

``heavy``
    Compute the ANE exists for (conv, matmul, linear, normalisations, softmax, pooling,
    attention). In the planner a heavy op is what *starts* an ANE segment.
``elementwise``
    Per-element arithmetic, activations and comparisons. ANE-capable but cheap: they
    join a segment, they do not start one.
``reduction``
    Reductions over an axis (``reduce_sum``, ``reduce_mean``, ...). ANE-capable, light:
    treated like ``elementwise`` by the planner (they join, never start, a segment).
``shape``
    Data movement without arithmetic (reshape, transpose, slice, pad, concat, tile...).
    ANE-capable, light.
``cpu_only``
    No ANE kernel reported (LSTM/GRU/RNN, gather/scatter with dynamic indices, control
    flow, data-dependent shapes, random numbers, list ops...). Always CPU/GPU.
``const``
    Constants and load-time weight decompression (``const``, ``constexpr_*``): no
    device; they are folded into whichever segment uses them.

Op types not in the table are ``unknown``: the planner treats them as not ANE-capable
and says so in the plan.

Two rules that depend on *tensor types*, not op types, live in the planner and are
stated here so the table is read correctly: ops that touch integer tensors (or only
booleans) stay on the CPU (the ANE computes in float16; hollance/neural-engine), and
with ``typed_execution`` on, fp32-typed ops never go to the ANE (coremltools' typed
execution guide).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OpClass = Literal["heavy", "elementwise", "reduction", "shape", "cpu_only", "const", "unknown"]

#: How an entry is known: ``reported`` (a public report or maintainer statement about
#: the ANE for this op or its family), ``indirect`` (Core ML support is documented, for
#: example by onnxruntime's Core ML provider, and the op is of a kind reported to run on
#: the ANE, but no report about the ANE for this very op was found), ``inferred`` (no
#: specific evidence; classified by analogy, marked so it can be revisited).
Confidence = Literal["reported", "indirect", "inferred", "unknown"]

#: Classes whose ops the ANE can run (subject to the planner's tensor-type rules).
ANE_CAPABLE: frozenset[str] = frozenset({"heavy", "elementwise", "reduction", "shape"})


@dataclass(frozen=True)
class Source:
    """A public source: what it is, where, and what it says that the table relies on."""

    key: str
    title: str
    url: str
    says: str


@dataclass(frozen=True)
class OpInfo:
    """One op type: its class, how sure we are, the sources (keys of :data:`SOURCES`), a note."""

    op_type: str
    op_class: OpClass
    confidence: Confidence
    sources: tuple[str, ...]
    note: str = ""

    @property
    def ane_capable(self) -> bool:
        """True for ``heavy``, ``elementwise``, ``reduction`` and ``shape`` ops."""
        return self.op_class in ANE_CAPABLE

    @property
    def starts_segment(self) -> bool:
        """True for ``heavy`` ops: the planner starts an ANE (or GPU) segment at them."""
        return self.op_class == "heavy"

    def as_dict(self) -> dict[str, object]:
        return {
            "op_type": self.op_type,
            "op_class": self.op_class,
            "confidence": self.confidence,
            "sources": list(self.sources),
            "note": self.note,
        }


SOURCES: dict[str, Source] = {
    s.key: s
    for s in (
        Source(
            "coremltools-1780",
            "apple/coremltools issue 1780 (Apple engineer's answer, 2023)",
            "https://github.com/apple/coremltools/issues/1780",
            "RNN or LSTM ops are not supported on the neural engine; there is no static "
            "documentation of ANE op support: it changes with device generation, OS "
            "version and tensor sizes (use Xcode's performance report).",
        ),
        Source(
            "coremltools-337",
            "apple/coremltools issue 337",
            "https://github.com/apple/coremltools/issues/337",
            "Instruments shows LSTM layers on BNNS (CPU) while fully connected layers run "
            "on H11ANE and CNN layers on MPS.",
        ),
        Source(
            "fluidaudio",
            "FluidAudio (Swift Parakeet runtime): its README and ASR model loading code",
            "https://github.com/FluidInference/FluidAudio",
            "`ios17.lstm` has no ANE kernel; the LSTM decoder runs on CPU. Preprocessor "
            "`.cpuOnly`, encoder `.cpuAndNeuralEngine`; the fused mel+encoder was dropped "
            "after the W240000 ANE error.",
        ),
        Source(
            "hollance",
            "hollance/neural-engine: docs/unsupported-layers.md and docs/16-bit.md",
            "https://github.com/hollance/neural-engine",
            "Known not to work on the ANE: RNN layers such as LSTM or GRU, gather, "
            "dilated convolutions, custom layers (some are guesses, says the author); "
            "upsampling and deconvolution appear to work. The ANE appears to use float16 "
            "for everything. Core ML may switch ANE -> CPU -> ANE several times.",
        ),
        Source(
            "ane-transformers",
            "Apple, 'Deploying Transformers on the Apple Neural Engine' and apple/ml-ane-transformers (2022)",
            "https://machinelearning.apple.com/research/neural-engine-transformers",
            "Apple's ANE-optimised transformer is built from conv2d (1x1 convs for linear "
            "layers), layer norm, softmax and einsum/matmul on (B, C, 1, S) tensors, with "
            "reshape/transpose/split for attention heads: the ops Apple expects on the ANE.",
        ),
        Source(
            "ort-coreml-ops",
            "onnxruntime, Core ML EP supported ML Program ops (coreml_supported_mlprogram_ops.md)",
            "https://github.com/microsoft/onnxruntime/blob/main/tools/ci_build/github/apple/coreml_supported_mlprogram_ops.md",
            "Ops onnxruntime hands to Core ML as an ML Program: Add, ArgMax, AveragePool, "
            "Cast, Clip, Concat, Conv, ConvTranspose, Cos, Div, Erf, Exp, Gemm, Gelu, "
            "GroupNorm, InstanceNorm, LayerNorm, MatMul, Max/MaxPool, Mul, Pow, PRelu, "
            "ReduceSum/Mean/Max, Relu, Reshape, Resize, Sigmoid, Sin, Slice, Softmax, Split, "
            "Sqrt, Squeeze, Sub, Tanh, Tile, Transpose, Unsqueeze. This is Core ML "
            "coverage, not ANE residency: Core ML still decides the device.",
        ),
        Source(
            "ort-pr-24594",
            "onnxruntime PR 24594 ([CoreML] Update Conv and Softmax ops, 2025)",
            "https://github.com/microsoft/onnxruntime/pull/24594",
            "The 'input dim > 16384' check was narrowed to conv: texture memory is used for "
            "conv on the GPU; a slice with an input over 16384 worked fine.",
        ),
        Source(
            "coremltools-283",
            "apple/coremltools issue 283",
            "https://github.com/apple/coremltools/issues/283",
            "GPU assertion 'MTLTextureDescriptor has width (16900) greater than the maximum "
            "allowed size of 16384' for a conv model with a 16900-wide axis.",
        ),
        Source(
            "executorch-7907",
            "pytorch/executorch issue 7907",
            "https://github.com/pytorch/executorch/issues/7907",
            "ANE compiler rejection naming `anec.transpose ... N1D1C768H1W32000`: "
            "transpose is compiled for the ANE (and hits the same axis limits).",
        ),
        Source(
            "typed-execution",
            "coremltools guide: Typed Execution",
            "https://apple.github.io/coremltools/docs-guides/source/typed-execution.html",
            "A float16-typed ML program is eligible for the Neural Engine, GPU and CPU; a "
            "float32-typed one executes on a combination of the GPU and CPU.",
        ),
        Source(
            "ort-bool-cast",
            "onnxruntime PR 28595 ([CoreML EP] Support bool Cast in ML Program)",
            "https://github.com/microsoft/onnxruntime/pull/28595",
            "A Core ML partition cannot have a bool input or output (MLMultiArray has no "
            "bool type); mask chains Cast -> And -> Where keep bool internal.",
        ),
        Source(
            "seed",
            "FluidInference/mobius: Parakeet TDT conversion notes, 'MelEncoder ANE behavior and iPhone 13 issue'",
            "https://github.com/FluidInference/mobius",
            "On iPhones the ANE compiler may include earlier elementwise ops so that the "
            "ANE subgraph's input is the waveform itself, failing validation with W240000; "
            "on Macs the waveform preprocessor stays on CPU/GPU.",
        ),
        Source(
            "mil-spec",
            "coremltools MIL op definitions",
            "https://apple.github.io/coremltools/source/coremltools.converters.mil.mil.ops.defs.html",
            "What each op computes (used to classify ops by kind where no device report exists).",
        ),
    )
}


def _entries(op_class: OpClass, confidence: Confidence, sources: tuple[str, ...], note: str, *names: str) -> list[OpInfo]:
    return [OpInfo(name, op_class, confidence, sources, note) for name in names]


_TRANSFORMER = ("ane-transformers", "ort-coreml-ops")
_CORE_ML = ("ort-coreml-ops", "mil-spec")

_TABLE: list[OpInfo] = [
    # ---- heavy: what ANE segments are built around
    OpInfo("conv", "heavy", "reported", ("ane-transformers", "coremltools-337", "ort-coreml-ops"),
           "convolutions (and 1x1 convs standing in for linear layers) are the ANE's core op; "
           "hollance reports dilated convs do not run there (not modelled)"),
    OpInfo("conv_transpose", "heavy", "reported", ("hollance", "ort-coreml-ops"),
           "deconvolution appears to run on the ANE (hollance)"),
    OpInfo("conv_quantized", "heavy", "inferred", ("mil-spec",), "quantized conv; by analogy with conv"),
    OpInfo("linear", "heavy", "reported", ("coremltools-337", "ane-transformers"),
           "fully connected layers ran on H11ANE in coremltools#337"),
    OpInfo("matmul", "heavy", "reported", _TRANSFORMER,
           "attention matmuls are part of Apple's ANE transformer"),
    OpInfo("einsum", "heavy", "reported", ("ane-transformers",),
           "Apple's ANE transformer computes attention with einsum"),
    OpInfo("layer_norm", "heavy", "reported", _TRANSFORMER,
           "Apple's ANE transformer uses a channels-first layer norm"),
    OpInfo("softmax", "heavy", "reported", _TRANSFORMER, "attention softmax in Apple's ANE transformer"),
    OpInfo("scaled_dot_product_attention", "heavy", "inferred", ("ane-transformers", "mil-spec"),
           "iOS 18 fused attention; decomposes into matmul/softmax, which run on the ANE"),
    *_entries("heavy", "indirect", ("ort-coreml-ops", "mil-spec"),
              "normalisation; Core ML support documented (onnxruntime), ANE by analogy with layer_norm",
              "batch_norm", "instance_norm"),
    *_entries("heavy", "inferred", ("mil-spec",), "normalisation; by analogy with layer_norm",
              "l2_norm", "local_response_norm"),
    *_entries("heavy", "indirect", ("ort-coreml-ops", "mil-spec"),
              "pooling; Core ML support documented (onnxruntime), a classic CNN op", "avg_pool", "max_pool"),
    OpInfo("l2_pool", "heavy", "inferred", ("mil-spec",), "pooling; by analogy with avg_pool"),
    # ---- elementwise: ANE-capable, cheap, join a segment
    *_entries("elementwise", "indirect", _CORE_ML,
              "binary arithmetic; Core ML support documented, ANE-resident inside Apple's ANE models",
              "add", "sub", "mul", "real_div", "maximum", "minimum"),
    OpInfo("pow", "elementwise", "indirect", _CORE_ML,
           "onnxruntime hands Pow to Core ML only when both inputs are fp32"),
    *_entries("elementwise", "inferred", ("mil-spec",),
              "integer-flavoured arithmetic; on float tensors treated as elementwise, on integer "
              "tensors the planner's integer rule sends it to the CPU",
              "floor_div", "mod"),
    OpInfo("select", "elementwise", "indirect", ("ort-coreml-ops", "mil-spec"),
           "Where -> select; float branches with a bool condition (onnxruntime PR 28597)"),
    *_entries("elementwise", "indirect", _CORE_ML, "activation; Core ML support documented",
              "relu", "sigmoid", "tanh", "gelu", "elu", "leaky_relu", "prelu", "softplus", "clip",
              "sigmoid_hard"),
    OpInfo("silu", "elementwise", "inferred", ("mil-spec",), "x * sigmoid(x); by analogy with sigmoid"),
    *_entries("elementwise", "inferred", ("mil-spec",), "activation; by analogy",
              "relu6", "softsign", "softplus_parametric", "clamped_relu", "linear_activation",
              "scaled_tanh", "thresholded_relu", "threshold"),
    *_entries("elementwise", "indirect", _CORE_ML, "unary math; Core ML support documented",
              "exp", "sqrt", "cos", "sin", "erf", "round", "ceil", "inverse"),
    *_entries("elementwise", "inferred", ("mil-spec",), "unary math; by analogy with exp/sqrt",
              "log", "rsqrt", "exp2", "square", "abs", "sign", "floor", "tan", "acos", "asin",
              "atan", "atanh", "cosh", "sinh"),
    *_entries("elementwise", "inferred", ("mil-spec", "ort-bool-cast"),
              "comparison; float inputs give a bool mask kept inside a segment; integer inputs "
              "(length masks) go to the CPU by the planner's integer rule",
              "equal", "not_equal", "less", "less_equal", "greater", "greater_equal"),
    *_entries("elementwise", "inferred", ("mil-spec", "ort-bool-cast"),
              "boolean logic; touches no float tensor, so the planner's integer rule keeps it on the CPU",
              "logical_and", "logical_or", "logical_not", "logical_xor"),
    OpInfo("cast", "elementwise", "indirect", ("ort-coreml-ops", "ort-bool-cast"),
           "float<->float (fp32<->fp16) and bool->float casts join a segment; casts from or to "
           "integer types go to the CPU by the integer rule"),
    *_entries("elementwise", "inferred", ("mil-spec",), "quantisation arithmetic; thin evidence",
              "quantize", "dequantize"),
    # ---- reductions: light, join a segment
    *_entries("reduction", "indirect", _CORE_ML, "reduction; Core ML support documented",
              "reduce_sum", "reduce_mean", "reduce_max"),
    *_entries("reduction", "inferred", ("mil-spec",), "reduction; by analogy with reduce_sum",
              "reduce_min", "reduce_prod", "reduce_l1_norm", "reduce_l2_norm", "reduce_log_sum",
              "reduce_log_sum_exp", "reduce_sum_square"),
    *_entries("reduction", "indirect", _CORE_ML,
              "argmax/argmin produce integer indices, so the planner's integer rule sends them to the CPU",
              "reduce_argmax", "reduce_argmin"),
    # ---- shape: data movement, light, join a segment
    OpInfo("transpose", "shape", "reported", ("executorch-7907", "ane-transformers"),
           "an ANE compiler error names anec.transpose"),
    *_entries("shape", "indirect", _TRANSFORMER, "reshape/split of attention heads in Apple's ANE transformer",
              "reshape", "split", "concat"),
    *_entries("shape", "indirect", _CORE_ML, "data movement; Core ML support documented",
              "expand_dims", "squeeze", "slice_by_index", "tile", "identity", "pad", "depth_to_space"),
    OpInfo("upsample_nearest_neighbor", "shape", "reported", ("hollance",),
           "upsampling appeared to run on the ANE (hollance)"),
    OpInfo("upsample_bilinear", "shape", "reported", ("hollance", "ort-coreml-ops"),
           "upsampling appeared to run on the ANE (hollance)"),
    *_entries("shape", "indirect", ("ort-coreml-ops", "mil-spec"), "resize; Core ML support documented",
              "resize", "resize_bilinear", "resize_nearest_neighbor"),
    *_entries("shape", "inferred", ("mil-spec",), "data movement; by analogy with reshape/slice",
              "stack", "slice_by_size", "flatten2d", "reshape_like", "space_to_depth", "pixel_shuffle",
              "pixel_unshuffle", "reverse", "crop", "band_part", "sliding_windows", "space_to_batch",
              "batch_to_space", "affine", "resample", "crop_resize"),
    # ---- cpu_only: no ANE kernel reported
    *_entries("cpu_only", "reported", ("coremltools-1780", "coremltools-337", "fluidaudio", "hollance"),
              "recurrent layers have no ANE kernel; Core ML runs them on the CPU (BNNS)",
              "lstm", "gru", "rnn"),
    OpInfo("gather", "cpu_only", "reported", ("hollance",),
           "gather is listed as not working on the ANE (hollance, marked as partly guessed); its "
           "indices are integer tensors anyway"),
    *_entries("cpu_only", "inferred", ("hollance", "mil-spec"),
              "indexed reads/writes with dynamic integer indices; by analogy with gather",
              "gather_nd", "gather_along_axis", "scatter", "scatter_nd", "scatter_along_axis",
              "slice_update", "one_hot", "reverse_sequence"),
    *_entries("cpu_only", "inferred", ("mil-spec",),
              "data-dependent output shape or sorting; no report of an ANE kernel",
              "non_zero", "non_maximum_suppression", "topk", "argsort", "cumsum"),
    *_entries("cpu_only", "inferred", ("mil-spec",), "shape/range arithmetic producing integer tensors",
              "shape", "range_1d", "fill", "fill_like"),
    *_entries("cpu_only", "inferred", ("mil-spec",), "random number generation",
              "random_bernoulli", "random_categorical", "random_normal", "random_uniform"),
    *_entries("cpu_only", "inferred", ("mil-spec",), "control flow and tensor lists run on the CPU",
              "cond", "while_loop", "make_list", "list_length", "list_read", "list_write",
              "list_gather", "list_scatter"),
    *_entries("cpu_only", "inferred", ("mil-spec",), "classifier post-processing and model state",
              "classify", "read_state"),
    # ---- const: no device
    *_entries("const", "reported", ("mil-spec",),
              "constants and load-time weight decompression; folded into the segment that uses them",
              "const", "_const_symbolic", "constexpr_affine_dequantize", "constexpr_cast",
              "constexpr_lut_to_dense", "constexpr_sparse_to_dense", "constexpr_blockwise_shift_scale",
              "constexpr_lut_to_sparse", "constexpr_sparse_blockwise_shift_scale"),
]

#: The table, keyed by MIL op type (``op.op_type``, without an ``iosNN.`` prefix).
OP_TABLE: dict[str, OpInfo] = {info.op_type: info for info in _TABLE}
assert len(OP_TABLE) == len(_TABLE), "duplicate op type in the ANE op table"
assert all(k in SOURCES for info in _TABLE for k in info.sources), "unknown source key"


def _base_name(op_type: str) -> str:
    """``ios17.lstm`` -> ``lstm`` (op types in MIL text carry an opset prefix; Python ones do not)."""
    return op_type.rsplit(".", 1)[-1] if op_type.startswith("ios") else op_type


def classify(op_type: str) -> OpInfo:
    """The table entry of ``op_type``, or an ``unknown`` entry for op types not in the table."""
    name = _base_name(op_type)
    if name in OP_TABLE:
        return OP_TABLE[name]
    return OpInfo(name, "unknown", "unknown", (),
                  "not in the table: treated as not ANE-capable (runs on the CPU)")


def table_rows() -> list[dict[str, object]]:
    """The table as rows (sorted by class, then op type), for notebooks and docs."""
    order = {c: i for i, c in enumerate(("heavy", "elementwise", "reduction", "shape", "cpu_only", "const"))}
    return [info.as_dict() for info in sorted(_TABLE, key=lambda i: (order[i.op_class], i.op_type))]

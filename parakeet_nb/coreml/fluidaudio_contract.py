"""What FluidAudio's Swift loader reads for Parakeet TDT 0.6B, as data, each fact with its source.

Read from https://github.com/FluidInference/FluidAudio at commit :data:`COMMIT`; every
:class:`Source` is a file of that repository and the lines the fact is on. The same table,
for people, is ``docs/fluidaudio-contract.md``. Used by
:mod:`parakeet_nb.coreml.fluidaudio_export` (``export --layout fluidaudio``) and
:mod:`parakeet_nb.coreml.layout_check` (``check-layout``).

Shapes are written with symbols bound by the model itself: ``D`` encoder width, ``H``
prediction-net width, ``L`` LSTM layers, ``F`` mel frames, ``T`` encoder frames, ``K``
top-k candidates. FluidAudio fixes some of them (:data:`RUNTIME_SIZES`): a model with other
sizes has the right layout but cannot be run by it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The FluidAudio commit the facts were read at.
COMMIT = "8a2bf2c074a227b25baef2185a00faa3f6865d10"
REPOSITORY = "https://github.com/FluidInference/FluidAudio"

_TDT = "Sources/FluidAudio/ASR/Parakeet/SlidingWindow/TDT"


@dataclass(frozen=True)
class Source:
    """A file of FluidAudio at :data:`COMMIT` and the lines a fact is on."""

    path: str
    lines: str

    def __str__(self) -> str:
        return f"{self.path.rsplit('/', 1)[-1]}:{self.lines}"

    @property
    def url(self) -> str:
        first, _, last = self.lines.partition("-")
        anchor = f"#L{first}" + (f"-L{last}" if last else "")
        return f"{REPOSITORY}/blob/{COMMIT}/{self.path}{anchor}"


MODEL_NAMES = Source("Sources/FluidAudio/ModelNames.swift", "386-402")
REQUIRED_V2 = Source("Sources/FluidAudio/ModelNames.swift", "410-417")
REQUIRED_V3 = Source("Sources/FluidAudio/ModelNames.swift", "419-428")
FOLDER_NAME = Source("Sources/FluidAudio/ModelNames.swift", "109-112, 311-312")
REPO_PATH = Source(f"{_TDT}/AsrModels.swift", "140-143")
LOAD = Source("Sources/FluidAudio/Shared/Download/ModelHub.swift", "324, 361-368")
COMPILED_LAYOUT = Source("Sources/FluidAudio/Shared/Download/ModelCache.swift", "84-117")
JOINT_FILE = Source(f"{_TDT}/AsrModels.swift", "173-191")
VOCABULARY = Source(f"{_TDT}/AsrModels.swift", "366-397")
COMPUTE_UNITS = Source(f"{_TDT}/AsrModels.swift", "122-135, 278-301, 452-455")
DEFAULT_VERSION = Source(f"{_TDT}/AsrModels.swift", "229-233")
PREPROCESSOR_IN = Source(f"{_TDT}/AsrManager.swift", "160-195")
PAD_WINDOW = Source(f"{_TDT}/AsrManager+Transcription.swift", "15-17")
ENCODER_IN = Source(f"{_TDT}/AsrManager+Pipeline.swift", "93-130")
ENCODER_OUT = Source(f"{_TDT}/AsrManager+Pipeline.swift", "54-58")
ENCODER_VIEW = Source(f"{_TDT}/Decoder/EncoderFrameView.swift", "20-53")
DECODER_IN = Source(f"{_TDT}/Decoder/TdtDecoderV3.swift", "736-747")
DECODER_STATE = Source(f"{_TDT}/Decoder/TdtDecoderState.swift", "32-42, 60-63")
DECODER_BACKINGS = Source(f"{_TDT}/Decoder/TdtModelInference.swift", "45-50")
DECODER_OUT = Source(f"{_TDT}/Decoder/TdtModelInference.swift", "188-217")
JOINT_IN = Source(f"{_TDT}/Decoder/TdtDecoderV3.swift", "174-184")
JOINT_OUT = Source(f"{_TDT}/Decoder/TdtModelInference.swift", "106-138")
JOINT_BACKINGS = Source(f"{_TDT}/Decoder/TdtDecoderV3.swift", "189-193")
TOP_K_OUT = Source(f"{_TDT}/Decoder/TdtModelInference.swift", "143-164, 269-288")
TOP_K = Source("Documentation/ASR/TokenLanguageFilter.md", "115")
DURATION_BINS = Source(f"{_TDT}/Decoder/TdtConfig.swift", "15")
DURATION_MAPPING = Source(f"{_TDT}/Decoder/TdtDurationMapping.swift", "17-22")
HIDDEN_SIZES = Source("Sources/FluidAudio/Shared/ASRConstants.swift", "23-27")
BLANK_IDS = Source(f"{_TDT}/AsrModels.swift", "39-46")
LSTM_LAYERS = Source(f"{_TDT}/AsrModels.swift", "48-54")
WINDOW = Source("Sources/FluidAudio/Shared/ASRConstants.swift", "8-12")
CHUNKS = Source(f"{_TDT}/ChunkProcessor.swift", "25-75")
MEL_CONTEXT_DEFAULT = Source("Sources/FluidAudio/ASR/Parakeet/AsrTypes.swift", "82-85")


@dataclass(frozen=True)
class TensorFact:
    """One input or output FluidAudio reads or feeds by name.

    ``shapes``: the layouts it accepts (alternatives), each a tuple of ints and symbols;
    ``None`` when it reads any shape of ``count`` elements.
    """

    name: str
    dtype: str  # coremltools' names: "fp32", "int32"
    shapes: tuple[tuple[int | str, ...], ...] | None
    source: Source
    note: str = ""


@dataclass(frozen=True)
class ModelFact:
    """One compiled model FluidAudio loads: file stem, the component that makes it, compute units."""

    component: str  # parakeet-nb's component name (coreml.convert.COMPONENTS)
    stem: str
    compute_units: str
    units_source: Source
    inputs: tuple[TensorFact, ...]
    outputs: tuple[TensorFact, ...]


#: FluidAudio pads every window to this many samples (``ASRConstants.maxModelSamples``).
WINDOW_SAMPLES = 240_000
#: Encoder-frame hop in samples (``melHopSize * encoderSubsampling``, ASRConstants.swift:31).
FRAME_SAMPLES = 1280

_PREPROCESSOR = ModelFact(
    "preprocessor", "Preprocessor", "cpuOnly", COMPUTE_UNITS,
    inputs=(
        TensorFact("audio_signal", "fp32", ((1, WINDOW_SAMPLES),), PREPROCESSOR_IN,
                   "zero-padded to 240000 samples (AsrManager+Transcription.swift:15-17)"),
        TensorFact("audio_length", "int32", ((1,),), PREPROCESSOR_IN, "samples before padding"),
    ),
    outputs=(
        TensorFact("mel", "fp32", ((1, 128, "F"),), ENCODER_IN, "fed to the encoder by name"),
        TensorFact("mel_length", "int32", ((1,),), ENCODER_IN, "fed to the encoder by name"),
    ),
)
_ENCODER = ModelFact(
    "encoder", "Encoder", "cpuAndNeuralEngine", COMPUTE_UNITS,
    inputs=(
        TensorFact("mel", "fp32", ((1, 128, "F"),), ENCODER_IN, "each input must be a preprocessor output or input"),
        TensorFact("mel_length", "int32", ((1,),), ENCODER_IN),
    ),
    outputs=(
        TensorFact("encoder", "fp32", ((1, "D", "T"), (1, "T", "D")), ENCODER_VIEW,
                   "float32 required; hidden axis 1 or 2"),
        TensorFact("encoder_length", "int32", ((1,),), ENCODER_OUT),
    ),
)
_DECODER = ModelFact(
    "decoder", "Decoder", "cpuAndNeuralEngine", COMPUTE_UNITS,
    inputs=(
        TensorFact("targets", "int32", ((1, 1),), DECODER_IN),
        TensorFact("target_length", "int32", ((1,),), DECODER_IN, "always 1"),
        TensorFact("h_in", "fp32", (("L", 1, "H"),), DECODER_STATE),
        TensorFact("c_in", "fp32", (("L", 1, "H"),), DECODER_STATE),
    ),
    outputs=(
        TensorFact("decoder", "fp32", ((1, "H", 1), (1, 1, "H")), DECODER_OUT, "rank 3, batch 1, time 1"),
        TensorFact("h_out", "fp32", (("L", 1, "H"),), DECODER_BACKINGS, "written into the h_in buffer"),
        TensorFact("c_out", "fp32", (("L", 1, "H"),), DECODER_BACKINGS, "written into the c_in buffer"),
    ),
)
_JOINT_IN = (
    TensorFact("encoder_step", "fp32", ((1, "D", 1),), JOINT_IN),
    TensorFact("decoder_step", "fp32", ((1, "H", 1),), JOINT_IN),
)
_JOINT_OUT = (
    TensorFact("token_id", "int32", ((1, 1, 1),), JOINT_BACKINGS, "argmax over tokens and blank"),
    TensorFact("token_prob", "fp32", ((1, 1, 1),), JOINT_BACKINGS),
    TensorFact("duration", "int32", ((1, 1, 1),), JOINT_BACKINGS,
               "a duration bin, mapped through [0,1,2,3,4] (TdtDurationMapping.swift:17-22)"),
)
_TOP_K_OUT = (
    TensorFact("top_k_ids", "int32", None, TOP_K_OUT, "any K; read as a flat list, same count as top_k_logits"),
    TensorFact("top_k_logits", "fp32", None, TOP_K_OUT, "any K; FluidAudio's published export has K = 64"),
)

#: FluidAudio's model versions for Parakeet TDT 0.6B: the models each loads, in load order.
MODELS: dict[str, tuple[ModelFact, ...]] = {
    "v2": (_PREPROCESSOR, _ENCODER, _DECODER,
           ModelFact("joint_decision", "JointDecision", "cpuAndNeuralEngine", COMPUTE_UNITS, _JOINT_IN, _JOINT_OUT)),
    "v3": (_PREPROCESSOR, _ENCODER, _DECODER,
           ModelFact("joint_decision_topk", "JointDecisionv3", "cpuAndNeuralEngine", COMPUTE_UNITS,
                     _JOINT_IN, _JOINT_OUT + _TOP_K_OUT)),
}
VERSIONS: tuple[str, ...] = tuple(MODELS)
#: ``AsrModels.load``'s default version (AsrModels.swift:229-233).
DEFAULT_VERSION_NAME = "v3"

#: The folder ``AsrModels.load(from:)`` reads: ``<parent of the URL>/<folder name>``, the
#: Hugging Face repo name without ``-coreml`` (ModelNames.swift:109-112, 311-312; AsrModels.swift:140-143).
FOLDER: dict[str, str] = {"v2": "parakeet-tdt-0.6b-v2", "v3": "parakeet-tdt-0.6b-v3"}
#: Hugging Face repositories FluidAudio downloads from (ModelNames.swift:6-7).
REPOS: dict[str, str] = {
    "v2": "FluidInference/parakeet-tdt-0.6b-v2-coreml",
    "v3": "FluidInference/parakeet-tdt-0.6b-v3-coreml",
}
#: The vocabulary file, a JSON object ``{"id": "piece"}`` (ModelNames.swift:394; AsrModels.swift:388-394).
VOCABULARY_FILE = "parakeet_vocab.json"
#: FluidAudio loads compiled models: ``MLModel(contentsOf: <folder>/<stem>.mlmodelc)``
#: (ModelHub.swift:361-368), a folder holding ``coremldata.bin`` (ModelCache.swift:84-117).
COMPILED_SUFFIX = ".mlmodelc"
SOURCE_SUFFIX = ".mlpackage"
COMPILED_MARKER = "coremldata.bin"
#: K of the published ``JointDecisionv3`` (TokenLanguageFilter.md:115).
PUBLISHED_TOP_K = 64


@dataclass(frozen=True)
class SizeFact:
    """A size FluidAudio hard-codes; a model with another value cannot be run by it."""

    symbol: str
    what: str
    values: dict[str, int]  # by version
    source: Source


#: The sizes FluidAudio fixes for 0.6B Parakeet TDT (``V`` is the vocabulary without blank:
#: its blank id).
RUNTIME_SIZES: tuple[SizeFact, ...] = (
    SizeFact("D", "encoder width", {"v2": 1024, "v3": 1024}, HIDDEN_SIZES),
    SizeFact("H", "prediction-net width", {"v2": 640, "v3": 640}, HIDDEN_SIZES),
    SizeFact("L", "LSTM layers", {"v2": 2, "v3": 2}, LSTM_LAYERS),
    SizeFact("V", "vocabulary (blank id)", {"v2": 1024, "v3": 8192}, BLANK_IDS),
)
#: The duration of each duration bin (TdtConfig.swift:15).
DURATIONS: tuple[int, ...] = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class ChunkingFact:
    """How FluidAudio cuts long audio for one version (ChunkProcessor.swift:25-75, AsrTypes.swift:82-85)."""

    window_samples: int  # what the preprocessor is fed (zero-padded)
    chunk_samples: int  # new audio per window
    context_samples: int  # prepended from the previous chunk
    overlap_samples: int
    stride_samples: int


def _chunking(mel_context: bool) -> ChunkingFact:
    """ChunkProcessor.swift:59-75 evaluated: chunk = floor((240000 - context - 160) / 1280) * 1280,
    overlap = floor(min(2.0 s, chunk / 2) / 1280) * 1280, stride = chunk - overlap."""
    context = FRAME_SAMPLES if mel_context else 0
    chunk = (WINDOW_SAMPLES - context - 160) // FRAME_SAMPLES * FRAME_SAMPLES
    overlap = min(32_000, chunk // 2) // FRAME_SAMPLES * FRAME_SAMPLES
    return ChunkingFact(WINDOW_SAMPLES, chunk, context, overlap, chunk - overlap)


#: Long-audio chunking by version: the 80 ms context prepend is on by default except for v3.
CHUNKING: dict[str, ChunkingFact] = {"v2": _chunking(True), "v3": _chunking(False)}


def models(version: str) -> tuple[ModelFact, ...]:
    """The models of ``version`` (``v2``/``v3``); ``ValueError`` for another."""
    if version not in MODELS:
        raise ValueError(f"unknown FluidAudio version {version!r}: expected one of {', '.join(VERSIONS)}")
    return MODELS[version]

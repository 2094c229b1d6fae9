"""Which Core ML compute units each exported component should be loaded with, and why.

The recommendation is derived from the auditor's verdict, the program's precision and its
op types, never written down per component by hand: a component whose tensors break the
ANE axis limits gets ``CPU_AND_GPU`` (so Core ML never tries to place it on the ANE); so
does a component whose ops are all float32-typed, since Core ML runs float32-typed ops on
CPU/GPU only (*typed execution*,
https://apple.github.io/coremltools/docs-guides/source/typed-execution.html); a float16
(or float16 with a float32 island) component within the limits gets ``CPU_AND_NE``. The names are coremltools' ``ct.ComputeUnit``
members; Swift's ``MLComputeUnits`` spellings are in :data:`SWIFT_NAMES`.
"""

from __future__ import annotations

from dataclasses import dataclass

from parakeet_nb.ane.audit import AuditReport

#: coremltools name -> Swift ``MLComputeUnits`` case.
SWIFT_NAMES: dict[str, str] = {
    "CPU_ONLY": ".cpuOnly",
    "CPU_AND_GPU": ".cpuAndGPU",
    "CPU_AND_NE": ".cpuAndNeuralEngine",
    "ALL": ".all",
}

#: Op types with no ANE kernel that Core ML runs on the CPU inside an ANE configuration.
CPU_FALLBACK_OPS: dict[str, str] = {
    "lstm": "the LSTM has no ANE kernel (FluidAudio's notes on ios17.lstm); Core ML runs it on the CPU",
}


@dataclass(frozen=True)
class Recommendation:
    """``units`` (a ``ct.ComputeUnit`` name), its Swift spelling and the reason."""

    units: str
    reason: str

    @property
    def swift(self) -> str:
        return SWIFT_NAMES[self.units]

    def as_dict(self) -> dict[str, str]:
        return {"compute_units": self.units, "swift": self.swift, "reason": self.reason}


#: Why an fp32-typed program is kept off the ANE (typed execution).
FP32_TYPED = "fp32-typed: Core ML runs it on CPU/GPU (typed execution; export with --precision auto or fp16 for the ANE)"


def recommend(report: AuditReport, op_types: set[str], precision: str) -> Recommendation:
    """Recommend compute units for a program from its audit, precision and op types.

    ``precision`` is what the program's ops compute in, ``fp16``, ``fp32``, ``mixed`` or
    ``none`` (:func:`parakeet_nb.ane.planner.program_precision`). Only ``fp16`` and
    ``mixed`` programs within the limits are recommended ``CPU_AND_NE``.
    """
    typed_off_ane = precision not in ("fp16", "mixed")
    if not report.clean:
        first = report.findings[0]
        sizes = [v.size for f in report.findings for v in f.violations]
        if any(size is None for size in sizes):
            widest = "an unbounded flexible axis"
        else:
            widest = f"widest axis {max(sizes)} > 16384"
        return Recommendation(
            "CPU_AND_GPU",
            f"{first.tensor} {first.ndchw} is over the ANE limits ({widest}): "
            "an ANE partition that sees it fails to compile on iPhones; CPU and GPU have no such limit"
            + (f"; {FP32_TYPED}" if typed_off_ane else ""),
        )
    if typed_off_ane:
        return Recommendation("CPU_AND_GPU", FP32_TYPED if precision == "fp32" else "no floating-point op: nothing for the ANE")
    notes = [text for op, text in CPU_FALLBACK_OPS.items() if op in op_types]
    reason = f"{precision}-typed, every axis within the ANE limits (widest {report.widest_axis})"
    if precision == "mixed":
        reason += "; its float32-typed ops run on the CPU"
    if notes:
        reason += "; " + "; ".join(notes) + ", the rest may use the ANE"
    return Recommendation("CPU_AND_NE", reason)

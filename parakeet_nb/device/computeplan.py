"""Read Core ML's compute plan of a compiled ML Program into one record per op.

coremltools 9.0 (``coremltools/models/compute_plan.py``, macOS 14.4+) exposes Apple's
``MLComputePlan``: ``plan.model_structure.program.functions["main"].block.operations`` are
``MLModelStructureProgramOperation`` objects (``operator_name``, ``outputs`` of
``MLModelStructureProgramNamedValueType`` with a ``name``, nested ``blocks`` of
``MLModelStructureProgramBlock`` with ``operations``); for each,
``plan.get_compute_device_usage_for_mlprogram_operation(op)`` is an
``MLComputePlanDeviceUsage`` (``preferred_compute_device``, ``supported_compute_devices``)
or ``None``, and ``plan.get_estimated_cost_for_mlprogram_operation(op)`` an
``MLComputePlanCost`` (``weight`` in [0, 1], the op's share of the model's work) or
``None``. Devices are instances of ``coremltools.models.compute_device``'s
``MLCPUComputeDevice``, ``MLGPUComputeDevice`` and ``MLNeuralEngineComputeDevice``.
Apple's documentation: https://developer.apple.com/documentation/coreml/mlcomputeplan.

This module only calls those methods and reads those attributes, so it runs on any OS
when handed an object of that shape (the tests build one); only loading a real plan
(:mod:`parakeet_nb.device.worker`) needs a Mac.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from parakeet_nb import _quiet

# coremltools alone (no NeMo): this module runs in every device-check child process
_quiet.install_filter()
from coremltools.models import compute_device as _cd  # noqa: E402

_quiet.install_filter()

#: coremltools' device classes -> the planner's device names (``parakeet_nb.ane.plan.DEVICES``).
_DEVICE_NAMES: tuple[tuple[type, str], ...] = (
    (_cd.MLNeuralEngineComputeDevice, "ANE"),
    (_cd.MLGPUComputeDevice, "GPU"),
    (_cd.MLCPUComputeDevice, "CPU"),
)


def device_name(device: Any) -> str:
    """``"ANE"``, ``"GPU"`` or ``"CPU"`` for a coremltools compute device (else its class name)."""
    for cls, name in _DEVICE_NAMES:
        if isinstance(device, cls):
            return name
    return type(device).__name__


@dataclass(frozen=True)
class ActualOp:
    """One op of the compiled program as Core ML's compute plan describes it.

    ``position``: its place in program order (nested blocks walked depth-first, right after
    their op, as :func:`parakeet_nb.ane.graph.collect` numbers ops); ``outputs``: its output
    names; ``preferred``: the device Core ML prefers (``None`` when the plan reports no
    usage, as for constants); ``supported``: every device Core ML says could run it;
    ``cost``: the estimated share of the model's work (``None`` when not reported);
    ``nested``: inside a control-flow block.
    """

    position: int
    op_type: str
    outputs: tuple[str, ...]
    preferred: str | None
    supported: tuple[str, ...]
    cost: float | None
    nested: bool = False

    @property
    def key(self) -> str | None:
        """The join key: the first output's name (``None`` for an op with no output)."""
        return self.outputs[0] if self.outputs else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "position": self.position, "op_type": self.op_type, "outputs": list(self.outputs),
            "preferred": self.preferred, "supported": list(self.supported), "cost": self.cost,
            "nested": self.nested,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActualOp:
        """The inverse of :meth:`as_dict` (how a child process hands records back)."""
        return cls(
            position=int(data["position"]), op_type=str(data["op_type"]), outputs=tuple(data["outputs"]),
            preferred=data["preferred"], supported=tuple(data["supported"]),
            cost=None if data["cost"] is None else float(data["cost"]), nested=bool(data["nested"]),
        )


def _walk(operations: Any, nested: bool) -> Iterator[tuple[Any, bool]]:
    for op in operations:
        yield op, nested
        for block in op.blocks:
            yield from _walk(block.operations, True)


def read_compute_plan(compute_plan: Any, function: str = "main") -> list[ActualOp]:
    """Every op of ``function`` with Core ML's preferred and supported devices and its cost.

    ``compute_plan``: a ``coremltools.models.compute_plan.MLComputePlan`` (or an object with
    the same attributes and methods). Raises ``ValueError`` when the model is not an ML
    Program or has no such function.
    """
    program = compute_plan.model_structure.program
    if program is None:
        raise ValueError("the compute plan's model is not an ML Program (model_structure.program is None)")
    if function not in program.functions:
        raise ValueError(f"the compiled program has no function {function!r} (it has {', '.join(program.functions)})")
    records = []
    for position, (op, nested) in enumerate(_walk(program.functions[function].block.operations, False)):
        usage = compute_plan.get_compute_device_usage_for_mlprogram_operation(op)
        cost = compute_plan.get_estimated_cost_for_mlprogram_operation(op)
        records.append(ActualOp(
            position=position,
            op_type=op.operator_name,
            outputs=tuple(out.name for out in op.outputs),
            preferred=None if usage is None else device_name(usage.preferred_compute_device),
            supported=() if usage is None else tuple(device_name(d) for d in usage.supported_compute_devices),
            cost=None if cost is None else float(cost.weight),
            nested=nested,
        ))
    return records


def listed_devices(devices: list[Any]) -> list[dict[str, Any]]:
    """Compute devices as ``{"device", "cores"}`` (``cores``: the Neural Engine's core count, else ``None``).

    ``devices``: e.g. ``coremltools.models.MLModel.get_available_compute_devices()``.
    """
    return [
        {"device": device_name(d),
         "cores": int(d.total_core_count) if isinstance(d, _cd.MLNeuralEngineComputeDevice) else None}
        for d in devices
    ]

"""Join Core ML's compute plan with the planner's prediction, op by op.

**How ops are matched.** By the name of the op's first output tensor: the planner's ops
(:class:`parakeet_nb.ane.plan.OpPlacement`, whose outputs are the tensors of
``Plan.tensors`` they produce) and the compute plan's ops
(:class:`parakeet_nb.device.computeplan.ActualOp`) come from the same program, and an ML
Program names every value once (SSA), so equal names mean the same op. Positions are
kept for the reader but never used to match: an op Core ML's compiler adds or drops
would shift every position after it.

Every op ends in one status (:data:`STATUSES`): ``agree`` / ``differ`` when both sides
place it (only these count towards the agreement rate); ``predicted_only`` when the
planner places it and the compiled program has no op with that output; ``actual_only``
when Core ML places an op the package does not have; ``unplaced`` when it is in both but
one side gives it no device (a constant, or an op the compute plan reports no usage for).
Every op that either side places is in :attr:`PlacementComparison.ops`; an op only one side
lists and that side gives no device (a constant folded away) says nothing about placement
and is left out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from parakeet_nb.ane.plan import DEVICES, Plan
from parakeet_nb.device.computeplan import ActualOp

STATUSES: dict[str, str] = {
    "agree": "both place the op, on the same device",
    "differ": "both place the op, on different devices",
    "predicted_only": "the planner places it; the compiled program has no op with this output",
    "actual_only": "Core ML places it; the package has no op with this output",
    "unplaced": "in both, but one side gives it no device (a constant, or no usage reported)",
}


@dataclass(frozen=True)
class OpComparison:
    """One op on both sides. ``key``: its first output's name (the join key);
    ``predicted_index`` / ``actual_position``: its place in each side's program order
    (``None`` when absent from that side); ``predicted`` / ``actual``: the device each side
    gives it (``None``: none); ``supported``, ``cost``: from the compute plan."""

    key: str
    op_type: str
    predicted_index: int | None
    actual_position: int | None
    predicted: str | None
    actual: str | None
    supported: tuple[str, ...]
    cost: float | None
    status: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "op_type": self.op_type, "predicted_index": self.predicted_index,
            "actual_position": self.actual_position, "predicted": self.predicted, "actual": self.actual,
            "supported": list(self.supported), "cost": self.cost, "status": self.status,
        }


@dataclass(frozen=True)
class PlacementComparison:
    """The planner's placement (``policy``, ``typed_execution``) against the compute plan
    Core ML made for the same package under ``compute_units``. ``ops``: program order of
    the package, then the ops only Core ML has, in its order."""

    compute_units: str
    policy: str
    typed_execution: bool
    ops: tuple[OpComparison, ...]

    def with_status(self, *statuses: str) -> list[OpComparison]:
        return [o for o in self.ops if o.status in statuses]

    @property
    def compared(self) -> int:
        """Ops both sides place (the agreement rate's denominator)."""
        return len(self.with_status("agree", "differ"))

    @property
    def agreement(self) -> float | None:
        """Share of the compared ops on the same device; ``None`` when no op could be compared."""
        return len(self.with_status("agree")) / self.compared if self.compared else None

    @property
    def cost_agreement(self) -> float | None:
        """Agreement weighted by the compute plan's estimated cost; ``None`` without any cost."""
        both = [o for o in self.with_status("agree", "differ") if o.cost is not None]
        total = sum(o.cost for o in both)  # type: ignore[misc]
        if not both or total <= 0.0:
            return None
        return sum(o.cost for o in both if o.status == "agree") / total  # type: ignore[misc]

    @property
    def disagreements(self) -> list[OpComparison]:
        return self.with_status("differ")

    def status_counts(self) -> dict[str, int]:
        c = Counter(o.status for o in self.ops)
        return {s: c.get(s, 0) for s in STATUSES}

    def device_counts(self, side: str) -> dict[str, int]:
        """Ops per device on one side (``"predicted"`` or ``"actual"``), every placed op counted."""
        c = Counter(getattr(o, side) for o in self.ops if getattr(o, side) is not None)
        out = {d: c.get(d, 0) for d in DEVICES}
        out.update({d: n for d, n in c.items() if d not in DEVICES})
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "compute_units": self.compute_units,
            "policy": self.policy,
            "typed_execution": self.typed_execution,
            "matched_by": "the name of each op's first output tensor",
            "compared": self.compared,
            "agreement": self.agreement,
            "cost_weighted_agreement": self.cost_agreement,
            "status_counts": self.status_counts(),
            "predicted_devices": self.device_counts("predicted"),
            "actual_devices": self.device_counts("actual"),
            "disagreements": [
                {"op": o.key, "op_type": o.op_type, "predicted": o.predicted, "actual": o.actual,
                 "supported": list(o.supported), "cost": o.cost}
                for o in self.disagreements
            ],
            "ops": [o.as_dict() for o in self.ops],
        }


def _first_outputs(predicted: Plan) -> dict[int, str]:
    """Op index -> name of its first output, from ``Plan.tensors`` (in program order)."""
    first: dict[int, str] = {}
    for name, tensor in predicted.tensors.items():
        if tensor.producer is not None and tensor.producer not in first:
            first[tensor.producer] = name
    return first


def join(predicted: Plan, actual: list[ActualOp]) -> PlacementComparison:
    """Match ``predicted`` (the planner's plan of a package) with ``actual`` (the compute
    plan of the same package compiled, under the same compute units) by first output name.

    Raises ``ValueError`` if ``predicted`` carries no tensor table (a plan read back from
    JSON): without it the ops' outputs are unknown.
    """
    if not predicted.tensors:
        raise ValueError("the plan has no tensor table; plan the package itself (parakeet_nb.ane.planner.plan)")
    first = _first_outputs(predicted)
    by_key = {a.key: a for a in actual if a.key is not None}
    seen: set[str] = set()
    ops: list[OpComparison] = []
    for p in predicted.ops:
        key = first.get(p.index, p.name)
        a = by_key.get(key)
        if a is None:
            if p.device is not None:
                ops.append(OpComparison(key, p.op_type, p.index, None, p.device, None, (), None, "predicted_only"))
            continue  # a constant Core ML folded away: nothing to compare or to show
        seen.add(key)
        if p.device is None or a.preferred is None:
            status = "unplaced"
        else:
            status = "agree" if p.device == a.preferred else "differ"
        ops.append(OpComparison(key, p.op_type, p.index, a.position, p.device, a.preferred, a.supported, a.cost, status))
    for a in actual:
        if a.key in seen or a.preferred is None:
            continue  # an unplaced op the package lacks (e.g. a constant) says nothing about placement
        ops.append(OpComparison(a.key or f"#{a.position}", a.op_type, None, a.position, None, a.preferred,
                                a.supported, a.cost, "actual_only"))
    return PlacementComparison(predicted.compute_units, predicted.policy, predicted.typed_execution, tuple(ops))

"""The ANE layout model: how a Core ML tensor lands on N D C H W, and its limits.

The limits are the Apple Neural Engine's, as its compiler prints them when it rejects a
layer (iPhone 13 / A15, and the same text on iOS 26 and macOS 26 betas)::

    Invalid layer: Tensor dimensions N1D1C1H1W240000 are not within supported range,
    N[1-65536] D[1-16384] C[1-65536] H[1-16384] W[1-16384].

**The mapping is an inference, not Apple documentation.** Apple documents no rule for
how a tensor of rank 0-5 is laid out on the five axes. Every public error log is
consistent with *right alignment*: the last axis is W, then H, C, D, N, and missing
leading axes are 1 (``[1, 240000]`` -> W240000; a rank-1 tensor of 64000000 ->
W64000000; executorch issue 7907's ``N1D1C768H1W32000`` from a rank-4 ``(B, C, 1, S)``
tensor). The logs cannot decide whether the first axis of a rank-4 tensor lands in N or
in D (they always had it 1). This model puts it in D and reports a verdict that would
change under the other reading as *ambiguous* (sizes 16385..65536 in that axis).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

#: The five Core ML axes, outermost first.
AXES: tuple[str, ...] = ("N", "D", "C", "H", "W")

#: Inclusive (low, high) size range per axis, from the ANE compiler's error text.
LIMITS: dict[str, tuple[int, int]] = {
    "N": (1, 65536),
    "D": (1, 16384),
    "C": (1, 65536),
    "H": (1, 16384),
    "W": (1, 16384),
}

#: The narrowest limit of any axis that a long sequence axis can land in (H or W).
WIDTH_LIMIT = LIMITS["W"][1]


@dataclass(frozen=True)
class Flexible:
    """A flexible (symbolic) size, judged by its upper bound.

    ``upper`` is ``None`` when the model sets no upper bound (an unbounded ``RangeDim``).
    """

    name: str
    upper: int | None

    def __str__(self) -> str:
        bound = "unbounded" if self.upper is None else f"<={self.upper}"
        return f"{self.name}({bound})"


Size = int | Flexible


class ShapeError(ValueError):
    """A shape that cannot be placed on N D C H W (rank over 5, negative size, not a size)."""


@dataclass(frozen=True)
class Violation:
    """One axis out of its range: ``size`` (the upper bound for a flexible size) vs ``low..high``."""

    axis: str
    size: int | None
    low: int
    high: int
    flexible: bool = False

    def describe(self) -> str:
        if self.size is None:
            return f"{self.axis} is unbounded (flexible, no upper bound; limit {self.high})"
        what = f"{self.axis}={self.size}"
        if self.flexible:
            what += " (upper bound of a flexible size)"
        if self.size < self.low:
            return f"{what} is below {self.low}"
        return f"{what} exceeds {self.high}"


@dataclass(frozen=True)
class Layout:
    """A shape placed on N D C H W under the right-alignment model.

    ``dims`` maps each axis to its size (an int, or :class:`Flexible`); ``source_axis``
    maps each axis to the index of the shape axis it came from (``None`` for padding 1s).
    """

    shape: tuple[Size, ...]
    dims: dict[str, Size]
    source_axis: dict[str, int | None]

    @property
    def rank(self) -> int:
        return len(self.shape)

    def bound(self, axis: str) -> int | None:
        """The size of ``axis``, or its upper bound for a flexible size."""
        size = self.dims[axis]
        return size.upper if isinstance(size, Flexible) else size

    def violations(self) -> list[Violation]:
        """Every axis outside its range, outermost first."""
        found = []
        for axis in AXES:
            low, high = LIMITS[axis]
            size = self.dims[axis]
            flexible = isinstance(size, Flexible)
            value = self.bound(axis)
            if value is None or not low <= value <= high:
                found.append(Violation(axis, value, low, high, flexible))
        return found

    @property
    def ok(self) -> bool:
        return not self.violations()

    @property
    def ambiguous(self) -> bool:
        """True when the verdict would change if a rank-4 tensor's first axis were N, not D."""
        if self.rank != 4:
            return False
        first = self.bound("D")
        return (
            first is not None
            and LIMITS["D"][1] < first <= LIMITS["N"][1]
            and all(v.axis == "D" for v in self.violations())
        )

    def ndchw(self) -> str:
        """``N1D1C1H1W240000`` as the device prints it (upper bounds for flexible sizes)."""
        return "".join(f"{axis}{_show(self.bound(axis))}" for axis in AXES)

    def error_text(self) -> str | None:
        """The ANE compiler's error text for this tensor, or ``None`` when within range."""
        if self.ok:
            return None
        return device_error_text(self.ndchw())


def _show(value: int | None) -> str:
    return "?" if value is None else str(value)


def device_error_text(ndchw: str) -> str:
    """The ANE compiler's rejection message for a tensor printed as ``ndchw``."""
    ranges = " ".join(f"{axis}[{low}-{high}]" for axis, (low, high) in LIMITS.items())
    return f"Invalid layer: Tensor dimensions {ndchw} are not within supported range, {ranges}."


def _check_size(index: int, size: object) -> Size:
    if isinstance(size, Flexible):
        if size.upper is not None and size.upper < 0:
            raise ShapeError(f"axis {index}: flexible size {size.name} has a negative upper bound {size.upper}")
        return size
    if isinstance(size, bool) or not hasattr(size, "__index__"):
        raise ShapeError(f"axis {index}: {size!r} is not a size (expected a whole number)")
    value = int(size)  # type: ignore[call-overload]
    if value < 0:
        raise ShapeError(f"axis {index}: size {value} is negative")
    return value


def to_layout(shape: Sequence[Size]) -> Layout:
    """Place a shape of rank 0-5 on N D C H W, right-aligned (missing axes are 1).

    Zero sizes are placed (and reported as violations: every range starts at 1).
    Raises :class:`ShapeError` for rank over 5, negative sizes and non-integer sizes.
    """
    try:
        items = tuple(shape)
    except TypeError:
        raise ShapeError(f"{shape!r} is not a shape (expected a sequence of sizes, e.g. [1, 240000])") from None
    shape = tuple(_check_size(i, s) for i, s in enumerate(items))
    if len(shape) > len(AXES):
        raise ShapeError(
            f"rank {len(shape)} has more axes than Core ML's five (N D C H W); "
            "Core ML tensors have rank 0-5"
        )
    offset = len(AXES) - len(shape)
    dims: dict[str, Size] = {}
    source: dict[str, int | None] = {}
    for position, axis in enumerate(AXES):
        index = position - offset
        dims[axis] = shape[index] if index >= 0 else 1
        source[axis] = index if index >= 0 else None
    return Layout(shape=shape, dims=dims, source_axis=source)


Status = Literal["ok", "over_limit", "ambiguous", "invalid"]


@dataclass(frozen=True)
class Verdict:
    """A human-readable judgement of one shape; never raises (see :func:`judge`)."""

    shape: tuple[Size, ...] | None
    status: Status
    ndchw: str | None
    message: str
    error_text: str | None
    violations: tuple[Violation, ...] = ()

    def as_dict(self) -> dict[str, object]:
        data = dataclasses.asdict(self)
        data["shape"] = None if self.shape is None else [str(s) if isinstance(s, Flexible) else s for s in self.shape]
        return data


def judge(shape: Sequence[Size]) -> Verdict:
    """Judge a shape: its N D C H W, whether it fits the ANE limits, and why not.

    Returns a :class:`Verdict` for every input, including invalid shapes (status
    ``invalid`` with the reason), so interactive callers need no error handling.
    """
    try:
        layout = to_layout(shape)
    except ShapeError as exc:
        return Verdict(shape=None, status="invalid", ndchw=None, message=str(exc), error_text=None)
    violations = tuple(layout.violations())
    flexible_note = (
        " Flexible sizes are judged by their upper bound."
        if any(isinstance(s, Flexible) for s in layout.shape) else ""
    )
    if not violations:
        status: Status = "ok"
        message = f"{layout.ndchw()}: within the ANE limits."
    else:
        status = "over_limit"
        message = f"{layout.ndchw()}: " + "; ".join(v.describe() for v in violations) + "."
    if layout.ambiguous:
        status = "ambiguous"
        message += (
            " Ambiguous: if the first axis of this rank-4 tensor lands in N (limit 65536) "
            "rather than D (limit 16384), the verdict changes."
        )
    return Verdict(
        shape=layout.shape,
        status=status,
        ndchw=layout.ndchw(),
        message=message + flexible_note,
        error_text=layout.error_text(),
        violations=violations,
    )


def parse_shape(text: str) -> tuple[int, ...]:
    """Parse ``"1, 240000"``, ``"[1, 15, 16000]"`` or ``"1x128x1501"`` into a shape.

    Raises :class:`ShapeError` with what was wrong. An empty text (or ``"()"``) is rank 0.
    """
    cleaned = text.strip().strip("[]()").replace("x", ",").replace("×", ",")
    if not cleaned.strip():
        return ()
    parts = [p.strip() for p in cleaned.replace(" ", ",").split(",") if p.strip()]
    shape = []
    for part in parts:
        try:
            shape.append(int(part))
        except ValueError:
            raise ShapeError(f"{part!r} is not a whole number (expected sizes like '1, 240000')") from None
    return tuple(shape)


def judge_text(text: str) -> Verdict:
    """:func:`judge` on a typed shape; a text that does not parse gives an ``invalid`` verdict."""
    try:
        shape = parse_shape(text)
    except ShapeError as exc:
        return Verdict(shape=None, status="invalid", ndchw=None, message=str(exc), error_text=None)
    return judge(shape)

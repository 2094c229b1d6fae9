"""The ANE layout model (``parakeet_nb.ane.layout``): placement, limits, verdicts, parsing."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parakeet_nb.ane.layout import (
    AXES,
    LIMITS,
    Flexible,
    ShapeError,
    device_error_text,
    judge,
    judge_text,
    parse_shape,
    to_layout,
)

#: The device's message for the 15 s waveform, byte for byte (FluidAudio issue 121).
W240000_TEXT = (
    "Invalid layer: Tensor dimensions N1D1C1H1W240000 are not within supported range, "
    "N[1-65536] D[1-16384] C[1-65536] H[1-16384] W[1-16384]."
)


def _ndchw(dims: dict[str, int]) -> str:
    return "".join(f"{a}{dims[a]}" for a in "NDCHW")


# --------------------------------------------------------------------------- placement


def test_axes_and_limits_are_the_device_ranges():
    assert AXES == ("N", "D", "C", "H", "W")
    assert LIMITS == {"N": (1, 65536), "D": (1, 16384), "C": (1, 65536), "H": (1, 16384), "W": (1, 16384)}


@pytest.mark.parametrize(
    "shape, dims, source",
    [
        ((), dict(N=1, D=1, C=1, H=1, W=1), dict(N=None, D=None, C=None, H=None, W=None)),
        ((7,), dict(N=1, D=1, C=1, H=1, W=7), dict(N=None, D=None, C=None, H=None, W=0)),
        ((3, 7), dict(N=1, D=1, C=1, H=3, W=7), dict(N=None, D=None, C=None, H=0, W=1)),
        ((2, 3, 7), dict(N=1, D=1, C=2, H=3, W=7), dict(N=None, D=None, C=0, H=1, W=2)),
        ((5, 2, 3, 7), dict(N=1, D=5, C=2, H=3, W=7), dict(N=None, D=0, C=1, H=2, W=3)),
        ((4, 5, 2, 3, 7), dict(N=4, D=5, C=2, H=3, W=7), dict(N=0, D=1, C=2, H=3, W=4)),
    ],
    ids=["rank0", "rank1", "rank2", "rank3", "rank4", "rank5"],
)
def test_every_rank_is_right_aligned_with_padding_ones(shape, dims, source):
    layout = to_layout(shape)
    assert layout.rank == len(shape)
    assert layout.shape == shape
    assert layout.dims == dims
    assert layout.source_axis == source
    assert layout.ndchw() == _ndchw(dims)
    assert layout.ok
    assert layout.error_text() is None


def test_the_15s_waveform_gives_the_device_error_byte_for_byte():
    layout = to_layout([1, 240000])
    assert layout.ndchw() == "N1D1C1H1W240000"
    assert not layout.ok
    assert layout.error_text() == W240000_TEXT
    assert device_error_text("N1D1C1H1W240000") == W240000_TEXT
    verdict = judge([1, 240000])
    assert verdict.status == "over_limit"
    assert verdict.error_text == W240000_TEXT
    assert [(v.axis, v.size) for v in verdict.violations] == [("W", 240000)]
    assert "W=240000 exceeds 16384" in verdict.message


def test_the_mel_is_within_the_limits():
    verdict = judge([1, 128, 1501])
    assert verdict.status == "ok"
    assert verdict.ndchw == "N1D1C1H128W1501"
    assert verdict.error_text is None
    assert verdict.violations == ()


@pytest.mark.parametrize("axis", ["D", "H", "W"])
def test_16384_axes_at_their_boundary(axis):
    position = AXES.index(axis)
    for size, ok in ((16384, True), (16385, False), (0, False), (1, True)):
        shape = [1] * 5
        shape[position] = size
        layout = to_layout(shape)
        assert layout.ok is ok, (axis, size)
        violations = layout.violations()
        if ok:
            assert violations == []
        else:
            assert [(v.axis, v.size, v.low, v.high) for v in violations] == [(axis, size, 1, 16384)]
            word = "below 1" if size == 0 else "exceeds 16384"
            assert word in violations[0].describe()


@pytest.mark.parametrize("axis", ["N", "C"])
def test_65536_axes_at_their_boundary(axis):
    position = AXES.index(axis)
    for size, ok in ((65536, True), (65537, False), (16385, True), (0, False)):
        shape = [1] * 5
        shape[position] = size
        layout = to_layout(shape)
        assert layout.ok is ok, (axis, size)
        if not ok:
            assert [(v.axis, v.size, v.high) for v in layout.violations()] == [(axis, size, 65536)]


def test_zero_size_is_placed_and_reported_below_one():
    verdict = judge([0, 5])
    assert verdict.status == "over_limit"
    assert verdict.ndchw == "N1D1C1H0W5"
    assert "H=0 is below 1" in verdict.message
    assert verdict.error_text == device_error_text("N1D1C1H0W5")


def test_violations_are_listed_outermost_first():
    layout = to_layout([70000, 20000, 70000, 20000, 20000])
    assert [v.axis for v in layout.violations()] == ["N", "D", "C", "H", "W"]


def test_numpy_integers_are_sizes():
    assert to_layout([np.int64(1), np.int32(240000)]).ndchw() == "N1D1C1H1W240000"


# --------------------------------------------------------------------------- invalid shapes


@pytest.mark.parametrize(
    "shape, words",
    [
        ((1, 1, 1, 1, 1, 1), "rank 6"),
        ((1, -5), "negative"),
        ((1, 2.0), "not a size"),
        ((1, 2.5), "not a size"),
        ((1, "16"), "not a size"),
        ((1, None), "not a size"),
        ((True, 5), "not a size"),
        ((1, False), "not a size"),
        ((np.True_, 5), "not a size"),
        ((1, Flexible("s", -1)), "negative"),
    ],
    ids=["rank6", "negative", "float", "fraction", "str", "none", "true", "false", "np_bool", "flex_negative"],
)
def test_invalid_shapes_raise_in_to_layout_and_are_invalid_verdicts_in_judge(shape, words):
    with pytest.raises(ShapeError, match=words):
        to_layout(shape)
    verdict = judge(shape)
    assert verdict.status == "invalid"
    assert verdict.shape is None and verdict.ndchw is None and verdict.error_text is None
    assert words in verdict.message
    assert verdict.as_dict()["status"] == "invalid"


@pytest.mark.parametrize("shape", [240000, None, 2.5], ids=["int", "none", "float"])
def test_judge_returns_an_invalid_verdict_for_a_shape_that_is_not_a_sequence(shape):
    """``judge`` promises a verdict "for every input" so interactive callers need no error handling."""
    verdict = judge(shape)
    assert verdict.status == "invalid"
    assert verdict.ndchw is None


def test_shape_error_is_a_value_error():
    assert issubclass(ShapeError, ValueError)


# --------------------------------------------------------------------------- flexible sizes


def test_flexible_size_bounded_under_the_limit_is_ok():
    verdict = judge([1, Flexible("s", 16384)])
    assert verdict.status == "ok"
    assert verdict.ndchw == "N1D1C1H1W16384"
    assert "judged by their upper bound" in verdict.message
    assert verdict.as_dict()["shape"] == [1, "s(<=16384)"]


def test_flexible_size_bounded_over_the_limit_is_over():
    verdict = judge([1, Flexible("s", 16385)])
    assert verdict.status == "over_limit"
    assert verdict.ndchw == "N1D1C1H1W16385"
    assert verdict.error_text == device_error_text("N1D1C1H1W16385")
    (violation,) = verdict.violations
    assert violation.flexible and violation.size == 16385
    assert "upper bound of a flexible size" in violation.describe()


def test_unbounded_flexible_size_is_over():
    layout = to_layout([1, Flexible("s", None)])
    assert layout.bound("W") is None
    assert not layout.ok
    assert layout.ndchw() == "N1D1C1H1W?"
    (violation,) = layout.violations()
    assert violation.size is None and violation.flexible
    assert "unbounded" in violation.describe()
    assert judge([1, Flexible("s", None)]).status == "over_limit"
    assert str(Flexible("s", None)) == "s(unbounded)"


# --------------------------------------------------------------------------- N/D ambiguity


@pytest.mark.parametrize("first", [16385, 40000, 65536])
def test_rank4_first_axis_between_the_d_and_n_limits_is_ambiguous(first):
    layout = to_layout([first, 1, 1, 1])
    assert layout.ambiguous
    assert not layout.ok  # over under the D reading
    verdict = judge([first, 1, 1, 1])
    assert verdict.status == "ambiguous"
    assert "Ambiguous" in verdict.message
    assert verdict.error_text == device_error_text(f"N1D{first}C1H1W1")


def test_rank4_first_axis_over_both_limits_is_over_not_ambiguous():
    layout = to_layout([65537, 1, 1, 1])
    assert not layout.ambiguous
    assert judge([65537, 1, 1, 1]).status == "over_limit"


@pytest.mark.parametrize("shape", [[16384, 1, 1, 1], [16385, 1, 1], [1, 16385, 1, 1, 1], [16385, 1, 1, 1, 1]])
def test_ambiguity_is_only_for_rank4_first_axis_over_16384(shape):
    assert not to_layout(shape).ambiguous
    assert judge(shape).status != "ambiguous"


def test_rank4_over_on_another_axis_is_not_ambiguous():
    """[20000, 1, 1, 20000] is over under either reading (W=20000): the verdict cannot change."""
    layout = to_layout([20000, 1, 1, 20000])
    assert not layout.ambiguous
    verdict = judge([20000, 1, 1, 20000])
    assert verdict.status == "over_limit"
    assert "verdict changes" not in verdict.message


def test_flexible_first_axis_in_rank4_is_judged_by_its_bound():
    assert to_layout([Flexible("b", 20000), 1, 1, 1]).ambiguous
    assert not to_layout([Flexible("b", None), 1, 1, 1]).ambiguous


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "text, shape",
    [
        ("1, 240000", (1, 240000)),
        ("[1, 15, 16000]", (1, 15, 16000)),
        ("1x128x1501", (1, 128, 1501)),
        ("(1, 128, 1501)", (1, 128, 1501)),
        ("1 240000", (1, 240000)),
        ("  [7]  ", (7,)),
        ("", ()),
        ("()", ()),
    ],
)
def test_parse_shape(text, shape):
    assert parse_shape(text) == shape


@pytest.mark.parametrize("text", ["garbage", "1, two", "1.5, 3", "1;2"])
def test_parse_shape_rejects_non_numbers(text):
    with pytest.raises(ShapeError, match="not a whole number"):
        parse_shape(text)


def test_judge_text():
    assert judge_text("1, 240000").error_text == W240000_TEXT
    assert judge_text("[1, 15, 16000]").ndchw == "N1D1C1H15W16000"
    assert judge_text("[1, 15, 16000]").status == "ok"
    assert judge_text("1x128x1501").ndchw == "N1D1C1H128W1501"
    empty = judge_text("")
    assert empty.status == "ok" and empty.ndchw == "N1D1C1H1W1" and empty.shape == ()
    bad = judge_text("garbage")
    assert bad.status == "invalid" and bad.ndchw is None and "'garbage'" in bad.message
    assert judge_text("1, -3").status == "invalid"
    assert judge_text("1,1,1,1,1,1").status == "invalid"


# --------------------------------------------------------------------------- properties

_SIZES = st.one_of(
    st.sampled_from([0, 1, 2, 16383, 16384, 16385, 65535, 65536, 65537, 240000]),
    st.integers(min_value=0, max_value=300000),
)
_SHAPES = st.lists(_SIZES, min_size=0, max_size=5)


def _within(axis: str, size: int) -> bool:
    low, high = LIMITS[axis]
    return low <= size <= high


@settings(deadline=None)
@given(_SHAPES)
def test_property_ok_iff_every_right_aligned_axis_is_within_its_range(shape):
    padded = [1] * (5 - len(shape)) + list(shape)
    expected_ok = all(_within(axis, size) for axis, size in zip(AXES, padded))
    layout = to_layout(shape)
    assert layout.ok is expected_ok
    assert layout.ndchw() == "".join(f"{a}{s}" for a, s in zip(AXES, padded))
    assert {v.axis for v in layout.violations()} == {a for a, s in zip(AXES, padded) if not _within(a, s)}
    for axis, index in layout.source_axis.items():
        if index is None:
            assert layout.dims[axis] == 1
        else:
            assert layout.dims[axis] == shape[index]
    assert (layout.error_text() is None) is expected_ok


@settings(deadline=None)
@given(st.lists(_SIZES, min_size=4, max_size=4))
def test_property_ambiguous_iff_the_two_readings_of_rank4_disagree(shape):
    """Ambiguous exactly when reading the first axis as D and as N give different verdicts."""
    first, c, h, w = shape
    rest_ok = _within("C", c) and _within("H", h) and _within("W", w)
    d_reading_ok = _within("D", first) and rest_ok
    n_reading_ok = _within("N", first) and rest_ok
    layout = to_layout(shape)
    assert layout.ok is d_reading_ok
    assert layout.ambiguous is (d_reading_ok != n_reading_ok)


@settings(deadline=None)
@given(_SHAPES)
def test_property_judge_text_agrees_with_judge(shape):
    for text in (", ".join(map(str, shape)), "[" + ", ".join(map(str, shape)) + "]", "x".join(map(str, shape))):
        assert judge_text(text) == judge(shape)


@settings(deadline=None)
@given(st.lists(st.one_of(st.integers(-5, 70000), st.floats(allow_nan=True), st.booleans(), st.none(), st.text(max_size=3)), max_size=7))
def test_property_judge_never_raises(shape):
    verdict = judge(shape)
    assert verdict.status in ("ok", "over_limit", "ambiguous", "invalid")
    valid = len(shape) <= 5 and all(type(s) is int and s >= 0 for s in shape)
    assert (verdict.status != "invalid") is valid
    assert (verdict.error_text is None) is (verdict.status in ("ok", "invalid"))


@settings(deadline=None)
@given(_SHAPES)
def test_property_error_text_names_the_layout_and_the_ranges(shape):
    verdict = judge(shape)
    if verdict.error_text is not None:
        match = re.fullmatch(
            r"Invalid layer: Tensor dimensions (N\d+D\d+C\d+H\d+W\d+) are not within supported range, "
            r"N\[1-65536\] D\[1-16384\] C\[1-65536\] H\[1-16384\] W\[1-16384\]\.",
            verdict.error_text,
        )
        assert match and match.group(1) == verdict.ndchw

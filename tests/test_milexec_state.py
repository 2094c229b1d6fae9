"""Stateful programs (iOS 18 ``read_state`` / ``coreml_update_state``) in the MIL executor.

Core ML's contract (https://developer.apple.com/documentation/coreml/mlmodel/makestate()):
``makeState()`` allocates the buffers initialized to zeros, every prediction handed the same
state reads and overwrites them, and the values persist to the next prediction. The
references here are plain numpy recurrences in float16, the states' declared type.
"""

from __future__ import annotations

import numpy as np
import pytest

from parakeet_nb import _quiet

_quiet.import_heavy()

import coremltools as ct  # noqa: E402
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

from parakeet_nb.mlprogram.load import load_program  # noqa: E402
from parakeet_nb.mlprogram.milexec import InputValidationError, MilExecutor, MilState  # noqa: E402

IOS18 = ct.target.iOS18
RNG = np.random.default_rng(18)


def accumulator(shape=(2, 3)):
    """``acc += x; return acc * 2``: the state guide's accumulator
    (https://apple.github.io/coremltools/docs-guides/source/stateful-models.html)."""

    @mb.program(
        input_specs=[mb.StateTensorSpec(shape, dtype=types.fp16), mb.TensorSpec(shape, dtype=types.fp16)],
        opset_version=IOS18,
    )
    def prog(acc, x):
        total = mb.add(x=mb.read_state(input=acc), y=x)
        total = mb.coreml_update_state(state=acc, value=total)
        return mb.mul(x=total, y=np.float16(2))

    return prog


def test_state_starts_at_zero_and_persists_across_runs():
    ex = MilExecutor(accumulator())
    assert ex.state_specs() == {"acc": ((2, 3), "fp16")} and list(ex.input_specs()) == ["x"]
    state = ex.make_state()
    assert state.names == ["acc"] and np.array_equal(state.read_state("acc"), np.zeros((2, 3), np.float16))
    expected = np.zeros((2, 3), np.float16)
    for _ in range(4):
        x = RNG.standard_normal((2, 3)).astype(np.float32)
        (out,) = ex.run({"x": x}, state=state).values()
        expected = expected + x.astype(np.float16)  # float16 + float16, rounded once
        assert state.read_state("acc").dtype == np.float16
        np.testing.assert_array_equal(state.read_state("acc"), expected)
        np.testing.assert_array_equal(out, expected * np.float16(2))


def test_states_are_independent_and_writable():
    ex = MilExecutor(accumulator())
    a, b = ex.make_state(), ex.make_state()
    a.write_state("acc", np.full((2, 3), 0.1, np.float32))  # rounded to the state's float16
    one = np.ones((2, 3), np.float32)
    ex.run({"x": one}, state=a)
    ex.run({"x": one}, state=b)
    np.testing.assert_array_equal(a.read_state("acc"), np.float16(0.1) + np.float16(1))
    np.testing.assert_array_equal(b.read_state("acc"), np.ones((2, 3), np.float16))
    copy = a.read_state("acc")
    copy[:] = 7  # a copy, not the buffer
    assert a.read_state("acc")[0, 0] != 7


def test_read_before_update_keeps_the_old_value():
    @mb.program(
        input_specs=[mb.StateTensorSpec((3,), dtype=types.fp16), mb.TensorSpec((3,), dtype=types.fp16)],
        opset_version=IOS18,
    )
    def prog(s, x):
        before = mb.read_state(input=s)
        after = mb.coreml_update_state(state=s, value=x)
        return mb.identity(x=before), mb.identity(x=after), mb.read_state(input=s)

    ex = MilExecutor(prog)
    state = ex.make_state()
    state.write_state("s", np.array([1, 2, 3], np.float16))
    before, after, reread = ex.run({"x": np.array([4, 5, 6], np.float32)}, state=state).values()
    np.testing.assert_array_equal(before, [1, 2, 3])
    np.testing.assert_array_equal(after, [4, 5, 6])
    np.testing.assert_array_equal(reread, [4, 5, 6])


def test_ten_updates_per_run_as_coremltools_stress_test():
    """``iOS18/test_states.py::test_coreml_update_stress`` (which the suite xfails on x86_64
    Macs): ten increments per prediction, 10 after the first, 20 after the second."""

    @mb.program(input_specs=[mb.StateTensorSpec((4, 5), dtype=types.fp16)], opset_version=IOS18)
    def prog(s):
        v = mb.read_state(input=s)
        for _ in range(10):
            v = mb.coreml_update_state(state=s, value=mb.add(x=v, y=np.float16(1)))
        return mb.read_state(input=s)

    ex = MilExecutor(prog)
    state = ex.make_state()
    for total in (10, 20):
        (out,) = ex.run({}, state=state).values()
        assert out.tolist() == np.full((4, 5), total).tolist()


def test_a_cache_written_with_slice_update_through_a_saved_package(tmp_path):
    """A streaming cache: each run writes one frame into row ``t`` of a ``[T, C]`` state. The
    package is converted and read back, so the ops are those of the saved file
    (``write_state`` + ``read_state``, joined again by coremltools' loader)."""
    frames, channels = 4, 3

    @mb.program(
        input_specs=[
            mb.StateTensorSpec((frames, channels), dtype=types.fp16),
            mb.TensorSpec((1, channels), dtype=types.fp16),
            mb.TensorSpec((1,), dtype=types.int32),
        ],
        opset_version=IOS18,
    )
    def prog(cache, frame, t):
        end = mb.add(x=t, y=np.int32(1))
        begin = mb.concat(values=[t, np.array([0], np.int32)], axis=0)
        stop = mb.concat(values=[end, np.array([channels], np.int32)], axis=0)
        updated = mb.slice_update(x=mb.read_state(input=cache), update=frame, begin=begin, end=stop)
        updated = mb.coreml_update_state(state=cache, value=updated)
        return mb.reduce_sum(x=updated, axes=[0])

    model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=IOS18, skip_model_load=True)
    model.save(str(tmp_path / "cache.mlpackage"))
    loaded = load_program(tmp_path / "cache.mlpackage")
    ex = MilExecutor(loaded)
    state = ex.make_state()
    rows = RNG.standard_normal((frames, channels)).astype(np.float16)
    for t in range(frames):
        (total,) = ex.run({"frame": rows[t : t + 1].astype(np.float32), "t": np.array([t], np.int32)}, state=state).values()
        np.testing.assert_array_equal(state.read_state("cache")[: t + 1], rows[: t + 1])
        assert not state.read_state("cache")[t + 1 :].any()
        np.testing.assert_allclose(total, rows[: t + 1].astype(np.float64).sum(axis=0), atol=2e-3)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda ex: ex.run({"x": np.ones((2, 3), np.float32)}),
         "the program is stateful (states: acc [2, 3] fp16): pass state=executor.make_state()"),
        (lambda ex: ex.run({"x": np.ones((2, 3), np.float32)}, state=MilState({"other": ((2, 3), "fp16")})),
         "the state holds other; the program's states are acc"),
        (lambda ex: ex.run({"x": np.ones((2, 3), np.float32)}, state=MilState({"acc": ((3, 2), "fp16")})),
         "state 'acc' is [3, 2] fp16, the program declares [2, 3] fp16"),
        (lambda ex: ex.run({"x": np.ones((2, 3), np.float32)}, state={"acc": np.zeros((2, 3))}),
         "state must be a MilState (executor.make_state()), got dict"),
        (lambda ex: ex.make_state().write_state("acc", np.zeros((3,), np.float16)),
         "state 'acc': shape [3] does not match the declared [2, 3]"),
        (lambda ex: ex.make_state().write_state("acc", np.zeros((2, 3), np.int32)),
         "state 'acc': expects fp16 values, got int32"),
        (lambda ex: ex.make_state().read_state("kv"), "no state named 'kv' (the program's states: acc)"),
    ],
)
def test_state_misuse_is_a_one_line_error(call, message):
    with pytest.raises(InputValidationError) as info:
        call(MilExecutor(accumulator()))
    assert str(info.value) == message


def test_a_stateless_program_takes_an_empty_state():
    """As Core ML's ``newState`` of a stateless model: an empty state, predictions stateless."""

    @mb.program(input_specs=[mb.TensorSpec((2,), dtype=types.fp32)], opset_version=IOS18)
    def prog(x):
        return mb.relu(x=x)

    ex = MilExecutor(prog)
    assert ex.state_specs() == {} and ex.make_state().names == []
    (out,) = ex.run({"x": np.array([-1, 2], np.float32)}, state=ex.make_state()).values()
    assert out.tolist() == [0, 2]

"""Control flow (``cond``, ``while_loop``) and tensor lists in the MIL executor.

References are the same computations in plain Python; the definitions are coremltools'
``coremltools/converters/mil/mil/ops/defs/iOS15/control_flow.py``.
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
from parakeet_nb.mlprogram.milexec import (  # noqa: E402
    MilExecutor,
    UndefinedBehaviorError,
    run_program,
    supported_op_types,
)
from parakeet_nb.mlprogram.milexec.executor import NonFiniteError  # noqa: E402

IOS17 = ct.target.iOS17


def program(*shapes_dtypes, opset=IOS17):
    specs = [mb.TensorSpec(shape=s, dtype=d) for s, d in shapes_dtypes]
    return lambda fn: mb.program(input_specs=specs, opset_version=opset)(fn)


def only(outputs: dict) -> np.ndarray:
    (value,) = outputs.values()
    return value


def test_control_flow_and_list_ops_are_implemented():
    assert {"cond", "while_loop", "make_list", "list_length", "list_read", "list_write",
            "list_gather", "list_scatter"} <= set(supported_op_types())


@pytest.mark.parametrize("x", [-2.0, 3.0])
def test_cond_runs_the_branch_pred_picks(x):
    @program(((1,), types.fp32))
    def prog(x):
        positive = mb.greater(x=mb.squeeze(x=x), y=0.0)
        return mb.cond(pred=positive, _true_fn=lambda: mb.mul(x=x, y=10.0), _false_fn=lambda: mb.sub(x=x, y=1.0))

    assert only(run_program(prog, {"x": np.array([x], np.float32)})).tolist() == [x * 10 if x > 0 else x - 1]


def test_while_loop_power_with_a_loop_invariant_from_outside():
    """``x ** n`` by repeated multiplication (the suite's ``test_builder_to_backend_power``);
    the body reads ``x`` from outside the loop, after its last reader in ``main``, so it must
    stay alive until the loop ends."""

    @program(((2,), types.fp32), ((1,), types.int32))
    def prog(x, n):
        shifted = mb.add(x=x, y=1.0)

        def cond(i, acc):
            return mb.less(x=i, y=n)

        def body(i, acc):
            return mb.add(x=i, y=1), mb.mul(x=acc, y=x)

        _, power = mb.while_loop(_cond=cond, _body=body, loop_vars=(np.int32(0), np.ones(2, np.float32)))
        return power, shifted

    x = np.array([2.0, -1.5], np.float32)
    for n in (0, 1, 5):
        power, shifted = run_program(prog, {"x": x, "n": np.array([n], np.int32)}).values()
        np.testing.assert_array_equal(power, x.astype(np.float64) ** n)
        np.testing.assert_array_equal(shifted, x + 1)


def test_nested_loops_count_every_inner_iteration():
    @program(((1,), types.int32), ((1,), types.int32))
    def prog(rows, cols):
        def outer_cond(r, total):
            return mb.less(x=r, y=rows)

        def outer_body(r, total):
            def inner_cond(c, t):
                return mb.less(x=c, y=cols)

            def inner_body(c, t):
                return mb.add(x=c, y=1), mb.add(x=t, y=mb.add(x=r, y=1))

            _, total = mb.while_loop(_cond=inner_cond, _body=inner_body, loop_vars=(np.int32(0), total))
            return mb.add(x=r, y=1), total

        _, total = mb.while_loop(_cond=outer_cond, _body=outer_body, loop_vars=(np.int32(0), np.int32(0)))
        return total

    got = only(run_program(prog, {"rows": np.array([4], np.int32), "cols": np.array([3], np.int32)}))
    assert int(got) == sum((r + 1) * 3 for r in range(4))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # a coremltools pass
def test_a_list_grown_in_a_loop_through_a_saved_package(tmp_path):
    """The suite's ``TestList.test_builder_to_backend_while`` shape, converted and read back:
    element ``i`` is ``update * i``; element 0 is written too, the list starts at length 1."""

    @program(((1,), types.fp32), ((2,), types.fp32))
    def prog(num_iters, update):
        def cond(i, ls):
            return mb.less(x=mb.cast(x=i, dtype="fp32"), y=num_iters)

        def body(i, ls):
            return mb.add(x=i, y=1), mb.list_write(ls=ls, index=i, value=mb.mul(x=update, y=mb.cast(x=i, dtype="fp32")))

        _, final = mb.while_loop(
            _cond=cond, _body=body, loop_vars=(np.int32(0), mb.make_list(init_length=1, elem_shape=(2,)))
        )
        length = mb.list_length(ls=final)
        return mb.list_gather(ls=final, indices=mb.range_1d(start=0, end=length, step=1))

    path = tmp_path / "list.mlpackage"
    ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=IOS17, skip_model_load=True).save(str(path))
    ex = MilExecutor(load_program(path))
    update = np.array([1.0, 2.0], np.float32)
    for n in (0, 1, 4):
        got = only(ex.run({"num_iters": np.array([n], np.float32), "update": update}))
        expected = [[0.0, 0.0]] if n == 0 else [list(update * i) for i in range(n)]
        assert got.tolist() == expected


def test_list_semantics_of_the_suite():
    """Unwritten elements read as zeros; a write past the end of a dynamic list grows it."""

    @program(((2,), types.fp32))
    def prog(a):
        ls = mb.make_list(init_length=2, elem_shape=(2,))
        first = mb.list_read(ls=ls, index=0)
        ls = mb.list_write(ls=ls, index=4, value=a)
        ls = mb.list_scatter(ls=ls, indices=[1, 0], value=np.array([[5, 6], [7, 8]], np.float32))
        return first, mb.list_length(ls=ls), mb.list_gather(ls=ls, indices=[0, 1, 3, 4])

    first, length, gathered = run_program(prog, {"a": np.array([1, 2], np.float32)}).values()
    assert first.tolist() == [0, 0] and int(length) == 5
    assert gathered.tolist() == [[7, 8], [5, 6], [0, 0], [1, 2]]


@pytest.mark.parametrize("build, message", [
    (lambda a: mb.list_read(ls=mb.make_list(init_length=2, elem_shape=(2,)), index=2),
     "index 2 out of bound for a list of length 2"),
    (lambda a: mb.list_read(ls=mb.list_write(ls=mb.make_list(init_length=2, elem_shape=(2,), dynamic_length=False),
                                             index=2, value=a), index=0),
     "index 2 past the end of a fixed-length list of length 2"),
    (lambda a: mb.list_gather(ls=mb.make_list(init_length=1, elem_shape=(2,)), indices=[0, -1]),
     "index -1 out of bound for a list of length 1"),
])
def test_list_misuse_is_undefined(build, message):
    prog = program(((2,), types.fp32))(build)
    with pytest.raises(UndefinedBehaviorError, match=message):
        run_program(prog, {"a": np.zeros(2, np.float32)})


def test_errors_inside_a_loop_name_the_block():
    @program(((1,), types.int32))
    def prog(n):
        def cond(i, ls):
            return mb.less(x=i, y=n)

        def body(i, ls):
            return mb.add(x=i, y=1), mb.list_write(ls=ls, index=mb.sub(x=i, y=1), value=np.zeros(2, np.float32))

        _, ls = mb.while_loop(_cond=cond, _body=body,
                              loop_vars=(np.int32(0), mb.make_list(init_length=1, elem_shape=(2,))))
        return mb.list_length(ls=ls)

    with pytest.raises(UndefinedBehaviorError) as info:
        run_program(prog, {"n": np.array([2], np.int32)})
    assert "in block 2 of 'while_loop_0'): negative index -1" in str(info.value)


def test_nonfinite_made_inside_a_branch_is_caught_there():
    @program(((1,), types.fp32))
    def prog(x):
        return mb.cond(pred=mb.greater(x=mb.squeeze(x=x), y=0.0),
                       _true_fn=lambda: mb.exp(x=x, name="big_exp"), _false_fn=lambda: mb.identity(x=x))

    ex = MilExecutor(prog)
    assert np.isinf(only(ex.run({"x": np.array([100.0], np.float32)})))[0]
    with pytest.raises(NonFiniteError, match=r"'exp' named 'big_exp' \(#0 of 1 in block 1 of 'cond_0'\)"):
        ex.run({"x": np.array([100.0], np.float32)}, stop_on_nonfinite=True)

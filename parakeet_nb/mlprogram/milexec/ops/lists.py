"""Tensor lists: ``make_list``, ``list_length``, ``list_read``, ``list_write``,
``list_gather``, ``list_scatter``.

Definitions: coremltools ``coremltools/converters/mil/mil/ops/defs/iOS15/control_flow.py``.
A list is an auto-resizing array of tensors of one element shape and dtype; the write ops
return a new list (values are immutable, like every other MIL value). Two points the
definitions leave open are taken from coremltools' own op test
(``mil/ops/tests/iOS14/test_control_flow.py``, ``TestList``): elements never written read as
zeros ("list is initially all 0"), and a write at or past the end of a dynamic-length list
grows it, the elements in between reading as zeros. A fixed-length list
(``dynamic_length=False``) cannot grow, and an index outside ``[0, length)`` for a read or
gather is out of bound: both are undefined (:class:`UndefinedBehaviorError`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parakeet_nb.mlprogram.milexec.core import COMPUTE_DTYPES, ExecutorInternalError, OpContext, register


@dataclass(frozen=True)
class TensorList:
    """A list value: its elements (``None`` where never written), element shape (``None``
    while a symbolic shape has not been fixed by a write), MIL dtype and resizability."""

    elements: tuple[np.ndarray | None, ...]
    elem_shape: tuple[int, ...] | None
    dtype: str
    dynamic: bool

    def element(self, i: int) -> np.ndarray:
        """Element ``i``; zeros if never written (callers check the shape is known)."""
        value = self.elements[i]
        return np.zeros(self.elem_shape, COMPUTE_DTYPES[self.dtype]) if value is None else value

    def written(self, updates: dict[int, np.ndarray]) -> TensorList:
        """A new list with ``updates`` (index -> element) written, grown if dynamic."""
        elements = list(self.elements)
        shape = self.elem_shape
        for i, value in updates.items():
            if i >= len(elements):
                elements += [None] * (i + 1 - len(elements))
            value = np.asarray(value, COMPUTE_DTYPES[self.dtype])
            if shape is None:
                shape = value.shape
            elements[i] = value
        return TensorList(tuple(elements), shape, self.dtype, self.dynamic)


def _list(ctx: OpContext) -> TensorList:
    ls = ctx.x("ls")
    if not isinstance(ls, TensorList):
        raise ExecutorInternalError(f"{ctx.where}: input 'ls' is {type(ls).__name__}, not a list")
    return ls


def _check_read(ctx: OpContext, ls: TensorList, indices: list[int]) -> None:
    bad = [i for i in indices if not 0 <= i < len(ls.elements)]
    if bad:
        raise ctx.undefined(f"index {bad[0]} out of bound for a list of length {len(ls.elements)}")
    unknown = [i for i in indices if ls.elements[i] is None and ls.elem_shape is None]
    if unknown:
        raise ctx.undefined(f"element {unknown[0]} was never written and the element shape is symbolic")


def _check_write(ctx: OpContext, ls: TensorList, indices: list[int], value_shape: tuple[int, ...]) -> None:
    if any(i < 0 for i in indices):
        raise ctx.undefined(f"negative index {min(indices)}")
    if not ls.dynamic and any(i >= len(ls.elements) for i in indices):
        raise ctx.undefined(
            f"index {max(indices)} past the end of a fixed-length list of length {len(ls.elements)}"
        )
    if ls.elem_shape is not None and value_shape != ls.elem_shape:
        raise ctx.undefined(f"element of shape {list(value_shape)} written to a list of {list(ls.elem_shape)}")


@register("make_list", params=("init_length", "dynamic_length", "elem_shape", "dtype"), family="list")
def op_make_list(ctx: OpContext) -> TensorList:
    """``init_length`` (default 1) unwritten elements of shape ``elem_shape`` (a symbolic
    entry leaves the shape to the first write) and ``dtype`` (default fp32)."""
    length = int(ctx.attr("init_length", 1))
    if length < 0:
        raise ctx.undefined(f"negative init_length {length}")
    dims = [np.asarray(v).reshape(()).item() for v in ctx.values("elem_shape")]
    shape = None if any(isinstance(d, str) for d in dims) else tuple(int(d) for d in dims)
    dtype = str(ctx.attr("dtype", "fp32"))
    if dtype not in ("fp16", "fp32", "int32", "bool"):
        raise ctx.unsupported(f"list dtype {dtype!r} (the definition allows bool, fp16, fp32, int32)")
    return TensorList((None,) * length, shape, dtype, bool(ctx.attr("dynamic_length", True)))


@register("list_length", params=("ls",), family="list")
def op_list_length(ctx: OpContext) -> np.ndarray:
    """The number of elements, ``int32`` scalar."""
    return np.int32(len(_list(ctx).elements))


@register("list_read", params=("ls", "index"), family="list")
def op_list_read(ctx: OpContext) -> np.ndarray:
    """Element ``index`` (zeros if never written)."""
    ls, i = _list(ctx), int(ctx.attr("index"))
    _check_read(ctx, ls, [i])
    return ls.element(i)


@register("list_gather", params=("ls", "indices"), family="list")
def op_list_gather(ctx: OpContext) -> np.ndarray:
    """Elements ``indices`` stacked on a new first axis: ``[K, *elem_shape]``."""
    ls, indices = _list(ctx), [int(i) for i in np.asarray(ctx.x("indices")).reshape(-1)]
    _check_read(ctx, ls, indices)
    if not indices:
        if ls.elem_shape is None:
            raise ctx.undefined("gather of no element from a list whose element shape is symbolic")
        return np.zeros((0, *ls.elem_shape), COMPUTE_DTYPES[ls.dtype])
    return np.stack([ls.element(i) for i in indices])


@register("list_write", params=("ls", "index", "value"), family="list")
def op_list_write(ctx: OpContext) -> TensorList:
    """A new list with element ``index`` set to ``value``."""
    ls, i, value = _list(ctx), int(ctx.attr("index")), np.asarray(ctx.x("value"))
    _check_write(ctx, ls, [i], value.shape)
    return ls.written({i: value})


@register("list_scatter", params=("ls", "indices", "value"), family="list")
def op_list_scatter(ctx: OpContext) -> TensorList:
    """A new list with element ``indices[k]`` set to ``value[k]`` for every ``k`` (in order)."""
    ls, value = _list(ctx), np.asarray(ctx.x("value"))
    indices = [int(i) for i in np.asarray(ctx.x("indices")).reshape(-1)]
    if value.shape[:1] != (len(indices),):
        raise ctx.undefined(f"{len(indices)} indices for values of shape {list(value.shape)}")
    _check_write(ctx, ls, indices, value.shape[1:])
    return ls.written(dict(zip(indices, value)))

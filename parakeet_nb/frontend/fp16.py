"""Float16 emulation for torch modules: an estimate of what Core ML's fp16 does to a model.

This is an **emulation**, not the Neural Engine's arithmetic. Apple does not document
how the ANE accumulates inside an op (or whether it rounds intermediate partial sums), so
the model here is the simplest one that captures fp16 *storage*:

* every floating-point tensor that enters an op (activations, weights, buffers, the
  model inputs) is rounded to the nearest float16 value, as Core ML's
  ``compute_precision=FLOAT16`` casts inputs and stores weights in fp16;
* the op itself is computed in float32 (so a matmul's products and sums are exact to
  fp32, i.e. "each op exact");
* every floating-point output is rounded to float16 (overflow gives ``inf``, as on the
  device);
* optionally (``flush_subnormals=True``) values below the smallest normal float16,
  ``2**-14``, are flushed to zero on the way in and out, as hardware without subnormal
  support does. ``2**-24``, NeMo's log guard, is the smallest float16 *subnormal*, so
  with flushing it becomes exactly 0.

Real fp16 hardware can only be worse than this (it may round inside reductions), so the
numbers measured with it are a lower bound on the fp16 error, useful for comparing
designs, not a device measurement.

Ops inside :func:`fp32_island` run in plain float32 with no rounding at all. A module uses
it to mark the few ops that must stay float32 when converted with a mixed-precision
``op_selector`` (see ``parakeet_nb.frontend.chunked.fp16_compute_precision``); outside an active
emulation (eager float32, tracing) the island is a no-op.

Usage::

    with Float16Emulation(flush_subnormals=False):
        mel, mel_length = module(audio_chunks, audio_length)
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

#: Largest finite float16.
FP16_MAX = 65504.0
#: Smallest positive normal float16.
FP16_TINY = 2.0**-14
#: Smallest positive subnormal float16 (equal to NeMo's log guard).
FP16_SUBNORMAL_MIN = 2.0**-24

_state = threading.local()

#: Ops whose floating outputs are made of their (already rounded) inputs' values, or of
#: exact constants: their outputs need no rounding (a speed-up only; rounding them would
#: not change a value).
_VALUE_PRESERVING = frozenset({
    "reshape", "view", "transpose", "permute", "squeeze", "unsqueeze", "expand", "contiguous",
    "clone", "__getitem__", "cat", "index_select", "flip", "pad", "amax", "amin", "maximum",
    "minimum", "abs", "neg", "__neg__", "where", "zeros_like", "ones_like", "t", "mT",
})


def _island_depth() -> int:
    return getattr(_state, "island", 0)


@contextlib.contextmanager
def fp32_island() -> Iterator[None]:
    """Run the enclosed ops in float32 even under :class:`Float16Emulation`.

    Marks the ops a mixed-precision conversion keeps in float32. Outside the emulation
    this does nothing, so eager float32 runs and ``torch.jit.trace`` are unaffected.
    """
    _state.island = _island_depth() + 1
    try:
        yield
    finally:
        _state.island -= 1


def round_to_fp16(t: torch.Tensor, flush_subnormals: bool = False) -> torch.Tensor:
    """Round a floating tensor to the nearest float16 value, returned in its own dtype.

    Integer and boolean tensors are returned unchanged. With ``flush_subnormals``, values
    whose magnitude is below ``2**-14`` become (signed) zero.
    """
    if not t.is_floating_point() or t.dtype == torch.float16:
        return t
    r = t.to(torch.float16)
    if flush_subnormals:
        r = torch.where(r.abs() < FP16_TINY, torch.zeros_like(r), r)
    return r.to(t.dtype)


class Float16Emulation(TorchFunctionMode):
    """A ``TorchFunctionMode`` that rounds every op's floating inputs and outputs to fp16.

    Each intercepted torch function (``torch.matmul``, ``Tensor.__add__``, ``torch.log``,
    ...) receives float16-rounded copies of its floating tensor arguments, runs in
    float32, and its floating tensor results are rounded to float16 (stored as float32
    tensors, so the module's own dtypes are untouched). In-place ops are rounded in place.
    Shape queries and other non-tensor results pass through.

    ``flush_subnormals``: also flush values below ``2**-14`` to zero.
    ``count_overflows``: count op outputs that are not finite although every floating
    input was (in ``overflows``; costs one extra pass per op). ``ops`` counts the
    intercepted calls.
    """

    def __init__(self, flush_subnormals: bool = False, count_overflows: bool = False) -> None:
        super().__init__()
        self.flush_subnormals = flush_subnormals
        self.count_overflows = count_overflows
        self.ops = 0
        self.overflows = 0
        # tensors this mode produced (already float16 values): not rounded again
        self._done: dict[int, weakref.ref] = {}

    def _is_done(self, t: torch.Tensor) -> bool:
        ref = self._done.get(id(t))
        return ref is not None and ref() is t

    def _mark(self, value: Any) -> Any:
        """Remember a tensor that already holds float16 values."""
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            key = id(value)
            self._done[key] = weakref.ref(value, lambda _r, k=key, d=self._done: d.pop(k, None))
        return value

    def _round(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not self._is_done(value):
            return self._mark(round_to_fp16(value, self.flush_subnormals))
        return value

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _island_depth() > 0:
            return func(*args, **kwargs)
        self.ops += 1
        name = getattr(func, "__name__", "")
        in_place = name.endswith("_") and not name.endswith("__") and args and isinstance(args[0], torch.Tensor)
        r_args = tree_map(self._round, args)
        r_kwargs = tree_map(self._round, kwargs)
        if in_place:
            # Run on the original tensor so the mutation is visible, then round in place.
            out = func(args[0], *r_args[1:], **r_kwargs)
            if isinstance(out, torch.Tensor) and out.is_floating_point():
                with torch.no_grad():
                    out.copy_(round_to_fp16(out, self.flush_subnormals))
            return out
        out = func(*r_args, **r_kwargs)
        if name in _VALUE_PRESERVING:
            return tree_map(self._mark, out)
        rounded = tree_map(self._round, out)
        if (
            self.count_overflows
            and isinstance(rounded, torch.Tensor)
            and rounded.is_floating_point()
            and not bool(torch.isfinite(rounded).all())
        ):
            inputs_finite = all(
                bool(torch.isfinite(a).all()) for a in r_args if isinstance(a, torch.Tensor) and a.is_floating_point()
            )
            self.overflows += int(inputs_finite)
        return rounded


def run_fp16(module: torch.nn.Module, *inputs: torch.Tensor, flush_subnormals: bool = False) -> Any:
    """Run ``module(*inputs)`` under :class:`Float16Emulation` with ``torch.no_grad()``."""
    with torch.no_grad(), Float16Emulation(flush_subnormals=flush_subnormals):
        return module(*inputs)

"""State ops of iOS 18 stateful programs: ``read_state`` and ``coreml_update_state``.

``read_state(input=%s)`` yields a copy of the state buffer ``%s``
(``coremltools/converters/mil/mil/ops/defs/iOS18/states.py``); ``coreml_update_state(state=%s,
value=%v)`` overwrites the buffer with ``%v`` and yields a copy of it
(``coremltools/converters/mil/mil/ops/defs/coreml_dialect/ops.py``; a saved package holds it as
``write_state`` followed by ``read_state``, which coremltools' milproto loader joins back into
this op). The buffers are the :class:`~parakeet_nb.mlprogram.milexec.state.StateSlot` objects of
the :class:`~parakeet_nb.mlprogram.milexec.state.MilState` passed to ``run``; the executor
puts each under its state input's name.
"""

from __future__ import annotations

import numpy as np

from parakeet_nb.mlprogram.milexec.core import OpContext, register


@register("read_state", params=("input",), family="state")
def op_read_state(ctx: OpContext) -> np.ndarray:
    """``[*S] -> [*S]``: the state's current value."""
    return ctx.x("input").read()


@register("coreml_update_state", params=("state", "value"), family="state")
def op_coreml_update_state(ctx: OpContext) -> np.ndarray:
    """``[*S] -> [*S]``: write ``value`` (already of the state's type) into the state, yield it."""
    value = ctx.x("value")
    ctx.x("state").write(value)
    return np.array(value, copy=True)

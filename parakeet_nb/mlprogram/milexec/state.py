"""The state buffers of a stateful ML Program (iOS 18 / macOS 15), as Core ML keeps them.

A stateful program declares some inputs as ``state<tensor<...>>`` instead of tensors
(coremltools: ``mb.state_tensor_placeholder``, ``ct.StateType``; the guide
https://apple.github.io/coremltools/docs-guides/source/stateful-models.html). The caller
does not pass them as features: Core ML allocates the buffers once
(``MLModel.makeState()``, initialized to zeros:
https://developer.apple.com/documentation/coreml/mlmodel/makestate()), every prediction that
is handed the same ``MLState`` reads them with ``read_state`` and overwrites them with
``coreml_update_state`` (saved as ``write_state`` + ``read_state``), and the values persist
to the next prediction. Streaming caches and transformer key/value caches are kept this way.

:class:`MilState` is that handle for :class:`~parakeet_nb.mlprogram.milexec.MilExecutor`:
``executor.make_state()`` makes one, ``executor.run(inputs, state=state)`` reads and updates
it, and :meth:`MilState.read_state` / :meth:`MilState.write_state` mirror coremltools'
``MLState`` (``coremltools/models/model.py``). Values are held in the declared storage dtype
(``float16`` for an fp16 state); the ops are defined in
``coremltools/converters/mil/mil/ops/defs/iOS18/states.py`` and
``coremltools/converters/mil/mil/ops/defs/coreml_dialect/ops.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from parakeet_nb.mlprogram.milexec.core import (
    COMPUTE_DTYPES,
    FLOAT_TYPES,
    STORAGE_DTYPES,
    InputValidationError,
)


@dataclass
class StateSlot:
    """One state buffer: its declared shape and MIL dtype, and its value in storage dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    value: np.ndarray

    def read(self) -> np.ndarray:
        """A copy in compute representation (what ``read_state`` yields)."""
        return self.value.astype(COMPUTE_DTYPES[self.dtype], copy=True)

    def write(self, value: np.ndarray) -> None:
        """Overwrite with ``value`` (already of the declared type: an op output)."""
        self.value = np.asarray(value).astype(STORAGE_DTYPES[self.dtype], copy=True)


class MilState:
    """The state buffers of one stateful program, zero-initialized as by Core ML's ``makeState()``.

    ``specs`` maps each state name to ``(shape, MIL dtype)``. Pass the same object to
    successive :meth:`~parakeet_nb.mlprogram.milexec.MilExecutor.run` calls to carry the
    state from one prediction to the next; one state must not be shared by concurrent runs.
    """

    def __init__(self, specs: Mapping[str, tuple[tuple[int, ...], str]]) -> None:
        self._slots = {
            name: StateSlot(name, tuple(shape), dtype, np.zeros(shape, STORAGE_DTYPES[dtype]))
            for name, (shape, dtype) in specs.items()
        }

    @property
    def names(self) -> list[str]:
        """The state names, in the program's input order."""
        return list(self._slots)

    def slot(self, name: str) -> StateSlot:
        """The buffer named ``name``; an unknown name is an :class:`InputValidationError`."""
        if name not in self._slots:
            raise InputValidationError(
                f"no state named {name!r} (the program's states: {', '.join(self._slots) or 'none'})"
            )
        return self._slots[name]

    def read_state(self, name: str) -> np.ndarray:
        """A copy of the state's current value, in its storage dtype."""
        return self.slot(name).value.copy()

    def write_state(self, name: str, value: np.ndarray) -> None:
        """Set the state to ``value`` (same shape; a float array for a float state), rounded
        to the storage dtype like Core ML's ``MLState.withMultiArray`` writes."""
        slot = self.slot(name)
        arr = np.asarray(value)
        if arr.shape != slot.shape:
            raise InputValidationError(
                f"state {name!r}: shape {list(arr.shape)} does not match the declared {list(slot.shape)}"
            )
        kinds = "f" if slot.dtype in FLOAT_TYPES else "b" if slot.dtype == "bool" else "iu"
        if arr.dtype.kind not in kinds:
            raise InputValidationError(f"state {name!r}: expects {slot.dtype} values, got {arr.dtype}")
        if kinds == "iu":
            info = np.iinfo(STORAGE_DTYPES[slot.dtype])
            if arr.size and (arr.min() < info.min or arr.max() > info.max):
                raise InputValidationError(f"state {name!r}: values outside the range of {slot.dtype}")
        with np.errstate(over="ignore"):
            slot.value = arr.astype(STORAGE_DTYPES[slot.dtype], copy=True)

    def __repr__(self) -> str:
        shown = ", ".join(f"{s.name} {list(s.shape)} {s.dtype}" for s in self._slots.values())
        return f"MilState({shown})"

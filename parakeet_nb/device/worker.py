"""The Core ML calls of ``device-check``, one child process per call (macOS 14.4+ only).

Core ML can load a model "successfully" and then kill the process at ``predict``
(coremltools issue 2758, https://github.com/apple/coremltools/issues/2758), so every call
into Core ML runs here, in a child that :mod:`parakeet_nb.device.check` starts with
``python -m parakeet_nb.device.worker REQUEST.json``. A crash then costs one measurement,
not the report. The child prints ``stage NAME`` (flushed) before each stage and rewrites
its result file after each one, so the parent knows how far it got.

Requests (JSON):

* ``{"action": "compile", "package", "destination", "result"}``: ``coremltools.models.utils.
  compile_model(package, destination)`` (timed) and the devices
  ``coremltools.models.MLModel.get_available_compute_devices()`` lists.
* ``{"action": "plan", "compiled", "compute_units", "result"}``: the compute plan
  (``coremltools.models.compute_plan.MLComputePlan.load_from_path(path, compute_units)``)
  read by :func:`parakeet_nb.device.computeplan.read_compute_plan`.
* ``{"action": "measure", "compiled", "compute_units", "inputs" (an .npz or null), "runs",
  "warmup", "result", "outputs"}``: a timed load (``coremltools.models.CompiledMLModel(path,
  compute_units)``), ``warmup`` predicts (the first one's outputs saved to ``outputs``, an
  .npz) and ``runs`` timed predicts.

Errors Core ML raises are recorded as one line of text (``*_error``) and the next stage
goes on where it can (no predict after a refused load). The calls match coremltools 9.0.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def _stage(name: str) -> None:
    print(f"stage {name}", flush=True)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _save(result: dict[str, Any], path: str) -> None:
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)


def compile_package(request: dict[str, Any]) -> dict[str, Any]:
    import coremltools as ct
    from coremltools.models.utils import compile_model

    from parakeet_nb.device.computeplan import listed_devices

    result: dict[str, Any] = {}
    _stage("devices")
    try:
        result["devices"] = listed_devices(ct.models.MLModel.get_available_compute_devices())
    except Exception as exc:  # Core ML raises many types; record the text
        result["devices_error"] = _one_line(exc)
    _save(result, request["result"])
    _stage("compile")
    try:
        start = time.perf_counter()
        compile_model(request["package"], request["destination"])
        result["compile_seconds"] = time.perf_counter() - start
    except Exception as exc:
        result["compile_error"] = _one_line(exc)
    _save(result, request["result"])
    return result


def compute_plan(request: dict[str, Any]) -> dict[str, Any]:
    import coremltools as ct
    from coremltools.models.compute_plan import MLComputePlan

    from parakeet_nb.device.computeplan import read_compute_plan

    result: dict[str, Any] = {}
    _stage("plan")
    try:
        plan = MLComputePlan.load_from_path(request["compiled"], compute_units=ct.ComputeUnit[request["compute_units"]])
        result["plan"] = [op.as_dict() for op in read_compute_plan(plan)]
    except Exception as exc:  # Core ML raises many types; record the text
        result["plan_error"] = _one_line(exc)
    _save(result, request["result"])
    return result


def measure(request: dict[str, Any]) -> dict[str, Any]:
    import coremltools as ct
    import numpy as np
    from coremltools.models import CompiledMLModel

    units = ct.ComputeUnit[request["compute_units"]]
    compiled = request["compiled"]
    result: dict[str, Any] = {}
    _stage("load")
    try:
        start = time.perf_counter()
        model = CompiledMLModel(compiled, compute_units=units)
        result["load_seconds"] = time.perf_counter() - start
    except Exception as exc:
        result["load_error"] = _one_line(exc)
        _save(result, request["result"])
        return result
    _save(result, request["result"])
    if request["inputs"] is None:
        return result
    with np.load(request["inputs"]) as data:
        feed = {name: data[name] for name in data.files}
    _stage("predict")
    try:
        for i in range(request["warmup"]):
            outputs = model.predict(feed)
            if i == 0:
                np.savez(request["outputs"], **{k: np.asarray(v) for k, v in outputs.items()})
        times = []
        for _ in range(request["runs"]):
            start = time.perf_counter()
            model.predict(feed)
            times.append(time.perf_counter() - start)
        result["predict_seconds"] = times
    except Exception as exc:
        result["predict_error"] = _one_line(exc)
    _save(result, request["result"])
    return result


ACTIONS = {"compile": compile_package, "plan": compute_plan, "measure": measure}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m parakeet_nb.device.worker REQUEST.json", file=sys.stderr)
        return 2
    request = json.loads(Path(argv[0]).read_text())
    ACTIONS[request["action"]](request)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

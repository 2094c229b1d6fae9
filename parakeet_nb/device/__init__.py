"""What a Mac measures that Linux can only predict: ``parakeet-nb device-check``.

On macOS 14.4+ Core ML itself says where each op of a compiled model runs
(``coremltools.models.compute_plan.MLComputePlan``) and how long a model takes to compile,
load and predict. This subpackage turns the project's predictions into those measurements:

* :mod:`~parakeet_nb.device.computeplan`: read a compute plan into per-op records (pure:
  it only calls the plan's methods, so tests feed it compute-plan-shaped objects).
* :mod:`~parakeet_nb.device.compare`: join those records with
  :func:`parakeet_nb.ane.planner.plan` op by op: agreement and every disagreement.
* :mod:`~parakeet_nb.device.report`: the measured results, their JSON
  (``parakeet-nb/device-check/1``) and text table.
* :mod:`~parakeet_nb.device.figure`: predicted and actual placement drawn one above the other.
* :mod:`~parakeet_nb.device.worker`: the Core ML calls, run in a child process (macOS only).
* :mod:`~parakeet_nb.device.check`: the command: packages, inputs, references, one child per
  measurement, the report.

Layer: after ``study``, before ``digits``.
"""

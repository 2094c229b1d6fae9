"""The main job (``make run``): export the tiny models, audit them, execute the notebooks.

Writes under the build folder (default ``build/``):

* ``parakeet_coreml/``: every component's ``.mlpackage`` and ``metadata.json``;
* ``reports/``: the auditor's report and the partition plan (iPhone-like greedy policy,
  recommended compute units; text, JSON and a PNG diagram) of each package;
* ``notebooks/``: every notebook executed from a fresh kernel, and its HTML page.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from parakeet_nb.paths import show
from parakeet_nb.progress import StepProgress


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default="build", help="build folder (default build/)")
    parser.add_argument("--skip-notebooks", action="store_true", help="only export and audit")
    args = parser.parse_args(argv)
    build = Path(args.build).resolve()
    os.environ.setdefault("PARAKEET_NB_BUILD", str(build))

    from parakeet_nb.teach import diagrams
    from parakeet_nb.model import presets
    from parakeet_nb.ane import planner
    from parakeet_nb.coreml import export as exporter
    from parakeet_nb.ane.audit import audit

    start = time.perf_counter()
    out = build / "parakeet_coreml"
    print(f"[1/3] exporting the tiny model's components to {show(out)}/", flush=True)
    components = exporter.select(None)
    with StepProgress(len(components), verb="exported", stream=sys.stdout) as progress:
        result = exporter.export(presets.build("tiny"), out, progress=progress)
    print(result.table())

    reports = build / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    print(f"[2/3] auditing and planning every package into {show(reports)}/", flush=True)
    for component in result.components:
        report = audit(out / component.file)
        stem = component.file.removesuffix(".mlpackage")
        (reports / f"{stem}.audit.txt").write_text(report.format_text() + "\n")
        (reports / f"{stem}.audit.json").write_text(report.to_json() + "\n")
        units = component.recommendation.units
        plan = planner.plan(out / component.file, units, "greedy")
        (reports / f"{stem}.plan.txt").write_text(plan.format_text(limit=None) + "\n")
        (reports / f"{stem}.plan.json").write_text(plan.to_json() + "\n")
        diagrams.plot_plan(plan, reports / f"{stem}.plan.png")
        verdict = "clean" if report.clean else f"over the limits: {report.first_error_text}"
        print(f"      {component.file}: audit {verdict}")
        ops = plan.counts()
        print(f"      {'':<{len(component.file)}}  {component.precision['used']}-typed, plan with {units} (predicted): "
              f"ANE {ops['ANE']} / GPU {ops['GPU']} / CPU {ops['CPU']} ops, "
              f"ANE validation {'passes' if plan.valid else 'FAILS'}")

    if not args.skip_notebooks:
        from parakeet_nb.teach.notebooks import execute_all

        nb_out = build / "notebooks"
        print(f"[3/3] executing the notebooks into {show(nb_out)}/ (with HTML)", flush=True)
        for path, seconds in execute_all(nb_out):
            print(f"      {path.name}: {seconds:.1f} s")
    print(f"done in {time.perf_counter() - start:.0f} s; everything is under {show(build)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: coremltools 9.0's own MIL op test suite, predicted by ``milexec``.

Runs the op test files of ``coremltools/converters/mil/mil/ops/tests/iOS14 ... iOS18``
(every ML Program backend: fp16 and fp32 precision, opsets iOS15-iOS18) with the plugin
``tests/coremltools_suite/plugin.py`` in a pytest subprocess, then prints

* per file: cases passed / failed / unsupported by milexec / skipped / xfail / not predicted;
* per op type (a case counts for every op type in its converted program, ``const`` aside):
  the same counts, implemented op types first;
* coverage: the op types the suite's programs contain, how many the executor implements,
  and the implemented op types no suite program contains.

The full suite is 19,834 cases (``test_compression``, ``test_quantization`` and the
recurrent files are most of them); each case converts a program with ``ct.convert``, so a
full run took 41 min on 2 cores with ``--jobs 2`` (one pytest process per file, two at a
time; the largest files first). ``--files`` picks files (globs relative to the suite
folder, e.g. ``'iOS14/test_conv.py'``), ``-k`` passes a pytest selection, ``--tiny-only``
(what ``make bench --quick`` passes) runs only the committed subset
``tests/coremltools_suite/subset.txt``, ``--from-json`` prints the tables of an earlier
report without running anything.

``--write-subset`` regenerates that subset from the report: for every op type the
executor implements, passed cases (fewest op types first; fp16 and fp32 backends alike)
until the op type has ``--per-op`` of them (default 1); implemented op types no passed case
of the report contains are listed in the file's header. Only cases a fresh pytest process
collects under the same id qualify (some suite tests put random values in their ids). The subset is what ``make test`` runs
(``tests/test_coremltools_suite.py``). Regenerate it after adding an op::

    python bench/optests.py --files 'iOS14/test_*.py' 'iOS1[5-8]/test_*.py' --write-subset
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.coremltools_suite import plugin  # noqa: E402

SUBSET = ROOT / "tests" / "coremltools_suite" / "subset.txt"
OUTCOMES = ("passed", "failed", "unsupported", "refused", "suite-expectation", "skipped", "xfail",
            "not-predicted")
#: Op types every converted program may hold besides the one under test.
HELPER_OPS = frozenset({"cast"})


def read_subset(path: Path = SUBSET) -> tuple[list[str], list[str]]:
    """``(node ids relative to the suite folder, implemented op types no subset case runs)``."""
    ids, missing = [], []
    for line in path.read_text().splitlines():
        if line.startswith("# implemented, in no passed case of the report:"):
            missing = line.split(":", 1)[1].split()
        elif line.strip() and not line.startswith("#"):
            ids.append(line)
    return ids, missing


def run_suite(targets: list[str], report: Path, keyword: str | None = None) -> int:
    """Run pytest on ``targets`` with the plugin; returns pytest's exit code."""
    command = [
        sys.executable, "-m", "pytest", "-p", "tests.coremltools_suite.plugin",
        "--milexec-report", str(report), "-q", "-p", "no:randomly", "--no-header",
        "-o", "console_output_style=count", *targets,
    ]
    if keyword:
        command += ["-k", keyword]
    return subprocess.call(command, cwd=ROOT, stdout=subprocess.DEVNULL)


def collect_ids(targets: list[str]) -> list[str]:
    """The node ids (relative to the suite folder) a fresh pytest process collects from ``targets``."""
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.coremltools_suite.plugin", "--collect-only", "-q",
         "-p", "no:randomly", *targets],
        cwd=ROOT, capture_output=True, text=True,
    ).stdout
    return [plugin.short_id(line) for line in collected.splitlines() if "::" in line]


def run_suite_parallel(targets: list[str], report: Path, jobs: int, keyword: str | None = None) -> int:
    """One pytest process per suite file, ``jobs`` at a time (most cases first), their
    reports merged into ``report``; returns the worst exit code."""
    from concurrent.futures import ThreadPoolExecutor

    parts = report.parent / f"{report.stem}.parts"
    parts.mkdir(parents=True, exist_ok=True)
    cases = collections.Counter(i.split("::")[0] for i in collect_ids(targets))
    files = sorted(targets, key=lambda t: -cases[f"{Path(t).parent.name}/{Path(t).name}"])
    outs = [parts / f"{Path(t).parent.name}_{Path(t).stem}.json" for t in files]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        codes = list(pool.map(lambda pair: run_suite([pair[0]], pair[1], keyword), zip(files, outs)))
    rows = [row for out in outs if out.exists() for row in json.loads(out.read_text())]
    report.write_text(json.dumps(rows, indent=0) + "\n")
    return max(codes)


def _counts_table(title: str, groups: dict[str, collections.Counter], order: list[str]) -> list[str]:
    width = max([len(title)] + [len(k) for k in order])
    lines = [f"{title:<{width}}  " + " ".join(f"{o:>17}" for o in OUTCOMES)]
    for key in order:
        c = groups[key]
        lines.append(f"{key:<{width}}  " + " ".join(f"{c[o]:>17}" for o in OUTCOMES))
    return lines


def tables(rows: list[dict]) -> list[str]:
    from parakeet_nb.mlprogram.milexec import supported_op_types

    implemented = set(supported_op_types())
    by_file: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    by_op: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    total: collections.Counter = collections.Counter()
    for row in rows:
        by_file[row["id"].split("::")[0]][row["outcome"]] += 1
        total[row["outcome"]] += 1
        for op in row["ops"]:
            by_op[op][row["outcome"]] += 1
    seen = set(by_op)
    ops_impl = sorted(seen & implemented)
    ops_other = sorted(seen - implemented)
    lines = [f"cases: {sum(total.values())} ({', '.join(f'{total[o]} {o}' for o in OUTCOMES)})", ""]
    lines += _counts_table("file", by_file, sorted(by_file)) + [""]
    lines += _counts_table("op type (implemented)", by_op, ops_impl) + [""]
    lines += _counts_table("op type (not implemented)", by_op, ops_other) + [""]
    lines.append(
        f"coverage: the suite's programs contain {len(seen)} op types; milexec implements "
        f"{len(ops_impl)} of them ({len(implemented)} op types implemented in all)"
    )
    lines.append(f"not implemented: {', '.join(ops_other) or '-'}")
    lines.append(f"implemented, in no suite program here: {', '.join(sorted(implemented - seen)) or '-'}")
    failed = [r for r in rows if r["outcome"] == "failed"]
    if failed:
        lines.append("")
        lines.append(f"failures ({len(failed)}):")
        lines += [f"  {r['id']}: {r['reason']}" for r in failed]
    return lines


def write_subset(rows: list[dict], per_op: int, path: Path = SUBSET) -> None:
    """Pick passed cases covering every implemented op type (see the module docstring)."""
    from parakeet_nb.mlprogram.milexec import supported_op_types

    implemented = set(supported_op_types())
    stable = set(collect_ids(sorted({str(plugin.suite_dir() / r["id"].split("::")[0]) for r in rows})))
    passed = sorted(
        (r for r in rows if r["outcome"] == "passed" and r["id"] in stable),
        key=lambda r: (len(set(r["ops"]) - HELPER_OPS), r["id"]),
    )
    chosen: list[str] = []
    have: collections.Counter = collections.Counter()
    for r in passed:
        if any(op in implemented and op not in HELPER_OPS and have[op] < per_op for op in r["ops"]):
            chosen.append(r["id"])
            have.update(r["ops"])
    covered = set(have)
    header = [
        "# coremltools 9.0 op test cases that `make test` runs through milexec",
        "# (tests/test_coremltools_suite.py): passed cases covering the op types milexec implements.",
        "# Generated by: python bench/optests.py --files <suite files> --write-subset",
        f"# implemented, in no passed case of the report: {' '.join(sorted(implemented - covered))}",
    ]
    path.write_text("\n".join(header + sorted(chosen)) + "\n")
    print(f"wrote {len(chosen)} cases covering {len(covered & implemented)} op types to {path.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="+", default=["iOS1*/test_*.py"],
                        help="suite files, globs relative to the suite folder (default: all)")
    parser.add_argument("-k", dest="keyword", help="pytest -k selection")
    parser.add_argument("--report", type=Path, default=ROOT / "build" / "bench" / "optests.json")
    parser.add_argument("--merge", type=Path, nargs="*", default=[],
                        help="further reports (JSON) whose cases join --report's, e.g. runs of other files")
    parser.add_argument("--from-json", action="store_true", help="print the tables of --report, run nothing")
    parser.add_argument("--tiny-only", action="store_true", help="run only tests/coremltools_suite/subset.txt")
    parser.add_argument("--write-subset", action="store_true", help="regenerate the subset from the report")
    parser.add_argument("--per-op", type=int, default=1, help="subset cases per op type")
    parser.add_argument("--jobs", type=int, default=1,
                        help="suite files run in this many pytest processes at once (one process per file)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "bench"))
    from benchutil import machine_summary

    if not args.from_json:
        if args.tiny_only:
            targets = [str(plugin.suite_dir() / i) for i in read_subset()[0]]
        else:
            targets = sorted({str(p) for g in args.files for p in plugin.suite_dir().glob(g)})
        if not targets:
            sys.exit(f"no suite file matches {args.files}")
        args.report.parent.mkdir(parents=True, exist_ok=True)
        print(machine_summary())
        start = time.perf_counter()
        if args.jobs > 1 and not args.tiny_only:
            code = run_suite_parallel(targets, args.report, args.jobs, args.keyword)
        else:
            code = run_suite(targets, args.report, args.keyword)
        print(f"pytest exit {code}, {time.perf_counter() - start:.0f} s for {len(targets)} target(s)")
    rows = json.loads(args.report.read_text())
    for extra in args.merge:
        seen = {r["id"] for r in rows}
        rows += [r for r in json.loads(extra.read_text()) if r["id"] not in seen]
    print("\n".join(tables(rows)))
    if args.write_subset:
        write_subset(rows, args.per_op)
    return 1 if any(r["outcome"] == "failed" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Run Apache Beam's own test files against HeadraceRunner and against Beam's FnApiRunner.

Prints pass/fail/skip per file for both runners (the FnApiRunner run is the baseline:
what Beam itself passes in this environment). Each (runner, file) is a separate pytest
process, run ``--jobs`` at a time; results are read from JUnit XML.

    python scripts/run_beam_suite.py [--jobs N] [--timeout S] [--files a_test.py ...]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from typing import Dict, List, Tuple

DEFAULT_FILES = [f"transforms/{name}_test.py" for name in (
    "create", "core", "window", "dofn_lifecycle", "sideinputs", "combiners", "util", "trigger",
    "userstate", "ptransform", "combinefn_lifecycle", "deduplicate")] + [
    "pipeline_test.py", "metrics/metric_test.py"]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RUNNERS = {
    "direct": "--runner=headrace.runners.beam.HeadraceRunner --headrace_runner=direct",
    "multiprocess": "--runner=headrace.runners.beam.HeadraceRunner "
                    "--headrace_runner=multiprocess",
    "fnapi": "--runner=apache_beam.runners.portability.fn_api_runner.FnApiRunner",
}


def _beam_dir() -> str:
    import apache_beam

    return os.path.dirname(apache_beam.__file__)


def run_one(runner: str, path: str, workdir: str, timeout: int) -> Tuple[Dict[str, int], float]:
    """Run one test file on one runner; return its counts and wall time."""
    name = path.replace("/", "_")
    junit = os.path.join(workdir, f"{runner}-{name}.xml")
    ini = os.path.join(workdir, "pytest.ini")  # isolates from any project pytest config
    command = [sys.executable, "-m", "pytest", "-q", "-c", ini, "--rootdir", workdir,
               "-p", "no:cacheprovider", "-p", "headrace.testing.beam_suite_plugin",
               f"--test-pipeline-options={RUNNERS[runner]}", f"--junitxml={junit}",
               f"--timeout={timeout}", os.path.join(_beam_dir(), path)]
    started = time.monotonic()
    log = os.path.join(workdir, f"{runner}-{name}.log")
    env = dict(os.environ)
    # The plugin and the runner are imported from this checkout even when not installed.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)
    with open(log, "w") as out:
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env,
                       check=False)
    return _counts(junit), time.monotonic() - started


def _counts(junit: str) -> Dict[str, int]:
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    if not os.path.exists(junit):
        counts["failed"] = -1  # the file did not even run (collection crash)
        return counts
    for case in ET.parse(junit).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            counts["failed"] += 1
        elif "skipped" in kinds:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return counts


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=max(2, os.cpu_count() or 2))
    parser.add_argument("--timeout", type=int, default=120, help="per test, in seconds")
    parser.add_argument("--files", nargs="*", default=DEFAULT_FILES,
                        help="paths under apache_beam/")
    parser.add_argument("--runners", nargs="*", default=list(RUNNERS))
    parser.add_argument("--keep", help="directory for the logs and JUnit files")
    args = parser.parse_args(argv)
    workdir = args.keep or tempfile.mkdtemp(prefix="beam-suite-")
    os.makedirs(workdir, exist_ok=True)
    open(os.path.join(workdir, "pytest.ini"), "w").write("[pytest]\n")
    jobs = [(runner, path) for path in args.files for runner in args.runners]
    results: Dict[Tuple[str, str], Tuple[Dict[str, int], float]] = {}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_one, r, p, workdir, args.timeout): (r, p) for r, p in jobs}
        for future in concurrent.futures.as_completed(futures):
            results[futures[future]] = future.result()
            runner, path = futures[future]
            print(f"  done {runner:9} {path} in {results[(runner, path)][1]:.0f}s", flush=True)
    header = f"{'file':34}" + "".join(f"| {r + ' pass/fail/skip':28}" for r in args.runners)
    print("\n" + header + "\n" + "-" * len(header))
    totals = {r: [0, 0, 0] for r in args.runners}
    for path in args.files:
        row = f"{path:34}"
        for runner in args.runners:
            counts, seconds = results[(runner, path)]
            cells = [counts["passed"], counts["failed"], counts["skipped"]]
            totals[runner] = [t + max(c, 0) for t, c in zip(totals[runner], cells)]
            row += f"| {'/'.join(map(str, cells)) + f' ({seconds:.0f}s)':28}"
        print(row)
    print(f"{'total':34}" + "".join(f"| {'/'.join(map(str, totals[r])):28}"
                                     for r in args.runners))
    print(f"\nlogs and JUnit XML: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Run Apache Beam's own test files against HeadraceRunner and against Beam's FnApiRunner.

Prints pass/fail/skip per file for each runner, then every test that passes on FnApiRunner
(the baseline: what Beam itself passes in this environment) but not on another runner.
Each (runner, file) is a separate pytest process, run ``--jobs`` at a time; results are
read from JUnit XML.

    python scripts/run_beam_suite.py [--jobs N] [--timeout S] [--files a_test.py ...]
        [--runners direct multiprocess fnapi multiprocess2] [--keep DIR]
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
from typing import Dict, List, Optional, Tuple

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
#: Not run unless asked for (--runners): the multiprocess runner with two workers, so that
#: keyed and broadcast data cross processes (Beam's default --direct_num_workers is 1).
EXTRA_RUNNERS = {
    "multiprocess2": RUNNERS["multiprocess"] + " --direct_num_workers=2",
}
ALL_RUNNERS = {**RUNNERS, **EXTRA_RUNNERS}


def _beam_dir() -> str:
    import apache_beam

    return os.path.dirname(apache_beam.__file__)


def run_one(runner: str, path: str, workdir: str,
            timeout: int) -> Tuple[Optional[Dict[str, str]], float]:
    """Run one test file on one runner; return each test's outcome and the wall time."""
    name = path.replace("/", "_")
    junit = os.path.join(workdir, f"{runner}-{name}.xml")
    ini = os.path.join(workdir, "pytest.ini")  # isolates from any project pytest config
    command = [sys.executable, "-m", "pytest", "-q", "-c", ini, "--rootdir", workdir,
               "-p", "no:cacheprovider", "-p", "headrace.testing.beam_suite_plugin",
               f"--test-pipeline-options={ALL_RUNNERS[runner]}", f"--junitxml={junit}",
               f"--timeout={timeout}", os.path.join(_beam_dir(), path)]
    started = time.monotonic()
    log = os.path.join(workdir, f"{runner}-{name}.log")
    env = dict(os.environ)
    # The plugin and the runner are imported from this checkout even when not installed.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)
    with open(log, "w") as out:
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env,
                       check=False)
    return _outcomes(junit), time.monotonic() - started


def _outcomes(junit: str) -> Optional[Dict[str, str]]:
    """``{test id: "passed" | "failed" | "skipped"}``, or None if the file did not even run
    (a collection crash)."""
    if not os.path.exists(junit):
        return None
    outcomes = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        outcome = ("failed" if kinds & {"failure", "error"} else
                   "skipped" if "skipped" in kinds else "passed")
        outcomes[f"{case.get('classname')}::{case.get('name')}"] = outcome
    return outcomes


def _counts(outcomes: Optional[Dict[str, str]]) -> List[int]:
    if outcomes is None:
        return [0, -1, 0]
    return [sum(o == kind for o in outcomes.values()) for kind in ("passed", "failed", "skipped")]


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=max(2, os.cpu_count() or 2))
    parser.add_argument("--timeout", type=int, default=120, help="per test, in seconds")
    parser.add_argument("--files", nargs="*", default=DEFAULT_FILES,
                        help="paths under apache_beam/")
    parser.add_argument("--runners", nargs="*", default=list(RUNNERS),
                        choices=list(ALL_RUNNERS))
    parser.add_argument("--keep", help="directory for the logs and JUnit files")
    args = parser.parse_args(argv)
    workdir = args.keep or tempfile.mkdtemp(prefix="beam-suite-")
    os.makedirs(workdir, exist_ok=True)
    open(os.path.join(workdir, "pytest.ini"), "w").write("[pytest]\n")
    jobs = [(runner, path) for path in args.files for runner in args.runners]
    results: Dict[Tuple[str, str], Tuple[Optional[Dict[str, str]], float]] = {}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_one, r, p, workdir, args.timeout): (r, p) for r, p in jobs}
        for future in concurrent.futures.as_completed(futures):
            results[futures[future]] = future.result()
            runner, path = futures[future]
            print(f"  done {runner:13} {path} in {results[(runner, path)][1]:.0f}s", flush=True)
    header = f"{'file':34}" + "".join(f"| {r + ' pass/fail/skip':28}" for r in args.runners)
    print("\n" + header + "\n" + "-" * len(header))
    totals = {r: [0, 0, 0] for r in args.runners}
    for path in args.files:
        row = f"{path:34}"
        for runner in args.runners:
            outcomes, seconds = results[(runner, path)]
            cells = _counts(outcomes)
            totals[runner] = [t + max(c, 0) for t, c in zip(totals[runner], cells)]
            row += f"| {'/'.join(map(str, cells)) + f' ({seconds:.0f}s)':28}"
        print(row)
    print(f"{'total':34}" + "".join(f"| {'/'.join(map(str, totals[r])):28}"
                                     for r in args.runners))
    if "fnapi" in args.runners:
        _print_regressions(args.files, [r for r in args.runners if r != "fnapi"], results)
    print(f"\nlogs and JUnit XML: {workdir}")
    return 0


def _print_regressions(files: List[str], runners: List[str],
                       results: Dict[Tuple[str, str], Tuple[Optional[Dict[str, str]], float]]
                       ) -> None:
    """Name each test that passes on FnApiRunner but not on one of ``runners``."""
    print("\ntests passing on fnapi but not on:")
    for runner in runners:
        missed = []
        for path in files:
            baseline, outcomes = results[("fnapi", path)][0] or {}, results[(runner, path)][0]
            missed += [f"{path}::{test} ({(outcomes or {}).get(test, 'not run')})"
                       for test, outcome in baseline.items()
                       if outcome == "passed" and (outcomes or {}).get(test) != "passed"]
        print(f"  {runner}: {len(missed)}")
        for line in missed:
            print(f"    {line}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

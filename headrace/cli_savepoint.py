"""``headrace savepoint CHECKPOINT_DIR TARGET [--id N]``: copy a complete checkpoint of a job
(running or stopped) into ``TARGET`` as a self-contained savepoint, the portable form a job
is restored from with ``--from_checkpoint TARGET/chk-N``, at any ``--parallelism``.
``headrace stop PID``: stop-with-savepoint of a job run with ``--savepoint_dir`` (it takes
SIGUSR1 as the request), waiting until its driver process has ended.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as root:
...     run([root, root + "-savepoints"])  # doctest: +ELLIPSIS
headrace savepoint: ...: no complete checkpoint to copy
1
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, List, Optional, TextIO


def add_parser(commands: Any) -> None:
    """Declare ``savepoint`` on the ``headrace`` parser."""
    parser = commands.add_parser(
        "savepoint", help="copy a job's latest (or a given) complete checkpoint into a "
                          "self-contained savepoint")
    parser.add_argument("path", help="the --checkpoint_dir of a job (local path or s3://)")
    parser.add_argument("target", help="where savepoints go (local path or s3://); the "
                                       "savepoint is TARGET/chk-N")
    parser.add_argument("--id", type=int, default=None, help="checkpoint id (default: latest)")


def add_stop_parser(commands: Any) -> None:
    """Declare ``stop`` on the ``headrace`` parser."""
    parser = commands.add_parser(
        "stop", help="stop a job run with --savepoint_dir, writing a savepoint first")
    parser.add_argument("pid", type=int, help="the job's driver process")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for the job to end (default 120)")


def stop(args: argparse.Namespace, err: Optional[TextIO] = None) -> int:
    """Send the stop request to ``args.pid`` and wait for it to end; 1 when it is not
    running or does not end in time."""
    import os
    import signal
    import time

    err = err or sys.stderr
    try:
        os.kill(args.pid, signal.SIGUSR1)
    except ProcessLookupError:
        print(f"headrace stop: no process {args.pid}", file=err)
        return 1
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{args.pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return 0
        except OSError:
            return 0
        time.sleep(0.05)
    print(f"headrace stop: process {args.pid} did not end within {args.timeout:g} s (was it "
          "run with --savepoint_dir and --checkpoint_interval?)", file=err)
    return 1


def run(argv: List[str]) -> int:
    """Parse ``argv`` (after ``savepoint``) and run it; for tests and doctests."""
    parser = argparse.ArgumentParser(prog="headrace")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return main(parser.parse_args(["savepoint", *argv]), err=sys.stdout)


def main(args: argparse.Namespace, out: Optional[TextIO] = None,
         err: Optional[TextIO] = None) -> int:
    """Run a parsed ``headrace savepoint``; prints the savepoint's location, errors go to
    stderr with exit code 1."""
    from headrace.runners.state.checkpoint_storage import (
        CheckpointStorageError,
        open_checkpoint_storage,
    )

    out, err = out or sys.stdout, err or sys.stderr
    try:
        with open_checkpoint_storage(args.path, read_only=True) as source, \
                open_checkpoint_storage(args.target) as target:
            location = export_savepoint(source, target, args.id)
    except CheckpointStorageError as exc:
        print(f"headrace savepoint: {exc}", file=err)
        return 1
    print(location, file=out)
    return 0


def export_savepoint(source: Any, target: Any, checkpoint_id: Optional[int] = None) -> str:
    """Copy checkpoint ``checkpoint_id`` (None: the newest complete one) of ``source`` into
    ``target`` as a savepoint; returns its location (``<target>/chk-N``)."""
    from headrace.runners.state.checkpoint_storage import CheckpointNotFoundError

    if checkpoint_id is None:
        ids = source.checkpoint_ids()
        if not ids:
            raise CheckpointNotFoundError(f"{source.url}: no complete checkpoint to copy")
        checkpoint_id = ids[-1]
    source.export_self_contained(checkpoint_id, target)
    return f"{target.url.rstrip('/')}/chk-{checkpoint_id}"

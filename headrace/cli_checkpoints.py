"""``headrace checkpoints list|show PATH``: inspect checkpoint storage (a directory or s3://).

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as root:
...     run(["list", root])
no complete checkpoints in ...
0
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any, List, Optional, TextIO


def add_parser(commands: Any) -> None:
    """Declare ``checkpoints`` and its subcommands on the ``headrace`` parser."""
    parser = commands.add_parser("checkpoints", help="inspect checkpoints in a checkpoint "
                                                     "directory (local path or s3://bucket/prefix)")
    sub = parser.add_subparsers(dest="checkpoints_command", required=True)
    listing = sub.add_parser("list", help="one line per complete checkpoint")
    listing.add_argument("path", help="the --checkpoint_dir of a job")
    show = sub.add_parser("show", help="one checkpoint's operators, subtasks and files")
    show.add_argument("path", help="the --checkpoint_dir of a job")
    show.add_argument("id", nargs="?", type=int, help="checkpoint id (default: the latest)")


def run(argv: List[str]) -> int:
    """Parse ``argv`` (after ``checkpoints``) and run it; for tests and doctests."""
    parser = argparse.ArgumentParser(prog="headrace")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return main(parser.parse_args(["checkpoints", *argv]))


def main(args: argparse.Namespace, out: Optional[TextIO] = None) -> int:
    """Run a parsed ``headrace checkpoints`` command; errors go to stderr with exit code 1."""
    from headrace.runners.state.checkpoint_storage import (
        CheckpointStorageError,
        open_checkpoint_storage,
    )

    out = out or sys.stdout
    try:
        storage = open_checkpoint_storage(args.path, read_only=True)
        with storage:
            if args.checkpoints_command == "list":
                _list(storage, args.path, out)
            else:
                _show(storage, args.path, args.id, out)
    except CheckpointStorageError as exc:
        print(f"headrace checkpoints: {exc}", file=sys.stderr)
        return 1
    return 0


def _list(storage: Any, path: str, out: TextIO) -> None:
    checkpoints = storage.list_checkpoints()
    if not checkpoints:
        print(f"no complete checkpoints in {path}", file=out)
        return
    rows = [("ID", "KIND", "TIME (UTC)", "SIZE", "INCREMENTAL", "OPERATORS")]
    for meta in checkpoints:
        rows.append((str(meta.checkpoint_id), meta.kind, _time(meta.timestamp),
                     _size(meta.total_size), _size(meta.incremental_size),
                     str(len(meta.operators))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip(), file=out)


def _show(storage: Any, path: str, checkpoint_id: Optional[int], out: TextIO) -> None:
    from headrace.runners.state.checkpoint_storage import CheckpointNotFoundError

    if checkpoint_id is None:
        meta = storage.latest()
        if meta is None:
            raise CheckpointNotFoundError(f"no complete checkpoints in {path}")
    else:
        meta = storage.read_metadata(checkpoint_id)
    print(f"{meta.kind} {meta.checkpoint_id}", file=out)
    print(f"  job:          {meta.job_id or '-'}", file=out)
    print(f"  time:         {_time(meta.timestamp)} UTC", file=out)
    print(f"  size:         {_size(meta.total_size)} ({meta.total_size} bytes)", file=out)
    print(f"  incremental:  {_size(meta.incremental_size)} ({meta.incremental_size} bytes)",
          file=out)
    if meta.properties:
        print(f"  properties:   {json.dumps(dict(meta.properties), sort_keys=True)}", file=out)
    print(f"  operators:    {len(meta.operators)}", file=out)
    for operator_id, tasks in meta.operators.items():
        size = sum(task.size for task in tasks)
        print(f"    {operator_id}: {len(tasks)} subtasks, {_size(size)}", file=out)
        for task in tasks:
            new = sum(ref.size for ref in task.files.values()
                      if ref.checkpoint_id == meta.checkpoint_id)
            line = (f"      subtask {task.subtask_index}: {len(task.files)} files, "
                    f"{_size(task.size)} ({_size(new)} new)")
            if task.position is not None:
                line += f", position {_short(task.position)}"
            print(line, file=out)


def _time(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _size(size: int) -> str:
    """Bytes in binary units: ``_size(1536) == '1.5 KiB'``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value) if isinstance(value, bytes) else json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[:limit - 3] + "..."

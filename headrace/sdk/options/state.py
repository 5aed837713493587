"""``--state_backend`` and ``--state_dir``: where operators keep keyed state.

``memory`` (the default) keeps it in dicts in the worker's memory; ``rocksdb``
in one RocksDB instance per subtask under ``--state_dir`` (default: the
system's temporary directory), for state larger than memory and for
incremental checkpoints.

>>> from headrace.sdk.options import PipelineOptions
>>> PipelineOptions(["--state_backend=rocksdb"]).view_as(StateBackendOptions).state_backend
'rocksdb'
>>> try:
...     PipelineOptions(["--state_backend=disk"])
... except ValueError as e:
...     print(e)
argument --state_backend: must be 'memory' or 'rocksdb', got 'disk'
"""
from __future__ import annotations

import argparse
from typing import Any, Callable, ClassVar

from headrace.sdk.options import PipelineOptions

STATE_BACKENDS = ("memory", "rocksdb")


def state_backend_name(value: Any) -> str:
    """An argparse ``type=`` converter and assignment validator for ``--state_backend``."""
    name = value.strip().lower() if isinstance(value, str) else value
    if name not in STATE_BACKENDS:
        raise argparse.ArgumentTypeError(
            f"must be {' or '.join(repr(b) for b in STATE_BACKENDS)}, got {value!r}")
    return name


class StateBackendOptions(PipelineOptions):
    """The keyed-state backend of stateful operators, and RocksDB's local directory.

    >>> StateBackendOptions([]).state_backend, StateBackendOptions([]).state_dir
    ('memory', None)
    """

    _option_validators: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "state_backend": state_backend_name,
    }

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--state_backend", type=state_backend_name, default="memory",
                            help="Keyed state backend: 'memory' (default) or 'rocksdb'.")
        parser.add_argument("--state_dir", default=None,
                            help="Local directory for RocksDB's files (one subdirectory per "
                                 "subtask, deleted when it closes); default: a temp dir.")

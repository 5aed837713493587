"""The keyed-state backend an operator gets, as ``--state_backend`` and ``--state_dir`` say.

>>> from headrace.sdk.options import PipelineOptions
>>> backend = make_state_backend(PipelineOptions(["--state_backend=rocksdb"]), range(0, 64))
>>> type(backend).__name__, backend.key_groups
('RocksDBStateBackend', range(0, 64))
>>> backend.close()
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from headrace.runners.state.base.backend import KeyedStateBackend
from headrace.runners.state.base.key_groups import DEFAULT_MAX_PARALLELISM
from headrace.runners.state.memory import MemoryStateBackend
from headrace.sdk.options import HeadraceOptions, OptionsError, PipelineOptions
from headrace.sdk.options.state import StateBackendOptions, state_backend_name


def _settings(options: Optional[PipelineOptions], max_parallelism: Optional[int]
              ) -> tuple[str, Optional[str], int]:
    if options is None:
        return "memory", None, max_parallelism or DEFAULT_MAX_PARALLELISM
    view = options.view_as(StateBackendOptions)
    try:
        name = state_backend_name(view.state_backend)
    except ValueError as exc:
        raise OptionsError(f"--state_backend {exc}") from None
    if max_parallelism is None:
        max_parallelism = options.view_as(HeadraceOptions).max_parallelism
    return name, view.state_dir, max_parallelism


def _rocksdb() -> Any:
    try:
        from headrace.runners.state import rocksdb
    except ImportError as exc:
        raise OptionsError(f"--state_backend=rocksdb needs rocksdict ({exc}): "
                           "pip install 'headrace[rocksdb]'") from None
    return rocksdb.RocksDBStateBackend


def make_state_backend(options: Optional[PipelineOptions] = None,
                       key_group_range: Optional[range] = None,
                       max_parallelism: Optional[int] = None, *,
                       name: str = "state") -> KeyedStateBackend:
    """A new, empty backend owning ``key_group_range`` (default: every key group).

    ``name`` (e.g. the operator's label and subtask) names RocksDB's directory.
    """
    backend, state_dir, max_parallelism = _settings(options, max_parallelism)
    if backend == "rocksdb":
        return _rocksdb()(key_group_range, max_parallelism, state_dir, name)
    return MemoryStateBackend(key_group_range, max_parallelism)


def restore_state_backend(options: Optional[PipelineOptions], snapshots: Sequence[Any],
                          key_group_range: range, max_parallelism: Optional[int] = None, *,
                          name: str = "state") -> KeyedStateBackend:
    """A backend owning ``key_group_range`` with their state from ``snapshots``.

    The snapshots (objects, or directories of materialized ones) may come from any
    backend and any number of subtasks of the old job: this is rescaling.
    """
    backend, state_dir, max_parallelism = _settings(options, max_parallelism)
    if backend == "rocksdb":
        return _rocksdb().restore(snapshots, key_group_range, max_parallelism, state_dir, name)
    return MemoryStateBackend.restore(snapshots, key_group_range, max_parallelism)

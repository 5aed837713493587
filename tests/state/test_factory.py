"""``--state_backend`` / ``--state_dir`` and the backend factory."""
from __future__ import annotations

import os

import pytest

from headrace.runners.state.factory import make_state_backend, restore_state_backend
from headrace.runners.state.memory import MemoryStateBackend
from headrace.runners.state.rocksdb import RocksDBStateBackend
from headrace.sdk.options import OptionsError, PipelineOptions, StateBackendOptions

pytestmark = pytest.mark.no_pipeline


def test_default_is_memory_over_every_key_group():
    backend = make_state_backend(PipelineOptions([]))
    assert isinstance(backend, MemoryStateBackend) and backend.key_groups == range(128)
    assert isinstance(make_state_backend(None), MemoryStateBackend)


def test_rocksdb_lives_under_state_dir_and_takes_max_parallelism(tmp_path):
    options = PipelineOptions(["--state_backend", "RocksDB", f"--state_dir={tmp_path}",
                               "--max_parallelism=16"])
    backend = make_state_backend(options, range(4, 8), name="GroupByKey/1")
    assert isinstance(backend, RocksDBStateBackend)
    assert (backend.key_groups, backend.max_parallelism) == (range(4, 8), 16)
    assert os.path.dirname(backend.directory) == str(tmp_path)
    assert "GroupByKey_1" in os.path.basename(backend.directory)
    backend.close()
    assert os.listdir(tmp_path) == []


def test_restore_through_the_factory_switches_backend(tmp_path):
    memory = make_state_backend(PipelineOptions([]))
    memory.put_value("v", b"k", None, "value")
    options = PipelineOptions(["--state_backend=rocksdb", f"--state_dir={tmp_path}"])
    restored = restore_state_backend(options, [memory.snapshot()], range(128))
    assert isinstance(restored, RocksDBStateBackend)
    assert restored.get_value("v", b"k", None) == "value"
    restored.close()


def test_a_bad_backend_names_the_option():
    with pytest.raises(OptionsError, match="--state_backend: must be 'memory' or 'rocksdb', "
                                           "got 'leveldb'"):
        PipelineOptions(["--state_backend=leveldb"])
    options = PipelineOptions([])
    with pytest.raises(OptionsError, match="state_backend"):
        options.view_as(StateBackendOptions).state_backend = "leveldb"
    with pytest.raises(OptionsError, match="state_backend.*must be 'memory' or 'rocksdb'"):
        make_state_backend(PipelineOptions(state_backend="leveldb"))

"""The RocksDB keyed-state backend (needs ``rocksdict``: ``pip install headrace[rocksdb]``)."""
from headrace.runners.state.rocksdb.backend import RocksDBStateBackend
from headrace.runners.state.rocksdb.snapshot import RocksDBSnapshot

__all__ = ["RocksDBSnapshot", "RocksDBStateBackend"]

"""Keyed state and timers: the one interface every keyed operator stores through.

``base/`` holds the interfaces, key-group arithmetic, snapshots and the portable
savepoint format; each backend is a sibling package (``memory/``, ``rocksdb/``);
``factory`` picks one from ``--state_backend``.
"""

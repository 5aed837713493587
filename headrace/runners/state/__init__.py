"""Keyed state and timers: the one interface every keyed operator stores through.

``base/`` holds the interfaces and key-group arithmetic; each backend is a
sibling package (``memory/`` now, ``rocksdb/`` with the checkpoint work).
"""

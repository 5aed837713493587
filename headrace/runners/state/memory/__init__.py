"""The in-memory keyed-state backend."""
from headrace.runners.state.memory.backend import MemorySnapshot, MemoryStateBackend

__all__ = ["MemorySnapshot", "MemoryStateBackend"]

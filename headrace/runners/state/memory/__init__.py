"""The in-memory keyed-state backend."""
from headrace.runners.state.memory.backend import MemoryStateBackend

__all__ = ["MemoryStateBackend"]

"""Columnar batches: the values of many elements with their metadata stored once or in columns.

Most elements of a pipeline share their windows and pane, and untimestamped or
global-window data shares its timestamp too. A :class:`ColumnBatch` keeps the
values in a list and each of timestamp and windows either once (shared by every
element) or as a column, so the fused stateless steps and the exchanges work
on plain lists instead of one :class:`WindowedValue` per element. It still is a
sequence of ``WindowedValue`` s (built on demand), so every operator that is
not column-aware iterates it unchanged.
"""
from __future__ import annotations

from itertools import compress
from typing import Any, Iterator, List, Sequence, Union

from headrace.sdk.windowed_value import WindowedValue

Batch = Union[List[WindowedValue], "ColumnBatch"]


class ColumnBatch:
    """``values`` with ``timestamps`` (an int shared by all, or a list of ints),
    ``windows`` (a tuple of windows shared by all, or a list of such tuples) and
    ``pane_info`` (one pane or None shared by all, or a list of them).

    >>> from headrace.sdk.window import GLOBAL_WINDOW
    >>> batch = ColumnBatch(["a", "b"], 0, (GLOBAL_WINDOW,))
    >>> len(batch), [wv.value for wv in batch], batch[1].windows
    (2, ['a', 'b'], (GlobalWindow,))
    """

    __slots__ = ("values", "timestamps", "windows", "pane_info")

    def __init__(self, values: List[Any], timestamps: Union[int, List[int]],
                 windows: Union[tuple, List[tuple]], pane_info: Any = None) -> None:
        self.values = values
        self.timestamps = timestamps
        self.windows = windows
        self.pane_info = pane_info

    @property
    def shared_timestamp(self) -> bool:
        return type(self.timestamps) is not list

    @property
    def shared_windows(self) -> bool:
        return type(self.windows) is tuple

    @property
    def uniform(self) -> bool:
        """Every element has the same timestamp, windows and pane."""
        return (type(self.timestamps) is not list and type(self.windows) is tuple
                and type(self.pane_info) is not list)

    def with_values(self, values: List[Any]) -> "ColumnBatch":
        """The same metadata for new values (one per old value, in order)."""
        return ColumnBatch(values, self.timestamps, self.windows, self.pane_info)

    def timestamp_column(self) -> List[int]:
        return _column(self.timestamps, len(self.values))

    def window_column(self) -> List[tuple]:
        windows = self.windows
        return windows if type(windows) is list else [windows] * len(self.values)

    def pane_column(self) -> List[Any]:
        return _column(self.pane_info, len(self.values))

    def select(self, keep: Sequence[Any]) -> "ColumnBatch":
        """The elements whose ``keep`` flag is true."""
        ts, windows, panes = self.timestamps, self.windows, self.pane_info
        if type(ts) is list:
            ts = list(compress(ts, keep))
        if type(windows) is list:
            windows = list(compress(windows, keep))
        if type(panes) is list:
            panes = list(compress(panes, keep))
        return ColumnBatch(list(compress(self.values, keep)), ts, windows, panes)

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[WindowedValue]:
        make = WindowedValue.of
        if self.uniform:
            ts, windows, pane = self.timestamps, self.windows, self.pane_info
            return (make(v, ts, windows, pane) for v in self.values)
        return (make(v, t, w, p) for v, t, w, p in zip(
            self.values, self.timestamp_column(), self.window_column(), self.pane_column()))

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return list(self)[index]
        ts, windows, pane = self.timestamps, self.windows, self.pane_info
        return WindowedValue.of(self.values[index], ts[index] if type(ts) is list else ts,
                                windows[index] if type(windows) is list else windows,
                                pane[index] if type(pane) is list else pane)

    def __repr__(self) -> str:
        return f"ColumnBatch({list(self)!r})"


def _column(shared_or_list: Any, length: int) -> List[Any]:
    return shared_or_list if type(shared_or_list) is list else [shared_or_list] * length


def as_columns(batch: Batch) -> ColumnBatch:
    """``batch`` as a :class:`ColumnBatch`; a column whose items are all equal is kept once.

    >>> from headrace.sdk.window import GLOBAL_WINDOW
    >>> as_columns([WindowedValue.of(1, 0, (GLOBAL_WINDOW,))]).timestamps
    0
    """
    if type(batch) is ColumnBatch:
        return batch
    if not batch:
        return ColumnBatch([], 0, ())
    first = batch[0]
    windows = [wv.windows for wv in batch]
    if set(map(type, windows)) != {tuple}:  # WindowedValue.of does not check
        windows = [tuple(w) for w in windows]
    return ColumnBatch([wv.value for wv in batch],
                       _shared([wv.timestamp_micros for wv in batch], first.timestamp_micros),
                       _shared(windows, windows[0]),
                       _shared([wv.pane_info for wv in batch], first.pane_info))


def _shared(column: List[Any], first: Any) -> Any:
    return first if column.count(first) == len(column) else column

"""Running a ``DoFn``: bundles, side inputs held until ready, tagged and timestamped outputs."""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional

from headrace.runners.common.dofn_invoker import make_process_invoker
from headrace.runners.common.errors import reraise_with_label
from headrace.runners.operators.base import Operator
from headrace.runners.operators.batch import Batch, ColumnBatch, as_columns
from headrace.sdk.callable_dofn import CallableWrapperDoFn
from headrace.sdk.metrics import metrics_scope
from headrace.sdk.pvalue import AsSideInput, TaggedOutput
from headrace.sdk.serialization import loads_user_code
from headrace.sdk.timestamp import MAX_MICROS
from headrace.sdk.window import GLOBAL_WINDOW, BoundedWindow, TimestampedValue
from headrace.sdk.windowed_value import PANE_INFO_UNKNOWN, WindowedValue
from headrace.sdk.windowing import Windowing

_LOG = logging.getLogger(__name__)
#: Outputs that are more than a value: they need _emit_results' handling.
_SPECIAL_OUTPUTS = frozenset((TaggedOutput, TimestampedValue, WindowedValue))


def _with_extra_args(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Callable[[Any], Any]:
    """``fn`` called with the element first, then the transform's extra arguments."""
    return lambda value: fn(value, *args, **kwargs)


class SideInput:
    """One side input of a ParDo: its values per window and its watermark."""

    def __init__(self, view: AsSideInput, windowing: Windowing) -> None:
        self.view = view
        self.windowing = windowing
        self.values: Dict[BoundedWindow, List[Any]] = {}
        self._views: Dict[BoundedWindow, Any] = {}

    def window_for(self, main_window: BoundedWindow) -> BoundedWindow:
        """Beam's default mapping: the side window holding the main window's last instant."""
        if self.windowing.is_global():
            return GLOBAL_WINDOW
        windows = self.windowing.window_fn.assign_micros(main_window.max_timestamp_micros,
                                                         None, main_window)
        return list(windows)[-1]

    def add(self, wv: WindowedValue) -> None:
        for window in wv.windows:
            self.values.setdefault(window, []).append(wv.value)
            self._views.pop(window, None)

    def view_for(self, side_window: BoundedWindow) -> Any:
        if side_window not in self._views:
            self._views[side_window] = self.view.view(self.values.get(side_window, []))
        return self._views[side_window]


class ParDoOperator(Operator):
    """Input 0 is the main input; inputs 1..n are the side inputs in declaration order."""

    def __init__(self, label: str, transform: Any, side_windowings: List[Windowing],
                 output_tags: List[Optional[str]],
                 input_windowing: Optional[Windowing] = None) -> None:
        super().__init__(label, 1 + len(side_windowings))
        #: As Beam: a ``TimestampedValue`` output is assigned windows by the input's WindowFn.
        self.reassign = (None if input_windowing is None or input_windowing.is_global()
                         else input_windowing.window_fn.assign_micros)
        self.fn, args, kwargs = loads_user_code(transform.serialized_fn)
        self.invoker = make_process_invoker(self.fn, args, kwargs, label)
        self.sides = [SideInput(view, windowing)
                      for view, windowing in zip(transform.side_inputs, side_windowings)]
        self.declared_tags = set(output_tags)
        self.dropped_tags: set = set()
        self.pushed_back: List[WindowedValue] = []
        self.in_bundle = False
        self.set_up = False
        self.outputs: Dict[Optional[str], List[WindowedValue]] = {}
        #: Streaming ends a bundle after every batch; batch execution at the final watermark.
        self.bundle_per_batch = False
        #: "map", "flatmap" or "filter" when this is one of those over a plain function.
        self.simple_kind = (self.fn.kind if isinstance(self.fn, CallableWrapperDoFn)
                            and self.fn.kind in ("map", "flatmap", "filter")
                            and self.invoker.simple and not self.sides else None)

    def start(self) -> None:
        with metrics_scope(self.metrics):
            try:
                self.fn.setup()
            except Exception as exc:
                reraise_with_label(exc, self.label)
        self.set_up = True

    def close(self) -> None:
        if self.set_up:
            self.set_up = False
            with metrics_scope(self.metrics):
                try:
                    self.fn.teardown()
                except Exception as exc:
                    reraise_with_label(exc, self.label)

    def process_batch(self, index: int, batch: List[WindowedValue]) -> None:
        if index:
            side = self.sides[index - 1]
            for wv in batch:
                side.add(wv)
            return
        if self.sides:
            ready = [wv for wv in batch if self._side_inputs_ready(wv)]
            if len(ready) < len(batch):
                self.pushed_back.extend(wv for wv in batch if not self._side_inputs_ready(wv))
            batch = ready
        if batch:
            self._process_main(batch)
            if self.bundle_per_batch:
                self.finish_bundle()

    def _side_inputs_ready(self, wv: WindowedValue) -> bool:
        for i, side in enumerate(self.sides):
            watermark = self.input_watermarks[i + 1]
            if watermark == MAX_MICROS:
                continue
            for window in wv.windows:
                if watermark <= side.window_for(window).max_timestamp_micros:
                    return False
        return True

    def _process_main(self, batch: List[WindowedValue]) -> None:
        if not self.in_bundle:
            self._call_bundle_method(self.fn.start_bundle, is_start=True)
            self.in_bundle = True
        invoker = self.invoker
        self.outputs = {}
        with metrics_scope(self.metrics):
            try:
                if self.simple_kind is not None:
                    self._process_simple(batch)
                    batch = ()
                for wv in batch:
                    if invoker.uses_window:
                        for window in wv.windows:
                            side_values = [side.view_for(side.window_for(window))
                                           for side in self.sides]
                            results = invoker.invoke(wv.value, wv.timestamp_micros, window,
                                                     side_values, self._context_for(wv))
                            self._emit_results(results, wv.timestamp_micros, (window,),
                                               wv.pane_info)
                    else:
                        results = invoker.invoke(wv.value, wv.timestamp_micros, None, (),
                                                 self._context_for(wv))
                        self._emit_results(results, wv.timestamp_micros, wv.windows,
                                           wv.pane_info)
            except Exception as exc:
                reraise_with_label(exc, self.label)
        self._flush_outputs()

    def _process_simple(self, batch: Batch) -> None:
        """Map, FlatMap and Filter of a plain function: one comprehension per batch.

        The output is a :class:`ColumnBatch` sharing the input's metadata; outputs
        that are ``TimestampedValue`` s become its timestamp column. Other outputs
        that need more than a new value (tagged or windowed) are rare; they go through
        :meth:`_emit_results` afterwards, in order.
        """
        columns = as_columns(batch)
        fn, kind = self.fn.fn, self.simple_kind
        args, kwargs = self.invoker.static_args, self.invoker.static_kwargs
        if args or kwargs:
            fn = _with_extra_args(fn, args, kwargs)
        values = columns.values
        if kind == "filter":
            if columns.uniform:
                self.outputs[None] = columns.with_values([v for v in values if fn(v)])
            else:
                self.outputs[None] = columns.select([fn(v) for v in values])
            return
        if kind == "map":
            out = columns.with_values([fn(v) for v in values])
        elif columns.uniform:
            out_values: List[Any] = []
            extend = out_values.extend
            for value in values:
                results = fn(value)
                if results is None:
                    continue
                if isinstance(results, (str, bytes, dict)):
                    self._emit_results(results, 0, (), None)  # raises the usual TypeError
                extend(results)
            out = columns.with_values(out_values)
        else:
            out = self._flatmap_columns(fn, columns)
        types = set(map(type, out.values))
        if not types.isdisjoint(_SPECIAL_OUTPUTS):
            if types == {TimestampedValue} and self.reassign is None:
                # As Beam, a timestamped output keeps its input's windows: a new timestamp
                # column is all that changes.
                out = ColumnBatch([o.value for o in out.values],
                                  [o.timestamp_micros for o in out.values], out.windows,
                                  out.pane_info)
            else:
                for wv in out:
                    self._emit_results((wv.value,), wv.timestamp_micros, wv.windows,
                                       wv.pane_info)
                return
        self.outputs[None] = out

    def _flatmap_columns(self, fn: Callable[[Any], Any], columns: ColumnBatch) -> ColumnBatch:
        """FlatMap over elements whose timestamps or windows differ: repeat them per output."""
        out_values: List[Any] = []
        out_ts: List[int] = []
        out_windows: List[tuple] = []
        out_panes: List[Any] = []
        for value, timestamp, windows, pane in zip(columns.values, columns.timestamp_column(),
                                                   columns.window_column(),
                                                   columns.pane_column()):
            results = fn(value)
            if results is None:
                continue
            if isinstance(results, (str, bytes, dict)):
                self._emit_results(results, 0, (), None)  # raises the usual TypeError
            before = len(out_values)
            out_values.extend(results)
            added = len(out_values) - before
            out_ts.extend([timestamp] * added)
            out_windows.extend([windows] * added)
            out_panes.extend([pane] * added)
        return ColumnBatch(out_values, out_ts, out_windows, out_panes)

    def _drop_undeclared(self, tag: str) -> None:
        """Beam drops outputs to tags nobody reads; say so once, so a typo is findable."""
        if tag not in self.dropped_tags:
            self.dropped_tags.add(tag)
            _LOG.warning("%s: dropping outputs to TaggedOutput tag %r, which no transform reads "
                         "(declare and use it with .with_outputs(%r))", self.label, tag, tag)

    def snapshot_state(self, checkpoint_id: int) -> Any:
        """The side inputs received so far and the elements waiting for them (None when
        the ParDo has no side inputs)."""
        if not self.sides:
            return None
        return {"pushed_back": list(self.pushed_back),
                "sides": [{window: list(values) for window, values in side.values.items()}
                          for side in self.sides]}

    def restore_state(self, snapshots: List[Any]) -> None:
        """Every snapshot's waiting elements; the side inputs of the first (each subtask
        received them whole)."""
        snapshots = [s for s in snapshots if s is not None]
        for snapshot in snapshots:
            self.pushed_back.extend(snapshot["pushed_back"])
        if snapshots:
            for side, values in zip(self.sides, snapshots[0]["sides"]):
                side.values = {window: list(v) for window, v in values.items()}
                side._views.clear()

    def finish_bundle(self) -> None:
        """End the current bundle, if one is open (its outputs are emitted now)."""
        if self.in_bundle:
            self.in_bundle = False
            self._call_bundle_method(self.fn.finish_bundle)

    def _context_for(self, wv: WindowedValue) -> Callable[[Any], Any]:
        def resolve(marker: Any) -> Any:
            if marker.name == "PaneInfoParam":
                return wv.pane_info if wv.pane_info is not None else PANE_INFO_UNKNOWN
            if marker.name == "KeyParam":
                # As Beam: any DoFn applied to (key, value) pairs may ask for the key.
                value = wv.value
                if isinstance(value, (tuple, list)) and len(value) == 2:
                    return value[0]
                raise TypeError(f"{marker!r} needs (key, value) pairs as input; got "
                                f"{value!r:.100}")
            raise TypeError(f"{marker!r} needs a stateful DoFn (one that declares state or "
                            "timers) applied to (key, value) pairs")

        return resolve

    def _flush_outputs(self) -> None:
        outputs, self.outputs = self.outputs, {}
        for tag, batch in outputs.items():
            self.emit_batch(tag, batch)

    def _emit_results(self, results: Any, timestamp: int, windows: tuple, pane: Any) -> None:
        if results is None:
            return
        if isinstance(results, (str, bytes, dict)):
            raise TypeError(f"Returning a {type(results).__name__} from a ParDo or FlatMap is "
                            f"discouraged. Please use list({results!r:.40}) if you really want "
                            "this behavior.")
        for output in results:
            tag = None
            if type(output) is TaggedOutput:
                tag, output = output.tag, output.value
                if tag not in self.declared_tags:
                    self._drop_undeclared(tag)
                    continue
            if isinstance(output, WindowedValue):
                wv = output
            elif type(output) is TimestampedValue:
                out_windows = windows
                if self.reassign is not None:
                    out_windows = tuple(self.reassign(output.timestamp_micros, output.value,
                                                      None)) * len(windows)
                wv = WindowedValue.of(output.value, output.timestamp_micros, out_windows, pane)
            else:
                wv = WindowedValue.of(output, timestamp, windows, pane)
            batch = self.outputs.get(tag)
            if batch is None:
                self.outputs[tag] = [wv]
            else:
                batch.append(wv)

    def _call_bundle_method(self, method: Any, is_start: bool = False) -> None:
        self.outputs = {}
        with metrics_scope(self.metrics):
            try:
                results = method()
                if results is not None and is_start:
                    # As Beam: only finish_bundle may output.
                    raise RuntimeError("start_bundle should not output any elements but got "
                                       f"{results!r:.100}")
                if results is not None:
                    for output in results:
                        if not isinstance(output, (WindowedValue, TaggedOutput)):
                            raise TypeError(
                                "finish_bundle must yield WindowedValue outputs (e.g. "
                                "beam.transforms.window.GlobalWindows.windowed_value(x)), "
                                f"got {type(output).__name__}")
                        self._emit_results([output], 0, (GLOBAL_WINDOW,), None)
            except Exception as exc:
                reraise_with_label(exc, self.label)
        self._flush_outputs()

    def advance(self, watermark: int) -> None:
        if self.pushed_back:
            waiting, self.pushed_back = self.pushed_back, []
            self.process_batch(0, waiting)
        self.finish_bundle()
        hold = min((wv.timestamp_micros for wv in self.pushed_back), default=MAX_MICROS)
        self.forward_watermark(min(watermark, hold))

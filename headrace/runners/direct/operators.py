"""The direct runner's operators: one per primitive, pushing elements and watermarks downstream.

Every operator keeps the watermark of each of its inputs; when their minimum
advances it fires what became complete (grouped windows, held-back elements)
and then forwards the watermark, so outputs always precede the watermark that
would make them late.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from headrace.runners.common.errors import reraise_with_label
from headrace.sdk.metrics import MetricsContainer
from headrace.sdk.timestamp import MAX_MICROS, MIN_MICROS
from headrace.sdk.window import GLOBAL_WINDOW
from headrace.sdk.windowed_value import WindowedValue

Receiver = Tuple["Operator", int]


class Operator:
    """A node of the running graph with ``num_inputs`` inputs."""

    def __init__(self, label: str, num_inputs: int) -> None:
        self.label = label
        self.receivers: Dict[Optional[str], List[Receiver]] = {}
        self.input_watermarks = [MIN_MICROS] * num_inputs
        self.input_watermark = MIN_MICROS if num_inputs else MAX_MICROS
        self.output_watermark = MIN_MICROS
        self.metrics = MetricsContainer(label)

    def start(self) -> None:
        """Acquire resources (DoFn.setup, open writers) before any element."""

    def close(self) -> None:
        """Release resources; called once, also after a failure."""

    def emit(self, tag: Optional[str], wv: WindowedValue) -> None:
        for receiver, index in self.receivers.get(tag, ()):
            receiver.process(index, wv)

    def process(self, index: int, wv: WindowedValue) -> None:
        raise NotImplementedError

    def on_watermark(self, index: int, watermark: int) -> None:
        if watermark <= self.input_watermarks[index]:
            return
        self.input_watermarks[index] = watermark
        combined = min(self.input_watermarks)
        if combined > self.input_watermark:
            self.input_watermark = combined
            self.advance(combined)

    def advance(self, watermark: int) -> None:
        """React to a higher input watermark; by default just forward it."""
        self.forward_watermark(watermark)

    def forward_watermark(self, watermark: int) -> None:
        if watermark <= self.output_watermark:
            return
        self.output_watermark = watermark
        for receivers in self.receivers.values():
            for receiver, index in receivers:
                receiver.on_watermark(index, watermark)


class FlattenOperator(Operator):
    def process(self, index: int, wv: WindowedValue) -> None:
        self.emit(None, wv)


class WindowIntoOperator(Operator):
    def __init__(self, label: str, window_fn: Any) -> None:
        super().__init__(label, 1)
        self.window_fn = window_fn

    def process(self, index: int, wv: WindowedValue) -> None:
        assign = self.window_fn.assign_micros
        try:
            if len(wv.windows) == 1:
                windows = tuple(assign(wv.timestamp_micros, wv.value, wv.windows[0]))
            else:
                windows = tuple(dict.fromkeys(
                    w for old in wv.windows for w in assign(wv.timestamp_micros, wv.value, old)))
        except Exception as exc:
            reraise_with_label(exc, self.label)
        self.emit(None, WindowedValue.of(wv.value, wv.timestamp_micros, windows, wv.pane_info))


class WriteOperator(Operator):
    """Writes every element, then closes and finalizes the sink at the end of input."""

    def __init__(self, label: str, sink: Any) -> None:
        super().__init__(label, 1)
        self.sink = sink
        self.writer = None

    def start(self) -> None:
        try:
            self.writer = self.sink.open_writer(0, 1)
        except Exception as exc:
            reraise_with_label(exc, self.label)

    def process(self, index: int, wv: WindowedValue) -> None:
        try:
            self.writer.write(wv.value)
        except Exception as exc:
            reraise_with_label(exc, self.label)

    def advance(self, watermark: int) -> None:
        if watermark == MAX_MICROS and self.writer is not None:
            writer, self.writer = self.writer, None
            try:
                outputs = self.sink.finalize([writer.close()])
            except Exception as exc:
                reraise_with_label(exc, self.label)
            for output in outputs:
                self.emit(None, WindowedValue.of(output, MIN_MICROS, (GLOBAL_WINDOW,)))
        self.forward_watermark(watermark)

    def close(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            try:
                writer.close()
            except Exception:  # already failing; the original error matters
                pass


class ReadOperator(Operator):
    """Reads every split of a source in turn, then declares its input complete."""

    BATCH = 1024

    def __init__(self, label: str, source: Any) -> None:
        super().__init__(label, 0)
        self.source = source

    def run(self) -> None:
        from headrace.sdk.window import TimestampedValue

        try:
            splits = self.source.split(1)
        except Exception as exc:
            reraise_with_label(exc, self.label)
        for split in splits:
            try:
                reader = split.open()
            except Exception as exc:
                reraise_with_label(exc, self.label)
            try:
                while True:
                    try:
                        batch = reader.read_batch(self.BATCH)
                    except Exception as exc:
                        reraise_with_label(exc, self.label)
                    if batch is None:
                        break
                    for element in batch:
                        if type(element) is TimestampedValue:
                            wv = WindowedValue.of(element.value, element.timestamp_micros,
                                                  (GLOBAL_WINDOW,))
                        else:
                            wv = WindowedValue.of(element, MIN_MICROS, (GLOBAL_WINDOW,))
                        self.emit(None, wv)
            finally:
                reader.close()
        self.forward_watermark(MAX_MICROS)

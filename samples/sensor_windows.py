"""Sliding-window averages per sensor over an out-of-order stream, with early and late panes.

An IoT-style stream comes from the seeded generator: readings arrive up to a
few seconds out of order, and a small fraction are very late. Each sensor's
average temperature is computed over sliding windows; a window fires early
(speculative panes while it is open), on time (when the watermark passes its
end) and late (for readings within the allowed lateness). Readings later than
that go to a side output instead of being lost.

    python samples/sensor_windows.py --max-events 20000 --rate 5000

It prints a compact live line per second and a summary at the end.
"""
from __future__ import annotations

import argparse
import sys
import time

import headrace as beam
from headrace.metrics.metric import MetricsFilter
from headrace.options.pipeline_options import PipelineOptions
from headrace.transforms.combiners import MeanCombineFn
from headrace.transforms.trigger import (
    AccumulationMode,
    AfterCount,
    AfterProcessingTime,
    AfterWatermark,
)
from headrace.window import SlidingWindows

PANE_TIMING = ("EARLY", "ON_TIME", "LATE", "UNKNOWN")


class ToReading(beam.DoFn):
    """Turn a generated ``(key, value, event_time)`` into ``(sensor, temperature)``."""

    def process(self, event):
        key, value, _ = event
        yield f"sensor-{key:02d}", round(15.0 + value / 5.0, 2)


class ReportPanes(beam.DoFn):
    """Counts panes by timing and prints one live line per second of processing time."""

    def __init__(self):
        self.panes = {timing: beam.metrics.Metrics.counter("sensor", timing.lower() + "_panes")
                      for timing in PANE_TIMING}

    def setup(self):
        self.seen = dict.fromkeys(PANE_TIMING, 0)
        self.last_print = time.monotonic()
        self.latest = None

    def process(self, sensor_mean, window=beam.DoFn.WindowParam,
                pane=beam.DoFn.PaneInfoParam):
        sensor, mean = sensor_mean
        timing = PANE_TIMING[pane.timing]
        self.panes[timing].inc()
        self.seen[timing] += 1
        self.latest = (f"{sensor} [{float(window.start):.0f}s, {float(window.end):.0f}s) "
                       f"avg {mean:.2f} ({timing} #{pane.index})")
        now = time.monotonic()
        if now - self.last_print >= 1.0:
            self.last_print = now
            counts = " ".join(f"{t.lower()}={n}" for t, n in self.seen.items() if n)
            print(f"panes: {counts} | latest: {self.latest}", flush=True)
        yield sensor_mean


class CountLate(beam.DoFn):
    def __init__(self):
        self.late = beam.metrics.Metrics.counter("sensor", "late_readings")

    def process(self, reading):
        self.late.inc()
        yield reading


def run(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-events", type=int, default=20_000,
                        help="stop after this many readings (default 20000)")
    parser.add_argument("--rate", type=float, default=5_000,
                        help="readings per second of processing time (default 5000)")
    parser.add_argument("--sensors", type=int, default=8)
    parser.add_argument("--seed", type=int, default=42)
    args, pipeline_args = parser.parse_known_args(argv)

    options = PipelineOptions(pipeline_args)
    with beam.Pipeline(options=options) as p:
        readings = (p
                    | "Readings" >> beam.io.GenerateEvents(
                        num_events=args.max_events, events_per_second=args.rate,
                        num_keys=args.sensors, events_per_event_second=50,
                        max_out_of_orderness=3, late_fraction=0.02, late_by=30,
                        seed=args.seed)
                    | "ToReading" >> beam.ParDo(ToReading()))
        windowed, late = (readings
                          | "Window" >> beam.WindowInto(
                              SlidingWindows(30, 10),
                              trigger=AfterWatermark(early=AfterProcessingTime(0.1),
                                                     late=AfterCount(1)),
                              accumulation_mode=AccumulationMode.ACCUMULATING,
                              allowed_lateness=5).with_late_data_output("late"))
        (windowed
         | "MeanPerSensor" >> beam.CombinePerKey(MeanCombineFn())
         | "Report" >> beam.ParDo(ReportPanes()))
        late | "CountLate" >> beam.ParDo(CountLate())

    counters = p.result.metrics().query(MetricsFilter().with_namespace("sensor"))["counters"]
    totals = {c.key.metric.name: c.committed for c in counters}
    print("summary: " + ", ".join(f"{name}={totals.get(name, 0)}" for name in
                                  ("early_panes", "on_time_panes", "late_panes",
                                   "late_readings")))
    if not totals.get("on_time_panes"):
        sys.exit("no on-time panes were produced")


if __name__ == "__main__":
    run()

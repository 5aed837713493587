"""Random scripts: the panes of Beam and headrace agree on generated TestStream scenarios.

Each seed draws a window function, a trigger, an accumulation mode, a
timestamp combiner and allowed lateness, and a script of bundles (elements
of two keys, some of them late or beyond lateness) and watermark advances.
The draws avoid the cases where Beam's Python driver is known to differ
from the model (see ``test_late_data.py``): late data that does not fire at
once, and windows merging into windows that already expired. Run over
hundreds of seeds, the only other differences are panes that Beam calls
EARLY although a non-speculative pane of their window already fired (the
output watermark being held back by other windows; Beam logs a warning),
which headrace reports as LATE, and runs where Beam's runner stalls on a
watermark hold it never releases; the seeds below have neither.
"""
import random

import apache_beam.transforms.trigger  # noqa: F401
import pytest

import headrace.transforms.trigger  # noqa: F401

from .pane_parity import assert_same_panes

WINDOW_FNS = {
    "fixed": lambda w: w.FixedWindows(10),
    "sliding": lambda w: w.SlidingWindows(10, 5),
    "sessions": lambda w: w.Sessions(4),
}
TRIGGERS = {
    "default": lambda t, k: t.DefaultTrigger(),
    "early_late": lambda t, k: t.AfterWatermark(early=t.AfterCount(k), late=t.AfterCount(1)),
    "early_only": lambda t, k: t.AfterWatermark(early=t.AfterCount(k)),
    "count_or_watermark": lambda t, k: t.Repeatedly(t.AfterAny(t.AfterCount(k),
                                                               t.AfterWatermark())),
}
COMBINERS = ["OUTPUT_AT_EOW", "OUTPUT_AT_EARLIEST", "OUTPUT_AT_LATEST"]


def scenario(seed):
    rng = random.Random(seed)
    window = rng.choice(sorted(WINDOW_FNS))
    trigger = rng.choice(sorted(TRIGGERS))
    count = rng.randint(1, 3)
    mode = rng.choice(["DISCARDING", "ACCUMULATING"])
    combiner = rng.choice(COMBINERS) if trigger != "early_only" else "OUTPUT_AT_EOW"
    lateness = 1000 if window == "sessions" else rng.choice([0, 5, 20])
    script, watermark, value = [], 0, 0
    for _ in range(rng.randint(4, 9)):
        if rng.random() < 0.6:
            bundle = []
            for _ in range(rng.randint(1, 3)):
                value += 1
                when = max(0, watermark + rng.randint(-25, 12))
                bundle.append(((rng.choice("ab"), value), when))
            script.append(("elements", bundle))
        else:
            watermark += rng.randint(1, 12)
            script.append(("watermark", watermark))
    script.append(("infinity",))
    combine = rng.random() < 0.3

    def build(beam):
        t = beam.transforms.trigger
        return (beam.WindowInto(WINDOW_FNS[window](beam.window),
                                trigger=TRIGGERS[trigger](t, count),
                                accumulation_mode=getattr(t.AccumulationMode, mode),
                                timestamp_combiner=getattr(beam.window.TimestampCombiner,
                                                           combiner),
                                allowed_lateness=lateness)
                | (beam.CombinePerKey(sum) if combine else beam.GroupByKey()))

    return script, build, (window, trigger, count, mode, combiner, lateness, combine)


@pytest.mark.parametrize("seed", range(20))
def test_random_scenarios_match_beam(seed, runner, tmp_path):
    script, build, described = scenario(seed)
    assert_same_panes(script, build, runner=runner, unsafe=True, tmp_path=tmp_path,
                      allow_empty=True)

"""Options of the multiprocess runner: how batches move between workers."""
from __future__ import annotations

import argparse
from typing import Any, Callable, ClassVar

from headrace.runners.engine.runtime import ExchangeSettings
from headrace.sdk.options import PipelineOptions, positive_int


class MultiprocessOptions(PipelineOptions):
    """``--batch_size`` (records per message between workers, default 1000),
    ``--flush_interval_ms`` (longest a record waits in a half-full batch, default 5),
    ``--max_buffered_mb`` (output a worker may hold per channel before its sources
    pause, default 8).

    >>> MultiprocessOptions(["--batch_size=500"]).exchange_settings().batch_size
    500
    """

    _option_validators: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "batch_size": positive_int,
        "flush_interval_ms": positive_int,
        "max_buffered_mb": positive_int,
    }

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--batch_size", type=positive_int, default=1000,
                            help="Records per message between workers.")
        parser.add_argument("--flush_interval_ms", type=positive_int, default=5,
                            help="Longest a record waits in a half-full batch (ms).")
        parser.add_argument("--max_buffered_mb", type=positive_int, default=8,
                            help="Output a worker holds per channel before its sources pause.")

    def exchange_settings(self) -> ExchangeSettings:
        return ExchangeSettings(batch_size=self.batch_size,
                                flush_interval=self.flush_interval_ms / 1000,
                                max_pending_bytes=self.max_buffered_mb << 20)

"""Beam-compatible ``options`` package: ``from headrace.options.pipeline_options import ...``.

>>> from headrace.options import PipelineOptions
>>> PipelineOptions(["--streaming"]).streaming
True
"""
from headrace.sdk.options import (
                                  DirectOptions,
                                  HeadraceOptions,
                                  OptionsError,
                                  PipelineOptions,
                                  SetupOptions,
                                  StandardOptions,
)

__all__ = [
    "DirectOptions",
    "HeadraceOptions",
    "OptionsError",
    "PipelineOptions",
    "SetupOptions",
    "StandardOptions",
]

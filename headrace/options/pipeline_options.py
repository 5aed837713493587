"""Mirror of ``apache_beam.options.pipeline_options``.

>>> from headrace.options.pipeline_options import PipelineOptions, StandardOptions
>>> PipelineOptions(["--runner=direct"]).view_as(StandardOptions).runner
'direct'
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

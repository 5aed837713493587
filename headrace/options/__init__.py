"""Beam-compatible ``options`` package: ``from headrace.options.pipeline_options import ...``.

>>> from headrace.options import PipelineOptions
>>> PipelineOptions(["--streaming"]).streaming
True
"""
from headrace.options.pipeline_options import *  # noqa: F403  (the same names, one level up)
from headrace.options.pipeline_options import __all__  # noqa: F401

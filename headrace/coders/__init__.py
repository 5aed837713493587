"""Beam-compatible ``coders`` namespace: ``beam.coders.Coder``, ``beam.coders.registry``, ...

>>> import headrace.coders as coders
>>> coders.registry.get_coder(bytes)
BytesCoder
"""
from headrace.sdk.coders import *  # noqa: F403  (Beam's module path for the SDK's coders)
from headrace.sdk.coders import __all__  # noqa: F401

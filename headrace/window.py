"""Windows and window functions (Beam's ``beam.window``)."""
from headrace.transforms.window import *  # noqa: F403  (the same module as transforms.window)
from headrace.transforms.window import __all__  # noqa: F401

"""Sources and sinks, as ``beam.io``: text and JSON Lines files, and the filesystem layer.

>>> from headrace.io import ReadFromText, WriteToText, filesystems
>>> filesystems.match("/nonexistent/*.txt")
[]
"""
from headrace.io import filesystems
from headrace.io.jsonio import ReadFromJsonLines, WriteToJsonLines
from headrace.io.textio import ReadFromText, WriteToText
from headrace.sdk.primitives import Read, Write

__all__ = [
    "Read",
    "ReadFromJsonLines",
    "ReadFromText",
    "Write",
    "WriteToJsonLines",
    "WriteToText",
    "filesystems",
]

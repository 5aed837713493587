"""Sources and sinks, as ``beam.io``: text and JSON Lines files (local or ``s3://``), exactly-once
part files (``WriteToFiles``), the filesystem layer, a synthetic event generator, and Kafka
(``beam.io.kafka``, with the ``kafka`` extra).

>>> from headrace.io import ReadFromText, WriteToText, filesystems
>>> filesystems.match("/nonexistent/*.txt")
[]
"""
from headrace.io import filesystems, kafka
from headrace.io.fileio import WriteToFiles
from headrace.io.generator import GenerateEvents, GeneratorSource
from headrace.io.jsonio import ReadFromJsonLines, WriteToJsonLines
from headrace.io.textio import ReadFromText, WriteToText
from headrace.sdk.primitives import Read, Write

__all__ = [
    "GenerateEvents",
    "GeneratorSource",
    "Read",
    "ReadFromJsonLines",
    "ReadFromText",
    "Write",
    "WriteToFiles",
    "WriteToJsonLines",
    "WriteToText",
    "filesystems",
    "kafka",
]

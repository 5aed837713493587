"""The direct runner: single process, reference semantics."""
from headrace.runners.direct.runner import DirectPipelineResult, DirectRunner

__all__ = ["DirectRunner", "DirectPipelineResult"]

"""Runner interface, pipeline results, and the registry behind ``--runner``.

The registry maps names to dotted class paths and imports lazily, so the SDK
never imports a runner it is not asked for.
"""
from __future__ import annotations

import importlib
from typing import Any, Dict, Optional


class PipelineState:
    """The states of a pipeline run, named as in Beam."""

    UNKNOWN = "UNKNOWN"
    STOPPED = "STOPPED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    UPDATED = "UPDATED"
    DRAINING = "DRAINING"
    DRAINED = "DRAINED"
    PENDING = "PENDING"
    CANCELLING = "CANCELLING"

    _TERMINAL = frozenset({STOPPED, DONE, FAILED, CANCELLED, UPDATED, DRAINED})

    @classmethod
    def is_terminal(cls, state: str) -> bool:
        return state in cls._TERMINAL


class PipelineResult:
    """What ``Pipeline.run()`` returns: state, waiting, and metrics."""

    def __init__(self, state: str) -> None:
        self._state = state

    @property
    def state(self) -> str:
        return self._state

    def wait_until_finish(self, duration: Optional[float] = None) -> str:
        """Block until the pipeline finishes (``duration`` in milliseconds, as in Beam)."""
        return self._state

    def cancel(self) -> str:
        raise NotImplementedError(f"{type(self).__name__} cannot be cancelled")

    def metrics(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not report metrics")


class FinishedPipelineResult(PipelineResult):
    """A run that is over when ``run_pipeline`` returns: its state and its metric results."""

    def __init__(self, state: str, metric_results: Any) -> None:
        super().__init__(state)
        self._metrics = metric_results

    def metrics(self) -> Any:
        return self._metrics


class PipelineRunner:
    """Executes a pipeline graph. Subclasses must be constructible with no arguments."""

    def run_pipeline(self, pipeline: Any, options: Any) -> PipelineResult:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


_REGISTRY: Dict[str, str] = {
    "direct": "headrace.runners.direct.DirectRunner",
    "multiprocess": "headrace.runners.multiprocess.runner.MultiprocessRunner",
    "beam": "headrace.runners.beam.runner.BeamRunner",
}
#: Beam's runner names, so that Beam pipelines run unchanged on the closest headrace runner.
_ALIASES: Dict[str, str] = {
    "directrunner": "direct",
    "bundlebaseddirectrunner": "direct",
    "fnapirunner": "direct",
}
DEFAULT_RUNNER = "direct"


def register_runner(name: str, dotted_path: str) -> None:
    """Make ``--runner=name`` resolve to the class at ``dotted_path``."""
    _REGISTRY[name.lower()] = dotted_path


def available_runners() -> list:
    return sorted(_REGISTRY)


def create_runner(runner: Any) -> PipelineRunner:
    """Resolve ``--runner``: a registered name, a dotted class path, or a runner instance."""
    if runner is None:
        runner = DEFAULT_RUNNER
    if isinstance(runner, PipelineRunner):
        return runner
    if not isinstance(runner, str):
        raise TypeError(f"runner must be a name, a dotted class path or a PipelineRunner, "
                        f"got {runner!r:.100}")
    key = runner.lower()
    key = _ALIASES.get(key, key)
    if key in _REGISTRY:
        path = _REGISTRY[key]
    elif "." in runner:
        path = runner
    else:
        raise ValueError(f"Unknown runner {runner!r}. Available runners: "
                         f"{', '.join(available_runners())}; or give a dotted class path "
                         "such as mypackage.MyRunner")
    module_name, _, class_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"Cannot load runner {runner!r} from {path!r}: {exc}") from exc
    instance = cls()
    if not isinstance(instance, PipelineRunner):
        raise TypeError(f"Runner {path!r} is not a headrace PipelineRunner")
    return instance

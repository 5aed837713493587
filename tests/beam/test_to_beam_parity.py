"""``--runner=beam``: every Beam-parity builder of tests/parity, run by headrace on Beam,
gives what headrace's direct runner gives (which tests/parity shows equal to Beam's own).

Beam's DirectRunner takes seconds to start, so all builders run as composites of one
pipeline per runner (their labels are nested under the builder's name), and each of
their outputs is compared on its own.
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, Callable, Dict

import pytest
from parity import test_beam_parity, test_beam_parity_combiners, test_beam_parity_windows
from parity.harness import run
from streaming import test_userstate

import headrace

from .conftest import skip_unless_beam_installed


def _builders() -> Dict[str, Callable[[Any, Any], Any]]:
    found: Dict[str, Callable[[Any, Any], Any]] = {}
    for module in (test_beam_parity, test_beam_parity_combiners):
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("build_") and fn.__module__ == module.__name__:
                found[name[len("build_"):]] = fn
    for kind, fn in test_beam_parity_windows.BUILDERS.items():
        found[f"windows_{kind}"] = fn
    found["timestamps"] = test_beam_parity_windows.build_timestamps
    # Stateful DoFns in batch pipelines (the streaming ones need a TestStream each: see
    # test_to_beam_streaming.py).
    for name in ("batch_windows_and_keys", "batch_global_window", "batch_side_input"):
        found[f"userstate_{name}"] = getattr(test_userstate, f"build_{name}")
    return found


BUILDERS = _builders()


class _Scenario(headrace.PTransform):
    """One builder as a composite, so that many share a pipeline without label clashes."""

    def __init__(self, build: Callable[[Any, Any], Any]) -> None:
        super().__init__()
        self.build = build

    def expand(self, pbegin: Any) -> Any:
        outputs = self.build(headrace, pbegin.pipeline)
        return outputs if isinstance(outputs, dict) else {"out": outputs}


#: Where each runner's WriteToText writes (set by the fixture before the pipeline is built).
TEXT_OUT: Dict[str, Path] = {}


def build_text_io(beam: Any, p: Any) -> Dict[str, Any]:
    """ReadFromText -> WriteToText; the files themselves are compared by a test below."""
    runner = p.options.view_as(headrace.options.pipeline_options.StandardOptions).runner
    lines = p | "ReadKinglear" >> beam.io.ReadFromText(test_beam_parity.KINGLEAR)
    kept = lines | "Kings" >> beam.Filter(lambda line: "king" in line.lower())
    written = kept | "Write" >> beam.io.WriteToText(str(TEXT_OUT[runner] / "kings"),
                                                    file_name_suffix=".txt")
    return {"file_names": written | "BaseNames" >> beam.Map(os.path.basename)}


def build_all(beam: Any, p: Any) -> Dict[str, Any]:
    outputs = {}
    for tag, pcoll in build_text_io(beam, p).items():
        outputs[f"text_io__{tag}"] = pcoll
    for name, build in BUILDERS.items():
        for tag, pcoll in (p | name >> _Scenario(build)).items():
            outputs[f"{name}__{tag}"] = pcoll
    return outputs


@pytest.fixture(scope="module")
def both_runs(tmp_path_factory: Any) -> Dict[str, Any]:
    base = Path(tmp_path_factory.mktemp("to_beam_parity"))
    for runner in ("direct", "beam"):
        TEXT_OUT[runner] = base / f"text-{runner}"
        TEXT_OUT[runner].mkdir()
    return {runner: run(headrace, runner, build_all, base / runner)
            for runner in ("direct", "beam")}


skip_unless_beam_installed()


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_builder_same_on_beam_as_on_direct(name, both_runs):
    (direct, _), (on_beam, _) = both_runs["direct"], both_runs["beam"]
    tags = sorted(t for t in direct if t.startswith(f"{name}__"))
    assert tags, name
    for tag in tags:
        assert on_beam[tag] == direct[tag], f"{tag}: --runner=beam differs from direct"


def test_builders_produce_output(both_runs):
    """Guard against a vacuous pass: the bulk of outputs is non-empty."""
    direct, _ = both_runs["direct"]
    assert sum(1 for lines in direct.values() if lines) > 0.8 * len(direct)


def test_metrics_same_on_beam_as_on_direct(both_runs):
    from headrace.metrics.metric import MetricsFilter

    def summary(result: Any) -> tuple:
        def query(name: str) -> Any:
            return result.metrics().query(MetricsFilter().with_name(name))

        counters = {n: sum(r.committed for r in query(n)["counters"])
                    for n in ("elements", "chars")}
        dists = [r.committed for r in query("sizes")["distributions"]]
        assert len(dists) == 1, dists
        d = dists[0]
        steps = sorted(r.key.step for r in query("elements")["counters"])
        return counters, (d.sum, d.count, d.min, d.max), steps

    direct = summary(both_runs["direct"][1])
    assert direct[:2] == ({"elements": 5, "chars": 12}, (12, 5, 1, 4))
    assert summary(both_runs["beam"][1]) == direct


def test_write_to_text_files_identical(both_runs):
    def files(runner: str) -> Dict[str, bytes]:
        return {f.name: f.read_bytes() for f in sorted(TEXT_OUT[runner].iterdir())}

    direct = files("direct")
    assert list(direct) == ["kings-00000-of-00001.txt"]
    on_beam = files("beam")
    assert list(on_beam) == list(direct)
    # Same lines; their order within the file is the order Beam delivers them to the one
    # writer, which Beam does not promise to be the order the splits were read in.
    for name in direct:
        assert sorted(on_beam[name].splitlines()) == sorted(direct[name].splitlines()), name
    assert both_runs["beam"][0]["text_io__file_names"] == ["'kings-00000-of-00001.txt'"]

"""Portability between headrace and Apache Beam (in progress).

- ``BeamRunner`` (``--runner=beam``): translates a headrace pipeline to an Apache Beam pipeline
  and runs it on a Beam runner (``--beam_runner``).
- ``HeadraceRunner``: an ``apache_beam`` runner that runs Beam pipelines on headrace's runners.
"""


def __getattr__(name: str):
    # Lazy, so that importing this package (or --runner=beam) does not import apache_beam's
    # runner machinery until a Beam pipeline actually asks for HeadraceRunner.
    if name == "HeadraceRunner":
        from headrace.runners.beam.headrace_runner import HeadraceRunner

        return HeadraceRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

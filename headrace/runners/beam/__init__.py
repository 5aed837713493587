"""Portability between headrace and Apache Beam (in progress).

- ``BeamRunner`` (``--runner=beam``): translates a headrace pipeline to an Apache Beam pipeline
  and runs it on a Beam runner (``--beam_runner``).
- ``HeadraceRunner``: an ``apache_beam`` runner that runs Beam pipelines on headrace's runners.
"""

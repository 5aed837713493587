"""What a Beam pipeline prints or logs reaches the driver's streams and logging handlers,
from headrace's worker processes too (as Beam's ``LogElements`` tests expect)."""
from __future__ import annotations

import logging

import apache_beam as beam


def test_printed_output_reaches_the_drivers_stdout(make_pipeline_mp, capsys):
    with make_pipeline_mp() as p:
        _ = p | beam.Create(["a", "b"]) | beam.LogElements(prefix="seen_")
        _ = (p | "Partial" >> beam.Create(["no newline"])
             | beam.Map(lambda line: print(line, end="")))
    out = capsys.readouterr().out
    assert sorted(out.replace("no newline", "").splitlines()) == ["seen_a", "seen_b"]
    assert "no newline" in out


def test_log_records_reach_the_drivers_handlers(make_pipeline_mp, caplog):
    with caplog.at_level(logging.INFO):
        with make_pipeline_mp() as p:
            _ = (p | "Info" >> beam.Create(["i"])
                 | "I" >> beam.LogElements(prefix="info_", level=logging.INFO))
            _ = (p | "Error" >> beam.Create(["e"])
                 | "E" >> beam.LogElements(prefix="error_", level=logging.ERROR))
            _ = (p | "Debug" >> beam.Create(["d"])
                 | "D" >> beam.LogElements(prefix="debug_", level=logging.DEBUG))
    seen = {(record.levelname, record.getMessage()) for record in caplog.records
            if record.name == "apache_beam.transforms.util"}
    assert seen == {("INFO", "info_i"), ("ERROR", "error_e")}

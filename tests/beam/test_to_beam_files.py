"""WriteToFiles (a two-phase-commit sink) on ``--runner=beam``: each shard is published when
its writer finishes, as at the end of input on the direct runner."""
from __future__ import annotations

import headrace as hr
from headrace.io import WriteToFiles
from headrace.io.fileio import read_parts

from .conftest import skip_unless_beam_installed

skip_unless_beam_installed()


def test_write_to_files_publishes_its_parts_on_beam(tmp_path):
    values = [f"v{i}" for i in range(300)]
    for runner in ("direct", "beam"):
        with hr.Pipeline(runner=runner) as p:
            p | hr.Create(values) | WriteToFiles(str(tmp_path / runner), max_part_size=500)
        published = read_parts(str(tmp_path / runner))
        assert list(published) == [0]  # one writer, as on the direct runner
        assert sorted(published[0].decode().split()) == sorted(values)
        assert len(list((tmp_path / runner).glob("part-*"))) > 1  # rolled at 500 bytes
        assert list((tmp_path / runner / ".in-progress").iterdir()) == []

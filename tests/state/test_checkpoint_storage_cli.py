"""``headrace checkpoints list|show``, the checkpoint options, and the errors for a bad
``--checkpoint_dir``, over a local directory and S3 (a moto server on loopback)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from headrace.cli import main as headrace_main
from headrace.runners.state.checkpoint_storage import (
    CheckpointMetadata,
    CheckpointStorageConfigError,
    open_checkpoint_storage,
    storage_from_options,
)
from headrace.sdk.options import CheckpointingOptions, OptionsError, PipelineOptions

from .checkpoint_storage_support import new_bucket, write_files

pytestmark = pytest.mark.no_pipeline


def two_checkpoints(storage, tmp_path: Path) -> None:
    """Checkpoint 1: 2 subtasks of 'counts' and a source; checkpoint 2 adds one SST."""
    sst = write_files(tmp_path / "s1", {"1.sst": b"a" * 2048})
    handles = [storage.upload_task_state(1, "counts", i, shared_files=sst,
                                         private_files={"CURRENT": b"x"}).result(timeout=60)
               for i in (0, 1)]
    source = storage.upload_task_state(1, "read", 0, position={"offset": 42}).result(timeout=60)
    storage.commit(CheckpointMetadata(1, [*handles, source], job_id="wordcount", timestamp=0.0))
    more = write_files(tmp_path / "s2", {"2.sst": b"b" * 1024})
    handle = storage.upload_task_state(2, "counts", 0, shared_files={**sst, **more},
                                       private_files={"CURRENT": b"y"},
                                       previous=handles[0]).result(timeout=60)
    storage.commit(CheckpointMetadata(2, [handle, handles[1], source], job_id="wordcount",
                                      timestamp=86400.5))


def test_list_and_show(open_storage, storage_url, tmp_path, capsys):
    two_checkpoints(open_storage(), tmp_path)
    assert headrace_main(["checkpoints", "list", storage_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["ID", "KIND", "TIME (UTC)", "SIZE", "INCREMENTAL",
                                             "OPERATORS"]
    assert re.split(r"\s{2,}", lines[1]) == ["1", "checkpoint", "1970-01-01 00:00:00",
                                             "4.0 KiB", "4.0 KiB", "2"]
    # Checkpoint 2 uploaded one 1 KiB SST and subtask 0's 1-byte CURRENT.
    assert re.split(r"\s{2,}", lines[2]) == ["2", "checkpoint", "1970-01-02 00:00:00",
                                             "5.0 KiB", "1.0 KiB", "2"]
    assert len(lines) == 3

    assert headrace_main(["checkpoints", "show", storage_url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("checkpoint 2\n")
    assert "  job:          wordcount\n" in out
    assert "  time:         1970-01-02 00:00:00 UTC\n" in out
    assert "  incremental:  1.0 KiB (1025 bytes)\n" in out
    assert "    counts: 2 subtasks, 5.0 KiB\n" in out
    assert "      subtask 0: 3 files, 3.0 KiB (1.0 KiB new)\n" in out
    assert '      subtask 0: 0 files, 0 B (0 B new), position {"offset": 42}\n' in out

    assert headrace_main(["checkpoints", "show", storage_url, "1"]) == 0
    assert capsys.readouterr().out.startswith("checkpoint 1\n")
    assert headrace_main(["checkpoints", "show", storage_url, "7"]) == 1
    assert "no complete checkpoint 7" in capsys.readouterr().err


def test_the_console_script_runs_in_its_own_process(tmp_path):
    storage = open_checkpoint_storage(tmp_path / "c")
    two_checkpoints(storage, tmp_path)
    storage.close()
    done = subprocess.run([sys.executable, "-m", "headrace.cli", "checkpoints", "list",
                           str(tmp_path / "c")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == ["ID", "1", "2"]


def test_cli_on_empty_and_missing_locations(tmp_path, capsys):
    assert headrace_main(["checkpoints", "list", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"no complete checkpoints in {tmp_path}\n"
    assert headrace_main(["checkpoints", "show", str(tmp_path)]) == 1
    assert headrace_main(["checkpoints", "list", str(tmp_path / "nope")]) == 1
    assert "no such directory" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()  # inspecting creates nothing


def test_bad_checkpoint_dirs_are_named(tmp_path):
    (tmp_path / "file").write_text("x")
    cases = {
        "gs://bucket/x": "unsupported scheme 'gs'",
        "s3://": "no bucket",
        str(tmp_path / "file"): "exists and is not a directory",
        str(tmp_path / "file" / "below"): "not a writable directory",
        "": "--checkpoint_dir is empty",
    }
    for location, message in cases.items():
        with pytest.raises(CheckpointStorageConfigError, match="--checkpoint_dir") as info:
            open_checkpoint_storage(location)
        assert message in str(info.value)
    with pytest.raises(CheckpointStorageConfigError, match="--checkpoints_retained"):
        open_checkpoint_storage(tmp_path, retained=0)


def test_a_missing_bucket_is_named(s3_env):
    with pytest.raises(CheckpointStorageConfigError,
                       match=r"--checkpoint_dir s3://no-such-bucket-here/x/: bucket "
                             r"'no-such-bucket-here' does not exist"):
        open_checkpoint_storage("s3://no-such-bucket-here/x")


def test_s3_without_boto3_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(CheckpointStorageConfigError, match=r"headrace\[s3\]"):
        open_checkpoint_storage("s3://bucket/x")


def test_options_open_the_storage(s3_env, tmp_path):
    bucket = new_bucket()
    options = PipelineOptions([f"--checkpoint_dir=s3://{bucket}/job", "--checkpoints_retained=5",
                               "--checkpoint_interval=0.2"])
    view = options.view_as(CheckpointingOptions)
    assert (view.checkpoint_interval, view.min_pause_between_checkpoints,
            view.checkpoint_timeout) == (0.2, 0.0, 600.0)
    storage = storage_from_options(options)
    assert (storage.url, storage.retained) == (f"s3://{bucket}/job/", 5)
    storage.close()
    assert storage_from_options(PipelineOptions([])) is None
    with pytest.raises(OptionsError, match="--checkpoint_interval"):
        PipelineOptions(["--checkpoint_interval=0"])
    with pytest.raises(OptionsError, match="--checkpoints_retained"):
        PipelineOptions(["--checkpoints_retained=0"])

"""WriteToFiles in pipelines (every runner under test): each element once in the published
parts, formats, compression, rolling, reruns, errors; and to S3 (a moto server on loopback)."""
import gzip
import os

import pytest

import headrace as beam
from headrace.io import ReadFromText, WriteToFiles
from headrace.io.fileio import PartFileSink, read_parts
from headrace.sdk.coders import Coder
from headrace.testing.util import assert_that, equal_to


def run(build, argv=("--parallelism=2",), runner=None):
    argv = list(argv) + ["--quiet"] if runner == "multiprocess" else []
    with beam.Pipeline(argv=argv) as p:
        build(p)


def published_lines(path, **kwargs):
    return sorted(line for data in read_parts(path, **kwargs).values()
                  for line in data.decode().splitlines())


def hidden_files(path):
    """Files a reader of the directory must not see: anything left in progress."""
    hidden = os.path.join(path, ".in-progress")
    return [os.path.join(root, name) for root, _, names in os.walk(hidden) for name in names]


def visible_parts(path):
    """The published parts, as the Write's output names them (checked when it is emitted)."""
    return sorted(os.path.join(path, n) for n in os.listdir(path) if not n.startswith("."))


def test_every_element_is_published_once(tmp_path, runner):
    out = str(tmp_path / "out")
    values = [f"v{i}" for i in range(5000)]

    def check_files(files):
        assert sorted(files) == visible_parts(out), (files, visible_parts(out))

    def build(p):
        files = p | beam.Create(values) | WriteToFiles(out, suffix=".txt", max_part_size=4096)
        assert_that(files, check_files)

    run(build, runner=runner)
    assert published_lines(out, suffix=".txt") == sorted(values)
    assert hidden_files(out) == []
    names = [os.path.basename(f) for f in visible_parts(out)]
    assert len(names) >= 7  # 29 KB of lines roll at 4 KiB
    assert all(n.startswith("part-0000") and n.endswith(".txt") for n in names)


class UpperCoder(Coder):
    def encode(self, value):
        return value.upper().encode()

    def is_deterministic(self):
        return True


def test_format_fn_coder_and_compression(tmp_path, runner):
    def build(p):
        words = p | beam.Create(["x", "y"])
        words | "fmt" >> WriteToFiles(str(tmp_path / "fmt"), format_fn=lambda w: f"<{w}>")
        words | "bytes" >> WriteToFiles(str(tmp_path / "bytes"), format_fn=str.encode)
        words | "coder" >> WriteToFiles(str(tmp_path / "coder"), coder=UpperCoder())
        words | "gz" >> WriteToFiles(str(tmp_path / "gz"), suffix=".txt.gz")

    run(build, runner=runner)
    assert published_lines(str(tmp_path / "fmt")) == ["<x>", "<y>"]
    assert published_lines(str(tmp_path / "bytes")) == ["x", "y"]
    assert published_lines(str(tmp_path / "coder")) == ["X", "Y"]
    gz_parts = [n for n in os.listdir(tmp_path / "gz") if n.endswith(".txt.gz")]
    assert gz_parts and sorted(
        line for n in gz_parts
        for line in gzip.decompress((tmp_path / "gz" / n).read_bytes()).decode().split()
    ) == ["x", "y"]
    assert published_lines(str(tmp_path / "gz"), suffix=".txt.gz") == ["x", "y"]


def test_a_second_run_continues_the_part_numbers_and_keeps_the_first_runs_parts(tmp_path,
                                                                             runner):
    out = str(tmp_path / "out")
    run(lambda p: p | beam.Create(["first"]) | WriteToFiles(out), runner=runner)
    before = set(os.listdir(out))
    run(lambda p: p | beam.Create(["second"]) | WriteToFiles(out), runner=runner)
    assert before < set(os.listdir(out))
    assert published_lines(out) == ["first", "second"]


def test_published_parts_read_back_with_read_from_text(tmp_path, runner):
    out = str(tmp_path / "out")
    run(lambda p: p | beam.Create(range(100)) | WriteToFiles(out, suffix=".csv"),
        runner=runner)

    def build(p):
        got = p | ReadFromText(os.path.join(out, "*.csv")) | beam.Map(int)
        assert_that(got, equal_to(list(range(100))))

    run(build, runner=runner)


def test_an_unwritable_path_is_an_error_naming_the_sink_and_path(tmp_path, runner):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    out = str(blocker / "out")
    with pytest.raises(OSError, match=r"WriteToFiles\(.*a-file/out\): cannot (create part file"
                                      r"|open writer)"):
        run(lambda p: p | beam.Create(["x"]) | WriteToFiles(out), runner=runner)


def test_a_format_fn_returning_neither_str_nor_bytes_is_named(tmp_path, runner):
    with pytest.raises(TypeError, match=r"WriteToFiles\(.*\): format_fn must return str or "
                                        r"bytes, got int for 'x'"):
        run(lambda p: p | beam.Create(["x"]) | WriteToFiles(str(tmp_path), format_fn=len),
            runner=runner)


@pytest.mark.no_pipeline
@pytest.mark.parametrize("kwargs, error", [
    ({"path": ""}, r"WriteToFiles: path must be a non-empty string"),
    ({"prefix": "a/b"}, r"WriteToFiles\('/out'\): prefix must be .* got 'a/b'"),
    ({"suffix": "/x"}, r"suffix must be a string without '/'"),
    ({"coder": UpperCoder(), "format_fn": str}, r"a coder or a format_fn, not both"),
    ({"coder": 42}, r"coder must have an encode\(value\) method"),
    ({"format_fn": 3}, r"format_fn must be callable"),
    ({"max_part_size": 0}, r"max_part_size must be a positive int \(bytes\), got 0"),
    ({"compression_type": "zip"}, r"WriteToFiles\('/out'\): .*zip"),
])
def test_bad_arguments_are_named(kwargs, error):
    kwargs = {"path": "/out", **kwargs}
    with pytest.raises((TypeError, ValueError), match=error):
        WriteToFiles(**kwargs)


@pytest.mark.no_pipeline
def test_the_sink_pickles_and_names_itself():
    import pickle

    sink = pickle.loads(pickle.dumps(PartFileSink("s3://bucket/out/", prefix="events")))
    assert sink.display_name() == "WriteToFiles(s3://bucket/out)"
    assert sink.final_path(3, 12) == "s3://bucket/out/events-00003-000012"


# -- S3 ---------------------------------------------------------------------------------------

def s3_lines(bucket, prefix):
    import boto3

    client = boto3.client("s3")
    keys = [item["Key"] for item in client.list_objects_v2(
        Bucket=bucket, Prefix=prefix).get("Contents", ())]
    return keys, sorted(line for key in keys if "/." not in key
                        for line in client.get_object(Bucket=bucket, Key=key)["Body"]
                        .read().decode().splitlines())


def test_write_to_files_on_s3(s3_env, runner):
    from state.checkpoint_storage_support import new_bucket

    bucket = new_bucket()
    values = [f"line {i}" for i in range(3000)]
    run(lambda p: p | beam.Create(values)
        | WriteToFiles(f"s3://{bucket}/out", suffix=".txt", max_part_size=10_000),
        runner=runner)
    keys, got = s3_lines(bucket, "out/")
    assert got == sorted(values)
    assert not [k for k in keys if "/." in k]  # no in-progress key left
    assert len(keys) >= 3 and all(k.startswith("out/part-") for k in keys)
    assert published_lines(f"s3://{bucket}/out", suffix=".txt") == sorted(values)


def test_a_missing_bucket_is_an_error_naming_the_sink_and_bucket(s3_env, runner):
    with pytest.raises(FileNotFoundError, match=r"WriteToFiles\(s3://no-such-bucket-x/out\): "
                                                r".*bucket 'no-such-bucket-x' does not exist"):
        run(lambda p: p | beam.Create(["x"]) | WriteToFiles("s3://no-such-bucket-x/out"),
            runner=runner)


def test_destinations_write_a_subdirectory_each(tmp_path, runner):
    out = str(tmp_path / "out")
    events = [{"day": f"2024-05-0{1 + i % 3}", "n": i} for i in range(300)]
    run(lambda p: p | beam.Create(events)
        | WriteToFiles(out, destination=lambda e: f"day={e['day']}/",
                       format_fn=lambda e: str(e["n"]), max_part_size=100), runner=runner)
    assert sorted(os.listdir(out)) == [".in-progress", "day=2024-05-01", "day=2024-05-02",
                                       "day=2024-05-03"]
    for day in range(3):
        directory = os.path.join(out, f"day=2024-05-0{1 + day}")
        assert len(os.listdir(directory)) > 1  # rolled at 100 bytes
        assert sorted(int(x) for x in published_lines(directory)) == list(range(day, 300, 3))
    assert read_parts(out) == {}  # nothing directly in out
    assert sorted(int(x) for data in read_parts(out, destinations=True).values()
                  for x in data.split()) == list(range(300))
    # Part numbers are unique per subtask across the destinations.
    names = [n for _, _, ns in os.walk(out) for n in ns]
    assert len(names) == len(set(names))
    assert hidden_files(out) == []


@pytest.mark.parametrize("destination, error", [
    (lambda e: "../up", r"WriteToFiles\(.*\): destination '../up' for 'x' is not a relative"),
    (lambda e: "/abs", r"destination '/abs' for 'x' is not a relative directory"),
    (lambda e: "a/.hidden", r"destination 'a/.hidden'"),
    (lambda e: "a//b", r"destination 'a//b'"),
    (lambda e: 7, r"WriteToFiles\(.*\): destination must return a str .* got int for 'x'"),
])
def test_a_bad_destination_is_named(tmp_path, runner, destination, error):
    with pytest.raises((TypeError, ValueError), match=error):
        run(lambda p: p | beam.Create(["x"])
            | WriteToFiles(str(tmp_path), destination=destination), runner=runner)

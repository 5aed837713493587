"""s3:// paths through the filesystem layer (real boto3 over HTTP to a moto server on loopback),
and ReadFromText / WriteToText on them."""
import gzip

import pytest

import headrace as beam
from headrace.io import ReadFromText, WriteToText, filesystems
from headrace.io.s3_filesystem import S3FileSystem, split_s3_path
from headrace.testing.util import assert_that, equal_to


@pytest.fixture
def bucket(s3_env):
    from state.checkpoint_storage_support import new_bucket

    return new_bucket()


def put(path, data):
    with filesystems.open_write(path, filesystems.CompressionTypes.UNCOMPRESSED) as f:
        f.write(data)


@pytest.mark.no_pipeline
def test_match_exists_size_read_delete(bucket):
    base = f"s3://{bucket}/data"
    for name, data in [("a.txt", b"alpha"), ("b.txt", b"bravo!"), ("sub/c.txt", b"c"),
                       ("x.csv", b"")]:
        put(f"{base}/{name}", data)
    assert filesystems.match(f"{base}/*.txt") == [f"{base}/a.txt", f"{base}/b.txt"]
    assert filesystems.match(f"{base}/**.txt") == [f"{base}/a.txt", f"{base}/b.txt",
                                                   f"{base}/sub/c.txt"]
    assert filesystems.match(f"{base}/") == [f"{base}/a.txt", f"{base}/b.txt",
                                             f"{base}/x.csv"]
    assert filesystems.match(f"{base}/a.txt") == [f"{base}/a.txt"]
    assert filesystems.match(f"{base}/nope.txt") == []
    assert filesystems.size(f"{base}/b.txt") == 6
    assert filesystems.exists(f"{base}/sub") and filesystems.exists(f"{base}/x.csv")
    assert not filesystems.exists(f"{base}/su")
    with filesystems.open_read(f"{base}/b.txt") as f:
        assert f.read(2) == b"br"
        f.seek(4)
        assert f.read() == b"o!"
        f.seek(-3, 2)
        assert f.read(1) == b"v"
    filesystems.delete(f"{base}/sub")
    assert filesystems.match(f"{base}/**") == [f"{base}/a.txt", f"{base}/b.txt",
                                               f"{base}/x.csv"]
    with pytest.raises(FileNotFoundError, match="no such object"):
        filesystems.size(f"{base}/sub/c.txt")
    with pytest.raises(FileNotFoundError, match="no such object or directory"):
        filesystems.delete(f"{base}/sub")


@pytest.mark.no_pipeline
def test_rename_moves_and_compression_applies(bucket):
    src, dst = f"s3://{bucket}/tmp/x.gz", f"s3://{bucket}/final/x.gz"
    with filesystems.open_write(src) as f:
        f.write(b"zipped text")
    filesystems.rename(src, dst)
    assert not filesystems.exists(src)
    with filesystems.open_read(dst, filesystems.CompressionTypes.UNCOMPRESSED) as f:
        assert gzip.decompress(f.read()) == b"zipped text"
    with filesystems.open_read(dst) as f:
        assert f.read() == b"zipped text"
    with pytest.raises(FileNotFoundError, match=r"tmp/x.gz: no such object"):
        filesystems.rename(src, dst)


@pytest.mark.slow
@pytest.mark.no_pipeline
def test_large_files_go_up_in_parts_and_read_back_in_ranges(bucket):
    import boto3

    fs = S3FileSystem(multipart_threshold=5 << 20)
    path = f"s3://{bucket}/big.bin"
    data = bytes(range(256)) * (11 << 12)  # 11 MiB: three parts of 5 MiB at most
    with fs.open_write(path) as f:
        for start in range(0, len(data), 1 << 20):
            f.write(data[start:start + (1 << 20)])
    etag = boto3.client("s3").head_object(Bucket=bucket, Key="big.bin")["ETag"]
    assert etag.strip('"').endswith("-3")  # a multipart upload's ETag counts its parts
    with fs.open_read(path) as f:
        f.seek(7 << 20)
        assert f.read(1000) == data[7 << 20:(7 << 20) + 1000]
        f.seek(0)
        assert f.read() == data


@pytest.mark.no_pipeline
def test_errors_name_the_path_and_bucket(s3_env):
    with pytest.raises(FileNotFoundError, match=r"s3://no-such-bkt/a/\*: bucket 'no-such-bkt' "
                                                r"does not exist"):
        filesystems.match("s3://no-such-bkt/a/*")
    with pytest.raises(FileNotFoundError, match=r"bucket 'no-such-bkt' does not exist"):
        put("s3://no-such-bkt/a/x", b"x")
    with pytest.raises(ValueError, match=r"no bucket"):
        split_s3_path("s3:///key")


def test_write_to_text_and_read_from_text_on_s3(bucket, runner):
    prefix = f"s3://{bucket}/text/out"
    argv = ["--parallelism=2", "--quiet"] if runner == "multiprocess" else []
    with beam.Pipeline(argv=argv) as p:
        p | beam.Create([f"row {i}" for i in range(500)]) | WriteToText(prefix, ".txt.gz",
                                                                         num_shards=3)
    # Every object, temporary ones included: only the shards are left.
    assert filesystems.match(f"s3://{bucket}/**") == [
        f"{prefix}-0000{i}-of-00003.txt.gz" for i in range(3)]
    with beam.Pipeline(argv=argv) as p:
        got = p | ReadFromText(f"s3://{bucket}/text/*.gz")
        assert_that(got, equal_to([f"row {i}" for i in range(500)]))


def test_read_from_text_splits_an_s3_file_by_byte_ranges(bucket, runner):
    path = f"s3://{bucket}/lines.txt"
    put(path, b"".join(b"%d\n" % i for i in range(20000)))
    argv = ["--parallelism=2", "--quiet"] if runner == "multiprocess" else []
    with beam.Pipeline(argv=argv) as p:
        got = p | ReadFromText(path, min_bundle_size=10_000) | beam.Map(int)
        assert_that(got, equal_to(list(range(20000))))

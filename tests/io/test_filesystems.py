"""The filesystem layer: glob matching, compression, rename/delete, and the scheme registry."""
import bz2
import gzip
import io
import lzma
import os
import re

import pytest

from headrace.io import filesystems
from headrace.io.filesystems import CompressionTypes, FileSystem

pytestmark = pytest.mark.no_pipeline


def touch(path, data=b""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


@pytest.fixture
def tree(tmp_path):
    d = str(tmp_path)
    for rel in ["a.txt", "b.txt", "c.csv", "sub/d.txt", "sub/deep/e.txt", "x1.log", "x2.log",
                "xa.log", ".hidden.txt"]:
        touch(os.path.join(d, rel))
    return d


def rel(root, paths):
    return [os.path.relpath(p, root) for p in paths]


class TestMatch:
    def test_star_stays_in_directory_and_results_are_sorted(self, tree):
        assert rel(tree, filesystems.match(os.path.join(tree, "*.txt"))) == [
            ".hidden.txt", "a.txt", "b.txt"]

    def test_double_star_crosses_directories(self, tree):
        assert rel(tree, filesystems.match(os.path.join(tree, "**.txt"))) == [
            ".hidden.txt", "a.txt", "b.txt", "sub/d.txt", "sub/deep/e.txt"]
        assert rel(tree, filesystems.match(os.path.join(tree, "sub/**"))) == [
            "sub/d.txt", "sub/deep/e.txt"]

    def test_glob_in_a_directory_component(self, tree):
        assert rel(tree, filesystems.match(os.path.join(tree, "s*/*.txt"))) == ["sub/d.txt"]

    def test_question_mark_and_character_classes(self, tree):
        j = os.path.join
        assert rel(tree, filesystems.match(j(tree, "x?.log"))) == ["x1.log", "x2.log", "xa.log"]
        assert rel(tree, filesystems.match(j(tree, "x[12].log"))) == ["x1.log", "x2.log"]
        assert rel(tree, filesystems.match(j(tree, "x[0-9].log"))) == ["x1.log", "x2.log"]
        assert rel(tree, filesystems.match(j(tree, "x[!12].log"))) == ["xa.log"]

    def test_trailing_slash_matches_files_in_the_directory(self, tree):
        assert rel(tree, filesystems.match(os.path.join(tree, "sub") + "/")) == ["sub/d.txt"]

    def test_plain_paths(self, tree):
        path = os.path.join(tree, "a.txt")
        assert filesystems.match(path) == [path]
        assert filesystems.match(os.path.join(tree, "missing.txt")) == []
        assert filesystems.match(os.path.join(tree, "sub")) == []  # directories are not files
        assert filesystems.match(os.path.join(tree, "nodir", "*.txt")) == []

    def test_relative_patterns(self, tree, monkeypatch):
        monkeypatch.chdir(tree)
        assert filesystems.match("*.csv") == ["c.csv"]
        assert filesystems.match("sub/*.txt") == ["sub/d.txt"]
        assert filesystems.match("./sub/*.txt") == ["./sub/d.txt"]

    def test_file_scheme_is_kept_in_results(self, tree):
        assert filesystems.match("file://" + os.path.join(tree, "*.csv")) == [
            "file://" + os.path.join(tree, "c.csv")]

    def test_escape_glob_matches_names_with_glob_characters(self, tmp_path):
        path = touch(os.path.join(str(tmp_path), "we[ir]d*name?.txt"))
        touch(os.path.join(str(tmp_path), "weidname.txt"))
        pattern = filesystems.escape_glob(os.path.join(str(tmp_path), "we[ir]d*name?")) + ".*"
        assert filesystems.match(pattern) == [path]

    def test_glob_to_regex(self):
        def m(pattern, path):
            return re.fullmatch(filesystems.glob_to_regex(pattern), path) is not None
        assert m("/a/*.txt", "/a/b.txt") and not m("/a/*.txt", "/a/b/c.txt")
        assert m("/a/**/c.txt", "/a/b/x/c.txt")
        assert not m("/a/[!x]", "/a//")  # a negated class never matches a separator
        assert m("/a/[", "/a/[")  # an unclosed bracket is literal
        assert m("/a/[]]", "/a/]")


class TestCompression:
    def test_detect_and_resolve(self):
        assert CompressionTypes.detect_compression_type("a.gz") == "gzip"
        assert CompressionTypes.detect_compression_type("a.BZ2") == "bzip2"
        assert CompressionTypes.detect_compression_type("a.xz") == "lzma"
        assert CompressionTypes.detect_compression_type("a.gz.txt") == "uncompressed"
        assert CompressionTypes.resolve("a.gz", "auto") == "gzip"
        assert CompressionTypes.resolve("a.txt", "gzip") == "gzip"

    def test_bad_compression_types_are_refused_with_the_path(self):
        with pytest.raises(ValueError, match=r"compression_type must be one of.*'zip'.*a\.txt"):
            CompressionTypes.resolve("a.txt", "zip")
        with pytest.raises(ValueError, match=r"a\.zst.*zstd"):
            CompressionTypes.resolve("a.zst", "auto")
        assert CompressionTypes.resolve("a.zst", "uncompressed") == "uncompressed"

    @pytest.mark.parametrize("name, decompress", [
        ("f.gz", gzip.decompress), ("f.bz2", bz2.decompress), ("f.xz", lzma.decompress),
        ("f.txt", lambda b: b)])
    def test_roundtrip_by_extension(self, tmp_path, name, decompress):
        path = os.path.join(str(tmp_path), "deep", name)
        with filesystems.open_write(path) as f:
            f.write(b"hello\n" * 1000)
        with open(path, "rb") as f:
            assert decompress(f.read()) == b"hello\n" * 1000
        with filesystems.open_read(path) as f:
            assert f.read() == b"hello\n" * 1000

    def test_explicit_type_overrides_extension(self, tmp_path):
        path = os.path.join(str(tmp_path), "f.gz")
        with filesystems.open_write(path, "uncompressed") as f:
            f.write(b"plain")
        with filesystems.open_read(path, "uncompressed") as f:
            assert f.read() == b"plain"
        with pytest.raises(OSError):
            with filesystems.open_read(path) as f:
                f.read()

    def test_compressed_read_can_seek_forward(self, tmp_path):
        path = os.path.join(str(tmp_path), "f.gz")
        with filesystems.open_write(path) as f:
            f.write(b"0123456789")
        with filesystems.open_read(path) as f:
            f.seek(4)
            assert f.read() == b"456789"

    def test_closing_a_compressed_stream_closes_the_file(self, tmp_path):
        path = os.path.join(str(tmp_path), "f.gz")
        stream = filesystems.open_write(path)
        stream.write(b"x")
        stream.close()
        assert stream._raw.closed

    @pytest.mark.parametrize("kind", ["gzip", "bzip2", "lzma"])
    def test_concatenated_streams_read_as_one(self, tmp_path, kind):
        path = os.path.join(str(tmp_path), "f")
        with open(path, "wb") as f:
            f.write(filesystems.compress(b"ab\n", kind) + filesystems.compress(b"cd\n", kind))
        with filesystems.open_read(path, kind) as f:
            assert f.read() == b"ab\ncd\n"


class TestFileOperations:
    def test_rename_replaces_and_creates_parents(self, tmp_path):
        d = str(tmp_path)
        src, dst = touch(os.path.join(d, "src"), b"new"), touch(os.path.join(d, "dst"), b"old")
        filesystems.rename(src, dst)
        assert open(dst, "rb").read() == b"new" and not os.path.exists(src)
        filesystems.rename(dst, os.path.join(d, "x", "y", "moved"))
        assert os.path.exists(os.path.join(d, "x", "y", "moved"))

    def test_delete_exists_size(self, tmp_path):
        d = str(tmp_path)
        f = touch(os.path.join(d, "dir", "f"), b"1234")
        assert filesystems.exists(f) and filesystems.size(f) == 4
        filesystems.delete(f)
        assert not filesystems.exists(f)
        touch(os.path.join(d, "dir", "sub", "g"))
        filesystems.delete(os.path.join(d, "dir"))
        assert not filesystems.exists(os.path.join(d, "dir"))
        with pytest.raises(FileNotFoundError):
            filesystems.delete(os.path.join(d, "dir"))

    def test_join_and_split(self):
        assert filesystems.join("/a", "b", "c.txt") == "/a/b/c.txt"
        assert filesystems.split("/a/b/c.txt") == ("/a/b", "c.txt")
        assert filesystems.split("s3://bkt/k/x") == ("s3://bkt/k", "x")


class _MemoryFileSystem(FileSystem):
    """A toy filesystem showing that schemes plug in without changes elsewhere."""

    def __init__(self):
        self.files = {}

    def match(self, pattern):
        regex = re.compile(filesystems.glob_to_regex(pattern))
        return sorted(p for p in self.files if regex.fullmatch(p))

    def open_read(self, path):
        return io.BytesIO(self.files[path])

    def open_write(self, path):
        fs = self

        class _Writer(io.BytesIO):
            def close(self):
                fs.files[path] = self.getvalue()
                super().close()
        return _Writer()

    def rename(self, source, destination):
        self.files[destination] = self.files.pop(source)

    def delete(self, path):
        del self.files[path]

    def exists(self, path):
        return path in self.files

    def size(self, path):
        return len(self.files[path])


class TestRegistry:
    def test_unknown_scheme_is_a_clear_error(self):
        with pytest.raises(ValueError, match=r"No filesystem is registered for scheme 'gs://'"
                                             r".*gs://bucket/x"):
            filesystems.match("gs://bucket/x*")

    def test_register_requires_a_filesystem(self):
        with pytest.raises(TypeError, match="needs a FileSystem"):
            filesystems.register_filesystem("mem", object())

    def test_registered_scheme_serves_all_operations(self, monkeypatch):
        monkeypatch.setattr(filesystems, "_FILESYSTEMS", dict(filesystems._FILESYSTEMS))
        mem = _MemoryFileSystem()
        filesystems.register_filesystem("mem", mem)
        with filesystems.open_write("mem://b/x.gz") as f:
            f.write(b"data")
        assert gzip.decompress(mem.files["mem://b/x.gz"]) == b"data"
        assert filesystems.match("mem://b/*") == ["mem://b/x.gz"]
        filesystems.rename("mem://b/x.gz", "mem://b/y.gz")
        with filesystems.open_read("mem://b/y.gz") as f:
            assert f.read() == b"data"
        assert filesystems.size("mem://b/y.gz") == len(mem.files["mem://b/y.gz"])
        filesystems.delete("mem://b/y.gz")
        assert not filesystems.exists("mem://b/y.gz")
        with pytest.raises(ValueError, match="different filesystems"):
            filesystems.rename("mem://b/z", "/tmp/z")

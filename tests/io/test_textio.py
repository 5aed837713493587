"""TextSource / TextSink through the io_base interfaces, compared with Beam where it matters."""
import bz2
import gzip
import lzma
import os
import random

import pytest

from headrace.io import text_sink
from headrace.io.textio import ReadFromText, TextSink, TextSource, WriteToText
from headrace.sdk.coders import BytesCoder

# ---------------------------------------------------------------------------- helpers


def write_file(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(
        os.path.splitext(path)[1], open)
    with opener(path, "wb") as f:
        f.write(data)
    return path


def read_split(split, batch=1000, position=None):
    reader = split.open(position)
    out = []
    try:
        while True:
            got = reader.read_batch(batch)
            if got is None:
                return out
            out.extend(got)
    finally:
        reader.close()


def read_source(source, desired_num_splits=1):
    return [r for split in source.split(desired_num_splits) for r in read_split(split)]


def beam_read(pattern, **kwargs):
    textio_beam = pytest.importorskip("apache_beam.io.textio")
    from apache_beam.coders import coders
    from apache_beam.io import source_test_utils

    kwargs.setdefault("strip_trailing_newlines", True)
    kwargs.setdefault("coder", coders.StrUtf8Coder())
    source = textio_beam._TextSource(pattern, 0, "auto", **kwargs)
    return source_test_utils.read_from_source(source)


def run_sink(sink, per_writer):
    """Write ``per_writer[i]`` with writer i of len(per_writer); return finalize's file names."""
    results = []
    for index, elements in enumerate(per_writer):
        writer = sink.open_writer(index, len(per_writer))
        writer.write_batch(elements)
        results.append(writer.close())
    return sink.finalize(results)


def contents(path):
    with open(path, "rb") as f:
        data = f.read()
    return gzip.decompress(data) if path.endswith(".gz") else data


def listing(directory):
    return sorted(os.listdir(directory))


TRICKY = {
    "lf": b"a\nb\nc\n",
    "crlf": b"a\r\nb\r\nc\r\n",
    "no_trailing_newline": b"a\nb\nc",
    "empty": b"",
    "only_newline": b"\n",
    "only_crlf": b"\r\n",
    "blank_lines": b"\n\na\n\n\nb\n\n",
    "mixed": b"a\r\n\r\nb\nc\r\n\rd\re\n",
    "lone_cr_at_end": b"a\nb\r",
    "unicode": "é\nü€\n漢字".encode(),
}

# ---------------------------------------------------------------------------- reading


class TestReadParityWithBeam:
    @pytest.mark.parametrize("name", sorted(TRICKY))
    @pytest.mark.parametrize("strip", [True, False])
    def test_tricky_files(self, tmp_path, name, strip):
        path = write_file(str(tmp_path / f"{name}.txt"), TRICKY[name])
        expected = beam_read(path, strip_trailing_newlines=strip)
        assert read_source(TextSource(path, strip_trailing_newlines=strip)) == expected
        for splits in (2, 3, 7):
            got = read_source(TextSource(path, strip_trailing_newlines=strip), splits)
            assert got == expected, splits

    @pytest.mark.parametrize("name", ["lf", "crlf", "no_trailing_newline", "empty", "blank_lines"])
    @pytest.mark.parametrize("ext", [".gz", ".bz2"])
    def test_compressed_files(self, tmp_path, name, ext):
        path = write_file(str(tmp_path / f"{name}.txt{ext}"), TRICKY[name])
        source = TextSource(path)
        assert len(source.split(8)) == 1
        assert read_source(source, 8) == beam_read(path)

    @pytest.mark.parametrize("skip", [0, 1, 2, 5])
    def test_skip_header_lines_per_file(self, tmp_path, skip):
        for i in range(3):
            write_file(str(tmp_path / f"f{i}.csv"), f"h1\nh2\n{i},a\n{i},b\n".encode())
        pattern = str(tmp_path / "*.csv")
        expected = beam_read(pattern, skip_header_lines=skip)
        assert sorted(read_source(TextSource(pattern, skip_header_lines=skip))) == sorted(expected)
        assert sorted(read_source(TextSource(pattern, skip_header_lines=skip), 10)) == sorted(
            expected)

    @pytest.mark.parametrize("delimiter, escapechar", [
        (b"|", None), (b"<>", None), (b";", b"\\"), (None, b"\\")])
    def test_custom_delimiter_and_escapechar(self, tmp_path, delimiter, escapechar):
        data = b"a|b<>c;d\\;e\\\\;f\\\ng\n\r\nh<>\\|" * 3
        path = write_file(str(tmp_path / "d.txt"), data)
        kw = dict(delimiter=delimiter, escapechar=escapechar)
        expected = beam_read(path, **kw)
        for splits in (1, 4, 13):
            assert read_source(TextSource(path, **kw), splits) == expected


    def test_escaped_delimiter_followed_by_a_delimiter(self, tmp_path):
        # Beam 2.77 skips the byte after an escaped delimiter and so misses the second
        # "|" here; headrace ends the record there, as the escaping rules say.
        path = write_file(str(tmp_path / "e.txt"), b"\\|\\||b")
        assert read_source(TextSource(path, delimiter=b"|", escapechar=b"\\")) == [
            "\\|\\|", "b"]


class TestSplitting:
    def _random_file(self, path, seed, crlf=False):
        rng = random.Random(seed)
        lines = ["x" * rng.choice([0, 0, 1, 5, 30, 200]) + str(i) * rng.randint(0, 1)
                 for i in range(rng.randint(0, 300))]
        newline = "\r\n" if crlf else "\n"
        data = newline.join(lines) + rng.choice(["", newline])
        write_file(path, data.encode())
        records = data.split(newline)
        return records[:-1] if records[-1] == "" else records  # no record after the last newline

    @pytest.mark.parametrize("seed", range(25))
    def test_every_record_is_read_exactly_once(self, tmp_path, seed):
        path = str(tmp_path / "r.txt")
        expected = self._random_file(path, seed, crlf=seed % 2 == 1)
        for splits in (1, 2, 5, 16, 97):
            assert read_source(TextSource(path), splits) == expected, splits
        for batch in (1, 3):
            got = [r for split in TextSource(path).split(7) for r in read_split(split, batch)]
            assert got == expected, batch

    @pytest.mark.parametrize("kwargs", [
        dict(), dict(delimiter=b"|"), dict(delimiter=b"<>"), dict(escapechar=b"\\"),
        dict(delimiter=b"<>", escapechar=b"\\"), dict(strip_trailing_newlines=False),
        dict(skip_header_lines=2, escapechar=b"\\", strip_trailing_newlines=False)])
    def test_random_bytes_split_anywhere(self, tmp_path, kwargs):
        rng = random.Random(repr(kwargs))
        for i in range(40):
            data = b"".join(rng.choice([b"a", b"|", b"\\", b"\n", b"\r", b"<", b">"])
                            for _ in range(rng.randint(0, 80)))
            path = write_file(str(tmp_path / f"f{i}.txt"), data)
            whole = read_source(TextSource(path, **kwargs))
            if "escapechar" not in kwargs:  # see test_escaped_delimiter_followed_by_a_delimiter
                assert whole == beam_read(path, **kwargs), data
            for splits in (3, 10, 80):
                assert read_source(TextSource(path, **kwargs), splits) == whole, (data, splits)

    def test_splits_cover_files_in_byte_ranges(self, tmp_path):
        write_file(str(tmp_path / "a.txt"), b"x\n" * 500)
        write_file(str(tmp_path / "b.txt"), b"y\n" * 100)
        write_file(str(tmp_path / "c.txt.gz"), b"z\n" * 100)
        splits = TextSource(str(tmp_path / "*")).split(6)
        ranges = [(os.path.basename(s.path), s.start, s.end) for s in splits]
        assert ranges == [("a.txt", 0, 200), ("a.txt", 200, 400), ("a.txt", 400, 600),
                          ("a.txt", 600, 800), ("a.txt", 800, None), ("b.txt", 0, None),
                          ("c.txt.gz", 0, None)]

    def test_min_bundle_size_limits_splitting(self, tmp_path):
        write_file(str(tmp_path / "a.txt"), b"x\n" * 500)
        assert len(TextSource(str(tmp_path / "a.txt"), min_bundle_size=600).split(100)) == 2

    def test_lines_longer_than_the_read_buffer(self, tmp_path):
        lines = [b"a" * 200_000, b"", b"b" * 70_000, b"c"]
        path = write_file(str(tmp_path / "long.txt"), b"\r\n".join(lines) + b"\r\n")
        expected = [line.decode() for line in lines]
        for splits in (1, 3, 11):
            assert read_source(TextSource(path), splits) == expected

    def test_header_longer_than_a_split(self, tmp_path):
        path = write_file(str(tmp_path / "h.txt"), b"h" * 100 + b"\n" + b"r1\nr2\n")
        assert read_source(TextSource(path, skip_header_lines=1), 20) == ["r1", "r2"]


    def test_lzma_and_file_urls(self, tmp_path):
        write_file(str(tmp_path / "a.txt.xz"), b"x\ny\n")
        assert read_source(TextSource("file://" + str(tmp_path / "*.xz"))) == ["x", "y"]


class TestPositions:
    @pytest.mark.parametrize("name", ["a.txt", "a.txt.gz"])
    def test_resume_after_every_batch(self, tmp_path, name):
        lines = [f"line {i}" for i in range(50)]
        path = write_file(str(tmp_path / name), ("hdr\n" + "\n".join(lines)).encode())
        for split in TextSource(path, skip_header_lines=1).split(3):
            whole = read_split(split)
            reader = split.open()
            seen = []
            while True:
                position = reader.position()
                assert read_split(split, position=position) == whole[len(seen):]
                batch = reader.read_batch(7)
                if batch is None:
                    break
                seen.extend(batch)
            reader.close()
            assert seen == whole

    def test_position_is_the_byte_offset_after_the_last_line(self, tmp_path):
        path = write_file(str(tmp_path / "a.txt"), b"ab\r\ncd\nef")
        reader = TextSource(path).split(1)[0].open()
        assert reader.read_batch(1) == ["ab"] and reader.position() == 4
        assert reader.read_batch(1) == ["cd"] and reader.position() == 7
        assert reader.read_batch(5) == ["ef"] and reader.position() == 9
        assert reader.read_batch(5) is None
        reader.close()


class TestReadErrors:
    def test_no_match_fails_at_construction_naming_the_pattern(self, tmp_path):
        pattern = str(tmp_path / "nothing-*.txt")
        with pytest.raises(IOError) as info:
            ReadFromText(pattern)
        assert str(info.value) == (
            f"ReadFromText: No files found based on the file pattern '{pattern}'")

    def test_validate_false_defers_the_error_to_split(self, tmp_path):
        pattern = str(tmp_path / "later-*.txt")
        transform = ReadFromText(pattern, validate=False)
        with pytest.raises(IOError, match="No files found.*later-"):
            transform._source.split(1)
        write_file(str(tmp_path / "later-1.txt"), b"x\n")
        assert read_source(transform._source) == ["x"]

    def test_file_gone_at_read_time_is_named(self, tmp_path):
        path = write_file(str(tmp_path / "gone.txt"), b"x\n")
        [split] = TextSource(path).split(1)
        os.remove(path)
        with pytest.raises(FileNotFoundError, match="ReadFromText: cannot open file .*gone.txt"):
            split.open()

    def test_corrupt_gzip_is_named(self, tmp_path):
        path = str(tmp_path / "bad.txt.gz")
        with open(path, "wb") as f:
            f.write(gzip.compress(b"a\nb\n" * 1000)[:-30])
        with pytest.raises(OSError, match="ReadFromText: file .*bad.txt.gz.*read failed"):
            read_source(TextSource(path))

    def test_undecodable_utf8_names_file_line_and_offset(self, tmp_path):
        path = write_file(str(tmp_path / "latin1.txt"), b"ok\nfine\ncaf\xe9\nmore\n")
        with pytest.raises(ValueError, match=r"ReadFromText: cannot decode line 3 of "
                                             r"'.*latin1.txt' \(byte offset 11\)"):
            read_source(TextSource(path))

    def test_undecodable_line_number_is_exact_in_later_splits(self, tmp_path):
        path = write_file(str(tmp_path / "late.txt"), b"line\n" * 100 + b"\xff\n")
        with pytest.raises(ValueError, match=r"line 101 of .*late.txt' \(byte offset 500\)"):
            read_source(TextSource(path), 10)

    def test_other_encodings_via_a_coder(self, tmp_path):
        path = write_file(str(tmp_path / "raw.txt"), b"caf\xe9\n\x00\xff\n")
        assert read_source(TextSource(path, coder=BytesCoder())) == [b"caf\xe9", b"\x00\xff"]

    @pytest.mark.parametrize("kwargs, message", [
        (dict(skip_header_lines=-1), "Cannot skip negative number of header lines"),
        (dict(delimiter="|"), "Delimiter must be a non-empty bytes"),
        (dict(delimiter=b""), "Delimiter must be a non-empty bytes"),
        (dict(delimiter=b"aba"), "Delimiter must not self-overlap"),
        (dict(escapechar=b"ab"), "escapechar must be bytes of size 1"),
        (dict(escapechar=b"|", delimiter=b"|"), "must not be part of the delimiter"),
        (dict(compression_type="zip"), "unsupported compression_type 'zip'"),
        (dict(min_bundle_size=-1), "min_bundle_size"),
    ])
    def test_bad_arguments(self, tmp_path, kwargs, message):
        path = write_file(str(tmp_path / "a.txt"), b"x\n")
        with pytest.raises(ValueError, match=message) as info:
            ReadFromText(path, **kwargs)
        assert "a.txt" in str(info.value)

    def test_unsupported_compression_by_extension(self, tmp_path):
        path = write_file(str(tmp_path / "a.zst"), b"x")
        with pytest.raises(ValueError, match=r"ReadFromText: .*a\.zst.*zstd"):
            TextSource(path).split(1)


def test_read_from_text_expands_to_read(tmp_path):
    path = write_file(str(tmp_path / "a.txt"), b"x\n")
    transform = ReadFromText(path)
    assert isinstance(transform._source, TextSource)
    assert transform._source.display_name() == f"ReadFromText({path})"

# ---------------------------------------------------------------------------- writing


class TestWriteParityWithBeam:
    def _beam_write(self, prefix, elements, **kwargs):
        beam = pytest.importorskip("apache_beam")
        with beam.Pipeline() as p:
            _ = p | beam.Create(elements) | beam.io.WriteToText(prefix, **kwargs)

    @pytest.mark.parametrize("kwargs", [
        dict(),
        dict(file_name_suffix=".txt"),
        dict(shard_name_template=""),
        dict(shard_name_template="", file_name_suffix=".csv", header="h1,h2", footer="end"),
        dict(num_shards=3, header="H"),
        dict(file_name_suffix=".gz", header="H", footer="F"),
        dict(append_trailing_newlines=False, header="H", footer="F"),
        dict(shard_name_template="-part-SSS-NN"),
    ])
    def test_names_and_contents(self, tmp_path, kwargs):
        elements = ["a", 1, b"raw", None, 2.5, "é", ("t", 1)]
        self._beam_write(str(tmp_path / "beam" / "out"), elements, **kwargs)
        run_sink(TextSink(str(tmp_path / "mine" / "out"), **kwargs), [elements])
        beam_files = listing(tmp_path / "beam")
        assert listing(tmp_path / "mine") == beam_files
        expected = [contents(str(tmp_path / "beam" / name)) for name in beam_files]
        got = [contents(str(tmp_path / "mine" / name)) for name in beam_files]
        if kwargs.get("num_shards"):
            # Beam spreads elements over fixed shards at random: compare headers and lines.
            assert all(c.startswith(b"H\n") for c in got)
            assert sorted(b"".join(got).split(b"\n")) == sorted(b"".join(expected).split(b"\n"))
        else:
            assert got == expected

    def test_empty_input_writes_one_empty_shard(self, tmp_path):
        self._beam_write(str(tmp_path / "beam" / "out"), [], header="H", footer="F")
        files = run_sink(TextSink(str(tmp_path / "mine" / "out"), header="H", footer="F"), [[]])
        assert listing(tmp_path / "mine") == listing(tmp_path / "beam") == [
            "out-00000-of-00001"]
        assert files == [str(tmp_path / "mine" / "out-00000-of-00001")]
        assert contents(files[0]) == contents(str(tmp_path / "beam" / "out-00000-of-00001"))

    def test_beam_reads_concatenated_gzip_shards(self, tmp_path):
        sink = TextSink(str(tmp_path / "out"), ".gz", num_shards=2, header="H", footer="F")
        files = run_sink(sink, [["a", "b", "c"], ["d"], [], ["e", "f"]])
        for path in files:
            lines = beam_read(path)
            assert lines[0] == "H" and lines[-1] == "F"
        assert sorted(line for f in files for line in beam_read(f)[1:-1]) == list("abcdef")


class TestSharding:
    def test_one_shard_per_writer_that_received_elements(self, tmp_path):
        sink = TextSink(str(tmp_path / "out"), ".txt", header="H")
        files = run_sink(sink, [["a", "b"], [], ["c"]])
        assert [os.path.basename(f) for f in files] == [
            "out-00000-of-00002.txt", "out-00001-of-00002.txt"]
        assert [contents(f) for f in files] == [b"H\na\nb\n", b"H\nc\n"]
        assert listing(tmp_path) == ["out-00000-of-00002.txt", "out-00001-of-00002.txt"]

    def test_fixed_shards_assemble_pieces_from_every_writer(self, tmp_path):
        sink = TextSink(str(tmp_path / "out"), num_shards=3, header="H", footer="F")
        per_writer = [[f"w{w}-{i}" for i in range(n)] for w, n in enumerate([10, 0, 4, 1])]
        files = run_sink(sink, per_writer)
        assert [os.path.basename(f) for f in files] == [
            f"out-0000{i}-of-00003" for i in range(3)]
        bodies = []
        for path in files:
            lines = contents(path).decode().splitlines()
            assert lines[0] == "H" and lines[-1] == "F"
            assert "H" not in lines[1:-1] and "F" not in lines[1:-1]
            bodies.append(lines[1:-1])
        assert sorted(sum(bodies, [])) == sorted(sum(per_writer, []))
        # Round-robin from a different first shard per writer keeps shards even.
        assert [len(b) for b in bodies] == [4 + 1 + 1, 3 + 1, 3 + 2]
        assert listing(tmp_path) == [os.path.basename(f) for f in files]

    def test_single_file_template_forces_one_shard(self, tmp_path):
        sink = TextSink(str(tmp_path / "result"), ".csv", num_shards=5, shard_name_template="",
                        header="k,v")
        files = run_sink(sink, [["1,a"], ["2,b"], ["3,c"]])
        assert files == [str(tmp_path / "result.csv")]
        assert contents(files[0]) == b"k,v\n1,a\n2,b\n3,c\n"

    def test_more_shards_than_elements_gives_empty_shards(self, tmp_path):
        sink = TextSink(str(tmp_path / "out"), ".gz", num_shards=4, header="H")
        files = run_sink(sink, [["a"]])
        assert len(files) == 4
        assert sorted(contents(f) for f in files) == [b"H\n", b"H\n", b"H\n", b"H\na\n"]

    def test_write_and_write_batch_distribute_alike(self, tmp_path):
        elements = [str(i) for i in range(11)]
        a = TextSink(str(tmp_path / "a" / "out"), num_shards=3)
        b = TextSink(str(tmp_path / "b" / "out"), num_shards=3)
        wa, wb = a.open_writer(1, 2), b.open_writer(1, 2)
        for e in elements:
            wa.write(e)
        wb.write_batch(elements[:4])
        wb.write_batch(elements[4:])
        fa, fb = a.finalize([wa.close()]), b.finalize([wb.close()])
        assert [contents(f) for f in fa] == [contents(f) for f in fb]

    def test_custom_coder(self, tmp_path):
        class Upper(BytesCoder):
            def encode(self, value):
                return value.upper().encode()
        files = run_sink(TextSink(str(tmp_path / "out"), coder=Upper()), [["ab", "c"]])
        assert contents(files[0]) == b"AB\nC\n"

    def test_skip_if_empty(self, tmp_path):
        assert run_sink(TextSink(str(tmp_path / "out"), skip_if_empty=True), [[], []]) == []
        assert listing(tmp_path) == []


class TestFinalize:
    def test_temp_files_and_failed_attempts_are_removed(self, tmp_path):
        sink = TextSink(str(tmp_path / "out"))
        abandoned = sink.open_writer(0, 2)
        abandoned.write("lost")  # a failed attempt never closes its writer
        abandoned._files[0].flush()
        writer = sink.open_writer(0, 2)
        writer.write("kept")
        assert any(name.startswith(".headrace-temp-out-") for name in listing(tmp_path))
        files = sink.finalize([writer.close()])
        assert listing(tmp_path) == ["out-00000-of-00001"]
        assert contents(files[0]) == b"kept\n"

    def test_existing_output_is_overwritten(self, tmp_path):
        (tmp_path / "out-00000-of-00001").write_bytes(b"old\n")
        (tmp_path / "out.txt").write_bytes(b"old\n")
        run_sink(TextSink(str(tmp_path / "out")), [["new"]])
        run_sink(TextSink(str(tmp_path / "out"), ".txt", shard_name_template=""), [["new"]])
        assert contents(str(tmp_path / "out-00000-of-00001")) == b"new\n"
        assert contents(str(tmp_path / "out.txt")) == b"new\n"

    def test_stale_shards_of_the_same_pattern_are_deleted(self, tmp_path):
        run_sink(TextSink(str(tmp_path / "out"), shard_name_template="-SS"), [["a"]] * 3)
        assert listing(tmp_path) == ["out-00", "out-01", "out-02"]
        run_sink(TextSink(str(tmp_path / "out"), shard_name_template="-SS"), [["b"]])
        assert listing(tmp_path) == ["out-00"]

    def test_prefix_with_glob_characters(self, tmp_path):
        prefix = str(tmp_path / "out[1]*")
        run_sink(TextSink(prefix, shard_name_template="-SS"), [["a"], ["b"]])
        run_sink(TextSink(prefix, shard_name_template="-SS"), [["c"]])
        assert listing(tmp_path) == ["out[1]*-00"]
        assert contents(prefix + "-00") == b"c\n"

    def test_file_url_prefix(self, tmp_path):
        files = run_sink(TextSink("file://" + str(tmp_path / "out")), [["a"]])
        assert files == ["file://" + str(tmp_path / "out-00000-of-00001")]
        assert listing(tmp_path) == ["out-00000-of-00001"]

    def test_finalize_can_be_retried(self, tmp_path):
        sink = TextSink(str(tmp_path / "out"), num_shards=2, header="H")
        results = []
        for index, elements in enumerate([["a", "b"], ["c"]]):
            writer = sink.open_writer(index, 2)
            writer.write_batch(elements)
            results.append(writer.close())
        first = sink.finalize(results)
        before = [contents(f) for f in first]
        assert sink.finalize(results) == first
        assert [contents(f) for f in first] == before

    def test_results_survive_pickling(self, tmp_path):
        import pickle
        sink = pickle.loads(pickle.dumps(TextSink(str(tmp_path / "out"), num_shards=2)))
        writer = pickle.loads(pickle.dumps(sink)).open_writer(0, 1)
        writer.write_batch(["a", "b"])
        result = pickle.loads(pickle.dumps(writer.close()))
        assert len(sink.finalize([result])) == 2


class TestWriteErrors:
    @pytest.mark.parametrize("kwargs, error, message", [
        (dict(file_path_prefix=""), TypeError, "file_path_prefix must be a non-empty string"),
        (dict(file_name_suffix=3), TypeError, "file_name_suffix must be a string"),
        (dict(num_shards=-1), ValueError, "num_shards must be an int >= 0"),
        (dict(shard_name_template="-NNN"), ValueError, "Shard number pattern S\\+ not found"),
        (dict(shard_name_template="-W-SSSSS"), ValueError, "U, V or W"),
        (dict(compression_type="zip"), ValueError, "compression_type must be one of"),
        (dict(coder=object()), TypeError, "coder must have an encode"),
    ])
    def test_bad_arguments_name_the_transform(self, tmp_path, kwargs, error, message):
        kwargs = {"file_path_prefix": str(tmp_path / "out"), **kwargs}
        with pytest.raises(error, match=message) as info:
            WriteToText(**kwargs)
        assert "WriteToText" in str(info.value)


def test_module_constants():
    assert text_sink.DEFAULT_SHARD_NAME_TEMPLATE == "-SSSSS-of-NNNNN"

"""JSON Lines sources and sinks through the io_base interfaces."""
import gzip
import json
import os

import pytest

from headrace.io import ReadFromJsonLines, WriteToJsonLines

pytestmark = pytest.mark.no_pipeline


def read_all(transform, desired_num_splits=1):
    out = []
    for split in transform._source.split(desired_num_splits):
        reader = split.open()
        while (batch := reader.read_batch(100)) is not None:
            out.extend(batch)
        reader.close()
    return out


def write_all(transform, per_writer):
    sink = transform._sink
    results = []
    for index, elements in enumerate(per_writer):
        writer = sink.open_writer(index, len(per_writer))
        writer.write_batch(elements)
        results.append(writer.close())
    return sink.finalize(results)


RECORDS = [{"id": 1, "name": "é", "tags": ["a", "b"]}, [1, 2.5, None], "text", 7, True,
           {"nested": {"deep": [{}]}}]


def test_roundtrip(tmp_path):
    files = write_all(WriteToJsonLines(str(tmp_path / "out"), ".jsonl"), [RECORDS[:3],
                                                                          RECORDS[3:]])
    assert [os.path.basename(f) for f in files] == [
        "out-00000-of-00002.jsonl", "out-00001-of-00002.jsonl"]
    assert read_all(ReadFromJsonLines(str(tmp_path / "out*.jsonl"))) == RECORDS


def test_each_line_is_json_dumps_of_the_element(tmp_path):
    [path] = write_all(WriteToJsonLines(str(tmp_path / "o"), shard_name_template=""), [RECORDS])
    with open(path, encoding="utf-8") as f:
        assert f.read() == "".join(json.dumps(r) + "\n" for r in RECORDS)


def test_gzip_and_fixed_shards(tmp_path):
    files = write_all(WriteToJsonLines(str(tmp_path / "o"), ".jsonl.gz", num_shards=2),
                      [RECORDS, RECORDS])
    assert len(files) == 2
    for path in files:
        gzip.decompress(open(path, "rb").read())  # a valid gzip file
    got = read_all(ReadFromJsonLines(str(tmp_path / "o*")))
    assert sorted(map(json.dumps, got)) == sorted(map(json.dumps, RECORDS * 2))


def test_blank_lines_are_skipped_and_splits_cover_everything(tmp_path):
    lines = [json.dumps({"i": i}) for i in range(200)]
    path = tmp_path / "in.jsonl"
    path.write_text("\n\n".join(lines) + "\n  \n\r\n")
    for splits in (1, 3, 17):
        assert read_all(ReadFromJsonLines(str(path)), splits) == [{"i": i} for i in range(200)]


def test_skip_header_lines(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("# exported 2024-01-01\n[1]\n[2]\n")
    assert read_all(ReadFromJsonLines(str(path), skip_header_lines=1)) == [[1], [2]]


def test_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n{"a": \n{"a": 4}\n')
    with pytest.raises(ValueError, match=r"ReadFromJsonLines: cannot decode line 4 of "
                                         r"'.*bad\.jsonl' \(byte offset 19\)"):
        read_all(ReadFromJsonLines(str(path)))


def test_bad_line_number_in_a_later_split(tmp_path):
    path = tmp_path / "late.jsonl"
    path.write_text("[0]\n" * 300 + "nope\n" + "[0]\n" * 10)
    with pytest.raises(ValueError, match=r"line 301 of .*late\.jsonl"):
        read_all(ReadFromJsonLines(str(path)), 8)


def test_no_files_names_the_transform_and_pattern(tmp_path):
    pattern = str(tmp_path / "none*.jsonl")
    with pytest.raises(IOError, match="ReadFromJsonLines: No files found based on the file "
                                      "pattern"):
        ReadFromJsonLines(pattern)
    ReadFromJsonLines(pattern, validate=False)


def test_unserializable_element_names_the_transform_and_type(tmp_path):
    transform = WriteToJsonLines(str(tmp_path / "o"))
    writer = transform._sink.open_writer(0, 1)
    with pytest.raises(TypeError, match=r"WriteToJsonLines: cannot write an element of type "
                                        r"set as JSON"):
        writer.write_batch([{"ok": 1}, {1, 2}])
    with pytest.raises(TypeError, match="element of type object"):
        writer.write(object())
    writer.close()


def test_bad_sink_arguments_name_the_transform(tmp_path):
    with pytest.raises(ValueError, match="WriteToJsonLines.*num_shards"):
        WriteToJsonLines(str(tmp_path / "o"), num_shards=-2)

"""data/corpus_files.py: the corpus files as their producers write them (pyarrow's Parquet, zstandard's and
gzip's streams, JSON lines), read back as lines and documents, and bad ones refused in one line naming the
file and the record."""
import gzip
import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from fairseq_tokendrop.data.corpus_files import check_inputs, read_lines
from fairseq_tokendrop.errors import TokendropError

RECORDS = ["First line of one.\nIts second line.", "  Leading spaces, a tab\there.\r\n\r\nAfter a blank line.",
           "", "Ünïcödé café ☃\n\n\n", "x"]


def expected_lines(texts):
    """Written from the module's rule, not its code: every non-blank line of a record (without a trailing
    carriage return), then a document end."""
    out = []
    for text in texts:
        out += [line[:-1] if line.endswith("\r") else line for line in text.split("\n") if line.strip()] + [""]
    return out


def collapse(lines):
    """Runs of document ends as one, none first: what reaches fairseq (corpus_encoding.document_items)."""
    out = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return out


def write_jsonl(path, texts, field="text", opener=open):
    with opener(path, "wt", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"id": i, field: text}) + "\n")
    return str(path)


def write_zstd_jsonl(path, texts):
    """In two Zstandard frames, as multi-threaded zstd writes large files."""
    lines = [(json.dumps({"text": t}) + "\n").encode("utf-8") for t in texts]
    half = len(lines) // 2
    compressor = zstandard.ZstdCompressor(level=3)
    path.write_bytes(compressor.compress(b"".join(lines[:half])) + compressor.compress(b"".join(lines[half:])))
    return str(path)


def write_parquet(path, texts, row_group_size=2, column="text", type_=pa.string()):
    pq.write_table(pa.table({"id": list(range(len(texts))), column: pa.array(texts, type=type_)}), path,
                   row_group_size=row_group_size)
    return str(path)


def one_line_error(call):
    with pytest.raises(TokendropError) as caught:
        call()
    message = caught.value.message
    assert "\n" not in message
    return message


def test_every_format_gives_the_records_lines_and_document_ends(tmp_path):
    paths = [
        write_parquet(tmp_path / "a.parquet", RECORDS),
        write_zstd_jsonl(tmp_path / "b.jsonl.zst", RECORDS),
        write_jsonl(tmp_path / "c.json.gz", RECORDS, opener=gzip.open),
        write_jsonl(tmp_path / "d.jsonl", RECORDS),
    ]
    for path in paths:
        assert list(read_lines([path])) == expected_lines(RECORDS) + [""], path
    assert len(pq.ParquetFile(paths[0]).metadata.to_dict()["row_groups"]) == 3  # pyarrow wrote 3 row groups


def test_a_text_file_keeps_its_layout_compressed_or_not(tmp_path):
    text = "\ufeffOne sentence.\r\nTwo.\n\n \t\nNext document.\n"
    (tmp_path / "a.txt").write_text(text, encoding="utf-8", newline="")
    with gzip.open(tmp_path / "a.txt.gz", "wt", encoding="utf-8", newline="") as handle:
        handle.write(text)
    for name in ("a.txt", "a.txt.gz"):
        assert collapse(read_lines([str(tmp_path / name)])) == ["One sentence.", "Two.", "", "Next document.", ""]


def test_another_text_field_is_read(tmp_path):
    path = write_parquet(tmp_path / "a.parquet", ["doc one", "doc two"], column="content")
    assert list(read_lines([path], text_field="content")) == ["doc one", "", "doc two", "", ""]
    assert "no column 'text' (its columns: id, content" in one_line_error(lambda: list(read_lines([path])))


def test_parquet_is_read_one_row_group_at_a_time(tmp_path):
    """A row group whose bytes are garbage fails only when it is reached, after the groups before it came
    out: the reader holds a row group, never the file."""
    path = tmp_path / "a.parquet"
    write_parquet(path, [f"record {i}" for i in range(6)], row_group_size=2)
    column = pq.ParquetFile(path).metadata.row_group(1).column(1)
    data = bytearray(path.read_bytes())
    start = column.dictionary_page_offset if column.has_dictionary_page else column.data_page_offset
    data[start:start + column.total_compressed_size] = b"\xff" * column.total_compressed_size
    path.write_bytes(bytes(data))
    lines = read_lines([str(path)])
    assert [next(lines) for _ in range(4)] == ["record 0", "", "record 1", ""]
    message = one_line_error(lambda: next(lines))
    assert message.startswith(f"{path}: row group 1 (after record 2) cannot be read")


def test_bad_records_are_named_by_file_and_record(tmp_path):
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_bytes(b'{"text": "fine"}\n\n{"text": "bad \xff byte"}\n')
    assert one_line_error(lambda: list(read_lines([str(jsonl)]))).startswith(
        f"{jsonl}: record 2 (line 3) is not valid UTF-8")

    missing = write_jsonl(tmp_path / "b.jsonl", ["fine", "fine"], field="body")
    assert one_line_error(lambda: list(read_lines([missing]))) == (
        f"{missing}: record 1 (line 1) has no field 'text' (its fields: id, body; choose one with --text-field)")

    null = tmp_path / "c.jsonl"
    null.write_text('{"text": "fine"}\n{"text": null}\n')
    assert one_line_error(lambda: list(read_lines([str(null)]))) == (
        f"{null}: record 2 (line 2): field 'text' is NoneType, not a string")

    not_json = tmp_path / "d.jsonl"
    not_json.write_text('{"text": "fine"}\n{"text": "cut\n')
    assert one_line_error(lambda: list(read_lines([str(not_json)]))).startswith(f"{not_json}: record 2 (line 2) is not JSON")

    array = tmp_path / "e.json"
    array.write_text('[{"text": "a"}, {"text": "b"}]\n')
    assert "a JSON array; give JSON lines" in one_line_error(lambda: list(read_lines([str(array)])))

    binary = write_parquet(tmp_path / "f.parquet", [b"fine", b"fine", b"bad \xff"], type_=pa.binary())
    assert one_line_error(lambda: list(read_lines([binary]))).startswith(
        f"{binary}: record 3 (row group 1) is not valid UTF-8")

    nulls = write_parquet(tmp_path / "g.parquet", ["fine", None])
    assert one_line_error(lambda: list(read_lines([nulls]))) == f"{nulls}: record 2 (row group 0): 'text' is null"

    numbers = tmp_path / "h.parquet"
    pq.write_table(pa.table({"text": [1, 2]}), numbers)
    assert one_line_error(lambda: list(read_lines([str(numbers)]))) == (
        f"{numbers}: column 'text' holds int64, not strings")


def test_files_that_are_not_what_their_name_says_are_refused(tmp_path):
    fake = tmp_path / "a.parquet"
    fake.write_text("not parquet")
    assert one_line_error(lambda: list(read_lines([str(fake)]))).startswith(f"{fake}: not a Parquet file")

    truncated = tmp_path / "b.jsonl.zst"
    write_zstd_jsonl(truncated, [f"record {i} " * 20 for i in range(200)])
    truncated.write_bytes(truncated.read_bytes()[:-40])
    assert one_line_error(lambda: list(read_lines([str(truncated)]))).startswith(f"{truncated}: cannot decompress")

    not_gzip = tmp_path / "c.jsonl.gz"
    not_gzip.write_text('{"text": "plain"}\n')
    assert one_line_error(lambda: list(read_lines([str(not_gzip)]))).startswith(
        f"{not_gzip}: cannot decompress after line 0")


def test_check_inputs_refuses_an_empty_split_and_a_bad_first_record(tmp_path):
    empty = write_parquet(tmp_path / "a.parquet", [" ", "\n\n"])
    blank = write_jsonl(tmp_path / "b.jsonl", [])
    assert one_line_error(lambda: check_inputs("train", [empty, blank], "text")) == (
        f"--train corpus is empty (no non-blank line) in: {empty}, {blank}")
    good = write_jsonl(tmp_path / "c.jsonl", ["some text"])
    wrong = write_jsonl(tmp_path / "d.jsonl", ["some text"], field="body")
    # the second file's first record is read before any encoding starts
    assert one_line_error(lambda: check_inputs("valid", [good, wrong], "text")).startswith(f"{wrong}: record 1")


@pytest.mark.parametrize("module, suffix, extra", [("pyarrow.parquet", "parquet", "pyarrow"),
                                                   ("zstandard", "jsonl.zst", "zstandard")])
def test_a_missing_extra_is_named(tmp_path, monkeypatch, module, suffix, extra):
    path = tmp_path / f"a.{suffix}"
    path.write_bytes(b"")
    monkeypatch.setitem(sys.modules, module, None)  # what an environment without the extra gives: ImportError
    assert one_line_error(lambda: list(read_lines([str(path)]))) == (
        f"{path}: reading {'Parquet' if extra == 'pyarrow' else 'Zstandard'} needs {extra}: pip install -e .[data] "
        f"(or pip install {extra})")

"""The lines and documents of a raw-text corpus, from the files corpora ship in.

Every reader yields the same stream: the text lines of the corpus in order (without their line
break), and ``''`` wherever a document ends (a blank line, the end of a record, the end of a
file). Formats, told by the file name:

- text (any other name): UTF-8, one sentence per line, a blank line between documents (MLPerf's
  Wikipedia parts, ``make_stdlib_corpus``);
- JSON lines (``.jsonl``, ``.json``, ``.ndjson``, as ``datasets``' ``to_json`` writes them): one
  JSON object per line, its ``text_field`` the document's text;
- Parquet (``.parquet``): a ``text_field`` column of strings (or UTF-8 bytes), one row per
  document, read one row group at a time, so memory holds one row group (FineWeb's shards hold
  about 1,000 documents a group), not the file.

Text and JSON lines may be compressed: ``.gz`` (gzip) or ``.zst``/``.zstd`` (Zstandard), read as a
stream. One record is one document. Its text is split at line breaks (``\\n``; a ``\\r`` before
it goes too) and each non-blank line becomes one item, as a line of a text file does: no
sentence splitter runs, so for ``complete``/``complete_doc`` packing a record's "sentences" are
its lines (a paragraph per line in FineWeb). Blank lines inside a record do not split it.

Parquet needs ``pyarrow`` and Zstandard needs ``zstandard`` (the ``data`` extra); a file that
needs a missing one is refused in one line naming the extra. So is every bad input, naming the
file and the record: a record without the field, a field that is not a string, a line or value
that is not UTF-8, a file that is not valid JSON lines or Parquet, a corrupt compressed stream.
"""
import contextlib
import gzip
import io
import json
import os
from typing import Iterator, Optional

from ..errors import TokendropError

COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
JSON_LINES = (".jsonl", ".json", ".ndjson")
PARQUET = ".parquet"
EXTRA = "pip install -e .[data]"


def file_format(path: str):
    """(``text``/``jsonl``/``parquet``, compression or None) of a corpus file, from its name."""
    stem, suffix = os.path.splitext(path.lower())
    compression = COMPRESSIONS.get(suffix)
    if compression:
        stem, suffix = os.path.splitext(stem)
    if suffix == PARQUET:
        if compression:
            raise TokendropError(f"{path}: a compressed Parquet file; Parquet compresses inside the file, give "
                                 "the .parquet itself")
        return "parquet", None
    return ("jsonl" if suffix in JSON_LINES else "text"), compression


def _pyarrow_parquet(path: str):
    try:
        import pyarrow.parquet
    except ImportError:
        raise TokendropError(f"{path}: reading Parquet needs pyarrow: {EXTRA} (or pip install pyarrow)") from None
    return pyarrow.parquet


def _one_line(err) -> str:
    return " ".join(str(err).split())


class ZstdFrames(io.RawIOBase):
    """A Zstandard file's bytes, frame after frame (``zstd -T``/``pzstd`` write several). A stream that
    ends inside a frame raises ``ValueError``: zstandard's own ``stream_reader`` would just stop there."""

    def __init__(self, raw, zstandard):
        super().__init__()
        self.raw, self.zstandard = raw, zstandard
        self.frame, self.pending, self.started = zstandard.ZstdDecompressor().decompressobj(), b"", False

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self.pending:
            block = self.raw.read(1 << 20)
            if not block:
                if self.started and not self.frame.eof:
                    raise ValueError("the stream ends inside a Zstandard frame (truncated file)")
                return 0
            while block:
                if self.frame.eof:
                    self.frame = self.zstandard.ZstdDecompressor().decompressobj()
                self.started = True
                self.pending += self.frame.decompress(block)
                block = self.frame.unused_data if self.frame.eof else b""
        n = min(len(buffer), len(self.pending))
        buffer[:n], self.pending = self.pending[:n], self.pending[n:]
        return n


@contextlib.contextmanager
def open_binary(path: str, compression: Optional[str]):
    """The file's bytes as a buffered stream, decompressed as it is read."""
    if compression == "zstd":
        try:
            import zstandard
        except ImportError:
            raise TokendropError(f"{path}: reading Zstandard needs zstandard: {EXTRA} (or pip install zstandard)") \
                from None
        with open(path, "rb") as raw:
            yield io.BufferedReader(ZstdFrames(raw, zstandard))
    elif compression == "gzip":
        with gzip.open(path, "rb") as handle:
            yield handle
    else:
        with open(path, "rb") as handle:
            yield handle


def _raw_lines(path: str, compression: Optional[str]):
    """(line number, bytes) of a text or JSON lines file; one line naming the file when the stream
    cannot be read or decompressed."""
    lineno = 0
    try:
        with open_binary(path, compression) as handle:
            for lineno, raw in enumerate(handle, start=1):
                yield lineno, raw
    except (EOFError, ValueError, gzip.BadGzipFile) as err:  # truncation, zstandard's ZstdError, not gzip at all
        raise TokendropError(f"{path}: cannot decompress after line {lineno} ({type(err).__name__}: "
                             f"{_one_line(err)})") from None
    except OSError as err:
        raise TokendropError(f"cannot read {path}: {err.strerror or err}") from None


def _decode(path: str, raw: bytes, where: str, first: bool) -> str:
    """A line without its line break (and byte-order mark), or one line naming where it is not UTF-8."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TokendropError(f"{path}: {where} is not valid UTF-8 ({err.reason} at byte {err.start} of the "
                             "line)") from None
    if first and line.startswith("\ufeff"):
        line = line[1:]
    return line.rstrip("\n").rstrip("\r")


def _record_lines(text: str) -> Iterator[str]:
    """A record's non-blank lines, then the end of its document."""
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if line.strip():
            yield line
    yield ""


def _text_file(path: str, compression: Optional[str]) -> Iterator[str]:
    for lineno, raw in _raw_lines(path, compression):
        line = _decode(path, raw, f"line {lineno}", lineno == 1)
        yield line if line.strip() else ""
    yield ""


def _field_text(path: str, where: str, record, text_field: str) -> str:
    if not isinstance(record, dict):
        raise TokendropError(f"{path}: {where} is a JSON {type(record).__name__}, not an object with a "
                             f"{text_field!r} field")
    if text_field not in record:
        fields = ", ".join(map(str, list(record)[:8])) or "none"
        raise TokendropError(f"{path}: {where} has no field {text_field!r} (its fields: {fields}; choose one "
                             "with --text-field)")
    text = record[text_field]
    if not isinstance(text, str):
        raise TokendropError(f"{path}: {where}: field {text_field!r} is {type(text).__name__}, not a string")
    return text


def _json_lines_file(path: str, compression: Optional[str], text_field: str) -> Iterator[str]:
    record = 0
    for lineno, raw in _raw_lines(path, compression):
        if not raw.strip():
            continue
        record += 1
        where = f"record {record} (line {lineno})"
        line = _decode(path, raw, where, lineno == 1)
        if record == 1 and line.lstrip().startswith("["):
            raise TokendropError(f"{path}: a JSON array; give JSON lines (one object per line, as datasets' "
                                 "to_json writes them)")
        try:
            parsed = json.loads(line)
        except ValueError as err:
            raise TokendropError(f"{path}: {where} is not JSON ({_one_line(err)})") from None
        yield from _record_lines(_field_text(path, where, parsed, text_field))
    yield ""


def _parquet_column(path: str, text_field: str):
    """The open ``ParquetFile`` and its text column's index, checked against the schema."""
    pq = _pyarrow_parquet(path)
    import pyarrow

    try:
        parquet = pq.ParquetFile(path)
    except (pyarrow.ArrowException, OSError) as err:
        raise TokendropError(f"{path}: not a Parquet file ({_one_line(err)})") from None
    schema = parquet.schema_arrow
    if text_field not in schema.names:
        raise TokendropError(f"{path}: no column {text_field!r} (its columns: {', '.join(schema.names[:8])}; "
                             "choose one with --text-field)")
    column_type = schema.field(text_field).type
    if not (pyarrow.types.is_string(column_type) or pyarrow.types.is_large_string(column_type)
            or pyarrow.types.is_binary(column_type) or pyarrow.types.is_large_binary(column_type)):
        raise TokendropError(f"{path}: column {text_field!r} holds {column_type}, not strings")
    return parquet


def _parquet_file(path: str, text_field: str) -> Iterator[str]:
    import pyarrow

    parquet = _parquet_column(path, text_field)
    record = 0
    for group in range(parquet.num_row_groups):
        try:
            column = parquet.read_row_group(group, columns=[text_field]).column(0)
        except (pyarrow.ArrowException, OSError) as err:
            raise TokendropError(f"{path}: row group {group} (after record {record}) cannot be read "
                                 f"({_one_line(err)})") from None
        # As bytes, so that a value that is not UTF-8 is reported with its record (a cast, no copy).
        for value in column.cast(pyarrow.large_binary()).to_pylist():
            record += 1
            if value is None:
                raise TokendropError(f"{path}: record {record} (row group {group}): {text_field!r} is null")
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError as err:
                raise TokendropError(f"{path}: record {record} (row group {group}) is not valid UTF-8 "
                                     f"({err.reason} at byte {err.start})") from None
            yield from _record_lines(text)
    yield ""


def read_lines(paths, text_field: str = "text", progress=None) -> Iterator[str]:
    """Yield the lines of every file in order, ``''`` where a document ends (see the module doc).
    ``progress.add()`` is called once per line read."""
    for path in paths:
        kind, compression = file_format(path)
        if kind == "parquet":
            lines = _parquet_file(path, text_field)
        elif kind == "jsonl":
            lines = _json_lines_file(path, compression, text_field)
        else:
            lines = _text_file(path, compression)
        for line in lines:
            if progress is not None and line:
                progress.add()
            yield line


def check_inputs(split: str, paths, text_field: str) -> None:
    """Fail with the file's name unless every file is there, can be read up to its first document,
    and the split has text. Reads only what it must: a Parquet file's schema, up to the first line
    with text elsewhere."""
    for path in paths:
        if not os.path.exists(path):
            raise TokendropError(f"--{split} file not found: {path}")
        if not os.path.isfile(path):
            raise TokendropError(f"--{split} path is not a regular file: {path}")
        if file_format(path)[0] == "parquet":
            _parquet_column(path, text_field)
        else:
            next(iter(read_lines([path], text_field)), None)
    if not any(read_lines(paths, text_field)):
        raise TokendropError(f"--{split} corpus is empty (no non-blank line) in: {', '.join(paths)}")

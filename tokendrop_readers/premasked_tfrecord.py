"""TFRecord shards of ``tf.train.Example`` (MLPerf TF reference, TF Model Garden), plain or GZIP.

A TFRecord is a sequence of ``uint64 length | uint32 masked_crc32c(length) |
data | uint32 masked_crc32c(data)`` frames, each ``data`` a
``tf.train.Example`` with ``input_ids`` [L] (0-padded), ``input_mask`` [L],
``segment_ids`` [L], ``masked_lm_positions`` [P], ``masked_lm_ids`` [P],
``masked_lm_weights`` float [P] (1.0 real, 0.0 padding),
``next_sentence_labels`` [1] (MLPerf ``create_pretraining_data.py``). TF Model
Garden's ``create_pretraining_data.py`` writes the same, with
``--use_v2_feature_names`` as ``input_word_ids`` / ``input_type_ids``, and with
``--gzip_compress`` through ``tf.io.TFRecordWriter(options="GZIP")``: the whole
stream gzip-compressed. The ``tfrecord`` package parses the protos; the framing
is read here because its reader does not check the CRCs, and a flipped byte
must not become a silently wrong mask.
"""
import gzip
import struct
import zlib
from typing import Iterator

import numpy as np

from .premasked_records import RecordError, validate

LENGTH_HEADER = 8
CRC = 4
GZIP_MAGIC = b"\x1f\x8b"

V1_NAMES = {"input_ids": "input_ids", "segment_ids": "segment_ids"}
V2_NAMES = {"input_ids": "input_word_ids", "segment_ids": "input_type_ids"}
# v1 name -> the value list it must hold; the first five are required.
FEATURES = {"input_ids": "int64_list", "input_mask": "int64_list", "masked_lm_positions": "int64_list",
            "masked_lm_ids": "int64_list", "masked_lm_weights": "float_list",
            "segment_ids": "int64_list", "next_sentence_labels": "int64_list"}
OPTIONAL = ("segment_ids", "next_sentence_labels")


def _masked_crc(data: bytes) -> bytes:
    from tfrecord.writer import TFRecordWriter

    return TFRecordWriter.masked_crc(data)


def is_gzip(path: str) -> bool:
    """GZIP magic bytes, and not by chance the length header of a plain TFRecord (whose CRC would match)."""
    with open(path, "rb") as handle:
        head = handle.read(LENGTH_HEADER + CRC)
    if not head.startswith(GZIP_MAGIC):
        return False
    return len(head) < LENGTH_HEADER + CRC or _masked_crc(head[:LENGTH_HEADER]) != head[LENGTH_HEADER:]


def _frames(path: str, compressed: bool) -> Iterator[bytes]:
    """The data of each frame, CRCs checked (masked CRC32C as TensorFlow writes it)."""
    opener = gzip.open if compressed else open
    record = 0
    try:
        with opener(path, "rb") as handle:
            while True:
                header = handle.read(LENGTH_HEADER)
                if not header:
                    return
                length_crc = handle.read(CRC)
                if len(header) < LENGTH_HEADER or len(length_crc) < CRC:
                    raise RecordError.at(path, record, None, "truncated record: the file ends inside its length header")
                if _masked_crc(header) != length_crc:
                    raise RecordError.at(path, record, None, "corrupt record: the length's checksum does not match")
                (length,) = struct.unpack("<Q", header)
                data = handle.read(length)
                data_crc = handle.read(CRC)
                if len(data) < length or len(data_crc) < CRC:
                    raise RecordError.at(path, record, None, f"truncated record: the file ends inside its {length} bytes")
                if _masked_crc(data) != data_crc:
                    raise RecordError.at(path, record, None, "corrupt record: the data's checksum does not match")
                yield data
                record += 1
    except (OSError, EOFError, zlib.error) as err:
        if not compressed:
            raise
        raise RecordError.at(path, record, None, f"corrupt GZIP stream ({err})") from None


def _parse(path: str, record: int, data: bytes):
    from google.protobuf.message import DecodeError
    from tfrecord import example_pb2

    example = example_pb2.Example()
    try:
        example.ParseFromString(data)
    except DecodeError as err:
        raise RecordError.at(path, record, None, f"corrupt record: not a tf.train.Example ({err})") from None
    return example.features.feature


def _example(path, record, features, names, vocab_size):
    values = {}
    for name, kind in FEATURES.items():
        key = names.get(name, name)
        if key not in features:
            if name not in OPTIONAL:
                raise RecordError.at(path, record, key, "missing feature")
            values[name] = None
            continue
        found = features[key].WhichOneof("kind")
        if found != kind:
            raise RecordError.at(path, record, key, f"wrong dtype: {found}, expected {kind}")
        values[name] = np.array(getattr(features[key], kind).value,
                                dtype=np.float32 if kind == "float_list" else np.int64)
    nsl = values["next_sentence_labels"]
    if nsl is not None and nsl.shape != (1,):
        raise RecordError.at(path, record, "next_sentence_labels", f"wrong shape: {nsl.shape[0]} values, expected 1")
    return validate(path, record, values["input_ids"], values["input_mask"], values["segment_ids"],
                    values["masked_lm_positions"], values["masked_lm_ids"], values["masked_lm_weights"],
                    vocab_size, names)


def read_tfrecord(path: str, vocab_size: int):
    """(layout, how it was told, validated examples) of one TFRecord file; the first record is read now."""
    compressed = is_gzip(path)
    records = (_parse(path, i, data) for i, data in enumerate(_frames(path, compressed)))
    first = next(records, None)
    v2 = first is not None and V2_NAMES["input_ids"] in first and V1_NAMES["input_ids"] not in first
    names = V2_NAMES if v2 else V1_NAMES
    layout = f"tfrecord-{'gzip-' if compressed else ''}{'v2' if v2 else 'v1'}"
    told = (("gzip magic bytes" if compressed else "no HDF5 or gzip signature")
            + f", {names['input_ids']}/{names['segment_ids']} in the first record")

    def examples():
        if first is None:
            return
        yield _example(path, 0, first, names, vocab_size)
        for record, features in enumerate(records, 1):
            yield _example(path, record, features, names, vocab_size)

    return layout, told, examples()

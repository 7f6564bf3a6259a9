"""Readers for pre-masked BERT shards: MLPerf/TF TFRecords and academic-budget-bert/BiGS HDF5.

Both yield :class:`MaskedExample` records, validated against the vocabulary,
with every problem reported as one :class:`RecordError` line naming the file,
the record and the field.

TFRecord (MLPerf training_results ``create_pretraining_data.py``, TF Model
Garden): a sequence of ``uint64 length | uint32 masked_crc32c(length) | data |
uint32 masked_crc32c(data)`` frames, each ``data`` a ``tf.train.Example`` with
``input_ids`` [L] (0-padded), ``input_mask`` [L], ``segment_ids`` [L],
``masked_lm_positions`` [P], ``masked_lm_ids`` [P], ``masked_lm_weights`` float
[P] (1.0 real, 0.0 padding), ``next_sentence_labels`` [1]. The ``tfrecord``
package parses the protos; the framing is read here because its reader does
not check the CRCs, and a flipped byte must not become a silently wrong mask.

HDF5 (academic-budget-bert, NVIDIA DeepLearningExamples BERT, BiGS): datasets
``input_ids`` [N, L], ``input_mask`` [N, L], ``segment_ids`` [N, L],
``masked_lm_positions`` [N, P], ``masked_lm_ids`` [N, P], optional
``next_sentence_labels`` [N]; a masked position of 0 is padding (position 0 is
[CLS], never masked), and those loaders take the slots before the first 0.
"""
import struct
from typing import Iterator, NamedTuple, Optional

import numpy as np

LENGTH_HEADER = 8
CRC = 4
HDF5_ROWS_PER_READ = 4096


class RecordError(ValueError):
    """A bad input shard: ``FILE: record N: FIELD: problem`` (one argument, so it pickles across processes)."""

    @classmethod
    def at(cls, path: str, record: Optional[int], field: Optional[str], problem: str) -> "RecordError":
        where = [path] + ([f"record {record}"] if record is not None else []) + ([field] if field else [])
        return cls(": ".join(where + [problem]))


class MaskedExample(NamedTuple):
    """One pre-masked example in WordPiece ids, padding removed.

    ``input_ids`` holds the file's input exactly ([MASK], random and kept
    tokens as masked); ``positions``/``labels`` are the real masked slots only
    (weight 1).
    """
    input_ids: np.ndarray  # int64 [n]
    positions: np.ndarray  # int64 [k]
    labels: np.ndarray  # int64 [k]
    nonzero_segment: bool


def _validate(path, record, input_ids, input_mask, segment_ids, positions, labels, weights, vocab_size, pad_id):
    """Checks shared by both formats; returns the example with padding removed."""
    def fail(field, problem):
        raise RecordError.at(path, record, field, problem)

    length = input_ids.shape[0]
    for name, values, size in (("input_mask", input_mask, length), ("segment_ids", segment_ids, length),
                               ("masked_lm_ids", labels, positions.shape[0]),
                               ("masked_lm_weights", weights, positions.shape[0])):
        if values is not None and values.shape[0] != size:
            fail(name, f"wrong shape: {values.shape[0]} values, expected {size}")
    if not np.isin(input_mask, (0, 1)).all():
        fail("input_mask", "values must be 0 or 1")
    n = int(input_mask.sum())
    if n == 0 or not input_mask[:n].all():
        fail("input_mask", "must be ones then zeros, with at least one 1")
    bad = np.flatnonzero((input_ids < 0) | (input_ids >= vocab_size))
    if bad.size:
        fail("input_ids", f"id {input_ids[bad[0]]} at position {bad[0]} is out of the vocabulary (size {vocab_size})")
    if not np.isin(weights, (0.0, 1.0)).all():
        fail("masked_lm_weights", f"values must be 0 or 1, got {weights[~np.isin(weights, (0.0, 1.0))][0]}")
    real = weights == 1.0
    positions, labels = positions[real], labels[real]
    bad = np.flatnonzero((positions < 0) | (positions >= n))
    if bad.size:
        fail("masked_lm_positions", f"position {positions[bad[0]]} is outside the {n} unpadded tokens")
    if np.unique(positions).size != positions.size:
        fail("masked_lm_positions", "a position is masked twice")
    bad = np.flatnonzero((labels < 0) | (labels >= vocab_size))
    if bad.size:
        fail("masked_lm_ids", f"id {labels[bad[0]]} is out of the vocabulary (size {vocab_size})")
    if (labels == pad_id).any():
        # The binarized target marks unmasked positions with padding, so a [PAD] label would vanish.
        fail("masked_lm_ids", "a masked slot's label is [PAD]")
    nonzero_segment = segment_ids is not None and bool(segment_ids[:n].any())
    return MaskedExample(input_ids[:n].copy(), positions.copy(), labels.copy(), nonzero_segment)


# ---------------------------------------------------------------- TFRecord

def _tfrecord_frames(path: str) -> Iterator[bytes]:
    """The data of each frame, CRCs checked (masked CRC32C as TensorFlow writes it)."""
    from tfrecord.writer import TFRecordWriter

    masked_crc = TFRecordWriter.masked_crc
    with open(path, "rb") as handle:
        record = 0
        while True:
            header = handle.read(LENGTH_HEADER)
            if not header:
                return
            length_crc = handle.read(CRC)
            if len(header) < LENGTH_HEADER or len(length_crc) < CRC:
                raise RecordError.at(path, record, None, "truncated record: the file ends inside its length header")
            if masked_crc(header) != length_crc:
                raise RecordError.at(path, record, None, "corrupt record: the length's checksum does not match")
            (length,) = struct.unpack("<Q", header)
            data = handle.read(length)
            data_crc = handle.read(CRC)
            if len(data) < length or len(data_crc) < CRC:
                raise RecordError.at(path, record, None, f"truncated record: the file ends inside its {length} bytes")
            if masked_crc(data) != data_crc:
                raise RecordError.at(path, record, None, "corrupt record: the data's checksum does not match")
            yield data
            record += 1


REQUIRED_TF = {"input_ids": "int64_list", "input_mask": "int64_list", "masked_lm_positions": "int64_list",
               "masked_lm_ids": "int64_list", "masked_lm_weights": "float_list"}
OPTIONAL_TF = {"segment_ids": "int64_list", "next_sentence_labels": "int64_list"}


def read_tfrecord(path: str, vocab_size: int, pad_id: int) -> Iterator[MaskedExample]:
    """Validated examples of one uncompressed TFRecord file, in order."""
    from google.protobuf.message import DecodeError
    from tfrecord import example_pb2

    for record, data in enumerate(_tfrecord_frames(path)):
        example = example_pb2.Example()
        try:
            example.ParseFromString(data)
        except DecodeError as err:
            raise RecordError.at(path, record, None, f"corrupt record: not a tf.train.Example ({err})") from None
        features = example.features.feature
        values = {}
        for name, kind in {**REQUIRED_TF, **OPTIONAL_TF}.items():
            if name not in features:
                if name in REQUIRED_TF:
                    raise RecordError.at(path, record, name, "missing feature")
                values[name] = None
                continue
            found = features[name].WhichOneof("kind")
            if found != kind:
                raise RecordError.at(path, record, name, f"wrong dtype: {found}, expected {kind}")
            dtype = np.float32 if kind == "float_list" else np.int64
            values[name] = np.array(getattr(features[name], kind).value, dtype=dtype)
        nsl = values.pop("next_sentence_labels")
        if nsl is not None and nsl.shape != (1,):
            raise RecordError.at(path, record, "next_sentence_labels", f"wrong shape: {nsl.shape[0]} values, expected 1")
        yield _validate(path, record, values["input_ids"], values["input_mask"], values["segment_ids"],
                        values["masked_lm_positions"], values["masked_lm_ids"], values["masked_lm_weights"],
                        vocab_size, pad_id)


# ---------------------------------------------------------------- HDF5

HDF5_FIELDS = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids")


def _hdf5_weights(path, first_row, positions):
    """1 for the slots before the first 0 position, as the HDF5 loaders read them."""
    weights = (positions != 0).astype(np.float32)
    after_padding = (np.cumsum(positions == 0, axis=1) > 0) & (positions != 0)
    rows = np.flatnonzero(after_padding.any(axis=1))
    if rows.size:
        raise RecordError.at(path, first_row + int(rows[0]), "masked_lm_positions",
                          "a non-zero position follows a 0 (padding) slot")
    return weights


def read_hdf5(path: str, vocab_size: int, pad_id: int) -> Iterator[MaskedExample]:
    """Validated examples of one HDF5 shard, in order, read a block of rows at a time."""
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise RecordError.at(path, None, None, f"cannot open as HDF5 ({err})") from None
    with handle:
        arrays = {}
        for name in HDF5_FIELDS + ("next_sentence_labels",):
            if name not in handle:
                if name == "next_sentence_labels":
                    continue
                raise RecordError.at(path, None, name, "missing dataset")
            data = handle[name]
            if not isinstance(data, h5py.Dataset) or data.dtype.kind not in "iu":
                raise RecordError.at(path, None, name, f"wrong dtype: {getattr(data, 'dtype', 'a group')}, "
                                                    "expected integers")
            expected_ndim = 1 if name == "next_sentence_labels" else 2
            if data.ndim != expected_ndim:
                raise RecordError.at(path, None, name, f"wrong shape: {data.shape}, expected {expected_ndim} dimensions")
            arrays[name] = data
        rows = arrays["input_ids"].shape[0]
        for name, data in arrays.items():
            pair = "masked_lm_positions" if name.startswith("masked_lm") else "input_ids"
            expected = (rows,) + ((arrays[pair].shape[1],) if data.ndim == 2 else ())
            if data.shape != expected:
                raise RecordError.at(path, None, name, f"wrong shape: {data.shape}, expected {expected}")
        for start in range(0, rows, HDF5_ROWS_PER_READ):
            stop = min(rows, start + HDF5_ROWS_PER_READ)
            try:
                block = {name: arrays[name][start:stop].astype(np.int64) for name in HDF5_FIELDS}
            except OSError as err:
                raise RecordError.at(path, start, None, f"corrupt data in rows {start}-{stop - 1} ({err})") from None
            weights = _hdf5_weights(path, start, block["masked_lm_positions"])
            for i in range(stop - start):
                yield _validate(path, start + i, block["input_ids"][i], block["input_mask"][i],
                                block["segment_ids"][i], block["masked_lm_positions"][i],
                                block["masked_lm_ids"][i], weights[i], vocab_size, pad_id)


def detect_format(path: str) -> str:
    """``hdf5`` by the HDF5 signature, else ``tfrecord`` (which has no magic number)."""
    with open(path, "rb") as handle:
        return "hdf5" if handle.read(8) == b"\x89HDF\r\n\x1a\n" else "tfrecord"


def read_premasked(path: str, vocab_size: int, pad_id: int) -> Iterator[MaskedExample]:
    """Examples of a TFRecord or HDF5 shard, the format told by its first bytes."""
    reader = read_hdf5 if detect_format(path) == "hdf5" else read_tfrecord
    return reader(path, vocab_size, pad_id)

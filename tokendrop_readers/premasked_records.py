"""The record every pre-masked reader yields, and the checks every layout shares.

Every reader yields :class:`MaskedExample` records, validated against the
vocabulary, with every problem reported as one :class:`RecordError` line
naming the file, the record and the field. The layouts are listed in
``premasked_files.py``, which tells them apart.
"""
from typing import NamedTuple, Optional

import numpy as np


SEGMENTS = 2  # BERT's type_vocab_size: sentence A and sentence B


class RecordError(ValueError):
    """A bad input shard: ``FILE: record N: FIELD: problem`` (one argument, so it pickles across processes)."""

    @classmethod
    def at(cls, path: str, record, field: Optional[str], problem: str) -> "RecordError":
        where = [path] + ([f"record {record}"] if record is not None else []) + ([field] if field else [])
        return cls(": ".join(where + [problem]))


class MaskedExample(NamedTuple):
    """One pre-masked example in WordPiece ids, padding removed.

    ``input_ids`` holds the file's input exactly ([MASK], random and kept
    tokens as masked; a random [PAD] stays an id like any other);
    ``positions``/``labels`` are the real masked slots only (weight 1).
    """
    input_ids: np.ndarray  # int64 [n]
    positions: np.ndarray  # int64 [k]
    labels: np.ndarray  # int64 [k]
    segment_ids: np.ndarray  # int64 [n]: 0 for the first segment; all 0 where the file has none


def validate(path, record, input_ids, input_mask, segment_ids, positions, labels, weights, vocab_size,
             names=None) -> MaskedExample:
    """Checks shared by every layout; returns the example with padding removed.

    ``input_mask`` / ``weights`` None mean an unpadded row / every slot real.
    ``names`` maps the v1 field names to the file's own (v2 TFRecords) for the messages.
    """
    names = names or {}

    def fail(field, problem):
        raise RecordError.at(path, record, names.get(field, field), problem)

    length = input_ids.shape[0]
    for name, values, size in (("input_mask", input_mask, length), ("segment_ids", segment_ids, length),
                               ("masked_lm_ids", labels, positions.shape[0]),
                               ("masked_lm_weights", weights, positions.shape[0])):
        if values is not None and values.shape[0] != size:
            fail(name, f"wrong shape: {values.shape[0]} values, expected {size}")
    if input_mask is None:
        n = length
        if n == 0:
            fail("input_ids", "empty row")
    else:
        if not np.isin(input_mask, (0, 1)).all():
            fail("input_mask", "values must be 0 or 1")
        n = int(input_mask.sum())
        if n == 0 or not input_mask[:n].all():
            fail("input_mask", "must be ones then zeros, with at least one 1")
    # Only the real tokens: a 0 inside them is BERT's [PAD] token, a 0 after them is padding.
    tokens = input_ids[:n]
    bad = np.flatnonzero((tokens < 0) | (tokens >= vocab_size))
    if bad.size:
        fail("input_ids", f"id {tokens[bad[0]]} at position {bad[0]} is out of the vocabulary (size {vocab_size})")
    if weights is not None:
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
    segments = np.zeros(n, np.int64) if segment_ids is None else segment_ids[:n].astype(np.int64)
    if segments.size and (segments.min() < 0 or segments.max() >= SEGMENTS):
        bad = int(np.flatnonzero((segments < 0) | (segments >= SEGMENTS))[0])
        fail("segment_ids", f"value {segments[bad]} at position {bad}: BERT has segments 0 and 1 only")
    return MaskedExample(tokens.astype(np.int64), positions.astype(np.int64), labels.astype(np.int64), segments)

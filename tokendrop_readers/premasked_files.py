"""Pre-masked BERT shards as their producers write them: the layout told from the file itself.

The layouts (read in ``premasked_tfrecord.py`` and ``premasked_hdf5.py``):

- ``tfrecord-v1``: TFRecord of ``tf.train.Example`` (MLPerf TF reference, TF
  Model Garden): ``input_ids``, ``input_mask``, ``segment_ids``,
  ``masked_lm_positions``, ``masked_lm_ids``, ``masked_lm_weights``,
  ``next_sentence_labels``;
- ``tfrecord-v2``: the same with Model Garden's ``--use_v2_feature_names``:
  ``input_word_ids``, ``input_type_ids``;
- ``tfrecord-gzip-v1`` / ``-v2``: either, written with ``--gzip_compress``;
- ``hdf5-fixed``: one fixed-length row per example (MLPerf PyTorch reference,
  NVIDIA fixed length, NVIDIA DeepLearningExamples, academic-budget-bert/BiGS):
  any integer dtype, any filter;
- ``hdf5-varlength``: NVIDIA MLPerf variable length: object (vlen) rows, no
  ``input_mask``;
- ``hdf5-packed``: NVIDIA MLPerf packed: vlen rows of up to 3 sequences with
  ``packed_input_len`` / ``packed_masked_lm_len``; each sequence becomes an
  example of its own.

An HDF5 file is told by its signature, a GZIP TFRecord by the gzip magic bytes
(and a first 12 bytes that are not a valid TFRecord length header), anything
else is read as an uncompressed TFRecord; the feature names by the first
record, the HDF5 layout by its datasets.
"""
from typing import Iterator, Tuple

from .premasked_hdf5 import read_hdf5
from .premasked_records import MaskedExample
from .premasked_tfrecord import read_tfrecord

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def read_premasked(path: str, vocab_size: int) -> Tuple[str, str, Iterator[MaskedExample]]:
    """(layout, what in the file told it, the validated examples) of one shard, read as it streams."""
    with open(path, "rb") as handle:
        head = handle.read(len(HDF5_SIGNATURE))
    if head == HDF5_SIGNATURE:
        return read_hdf5(path, vocab_size)
    return read_tfrecord(path, vocab_size)

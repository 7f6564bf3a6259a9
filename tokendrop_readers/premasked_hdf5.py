"""HDF5 shards of pre-masked BERT examples, in the three layouts their producers write.

- ``hdf5-fixed``: datasets ``input_ids`` [N, L], ``input_mask`` [N, L],
  ``segment_ids`` [N, L], ``masked_lm_positions`` [N, P], ``masked_lm_ids``
  [N, P], optional ``next_sentence_labels`` [N], zero-padded; a masked
  position of 0 is padding (position 0 is [CLS], never masked) and the loaders
  take the slots before the first 0. MLPerf's PyTorch reference (i4/i1, no
  filter), NVIDIA's fixed-length MLPerf files (i2), NVIDIA
  DeepLearningExamples and academic-budget-bert/BiGS (gzip) all write it.
- ``hdf5-varlength``: NVIDIA's MLPerf variable-length files: 1-D object
  datasets of ``h5py.vlen_dtype`` rows, ``input_ids`` / ``masked_lm_positions``
  / ``masked_lm_ids`` int16, ``segment_ids`` int8, each row unpadded (every
  token and slot real), no ``input_mask``; ``next_sentence_labels`` i1 [N].
- ``hdf5-packed``: NVIDIA's MLPerf packed files: the same vlen rows holding up
  to 3 sequences one after the other, ``packed_input_len`` (their lengths),
  ``packed_masked_lm_len`` (their numbers of masked slots), positions counted
  from the row's start, ``next_sentence_labels`` one per sequence. Each
  sequence becomes an example of its own, in row order, its positions counted
  from its own start: the model attends within an example, so sequences packed
  into one row must not see each other (NVIDIA's packed training masks across
  them for the same reason).

Rows are read ``ROWS_PER_READ`` at a time, so a shard is never held whole.
"""
import numpy as np

from .premasked_records import RecordError, validate

ROWS_PER_READ = 4096
FIXED_FIELDS = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids")
VLEN_FIELDS = ("input_ids", "masked_lm_positions", "masked_lm_ids")
PACKED_FIELDS = ("packed_input_len", "packed_masked_lm_len")


def _dataset(path, handle, name, vlen, ndim, required=True):
    """``handle[name]`` checked to be an integer (vlen integer) dataset of ``ndim`` dimensions, or None."""
    import h5py

    if name not in handle:
        if required:
            raise RecordError.at(path, None, name, "missing dataset")
        return None
    data = handle[name]
    if not isinstance(data, h5py.Dataset):
        raise RecordError.at(path, None, name, "wrong dtype: a group, expected integers")
    base = h5py.check_vlen_dtype(data.dtype) if vlen else data.dtype
    if base is None or base.kind not in "iu":
        expected = "variable-length integer rows" if vlen else "integers"
        raise RecordError.at(path, None, name, f"wrong dtype: {data.dtype}, expected {expected}")
    if data.ndim != ndim:
        raise RecordError.at(path, None, name, f"wrong shape: {data.shape}, expected {ndim} dimensions")
    return data


def _check_rows(path, arrays):
    rows = arrays["input_ids"].shape[0]
    for name, data in arrays.items():
        if data is not None and data.shape[0] != rows:
            raise RecordError.at(path, None, name, f"wrong shape: {data.shape[0]} rows, expected {rows}")
    return rows


def _blocks(path, arrays, rows):
    """(first row, {name: the block's rows}) for every ROWS_PER_READ rows."""
    for start in range(0, rows, ROWS_PER_READ):
        stop = min(rows, start + ROWS_PER_READ)
        try:
            yield start, {name: data[start:stop] for name, data in arrays.items() if data is not None}
        except OSError as err:
            raise RecordError.at(path, start, None, f"corrupt data in rows {start}-{stop - 1} ({err})") from None


def _fixed(path, handle, vocab_size):
    arrays = {name: _dataset(path, handle, name, False, 2) for name in FIXED_FIELDS}
    arrays["next_sentence_labels"] = _dataset(path, handle, "next_sentence_labels", False, 1, required=False)
    rows = _check_rows(path, arrays)
    for name in FIXED_FIELDS:
        pair = "masked_lm_positions" if name.startswith("masked_lm") else "input_ids"
        if arrays[name].shape[1] != arrays[pair].shape[1]:
            raise RecordError.at(path, None, name, f"wrong shape: {arrays[name].shape}, expected "
                                                 f"{(rows, arrays[pair].shape[1])}")
    for start, block in _blocks(path, arrays, rows):
        # the block stays in the file's dtypes (int16/int32): an int64 copy of 4,096 rows would be 4x larger
        positions = block["masked_lm_positions"]
        after_padding = (np.cumsum(positions == 0, axis=1) > 0) & (positions != 0)
        bad = np.flatnonzero(after_padding.any(axis=1))
        if bad.size:
            raise RecordError.at(path, start + int(bad[0]), "masked_lm_positions",
                                 "a non-zero position follows a 0 (padding) slot")
        weights = (positions != 0).astype(np.float32)
        ids, mask, segments, labels = (block[n] for n in ("input_ids", "input_mask", "segment_ids", "masked_lm_ids"))
        for i in range(len(positions)):
            yield validate(path, start + i, ids[i], mask[i], segments[i], positions[i], labels[i], weights[i],
                           vocab_size)


def _vlen_arrays(path, handle, packed):
    arrays = {name: _dataset(path, handle, name, True, 1) for name in VLEN_FIELDS + (PACKED_FIELDS if packed else ())}
    arrays["segment_ids"] = _dataset(path, handle, "segment_ids", True, 1, required=False)
    # one label per row (i1 [N]) in variable-length files, one per sequence (vlen) in packed ones
    arrays["next_sentence_labels"] = _dataset(path, handle, "next_sentence_labels", packed, 1, required=False)
    return arrays, _check_rows(path, arrays)


def _varlength(path, handle, vocab_size):
    arrays, rows = _vlen_arrays(path, handle, packed=False)
    for start, block in _blocks(path, arrays, rows):
        segments = block.get("segment_ids")
        for i in range(len(block["input_ids"])):
            yield validate(path, start + i, block["input_ids"][i], None,
                           None if segments is None else segments[i],
                           block["masked_lm_positions"][i], block["masked_lm_ids"][i], None, vocab_size)


def _packed(path, handle, vocab_size):
    arrays, rows = _vlen_arrays(path, handle, packed=True)
    for start, block in _blocks(path, arrays, rows):
        segments, nsl = block.get("segment_ids"), block.get("next_sentence_labels")
        for i in range(len(block["input_ids"])):
            row = start + i

            def fail(field, problem):
                raise RecordError.at(path, row, field, problem)

            ids, positions, labels = (block[n][i].astype(np.int64) for n in VLEN_FIELDS)
            lengths, slots = (block[n][i].astype(np.int64) for n in PACKED_FIELDS)
            if lengths.size == 0 or (lengths <= 0).any():
                fail("packed_input_len", f"sequence lengths must be positive, got {lengths.tolist()}")
            if slots.size != lengths.size or (slots < 0).any():
                fail("packed_masked_lm_len", f"{slots.tolist()} does not give a slot count for each of the "
                                             f"{lengths.size} sequences")
            if lengths.sum() != ids.size:
                fail("packed_input_len", f"lengths sum to {lengths.sum()}, but the row has {ids.size} tokens")
            if slots.sum() != positions.size:
                fail("packed_masked_lm_len", f"counts sum to {slots.sum()}, but the row has {positions.size} "
                                             "masked_lm_positions")
            if segments is not None and segments[i].size != ids.size:
                fail("segment_ids", f"wrong shape: {segments[i].size} values, expected {ids.size}")
            if nsl is not None and nsl[i].size != lengths.size:
                fail("next_sentence_labels", f"wrong shape: {nsl[i].size} values, expected {lengths.size}")
            first_token = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            first_slot = np.concatenate([[0], np.cumsum(slots)[:-1]])
            for j, (t, n, s, k) in enumerate(zip(first_token, lengths, first_slot, slots)):
                own = positions[s:s + k]
                outside = np.flatnonzero((own < t) | (own >= t + n))
                if outside.size:
                    fail("masked_lm_positions", f"position {own[outside[0]]} is outside sequence {j} "
                                                f"(tokens {t}-{t + n - 1} of the row)")
                yield validate(path, f"{row} sequence {j}", ids[t:t + n], None,
                               None if segments is None else segments[i][t:t + n],
                               own - t, labels[s:s + k], None, vocab_size)


def read_hdf5(path: str, vocab_size: int):
    """(layout, how it was told, validated examples) of one HDF5 shard."""
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise RecordError.at(path, None, None, f"cannot open as HDF5 ({err})") from None
    try:
        if "input_ids" not in handle:
            raise RecordError.at(path, None, "input_ids", "missing dataset")
        ids = handle["input_ids"]
        vlen = h5py.check_vlen_dtype(ids.dtype) if isinstance(ids, h5py.Dataset) else None
        if "packed_input_len" in handle:
            layout, told, reader = "hdf5-packed", "packed_input_len", _packed
        elif vlen is not None:
            layout, told, reader = "hdf5-varlength", "variable-length input_ids", _varlength
        else:
            layout, told, reader = "hdf5-fixed", "2-D input_ids", _fixed
        if isinstance(ids, h5py.Dataset):
            told = f"HDF5 signature, {told} ({vlen or ids.dtype}, {ids.compression or 'no'} compression)"
        examples = reader(path, handle, vocab_size)
        first = next(examples, None)  # checks the datasets now, before the caller starts writing
    except BaseException:
        handle.close()
        raise

    def stream():
        with handle:
            if first is not None:
                yield first
                yield from examples

    return layout, told, stream()

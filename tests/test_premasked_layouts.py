"""Every producer's layout converts exactly, is told from the file itself, and names its bad records.

Each file is written the way its producer writes it (premasked_fixtures.PRODUCERS: the keys, dtypes,
compression and file names of that producer's own code), converted in-process, and read back with
fairseq's indexed-dataset reader. Training and evaluation on a set with a file of every layout are
in test_premasked.py and test_eval_mlm_accuracy.py (the session fixtures ``premasked`` / ``trained``).
"""
import contextlib
import io
import shutil

import h5py
import numpy as np
import pytest

from fairseq_tokendrop.errors import TokendropError

from premasked_fixtures import (
    PRODUCERS, SPECIALS, convert_premasked, converted_examples, pack, producer_examples, vocab_tokens,
    write_producer, write_vocab, written_examples)

pytestmark = pytest.mark.slow  # starts processes: not in the fast tier (tests/run.sh --fast)


def convert(tmp_path, *files, split="valid"):
    """Convert in-process; return the converter's progress output."""
    vocab = write_vocab(tmp_path / "vocab.txt", vocab_tokens())
    log = io.StringIO()
    with contextlib.redirect_stderr(log):
        convert_premasked.main(["--vocab", str(vocab), "--destdir", str(tmp_path / "bin"), "--split", split,
                                "--workers", "1", *map(str, files)])
    return log.getvalue()


@pytest.mark.parametrize("producer", sorted(PRODUCERS))
def test_each_producers_layout_converts_exactly_and_is_named(tmp_path, producer):
    examples = producer_examples(producer, 9, seed=31)
    path = write_producer(tmp_path, producer, examples)
    log = convert(tmp_path, path)
    assert converted_examples(tmp_path / "bin", "valid") == written_examples(examples)
    assert f"{path}: layout {PRODUCERS[producer][1]} (" in log
    # the fixture holds what the test is about: in-sequence [PAD]s, and rows of several sequences
    assert sum(SPECIALS["[PAD]"] in ids for ids, *_ in written_examples(examples)) >= 2
    if producer == "nvidia_packed":
        assert max(len(row) for row in pack(examples)) == 3
        with h5py.File(path) as f:
            assert f["input_ids"].shape == (len(pack(examples)),) and h5py.check_vlen_dtype(f["input_ids"].dtype)


def test_the_layout_is_told_by_the_content_not_the_name(tmp_path):
    """A GZIP TFRecord named like an HDF5 shard and an HDF5 shard named like a TFRecord."""
    gz = write_producer(tmp_path, "model_garden_gzip_v2", producer_examples("model_garden_gzip_v2", 4, seed=1))
    packed = write_producer(tmp_path, "nvidia_packed", producer_examples("nvidia_packed", 5, seed=2))
    swapped = [shutil.move(gz, tmp_path / "part_1_of_2048.hdf5"), shutil.move(packed, tmp_path / "part-00001-of-00500")]
    log = convert(tmp_path, *swapped)
    assert f"{swapped[0]}: layout tfrecord-gzip-v2 (" in log and f"{swapped[1]}: layout hdf5-packed (" in log


def converter_error(tmp_path, path):
    with pytest.raises(SystemExit) as exc:
        convert(tmp_path, path)
    assert isinstance(exc.value, TokendropError)
    message = str(exc.value.code)
    assert "\n" not in message
    return message


def _truncate_gzip(path):
    path.write_bytes(path.read_bytes()[:-20])


def _set_vlen(name, row, values):
    def edit(f):
        f[name][row] = values
    return edit


def _shift_vlen(name, row, slot, by):
    def edit(f):
        values = f[name][row].copy()
        values[slot] += by
        f[name][row] = values
    return edit


def _float_rows(name):
    def edit(f):
        rows = np.empty(len(f[name]), object)
        rows[:] = [np.ones(2, np.float32) for _ in range(len(rows))]
        del f[name]
        f.create_dataset(name, data=rows, dtype=h5py.vlen_dtype(np.dtype("float32")))
    return edit


BAD = {
    "gzip_truncated": ("model_garden_gzip", None, _truncate_gzip, "record 5: corrupt GZIP stream"),
    "v2_missing_feature": ("model_garden_v2", lambda i, d: d.pop("input_word_ids") if i == 1 else None, None,
                           "record 1: input_word_ids: missing feature"),  # the file's own name for it
    "v2_wrong_dtype": ("model_garden_v2", lambda i, d: d.update(input_word_ids=([1.0] * 24, "float")) if i == 2
                       else None, None, "record 2: input_word_ids: wrong dtype: float_list, expected int64_list"),
    "varlength_float_rows": ("nvidia_varlength", _float_rows("masked_lm_ids"), None,
                             "masked_lm_ids: wrong dtype: object, expected variable-length integer rows"),
    "varlength_slot_counts_differ": ("nvidia_varlength", _set_vlen("masked_lm_positions", 3, [1, 2, 3, 4, 5, 6]),
                                     None, "record 3: masked_lm_ids: wrong shape"),
    "varlength_position_outside": ("nvidia_varlength", _shift_vlen("masked_lm_positions", 3, -1, 40), None,
                                   "record 3: masked_lm_positions: position"),
    "packed_lengths_do_not_add_up": ("nvidia_packed", _shift_vlen("packed_input_len", 1, 0, -1), None,
                                     "record 1: packed_input_len: lengths sum to"),
    "packed_slot_in_another_sequence": ("nvidia_packed", None, None,
                                        "record 0: masked_lm_positions: position 1 is outside sequence 1"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_record_of_the_new_layouts_is_one_line_naming_file_record_and_field(tmp_path, case):
    producer, edit, damage, expected = BAD[case]
    examples = producer_examples(producer, 6, seed=41)
    if case == "packed_slot_in_another_sequence":
        def edit(f):  # noqa: F811  (the second sequence's first slot moved into the first sequence)
            positions = f["masked_lm_positions"][0].copy()
            positions[f["packed_masked_lm_len"][0][0]] = 1
            f["masked_lm_positions"][0] = positions
    path = write_producer(tmp_path, producer, examples, edit)
    if damage:
        damage(path)
    message = converter_error(tmp_path, path)
    assert message.startswith(f"fairseq_tokendrop: error: {path}: {expected}"), message

"""Pre-masked shards: vocab.txt mapping, TFRecord/HDF5 conversion, training on the file's own masks, bad inputs.

The fixtures (premasked_fixtures.py) write TFRecords with the ``tfrecord``
package's writer and HDF5 shards with h5py. Converted data is read back with
fairseq's own indexed-dataset reader and compared with the generating arrays.
"""
import json
import os

import pytest
import torch
from fairseq.data import Dictionary

from fairseq_tokendrop import get_token_importance
from fairseq_tokendrop.errors import TokendropError
from fairseq_tokendrop.tasks.masked_lm_tokendrop import MaskedLMTokenDropConfig, MaskedLMTokenDropTask
from fairseq_tokendrop.data.premasked_dataset import PartWriter, publish_split
from fairseq_tokendrop.data.wordpiece_dictionary import vocab_sha256, wordpiece_to_fairseq, write_dict_txt

from conftest import run_cli, train_flags
from premasked_fixtures import (
    L, P, SPECIALS, by_symbol, convert_premasked, converted_examples, load_trained, make_examples, vocab_tokens,
    write_hdf5, write_tfrecord, write_vocab, written_examples)

def test_special_tokens_land_on_fairseq_symbols_and_dict_txt_round_trips(tmp_path):
    tokens = vocab_tokens()
    dictionary, id_map = wordpiece_to_fairseq(str(write_vocab(tmp_path / "vocab.txt", tokens)))
    stock = Dictionary()
    assert id_map[SPECIALS["[CLS]"]] == stock.bos() == 0
    assert id_map[SPECIALS["[SEP]"]] == stock.eos() == 2
    assert id_map[SPECIALS["[UNK]"]] == stock.unk() == 3
    assert id_map[SPECIALS["[MASK]"]] == len(dictionary) - 1 and dictionary[len(dictionary) - 1] == "<mask>"
    # BERT's [PAD] is a token (an in-sequence [PAD] must not become padding): a word of its own,
    # and fairseq's <pad> is the one entry with no BERT counterpart
    assert dictionary[id_map[SPECIALS["[PAD]"]]] == "[PAD]" and id_map[SPECIALS["[PAD]"]] != stock.pad()
    assert len(dictionary) == len(tokens) + 1
    assert sorted(id_map.tolist()) == [i for i in range(len(dictionary)) if i != stock.pad()]  # one to one
    for i, token in enumerate(tokens):
        if token not in SPECIALS or token == "[PAD]":
            assert dictionary[id_map[i]] == token
    # What masked_lm builds from dict.txt: Dictionary.load, then add_symbol('<mask>').
    write_dict_txt(dictionary, str(tmp_path / "dict.txt"))
    loaded = Dictionary.load(str(tmp_path / "dict.txt"))
    assert loaded.add_symbol("<mask>") == id_map[SPECIALS["[MASK]"]]
    assert loaded.symbols == dictionary.symbols


@pytest.mark.slow
@pytest.mark.parametrize("split", ["train", "valid"])  # each a file of every producer's layout
def test_converted_data_keeps_the_files_masks_exactly(premasked, split):
    originals = premasked["examples"][split]
    assert converted_examples(premasked["dest"], split) == written_examples(originals)
    dictionary = Dictionary.load(str(premasked["dest"] / "dict.txt"))
    dictionary.add_symbol("<mask>")
    meta = json.loads((premasked["dest"] / "premasked.json").read_text())
    assert meta["splits"][split]["examples"] == len(originals)
    assert meta["splits"][split]["masked_slots"] == sum(int(ex["masked_lm_weights"].sum()) for ex in originals)
    assert meta["dictionary_size"] == len(dictionary)
    nonzero = sum(bool(ex["segment_ids"].any()) for ex in originals)
    assert nonzero and f"{nonzero} of {len(originals)} examples have a second segment: kept" in premasked["logs"][split]
    assert not [p for p in os.listdir(premasked["dest"]) if p.startswith(".convert-")]


@pytest.mark.slow
def test_the_task_serves_the_files_masks_without_re_masking(premasked):
    """masked_lm_tokendrop's batches hold the file's inputs and targets, in masked_lm's sample layout."""
    tokens = vocab_tokens()
    cfg = MaskedLMTokenDropConfig(data=str(premasked["dest"]), tokens_per_sample=32, seed=3)
    task = MaskedLMTokenDropTask.setup_task(cfg)
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    batch = dataset.collater([dataset[i] for i in range(len(dataset))])
    assert set(batch) == {"id", "net_input", "target", "nsentences", "ntokens"}
    assert batch["nsentences"] == len(dataset)
    pad = task.source_dictionary.pad()
    for row, index in enumerate(batch["id"].tolist()):
        ex = premasked["examples"]["valid"][index]
        n = int(ex["input_mask"].sum())
        src = batch["net_input"]["src_tokens"][row]
        assert batch["net_input"]["src_lengths"][row] == n
        assert src[:n].tolist() == by_symbol(tokens, task.source_dictionary, ex["input_ids"][:n]).tolist()
        assert (src[n:] == pad).all()
        segments = batch["net_input"]["segment_labels"][row]
        assert segments[:n].tolist() == ex["segment_ids"][:n].tolist() and not segments[n:].any()
        expected = torch.full_like(src, pad)
        real = ex["masked_lm_weights"] == 1
        positions = torch.from_numpy(ex["masked_lm_positions"][real])
        expected[positions] = torch.from_numpy(by_symbol(tokens, task.source_dictionary, ex["masked_lm_ids"][real]))
        assert batch["target"][row].tolist() == expected.tolist()
    # Reading again gives the same masks: nothing random between the file and the batch.
    task.load_dataset("valid")
    again = task.dataset("valid")
    assert all(torch.equal(again[i]["target"], dataset[i]["target"]) for i in range(len(dataset)))


@pytest.mark.slow
def test_fairseq_train_with_token_dropping_runs_on_the_files_masks(premasked, trained):
    """The importance update sees exactly the file's labels: only their scores move."""
    records = [json.loads(line.split("| train_inner | ", 1)[1]) for line in trained["stdout"].splitlines()
               if "| train_inner | " in line]
    assert [int(r["num_updates"]) for r in records] == list(range(1, 13))
    assert all(0 < float(r["kept_frac"]) < 1 for r in records)  # tokens were dropped
    assert "| valid |" in trained["stdout"]
    model, model_dict = load_trained(premasked, trained)
    scores = get_token_importance(model)
    labels = {int(t) for ex in premasked["examples"]["train"]
              for t in by_symbol(vocab_tokens(), model_dict, ex["masked_lm_ids"][ex["masked_lm_weights"] == 1])}
    moved = {i for i in range(len(model_dict)) if abs(float(scores[i])) not in (10.0, 1e4)}
    assert moved and moved <= labels


def converter_error(*args):
    """Run the converter in-process; return its one-line error."""
    with pytest.raises(SystemExit) as exc:
        convert_premasked.main([str(a) for a in args])
    assert isinstance(exc.value, TokendropError) or exc.value.code == 2
    return str(exc.value.code)


def _drop_feature(name, record):
    def edit(i, datum):
        if i == record:
            del datum[name]
    return edit


def _set_feature(name, record, value, kind="int"):
    def edit(i, datum):
        if i == record:
            datum[name] = (value, kind)
    return edit


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:-7])


def _flip_byte_of_record_1(path):
    data = bytearray(path.read_bytes())
    first_length = int.from_bytes(data[:8], "little")
    data[8 + 4 + first_length + 4 + 8 + 4 + 10] ^= 0x40  # 10 bytes into record 1's data
    path.write_bytes(bytes(data))


TF_CASES = {
    "truncated": (None, _truncate, "record 5: truncated record"),
    "corrupt": (None, _flip_byte_of_record_1, "record 1: corrupt record"),
    "missing_feature": (_drop_feature("masked_lm_weights", 2), None, "record 2: masked_lm_weights: missing feature"),
    "wrong_dtype": (_set_feature("input_ids", 3, [1.0] * L, "float"), None,
                    "record 3: input_ids: wrong dtype: float_list, expected int64_list"),
    "wrong_shape": (_set_feature("input_mask", 4, [1] * (L - 1)), None,
                    f"record 4: input_mask: wrong shape: {L - 1} values, expected {L}"),
    "input_out_of_vocab": (_set_feature("input_ids", 1, [101] + [999] * (L - 1)), None,
                           "record 1: input_ids: id 999 at position 1 is out of the vocabulary"),
    "label_out_of_vocab": (_set_feature("masked_lm_ids", 2, [5000] * P), None,
                           "record 2: masked_lm_ids: id 5000 is out of the vocabulary"),
    "weight_not_0_or_1": (_set_feature("masked_lm_weights", 0, [0.5] * P, "float"), None,
                          "record 0: masked_lm_weights: values must be 0 or 1"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(TF_CASES))
def test_a_bad_tfrecord_stops_with_one_line_naming_file_record_and_field(tmp_path, case):
    edit, damage, expected = TF_CASES[case]
    vocab = write_vocab(tmp_path / "vocab.txt", vocab_tokens())
    good = write_tfrecord(tmp_path / "good", make_examples(4, seed=5))
    bad = write_tfrecord(tmp_path / "bad", make_examples(6, seed=6), edit)
    if damage:
        damage(bad)
    message = converter_error("--vocab", vocab, "--destdir", tmp_path / "bin", "--workers", "1", good, bad)
    assert message == message.strip() and "\n" not in message
    assert message.startswith(f"fairseq_tokendrop: error: {bad}: {expected}"), message
    # Nothing half-written: the conversion was into a new dir, and no dir is left.
    assert not (tmp_path / "bin").exists()


HDF5_CASES = {
    "missing_dataset": (lambda d: d.pop("masked_lm_ids"), "masked_lm_ids: missing dataset"),
    "wrong_dtype": (lambda d: d.update(input_ids=d["input_ids"].astype("f4")),
                    "input_ids: wrong dtype: float32, expected integers"),
    "wrong_shape": (lambda d: d.update(input_mask=d["input_mask"][:, :-1]),
                    f"input_mask: wrong shape: (6, {L - 1}), expected (6, {L})"),
    "out_of_vocab": (lambda d: d["masked_lm_ids"].__setitem__((3, 0), 7000),
                     "record 3: masked_lm_ids: id 7000 is out of the vocabulary"),
    "slot_after_padding": (lambda d: d["masked_lm_positions"].__setitem__(2, [5, 0, 6, 0, 0]),
                           "record 2: masked_lm_positions: a non-zero position follows a 0 (padding) slot"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(HDF5_CASES))
def test_a_bad_hdf5_shard_stops_with_one_line_naming_file_record_and_field(tmp_path, case):
    edit, expected = HDF5_CASES[case]
    vocab = write_vocab(tmp_path / "vocab.txt", vocab_tokens())
    bad = write_hdf5(tmp_path / "bad.hdf5", make_examples(6, seed=7), edit)
    message = converter_error("--vocab", vocab, "--destdir", tmp_path / "bin", "--workers", "1", bad)
    assert message.startswith(f"fairseq_tokendrop: error: {bad}: {expected}"), message


@pytest.mark.slow
def test_a_vocab_without_mask_is_refused(tmp_path):
    vocab = write_vocab(tmp_path / "vocab.txt", [t for t in vocab_tokens() if t != "[MASK]"])
    data = write_tfrecord(tmp_path / "part", make_examples(2, seed=8))
    message = converter_error("--vocab", vocab, "--destdir", tmp_path / "bin", data)
    assert message == f"fairseq_tokendrop: error: --vocab: {vocab}: special token(s) [MASK] not found"


@pytest.mark.slow
def test_a_failed_conversion_leaves_the_published_split_and_a_damaged_one_refuses_to_load(tmp_path):
    vocab = write_vocab(tmp_path / "vocab.txt", vocab_tokens())
    good = write_tfrecord(tmp_path / "good", make_examples(5, seed=9))
    dest = tmp_path / "bin"
    convert_premasked.main(["--vocab", str(vocab), "--destdir", str(dest), "--split", "valid", str(good)])
    before = {name: (dest / name).read_bytes() for name in os.listdir(dest)}
    bad = write_tfrecord(tmp_path / "bad", make_examples(3, seed=10), _drop_feature("input_ids", 2))
    converter_error("--vocab", vocab, "--destdir", dest, "--split", "valid", "--workers", "2", good, bad)
    assert {name: (dest / name).read_bytes() for name in os.listdir(dest)} == before
    # A data file that no longer matches premasked.json (as after a crash mid-publish) is refused.
    with open(dest / "valid.tgt.bin", "ab") as f:
        f.write(b"\0\0")
    task = MaskedLMTokenDropTask.setup_task(MaskedLMTokenDropConfig(data=str(dest), tokens_per_sample=32))
    with pytest.raises(TokendropError, match=r"valid.tgt.bin: does not match premasked.json"):
        task.load_dataset("valid")


@pytest.mark.slow
def test_an_input_with_no_examples_is_refused_and_replaces_nothing(tmp_path):
    vocab = write_vocab(tmp_path / "vocab.txt", vocab_tokens())
    good = write_tfrecord(tmp_path / "good", make_examples(5, seed=12))
    empty = write_tfrecord(tmp_path / "empty", [])
    dest = tmp_path / "bin"
    convert_premasked.main(["--vocab", str(vocab), "--destdir", str(dest), "--split", "valid", str(good)])
    before = {name: (dest / name).read_bytes() for name in os.listdir(dest)}
    message = converter_error("--vocab", vocab, "--destdir", dest, "--split", "valid", "--workers", "1", empty)
    assert message == f"fairseq_tokendrop: error: {empty}: no examples: nothing converted, split 'valid' left as it was"
    assert {name: (dest / name).read_bytes() for name in os.listdir(dest)} == before
    # among other inputs, into a new dir: refused all the same, and no dir is left
    message = converter_error("--vocab", vocab, "--destdir", tmp_path / "new", "--workers", "2", good, empty)
    assert message.startswith(f"fairseq_tokendrop: error: {empty}: no examples")
    assert not (tmp_path / "new").exists()


def test_an_empty_split_is_refused_in_one_line_when_it_loads(tmp_path):
    """A split of no examples, as the converter wrote one for an empty input before it refused them."""
    vocab = write_vocab(tmp_path / "vocab.txt", vocab_tokens())
    dictionary, _ = wordpiece_to_fairseq(str(vocab))
    dest = tmp_path / "bin"
    dest.mkdir()
    write_dict_txt(dictionary, str(dest / "dict.txt"))
    PartWriter(str(tmp_path / "part"), len(dictionary), dictionary.pad()).finalize()
    entry = dict(sources=[], layouts=[], examples=0, masked_slots=0, longest=0, nonzero_segment_examples=0)
    publish_split(str(dest), "valid", str(tmp_path / "part"), entry, vocab_sha256(str(vocab)), len(dictionary))
    task = MaskedLMTokenDropTask.setup_task(MaskedLMTokenDropConfig(data=str(dest), tokens_per_sample=32))
    with pytest.raises(TokendropError) as err:
        task.load_dataset("valid")
    assert str(err.value.code) == f"fairseq_tokendrop: error: {dest / 'valid.src.idx'}: the split has no examples"


@pytest.mark.slow
def test_the_cli_error_is_one_line_on_stderr_and_a_non_zero_exit(tmp_path):
    vocab = write_vocab(tmp_path / "vocab.txt", vocab_tokens())
    bad = write_tfrecord(tmp_path / "bad", make_examples(3, seed=11), _drop_feature("masked_lm_positions", 1))
    proc = run_cli("scripts.convert_premasked", "--vocab", vocab, "--destdir", tmp_path / "bin", bad, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"fairseq_tokendrop: error: {bad}: record 1: masked_lm_positions: missing feature")
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_with_num_segment_the_files_segment_ids_train_the_second_segment_row(premasked, tmp_path):
    """Row 1 of the segment table gets a gradient only from tokens of segment 1: if the file's segment_ids
    did not reach the model, every token would be segment 0 and row 1 would never move."""
    run_cli("fairseq_cli.train", *train_flags(premasked["dest"], tmp_path, "--max-update", "2", "--num-segment", "2",
                                              "--token-drop", "0.5", "--save-interval-updates", "1",
                                              "--disable-validation"))
    key = "encoder.sentence_encoder.embed_segments.weight"
    first, second = (torch.load(tmp_path / f"checkpoint_1_{u}.pt", weights_only=True)["model"][key] for u in (1, 2))
    assert first.shape[0] == 2
    assert not torch.equal(first[1], second[1])

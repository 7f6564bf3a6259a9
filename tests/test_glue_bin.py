"""finetune/glue_bin.py: GLUE pair tasks binarized for sentence_prediction, read back with fairseq's own reader.

No training: the text encoder's ids, cut longest text first to the budget, must be what
fairseq-preprocess wrote (plus its </s>); classification labels decode through the label
dictionary to the files' labels; STS-B scores are the raw label files sentence_prediction's
--regression-target reads, divided by 5 as fairseq's preprocess_GLUE_tasks.sh does.
"""
import pytest
from fairseq.data import Dictionary
from fairseq.data.indexed_dataset import MMapIndexedDataset

from fairseq_tokendrop.data.text_encoder import find_text_encoder
from fairseq_tokendrop.finetune.glue_bin import binarize, framing_length, truncate_longest_first
from tokendrop_readers.glue import glue_task

from premasked_fixtures import vocab_tokens, write_vocab

LONG = " ".join(f"w{i % 60}" for i in range(25))
PAIRS = [("w1 w2 w3", "w4 w5", "3.8"), (LONG, "w7 w8 w9 w10", "0.0"), ("w11", LONG + " w1s", "5.0")]
RTE_LABELS = ["not_entailment", "entailment", "entailment"]


def write_folder(folder, task):
    folder.mkdir()
    for split in ("train", "dev"):
        if task == "STS-B":
            header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
            rows = [f"{i}\tg\tf\ty\to\ts1\ts2\t{a}\t{b}\t{y}\n" for i, (a, b, y) in enumerate(PAIRS)]
        else:
            header = "index\tsentence1\tsentence2\tlabel\n"
            rows = [f"{i}\t{a}\t{b}\t{y}\n" for i, ((a, b, _), y) in enumerate(zip(PAIRS, RTE_LABELS))]
        (folder / f"{split}.tsv").write_text(header + "".join(rows))
    return folder


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    root = tmp_path_factory.mktemp("vocab")
    write_vocab(root / "vocab.txt", vocab_tokens())
    return find_text_encoder(str(root))


def test_longest_first_cuts_the_longer_text_until_both_fit():
    assert truncate_longest_first(list("abcdef"), list("xy"), 5) == (list("abc"), list("xy"))
    assert truncate_longest_first(list("abc"), list("xyz"), 4) == (list("ab"), list("xy"))
    assert truncate_longest_first(list("abc"), None, 2) == (list("ab"), None)


@pytest.mark.parametrize("task_name", ["STS-B", "RTE"])
def test_pairs_are_binarized_as_the_encoder_splits_them_within_the_budget(task_name, encoder, tmp_path):
    task = glue_task(task_name)
    folder = write_folder(tmp_path / task_name, task_name)
    max_length = 12
    summary = binarize(task, str(folder), encoder, str(tmp_path / "bin"), max_length, separator=False, workers=1,
                       log=lambda message: None)
    budget = max_length - framing_length(pair=True, separator=False)
    eos = encoder.dictionary.eos()
    first, second = (MMapIndexedDataset(str(tmp_path / "bin" / name / "valid")) for name in ("input0", "input1"))
    for i, (a, b, _) in enumerate(PAIRS):
        ids_a, ids_b = truncate_longest_first(*encoder.ids([a, b]), budget)
        assert first[i].tolist() == ids_a + [eos] and second[i].tolist() == ids_b + [eos]
        assert len(ids_a) + len(ids_b) <= budget
    assert summary["truncated"] == {"train": 2, "dev": 2}
    if task.regression:
        for split in ("train", "valid"):
            scores = (tmp_path / "bin" / "label" / f"{split}.label").read_text().split()
            assert [float(s) for s in scores] == [float(y) / 5 for _, _, y in PAIRS]
        assert summary["dev_labels"] == [float(y) for _, _, y in PAIRS]
    else:
        labels = Dictionary.load(str(tmp_path / "bin" / "label" / "dict.txt"))
        assert labels.symbols[labels.nspecial:] == list(task.labels)  # class k is task.labels[k]
        written = MMapIndexedDataset(str(tmp_path / "bin" / "label" / "valid"))
        assert [labels[written[i][0]] for i in range(len(written))] == RTE_LABELS
        assert summary["dev_labels"] == RTE_LABELS


def test_a_second_binarization_of_the_same_inputs_is_reused(encoder, tmp_path):
    folder = write_folder(tmp_path / "RTE", "RTE")
    args = (glue_task("RTE"), str(folder), encoder, str(tmp_path / "bin"), 12, True, 1)
    messages = []
    binarize(*args, log=messages.append)
    stamp = (tmp_path / "bin" / "input0" / "train.bin").stat().st_mtime_ns
    binarize(*args, log=messages.append)
    assert messages[-1].startswith("reusing") and (tmp_path / "bin" / "input0" / "train.bin").stat().st_mtime_ns == stamp
    (folder / "dev.tsv").write_text((folder / "dev.tsv").read_text().replace("w1 w2", "w2 w1"))
    binarize(*args, log=messages.append)
    assert not messages[-1].startswith("reusing")

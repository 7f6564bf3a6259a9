"""Pre-masked test data: a bert-uncased-like vocab.txt, examples masked BERT's way
(80% [MASK], 10% random, 10% kept) held as plain numpy arrays, TFRecords written by the
``tfrecord`` package's writer, HDF5 shards written by h5py, and session fixtures that
convert them and train on them (conftest.py makes the fixtures visible to every test).
"""
import contextlib
import io

import h5py
import numpy as np
import pytest
import torch
from fairseq.data import Dictionary
from tfrecord.writer import TFRecordWriter

from fairseq_tokendrop.standalone import build_model

from conftest import load_script, run_cli, train_flags


L, P = 24, 5  # padded sequence length and masked slots, as MLPerf's 512 and 76
N_WORDS = 60
SPECIALS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}


convert_premasked = load_script("convert_premasked")


def vocab_tokens(extra_words=0):
    """bert-uncased layout: [PAD]=0, [unused*], [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103, then words."""
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += [f"w{i}" for i in range(N_WORDS)] + ["##s", "##ing"] + [f"x{i}" for i in range(extra_words)]
    assert all(tokens[i] == t for t, i in SPECIALS.items())
    return tokens


def write_vocab(path, tokens):
    path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return path


def make_examples(n, seed):
    """BERT-style masked examples as the arrays a TFRecord holds (padded to L and P).

    Words are Zipf-distributed so a few updates already learn something, and
    a third of the examples carry a second segment.
    """
    rng = np.random.default_rng(seed)
    words = np.arange(104, 104 + N_WORDS + 2)
    zipf = 1.0 / np.arange(1, words.size + 1)
    out = []
    for i in range(n):
        length = int(rng.integers(8, L + 1))
        ids = rng.choice(words, size=length, p=zipf / zipf.sum())
        ids[0] = SPECIALS["[CLS]"]
        ids[-1] = SPECIALS["[SEP]"]
        segment = np.zeros(L, np.int64)
        if i % 3 == 0:
            cut = length // 2
            ids[cut] = SPECIALS["[SEP]"]
            segment[cut + 1:length] = 1
        candidates = [p for p in range(1, length) if ids[p] != SPECIALS["[SEP]"]]
        k = int(rng.integers(1, P + 1))
        positions = np.sort(rng.choice(candidates, size=k, replace=False))
        labels = ids[positions].copy()
        masked = ids.copy()
        for pos in positions:
            r = rng.random()
            masked[pos] = SPECIALS["[MASK]"] if r < 0.8 else (rng.choice(words) if r < 0.9 else ids[pos])
        pad = lambda a, size, dtype=np.int64: np.concatenate([a, np.zeros(size - len(a), dtype)]).astype(dtype)  # noqa: E731
        out.append(dict(
            input_ids=pad(masked, L), input_mask=pad(np.ones(length, np.int64), L), segment_ids=segment,
            masked_lm_positions=pad(positions, P), masked_lm_ids=pad(labels, P),
            masked_lm_weights=pad(np.ones(k, np.float32), P, np.float32),
            next_sentence_labels=np.array([i % 2]),
        ))
    return out


def write_tfrecord(path, examples, edit=None):
    """Examples as tf.train.Examples; ``edit(record_index, datum)`` may change a record's features."""
    writer = TFRecordWriter(str(path))
    for i, ex in enumerate(examples):
        datum = {k: (v.tolist(), "float" if v.dtype == np.float32 else "int") for k, v in ex.items()}
        if edit is not None:
            edit(i, datum)
        writer.write(datum)
    writer.close()
    return path


def write_hdf5(path, examples, edit=None):
    """academic-budget-bert layout: gzip datasets, i4/i1, no weights (position 0 = padding)."""
    stack = lambda key: np.stack([ex[key] for ex in examples])  # noqa: E731
    data = dict(input_ids=stack("input_ids").astype("i4"), input_mask=stack("input_mask").astype("i1"),
                segment_ids=stack("segment_ids").astype("i1"),
                masked_lm_positions=stack("masked_lm_positions").astype("i4"),
                masked_lm_ids=stack("masked_lm_ids").astype("i4"),
                next_sentence_labels=stack("next_sentence_labels")[:, 0].astype("i1"))
    if edit is not None:
        edit(data)
    with h5py.File(path, "w") as f:
        for key, value in data.items():
            f.create_dataset(key, data=value, compression="gzip")
    return path


@pytest.fixture(scope="session")
def premasked(tmp_path_factory):
    """Train (two TFRecord files) and valid (one HDF5 shard) converted into one dir, plus the originals."""
    root = tmp_path_factory.mktemp("premasked")
    vocab = write_vocab(root / "vocab.txt", vocab_tokens())
    train = make_examples(90, seed=1)
    valid = make_examples(20, seed=2)
    train_files = [write_tfrecord(root / "part-00000", train[:50]), write_tfrecord(root / "part-00001", train[50:])]
    valid_file = write_hdf5(root / "eval_test.hdf5", valid)
    dest = root / "bin"
    logs = {}
    for split, files, workers in (("train", train_files, "2"), ("valid", [valid_file], "1")):
        log = io.StringIO()
        with contextlib.redirect_stderr(log):  # in-process: the CLI itself is run by the last test
            convert_premasked.main(["--vocab", str(vocab), "--destdir", str(dest), "--split", split,
                                    "--workers", workers, *map(str, files)])
        logs[split] = log.getvalue()
    return dict(root=root, vocab=vocab, dest=dest, examples=dict(train=train, valid=valid), logs=logs)


@pytest.fixture(scope="session")
def trained(premasked, tmp_path_factory):
    """A few token-dropping updates of fairseq-train on the converted dir, validating on the HDF5 split."""
    save = tmp_path_factory.mktemp("premasked_ckpt")
    proc = run_cli("fairseq_cli.train", *train_flags(
        premasked["dest"], save, "--max-update", "12", "--token-drop", "0.5", "--token-drop-strategy", "importance",
        "--validate-interval-updates", "12", "--token-importance-beta", "0.5"))
    return dict(save=save, stdout=proc.stdout, stderr=proc.stderr)


def load_trained(premasked, trained):
    """The trained model (or ``trained["checkpoint"]``) rebuilt in-process from dict.txt, not by checkpoint_utils."""
    dictionary = Dictionary.load(str(premasked["dest"] / "dict.txt"))
    dictionary.add_symbol("<mask>")
    model = build_model("tokendrop_roberta_base", dictionary, max_positions=32, encoder_layers=4,
                        encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=2)
    path = trained["save"] / trained.get("checkpoint", "checkpoint_last.pt")
    model.load_state_dict(torch.load(path, weights_only=True)["model"])
    return model.eval(), dictionary


def by_symbol(tokens, dictionary, ids):
    """WordPiece ids -> fairseq ids through the symbols' text: independent of the id map."""
    special = {"[CLS]": "<s>", "[PAD]": "<pad>", "[SEP]": "</s>", "[UNK]": "<unk>", "[MASK]": "<mask>"}
    return np.array([dictionary.index(special.get(tokens[i], tokens[i])) for i in ids], dtype=np.int64)

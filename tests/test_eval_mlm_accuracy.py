"""scripts/eval_mlm_accuracy.py against an independent computation on the original records.

The script reads the converted data dir, batches with padding and loads the
checkpoint through fairseq's ``checkpoint_utils``. The reference here starts
from the arrays the fixture wrote into the eval files (one per producer's
layout), maps ids through the symbols' text, runs the model rebuilt in-process
one unpadded example at a time over all positions, and applies MLPerf's formula
``sum(w * [argmax == label]) / sum(w)`` with the file's weights, in numpy.

A few updates only teach the model word frequencies, so it predicts the same
word everywhere and a wrong slot or a dropout pass would go unseen. The
second test therefore evaluates a model with random weights, whose
predictions change with every position, on records relabelled so that half of
their slots hold what the reference predicts there.
"""
import copy
import math
import re

import numpy as np
import pytest
import torch

from conftest import load_script, logged
from premasked_fixtures import (
    by_symbol, convert_premasked, load_trained, make_examples, vocab_tokens, write_hdf5, write_vocab)

pytestmark = pytest.mark.slow  # starts processes: not in the fast tier (tests/run.sh --fast)

eval_mlm_accuracy = load_script("eval_mlm_accuracy")


def reference_predictions(model, dictionary, ex):
    """fairseq ids the model predicts at each of the record's P slots, padding slots included."""
    n = int(ex["input_mask"].sum())
    ids = torch.from_numpy(by_symbol(vocab_tokens(), dictionary, ex["input_ids"][:n]))[None]
    with torch.no_grad():
        logits = model(ids)[0][0].numpy()  # [n, V], every position
    return logits[ex["masked_lm_positions"]].argmax(-1)


def reference_accuracy(model, dictionary, examples):
    """(correct, masked slots) by MLPerf's weighted formula over the original arrays."""
    hits = weights = 0.0
    for ex in examples:
        predicted = reference_predictions(model, dictionary, ex)
        labels = by_symbol(vocab_tokens(), dictionary, ex["masked_lm_ids"])
        w = ex["masked_lm_weights"].astype(np.float64)
        hits += float((w * (predicted == labels)).sum())
        weights += float(w.sum())
    return hits, weights


def run_eval(checkpoint, data, capsys):
    """The script's (accuracy, correct, slots) and its stdout/stderr."""
    eval_mlm_accuracy.main([str(checkpoint), str(data), "--split", "valid", "--batch-size", "3",
                            "--progress-every", "2"])
    out, err = capsys.readouterr()
    accuracy, correct, slots = re.search(r"masked_lm_accuracy (\S+) \((\d+) of (\d+) masked slots correct\)",
                                         out).groups()
    return float(accuracy), int(correct), int(slots), out, err


def test_accuracy_equals_the_weighted_formula_on_the_original_records(premasked, trained, capsys):
    # In-process to keep the suite fast; the converter's tests run a script as a subprocess.
    accuracy, correct, slots, out, err = run_eval(trained["save"] / "checkpoint_last.pt", premasked["dest"], capsys)
    examples = premasked["examples"]["valid"]
    model, dictionary = load_trained(premasked, trained)
    hits, weights = reference_accuracy(model, dictionary, examples)
    assert (correct, slots) == (hits, weights)
    assert accuracy == pytest.approx(hits / weights, abs=1e-6)
    assert f"examples {len(examples)}\n" in out and f"masked_slots {int(weights)}\n" in out
    assert f"eval_mlm_accuracy: 6/{len(examples)} examples" in err  # progress


def test_a_position_dependent_model_scores_exactly_the_slots_it_predicts(premasked, trained, tmp_path, capsys):
    state = torch.load(trained["save"] / "checkpoint_last.pt", weights_only=True)
    generator = torch.Generator().manual_seed(0)
    for tensor in state["model"].values():  # in place: the state dict's metadata stays
        if tensor.is_floating_point():
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.5)
    checkpoint = tmp_path / "random.pt"
    torch.save(state, checkpoint)
    model, dictionary = load_trained(premasked, dict(save=tmp_path, checkpoint="random.pt"))

    tokens = vocab_tokens()
    wordpiece = {dictionary.index(t): i for i, t in enumerate(tokens)}
    examples, relabelled = copy.deepcopy(premasked["examples"]["valid"]), 0
    for ex in examples:
        predicted = reference_predictions(model, dictionary, ex)
        for slot in range(0, int(ex["masked_lm_weights"].sum()), 2):
            if predicted[slot] >= dictionary.nspecial and predicted[slot] in wordpiece:
                ex["masked_lm_ids"][slot] = wordpiece[predicted[slot]]
                relabelled += 1
    shard = write_hdf5(tmp_path / "eval.hdf5", examples)
    convert_premasked.main(["--vocab", str(premasked["vocab"]), "--destdir", str(tmp_path / "bin"),
                            "--split", "valid", str(shard)])
    capsys.readouterr()
    accuracy, correct, slots, _, _ = run_eval(checkpoint, tmp_path / "bin", capsys)
    hits, weights = reference_accuracy(model, dictionary, examples)
    assert relabelled >= 20 and hits >= relabelled
    assert (correct, slots) == (hits, weights)
    assert accuracy == pytest.approx(hits / weights, abs=1e-6)


def test_a_checkpoint_of_another_vocabulary_is_refused_by_name(trained, tmp_path):
    vocab = write_vocab(tmp_path / "vocab.txt", vocab_tokens(extra_words=7))
    shard = write_hdf5(tmp_path / "eval.hdf5", make_examples(4, seed=12))
    convert_premasked.main(["--vocab", str(vocab), "--destdir", str(tmp_path / "bin"), "--split", "valid",
                            str(shard)])
    checkpoint = trained["save"] / "checkpoint_last.pt"
    with pytest.raises(SystemExit) as exc:
        eval_mlm_accuracy.main([str(checkpoint), str(tmp_path / "bin")])
    size = len(vocab_tokens()) + 1  # fairseq's <pad> comes on top of the vocab.txt entries
    assert str(exc.value.code) == (
        f"fairseq_tokendrop: error: {checkpoint}: embedding has {size} rows but {tmp_path / 'bin'}/dict.txt gives "
        f"{size + 7} symbols (with <mask>): the model was trained with another vocabulary")


def test_a_data_dir_that_is_not_pre_masked_is_refused(trained, tmp_path):
    (tmp_path / "dict.txt").write_text("w0 1\n")  # a fairseq-preprocess dir, as far as this check goes
    with pytest.raises(SystemExit) as exc:
        eval_mlm_accuracy.main([str(trained["save"] / "checkpoint_last.pt"), str(tmp_path)])
    assert str(exc.value.code).startswith(f"fairseq_tokendrop: error: {tmp_path}: not a pre-masked data dir")


def test_validation_scores_every_example_as_the_script_does(premasked, trained, capsys):
    """23 eval examples at --batch-size 8: fairseq's own batching would drop the last 7 (issue 5036)."""
    valid = logged(trained["stdout"], "valid")
    assert [r["valid_num_updates"] for r in valid] == ["12"]  # the weights of checkpoint_last.pt
    accuracy, _, _, _, _ = run_eval(trained["save"] / "checkpoint_last.pt", premasked["dest"], capsys)
    assert float(valid[0]["valid_mlm_acc"]) == pytest.approx(accuracy, abs=5e-5)  # the log rounds to 4 places
    examples = len(premasked["examples"]["valid"])
    assert examples % 8 != 0
    assert float(valid[0]["valid_bsz"]) == round(examples / math.ceil(examples / 8), 1)  # 3 batches: 8, 8, 7

"""Bad input stops with one line naming the flag or file, not a traceback.

Covered: every flag the plugin registers (model, criterion, task), combinations
of flags that could not do what they say, data files that are torn, empty or
hold ids the dictionary lacks, a data-bin whose dictionary is not the
checkpoint's (through fairseq-train ``--restore-file``, ``load_model_ensemble``
and ``from_pretrained``), and an ``--init-token-importance`` file that does not
fit, through fairseq-train. What fairseq-train checks before its first update
runs in this process through ``fairseq_train_startup`` (fairseq's own parser,
config and calls, in its order); one case of each kind also runs as a
fairseq-train process, whose stderr must end in the one line.
"""
import argparse
import dataclasses
import os
import shutil

import numpy as np
import pytest
import torch
from fairseq import checkpoint_utils, options, tasks
from fairseq.data import Dictionary
from fairseq.data.indexed_dataset import MMapIndexedDatasetBuilder
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.tasks.masked_lm import MaskedLMConfig

from fairseq_tokendrop.criterions.masked_lm_tokendrop import MaskedLmTokenDropConfig, MaskedLmTokenDropLoss
from fairseq_tokendrop.errors import TokendropError
from fairseq_tokendrop.models import tokendrop_config
from fairseq_tokendrop.standalone import StandaloneTask
from fairseq_tokendrop.tasks.masked_lm_tokendrop import MaskedLMTokenDropConfig

from conftest import build_tokendrop, run_cli, tiny_dictionary, train_flags

EMBED_KEY = "encoder.sentence_encoder.embed_tokens.weight"


def scores_file(tmp_path, values):
    path = tmp_path / "scores.pt"
    torch.save(values, path)
    return path


# (flag, value or a function of tmp_path giving it, extra flags); the flag must be named in the error.
MODEL_CASES = [
    ("--token-drop", 1.5, {}),
    ("--token-drop", float("nan"), {}),
    ("--token-keep-k", -1, {}),
    ("--token-keep-k", 4, {"token_drop": 0.5}),
    ("--token-drop-strategy", "sorted", {}),
    ("--token-allow-list", "<s>,nosuchword", {}),
    ("--token-deny-list", "nosuchword", {}),
    ("--token-deny-list", "<s>", {}),  # <s> is on the default allow list
    # random-LTD draws uniformly, as DeepSpeed does: no list applies to it
    ("--token-allow-list", "<s>", {"token_drop_strategy": "random-ltd", "token_drop": 0.5}),
    ("--token-deny-list", "<pad>", {"token_drop_strategy": "random-ltd", "token_drop": 0.5}),
    ("--token-importance-init", 1e5, {}),  # above the allow-list pin
    ("--token-importance-init", float("inf"), {}),
    ("--token-importance-beta", 1.0, {}),
    ("--init-token-importance", lambda tmp: str(tmp / "missing.pt"), {}),
    ("--init-token-importance", lambda tmp: str(scores_file(tmp, torch.zeros(7))), {}),
    ("--init-token-importance", lambda tmp: str(scores_file(tmp, torch.full((45,), float("nan")))), {}),
    ("--init-token-importance", lambda tmp: str(scores_file(tmp, {"not": "a tensor"})), {}),
    ("--encoder-layers", 3, {"token_drop": 0.5}),
    ("--encoder-layerdrop", 0.1, {"token_drop": 0.5}),
    ("--token-keep-schedule", "8,32,10", {}),
    ("--token-keep-schedule", "8,128,10,4", {}),  # MAX beyond the 64 positions of the tiny model
    ("--token-keep-schedule", "8,32,10,4", {"token_drop": 0.5}),
    ("--random-ltd-layers", "0,1", {"token_drop_strategy": "random-ltd", "token_drop": 0.5}),
    ("--random-ltd-layers", "1,2", {"token_drop": 0.5}),  # the importance strategy wraps no layer
    ("--num-segment", -1, {}),
    ("--layer-norm-eps", 0.0, {}),
    # a random strategy that never drops trains stock RoBERTa (the tiny model's T is its 64 positions)
    ("--token-drop-strategy", "random-ltd", {}),
    ("--token-drop-strategy", "random-ltd", {"token_keep_k": 64}),
    ("--token-drop-strategy", "random", {"token_drop": 0.01}),  # floor(0.64) = 0 dropped
]
CRITERION_CASES = [
    ("--sctd-interval", -1),
    ("--sctd-full-weight", 1.5),
    ("--sctd-kl-weight", -0.05),
    ("--sctd-kl-weight", float("inf")),
]


# Checked when training starts (they need fairseq-train's whole configuration), so run through it:
# (flag, value, other flags).
TASK_CASES = [
    ("--stop-at-mlm-acc", "1.5", []),
    ("--eval-interval-samples", "lots", []),
    ("--stop-at-mlm-acc", "0.5", ["--disable-validation"]),  # never validated, so never stops
]


def dest(flag):
    return flag[2:].replace("-", "_")


def registered_flags():
    parser = argparse.ArgumentParser()
    tokendrop_config.add_tokendrop_args(parser)
    # a bool flag (--checkpoint-activations) has no bad value
    model = {opt for action in parser._actions if not isinstance(action, argparse._StoreTrueAction)
             for opt in action.option_strings} - {"-h", "--help"}
    criterion = {f"--{f.name.replace('_', '-')}" for f in dataclasses.fields(MaskedLmTokenDropConfig)
                 if f.name != "_name"}
    task = {f"--{f.name.replace('_', '-')}" for f in dataclasses.fields(MaskedLMTokenDropConfig)} - {
        f"--{f.name.replace('_', '-')}" for f in dataclasses.fields(MaskedLMConfig)}
    return model, criterion, task


def test_every_registered_flag_has_a_bad_value_case():
    model, criterion, task = registered_flags()
    assert model <= {flag for flag, _, _ in MODEL_CASES}
    assert criterion == {flag for flag, _ in CRITERION_CASES}
    assert task == {flag for flag, _, _ in TASK_CASES}


@pytest.mark.parametrize("flag,value,extra", MODEL_CASES)
def test_a_bad_model_flag_is_one_line_naming_it(tmp_path, flag, value, extra):
    value = value(tmp_path) if callable(value) else value
    with pytest.raises(TokendropError) as err:
        build_tokendrop(**{dest(flag): value, **extra})
    message = str(err.value.code)
    assert message.startswith("fairseq_tokendrop: error:") and flag in message and "\n" not in message


@pytest.mark.parametrize("flag,value", CRITERION_CASES)
def test_a_bad_criterion_flag_is_one_line_naming_it(flag, value):
    cfg = MaskedLmTokenDropConfig(**{dest(flag): value})
    with pytest.raises(TokendropError) as err:
        MaskedLmTokenDropLoss(cfg, StandaloneTask(tiny_dictionary(), 64))
    message = str(err.value.code)
    assert message.startswith("fairseq_tokendrop: error:") and flag in message and "\n" not in message


def failed_fairseq_train(data_bin, tmp_path, *flags):
    """The last stderr line of a fairseq-train run that must fail at startup, with no traceback."""
    proc = run_cli("fairseq_cli.train", *train_flags(data_bin, tmp_path / "ck", "--max-update", "1", *flags),
                   check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.stderr.strip().splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize("flag,value,extra", TASK_CASES)
def test_a_bad_task_flag_stops_fairseq_train_in_one_line(data_bin, tmp_path, flag, value, extra):
    last = failed_fairseq_train(data_bin, tmp_path, flag, value, *extra)
    assert last.startswith("fairseq_tokendrop: error:") and flag in last


def fairseq_train_startup(data, save_dir, *flags):
    """What fairseq-train does before its first update, in its order, in this process: its parser and
    config, the task, the model, the criterion, the validation splits, the training split (as its
    Trainer loads it), the first epoch's start."""
    args = options.parse_args_and_arch(options.get_training_parser(), [
        str(a) for a in train_flags(data, save_dir, "--cpu", "--max-update", "1", *flags)])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    task.build_criterion(cfg.criterion)
    if not cfg.dataset.disable_validation:
        for split in cfg.dataset.valid_subset.split(","):
            task.load_dataset(split, combine=False, epoch=1)
    task.load_dataset(cfg.dataset.train_subset, epoch=1, combine=True)
    task.begin_epoch(1, model)


def refused_at_startup(data, save_dir, *flags) -> str:
    with pytest.raises(TokendropError) as err:
        fairseq_train_startup(data, save_dir, *flags)
    message = str(err.value.code)
    assert message.startswith("fairseq_tokendrop: error: ") and "\n" not in message
    return message


# Flags that each pass their own check but together could not do what they say: (flags, the flag named).
COMBINATIONS = [
    (["--eval-interval-samples", "64", "--disable-validation"], "--eval-interval-samples"),
    (["--sctd-interval", "3"], "--sctd-interval 3 needs token dropping, but none of"),
    (["--sctd-interval", "3", "--token-keep-k", "32"], "--sctd-interval 3 needs token dropping, but --token-keep-k 32 "
                                                       "keeps every token of --tokens-per-sample 32"),
    (["--num-segment", "2"], "--num-segment 2: the training data"),  # a data-bin has no segments
]


@pytest.mark.slow
@pytest.mark.parametrize("flags,named", COMBINATIONS)
def test_flags_that_could_not_do_what_they_say_are_refused_at_startup(data_bin, tmp_path, flags, named):
    assert named in refused_at_startup(data_bin, tmp_path, *flags)


@pytest.mark.slow
def test_pre_masked_data_refuses_a_break_mode_and_a_segment_table_without_room(premasked, tmp_path):
    data = premasked["dest"]
    assert "--sample-break-mode complete does not apply" in refused_at_startup(
        data, tmp_path, "--sample-break-mode", "complete")
    message = refused_at_startup(data, tmp_path, "--num-segment", "1")
    second = sum(bool(ex["segment_ids"].any()) for ex in premasked["examples"]["train"])
    assert f"--num-segment 1: {second} examples of split 'train'" in message
    # what they refuse is the combination: the same data with a fitting table, and ScTD with dropping, start
    fairseq_train_startup(data, tmp_path, "--num-segment", "2", "--token-drop", "0.5", "--sctd-interval", "3")


def truncated_train_bin(data):
    with open(data / "train.bin", "r+b") as f:
        f.truncate(os.path.getsize(data / "train.bin") * 3 // 4)


def another_splits_index(data):
    shutil.copyfile(data / "train.idx", data / "valid.idx")


def one_token_moved_between_examples(data):
    """Examples 1 and 2 of train.idx one token longer and shorter: the same total, the offsets unchanged
    (fairseq's layout: a 26-byte header, then the int32 sizes)."""
    sizes = np.memmap(data / "train.idx", np.int32, "r+", 26, (3,))
    sizes[1] += 1
    sizes[2] -= 1
    sizes.flush()


def empty_valid_split(data):
    """What fairseq-preprocess writes for an empty file: an index of no examples and an empty .bin."""
    MMapIndexedDatasetBuilder(str(data / "valid.bin"), dtype=np.uint16).finalize(str(data / "valid.idx"))


def shorter_dict_txt(data):
    lines = (data / "dict.txt").read_text().splitlines()
    (data / "dict.txt").write_text("\n".join(lines[:20]) + "\n")


# (damage, file named, what is said): fairseq loads the validation split first
DATA_CASES = {
    "truncated_bin": (truncated_train_bin, "train.bin", "bytes, but"),
    "index_of_another_split": (another_splits_index, "valid.bin", "bytes, but"),
    "offsets_that_do_not_follow": (one_token_moved_between_examples, "train.idx", "example 2: its size or offset"),
    "empty_split": (empty_valid_split, "valid.idx", "the split has no examples"),
    "smaller_dictionary": (shorter_dict_txt, "valid.bin", "but the dictionary has 24 entries"),
}


def damaged_copy(data_bin, tmp_path, case):
    data = tmp_path / "data"
    shutil.copytree(data_bin, data)
    damage, name, said = DATA_CASES[case]
    damage(data)
    return data, f"fairseq_tokendrop: error: {data / name}: ", said


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_data_is_refused_in_one_line_naming_the_file_before_training(data_bin, tmp_path, case):
    data, start, said = damaged_copy(data_bin, tmp_path, case)
    message = refused_at_startup(data, tmp_path / "ck")
    assert message.startswith(start) and said in message, message


@pytest.mark.slow
def test_a_truncated_bin_stops_fairseq_train_in_one_line(data_bin, tmp_path):
    data, start, said = damaged_copy(data_bin, tmp_path, "truncated_bin")
    last = failed_fairseq_train(data, tmp_path)
    assert last.startswith(start) and said in last


@pytest.mark.slow
def test_init_token_importance_of_the_wrong_size_through_fairseq_train(data_bin, tmp_path):
    path = scores_file(tmp_path, torch.zeros(7))
    last = failed_fairseq_train(data_bin, tmp_path, "--init-token-importance", path)
    assert last.startswith("fairseq_tokendrop: error: --init-token-importance") and str(path) in last
    assert "(7,)" in last


@pytest.fixture(scope="module")
def other_data_bin(tmp_path_factory):
    """A data-bin with 90 words, so its dictionary is larger than the session data-bin's."""
    root = tmp_path_factory.mktemp("other")
    text = "\n".join(" ".join(f"v{(i * 7 + j) % 90}" for j in range(12)) for i in range(90)) + "\n"
    (root / "train.txt").write_text(text)
    run_cli("fairseq_cli.preprocess", "--only-source", "--trainpref", root / "train.txt",
            "--validpref", root / "train.txt", "--destdir", root / "bin", "--workers", "1")
    return root / "bin"


@pytest.fixture(scope="module")
def trained_checkpoint(data_bin, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("trained")
    run_cli("fairseq_cli.train", *train_flags(data_bin, save_dir, "--max-update", "1", "--disable-validation"))
    return save_dir / "checkpoint_last.pt"


def sizes(checkpoint, data):
    """The checkpoint's embedding rows, and the dictionary masked_lm builds from ``data`` (dict.txt + <mask>)."""
    rows = torch.load(checkpoint, weights_only=True)["model"][EMBED_KEY].size(0)
    dictionary = Dictionary.load(str(data / "dict.txt"))
    dictionary.add_symbol("<mask>")
    return rows, len(dictionary)


@pytest.mark.slow
def test_restore_with_another_dictionary_is_one_line(trained_checkpoint, other_data_bin, tmp_path):
    rows, entries = sizes(trained_checkpoint, other_data_bin)
    assert rows != entries
    proc = run_cli("fairseq_cli.train", *train_flags(other_data_bin, tmp_path / "ck", "--max-update", "1",
                                                     "--restore-file", trained_checkpoint, "--reset-optimizer"),
                   check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("fairseq_tokendrop: error: ")
    assert f"vocabulary has {rows} entries" in lines[-1] and f"dictionary has {entries}" in lines[-1]
    # the file is named by fairseq's own log line (fairseq-train logs to stdout)
    assert f"Preparing to load checkpoint {trained_checkpoint}" in proc.stdout


@pytest.mark.slow
def test_load_model_ensemble_and_from_pretrained_with_another_dictionary(trained_checkpoint, other_data_bin):
    from fairseq.models.roberta import RobertaModel

    rows, entries = sizes(trained_checkpoint, other_data_bin)
    expected = f"vocabulary has {rows} entries .* dictionary has {entries}"
    with pytest.raises(TokendropError, match=expected):
        checkpoint_utils.load_model_ensemble([str(trained_checkpoint)], arg_overrides={"data": str(other_data_bin)})
    with pytest.raises(TokendropError, match=expected):
        RobertaModel.from_pretrained(str(trained_checkpoint.parent), checkpoint_file=trained_checkpoint.name,
                                     data_name_or_path=str(other_data_bin))

"""Bad input stops with one line naming the flag or file, not a traceback.

Covered: every flag the plugin registers (model, criterion, task), a data-bin
whose dictionary is not the checkpoint's (through fairseq-train
``--restore-file``, ``load_model_ensemble`` and ``from_pretrained``), and an
``--init-token-importance`` file that does not fit, through fairseq-train.
"""
import argparse
import dataclasses

import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.data import Dictionary
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
]
CRITERION_CASES = [
    ("--sctd-interval", -1),
    ("--sctd-full-weight", 1.5),
    ("--sctd-kl-weight", -0.05),
    ("--sctd-kl-weight", float("inf")),
]


# Checked when training starts (they need fairseq-train's whole configuration), so run through it.
TASK_CASES = [
    ("--stop-at-mlm-acc", "1.5"),
    ("--eval-interval-samples", "lots"),
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
    assert task == {flag for flag, _ in TASK_CASES}


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
@pytest.mark.parametrize("flag,value", TASK_CASES)
def test_a_bad_task_flag_stops_fairseq_train_in_one_line(data_bin, tmp_path, flag, value):
    last = failed_fairseq_train(data_bin, tmp_path, flag, value)
    assert last.startswith("fairseq_tokendrop: error:") and flag in last


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

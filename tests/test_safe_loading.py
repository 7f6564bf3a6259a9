"""The plugin's checkpoint loading: fairseq checkpoints load, code in a pickle does not run.

Through the plugin's own paths: ``checkpoints.safe_loading.load_checkpoint`` (what the plugin's commands
load with), the commands, and fairseq-train resuming with the plugin. A refusal reaches a user of the
commands as one line naming the file, what its pickle asks for, and the opt-in; the opt-in (torch's
TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1) reaches the same loader.
"""
import argparse
import pathlib

import pytest
import torch

from fairseq_tokendrop.checkpoints.safe_loading import OPT_IN, load_checkpoint
from fairseq_tokendrop.errors import TokendropError

from conftest import run_cli, train_flags

MODEL_FLAGS = argparse.Namespace(arch="tokendrop_roberta_base", encoder_layers=2, token_drop=0.5)


class Payload:
    """Unpickling this calls Path.touch(marker): a stand-in for any code a pickle can run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def write_checkpoint(path, **extra_state):
    """A checkpoint as fairseq 0.12 writes one for a model with legacy argparse flags (cfg.model an
    ``argparse.Namespace``), with ``extra_state`` beside fairseq's own."""
    torch.save({"args": None, "cfg": {"model": MODEL_FLAGS, "common": {"seed": 3}}, "model": {"w": torch.ones(2)},
                "optimizer_history": [{"criterion_name": "MaskedLmTokenDropLoss", "optimizer_name": "FairseqAdam",
                                       "lr_scheduler_state": {"best": None}, "num_updates": 3}],
                "extra_state": {"train_iterator": {"epoch": 1}, **extra_state}, "last_optimizer_state": None}, path)


@pytest.fixture
def evil_checkpoint(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "checkpoint_evil.pt"
    write_checkpoint(path, x=Payload(str(marker)))
    return path, marker


def test_a_fairseq_checkpoint_with_its_argparse_flags_loads(tmp_path):
    path = tmp_path / "checkpoint_last.pt"
    write_checkpoint(path)
    state = load_checkpoint(str(path))
    assert state["cfg"]["model"] == MODEL_FLAGS and torch.equal(state["model"]["w"], torch.ones(2))
    assert state["optimizer_history"][-1]["num_updates"] == 3


def test_a_pickle_that_would_run_code_is_refused_in_one_line_and_never_runs(evil_checkpoint):
    path, marker = evil_checkpoint
    with pytest.raises(TokendropError) as refused:
        load_checkpoint(str(path))
    message = str(refused.value)
    assert f"refused to load {path}: its pickle asks for " in message and "\n" not in message
    assert "pathlib" in message and OPT_IN in message
    assert not marker.exists()


def test_the_opt_in_the_refusal_names_loads_a_trusted_file(evil_checkpoint, monkeypatch):
    """The plugin hands fairseq's loader no ``weights_only`` of its own, so torch's switch reaches it."""
    path, marker = evil_checkpoint
    monkeypatch.setenv(*OPT_IN.split("="))
    with pytest.warns(UserWarning, match="forcing weights_only=False"):  # torch says so itself
        state = load_checkpoint(str(path))
    assert marker.exists() and state["extra_state"]["x"] is None  # the pickle's code ran: Path.touch's None


@pytest.mark.slow
def test_fairseq_train_refuses_it_before_any_code_runs(data_bin, evil_checkpoint, tmp_path):
    """Under fairseq-train the refusal is torch's own error (nothing is patched to shorten it): it names
    the first global the pickle asks for, and fairseq's log line before it names the file."""
    path, marker = evil_checkpoint
    proc = run_cli("fairseq_cli.train", *train_flags(data_bin, tmp_path / "ck", "--restore-file", path), check=False)
    assert proc.returncode == 1 and not marker.exists()
    assert f"Preparing to load checkpoint {path}" in proc.stdout  # fairseq-train logs to stdout
    assert "Weights only load failed" in proc.stderr and "Unsupported global" in proc.stderr, proc.stderr[-3000:]


@pytest.mark.slow
def test_the_plugins_commands_refuse_it_in_one_line_naming_the_file_and_the_opt_in(evil_checkpoint, tmp_path):
    path, marker = evil_checkpoint
    proc = run_cli("fairseq_tokendrop.commands.export_checkpoint", path, "--fairseq-out", tmp_path / "out",
                   check=False)
    assert proc.returncode == 1 and not marker.exists() and not (tmp_path / "out").exists()
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"fairseq_tokendrop: error: refused to load {path}: its pickle asks for ")
    assert "pathlib" in last and "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1" in last

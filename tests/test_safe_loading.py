"""fairseq's own checkpoint loader, with the plugin imported: plain-data checkpoints load, code does not run.

A refusal reaches a user of the plugin's commands as one line naming the file,
what its pickle asks for, and the opt-in; the opt-in (torch's
TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1) does reach fairseq's loader.
"""
import argparse
import os
import pathlib
import pickle
import subprocess
import sys

import pytest
import torch
from fairseq import checkpoint_utils

import fairseq_tokendrop  # noqa: F401  (allowlists what fairseq checkpoints carry)

from conftest import run_cli, train_flags


class Payload:
    """Unpickling this calls Path.touch(marker): a stand-in for any code a pickle can run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


@pytest.fixture
def evil_checkpoint(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "checkpoint_evil.pt"
    torch.save({"model": {}, "extra_state": {"x": Payload(str(marker))}}, path)
    return path, marker


def test_a_pickle_that_would_run_code_is_refused_and_never_runs(evil_checkpoint):
    path, marker = evil_checkpoint
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert not marker.exists()


def test_a_legacy_checkpoint_with_namespace_args_loads(tmp_path):
    path = tmp_path / "legacy.pt"
    args = argparse.Namespace(arch="roberta_base", encoder_layers=2)
    torch.save({"args": args, "model": {"w": torch.ones(2)}}, path)
    state = torch.load(path, weights_only=True)
    assert state["args"] == args and torch.equal(state["model"]["w"], torch.ones(2))


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


def test_from_pretrained_refuses_it(evil_checkpoint):
    from fairseq.models.roberta import RobertaModel

    path, marker = evil_checkpoint
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        RobertaModel.from_pretrained(str(path.parent), checkpoint_file=path.name)
    assert not marker.exists()


@pytest.mark.slow
def test_the_documented_opt_in_loads_a_trusted_legacy_file(evil_checkpoint):
    """TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 reaches fairseq's loader: the pickle's code runs (here: a harmless touch)."""
    path, marker = evil_checkpoint
    load = ("import fairseq_tokendrop; from fairseq import checkpoint_utils; "
            f"checkpoint_utils.load_checkpoint_to_cpu({str(path)!r})")
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
    subprocess.run([sys.executable, "-c", load], env=env, capture_output=True)
    assert marker.exists()

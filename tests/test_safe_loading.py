"""fairseq's own checkpoint loader, with the plugin imported: plain-data checkpoints load, code does not run."""
import argparse
import pathlib
import pickle

import pytest
import torch
from fairseq import checkpoint_utils

import fairseq_tokendrop  # noqa: F401  (allowlists what fairseq checkpoints carry)


class Payload:
    """Unpickling this calls Path.touch(marker): a stand-in for any code a pickle can run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def test_a_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "checkpoint_evil.pt"
    torch.save({"model": {}, "extra_state": {"x": Payload(str(marker))}}, path)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert not marker.exists()


def test_a_legacy_checkpoint_with_namespace_args_loads(tmp_path):
    path = tmp_path / "legacy.pt"
    args = argparse.Namespace(arch="roberta_base", encoder_layers=2)
    torch.save({"args": args, "model": {"w": torch.ones(2)}}, path)
    state = torch.load(path, weights_only=True)
    assert state["args"] == args and torch.equal(state["model"]["w"], torch.ones(2))

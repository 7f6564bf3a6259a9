"""scripts/checkpointing_cost.py: its memory measure against the bytes the autograd graph holds."""
import json
import subprocess
import sys

import pytest
import torch

from fairseq_tokendrop.research import checkpointing_cost
from fairseq_tokendrop.research.mode import make_batches
from fairseq_tokendrop.standalone import made_up_dictionary

from conftest import REPO

FLAGS = ["--layers", "4", "--dim", "64", "--ffn", "256", "--heads", "4", "--vocab", "1000", "--seq-len", "128",
         "--batch-size", "8", "--device", "cpu", "--warmup", "1", "--steps", "1", "--threads", "1"]


def graph_bytes(mode, sample) -> int:
    """Bytes of the distinct non-parameter storages the forward of a ScTD update leaves to autograd:
    all alive at the end of the forward, so a lower bound of what the update needs on top."""
    parameters = {p.untyped_storage().data_ptr() for p in mode.model.parameters()}
    storages = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    mode.model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        mode.criterion(mode.model, sample)
    return sum(storages.values())


@pytest.mark.slow
def test_checkpointing_needs_a_fraction_of_the_memory_and_the_measure_covers_the_graph(tmp_path):
    out = tmp_path / "cost.json"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "checkpointing_cost.py"), *FLAGS, "--json", out],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())["results"]

    args = checkpointing_cost.parse_args(FLAGS)
    dictionary = made_up_dictionary(args.vocab)
    sample = make_batches(dictionary, args)[0][1]  # the timed update's batch
    held = {name: graph_bytes(mode, sample) for name, mode in checkpointing_cost.build_modes(args, dictionary).items()}
    assert held["checkpointed"] < held["plain"] / 5  # only the layers' inputs: this size is activation-bound
    for name, r in results.items():
        assert len(r["seconds"]) == len(r["cpu_seconds"]) == len(r["bytes"]) == 1 and r["median_s"] > 0
        assert r["peak_bytes"] >= held[name], name
    # offloading keeps the same inputs (on CPU it moves nothing): the same bound
    for name in ("checkpointed", "offloaded"):
        assert results[name]["peak_bytes"] < results["plain"]["peak_bytes"] / 2, name

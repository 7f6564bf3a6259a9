"""Two data-parallel ranks (gloo, CPU) through stock ``fairseq-train`` in every dropping mode (importance,
ScTD, random, random-LTD), under fairseq's own all-reduce (``--ddp-backend legacy_ddp``) and torch's
``DistributedDataParallel`` (``c10d``, alias of the default ``pytorch_ddp``) with and without
``--checkpoint-activations``, against one process that sees the union of both ranks' batches.
``two_ranks.py`` says how the ranks are launched.

Per mode, four runs of the same 4 updates at ``--update-freq 2`` (fairseq's ``no_sync`` on the
first micro-batch of each update under torch DDP):

- ``legacy``: 2 ranks, ``legacy_ddp``;
- ``c10d`` and ``c10d_checkpointed``: 2 ranks, torch DDP through fairseq's wrapper, without and
  with activation checkpointing;
- ``one``: one process, ``--update-freq 4``.

Why the single process sees the same data: fairseq shuffles the list of batches with the run's
seed and then gives batch i to rank i % world_size (``ShardedIterator``), and each rank groups
its own batches by 2, so update k covers batches 4k..4k+3 on both sides. Masking is seeded per
sample, and dropout is off, so both compute the same losses for the same tokens.

What must hold: both DDPs sum each gradient over the 2 ranks (a sum of two floats, the same in
either order) and divide by the world size, which fairseq multiplies back, so torch DDP ends bit
for bit as legacy_ddp. Non-reentrant checkpointing recomputes the same values in the same
autograd graph, so it ends bit for bit as the run without it. One process sums the 4 micro-batches
in another order: equal up to rounding. The ScTD mode runs the full pass at updates 0 and 3 and
not at 1 and 2: DDP sees a graph that changes between updates, and update 0 is where fairseq's
reentrant checkpointing stopped with "Expected to mark a variable ready only once".
"""
import pytest
import torch

from conftest import logged, run_cli, train_flags
from train_c10d_on_cpu import DROPPED
from two_ranks import assert_same_state, state, two_ranks

pytestmark = pytest.mark.slow  # starts processes: not in the fast tier (tests/run.sh --fast)

UPDATES = 4
FLAGS = ["--max-update", UPDATES, "--token-drop", "0.5", "--sample-break-mode", "none", "--disable-validation",
         "--dropout", "0", "--attention-dropout", "0", "--cpu", "--token-importance-beta", "0.8"]
# one entry per dropping mode: its flags on top of FLAGS
MODES = {
    "importance": [],
    "sctd": ["--criterion", "masked_lm_tokendrop", "--sctd-interval", "3"],
    "random": ["--token-drop-strategy", "random"],
    # each wrapped layer (1 and 2 of 4) draws its own subset: every parameter still gets a gradient
    "random-ltd": ["--token-drop-strategy", "random-ltd"],
}
CHECKPOINTED = "activation checkpointing: 4 layers recomputed in the backward (non-reentrant)"


@pytest.fixture(scope="module", params=list(MODES))
def runs(request, data_bin, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    flags = [*FLAGS, *MODES[request.param]]
    procs = {
        "legacy": two_ranks(data_bin, root / "legacy", *flags, "--update-freq", "2"),
        "c10d": two_ranks(data_bin, root / "c10d", *flags, "--update-freq", "2", backend="c10d"),
        "c10d_checkpointed": two_ranks(data_bin, root / "c10d_checkpointed", *flags, "--update-freq", "2",
                                       "--checkpoint-activations", backend="c10d"),
        "one": run_cli("fairseq_cli.train", *train_flags(data_bin, root / "one", *flags, "--update-freq", "4")),
    }
    return root, procs


def test_torch_ddp_ends_bit_for_bit_as_legacy_ddp_with_and_without_checkpointing(runs):
    root, procs = runs
    legacy = logged(procs["legacy"].stdout)
    assert DROPPED.format([0], 0) not in procs["legacy"].stdout
    assert CHECKPOINTED in procs["c10d_checkpointed"].stdout and CHECKPOINTED not in procs["c10d"].stdout
    for run in ("c10d", "c10d_checkpointed"):
        assert DROPPED.format([0], 0) in procs[run].stdout  # fairseq's c10d branch built torch's DDP
        assert_same_state(root / "legacy" / "checkpoint_last.pt", root / run / "checkpoint_last.pt")
        assert [r["loss"] for r in logged(procs[run].stdout)] == [r["loss"] for r in legacy]


def test_two_ranks_end_as_one_process_over_the_union_of_their_batches(runs):
    root, procs = runs
    two, one = logged(procs["legacy"].stdout), logged(procs["one"].stdout)
    assert [r["num_updates"] for r in two] == [r["num_updates"] for r in one] == [str(n) for n in range(1, UPDATES + 1)]
    for r2, r1 in zip(two, one):
        # reduced over both ranks: 2 x 2 x 8 sentences per update, the union's loss and accuracy
        assert r2["bsz"] == r1["bsz"] == "32" and r2["wpb"] == r1["wpb"]
        assert abs(float(r2["loss"]) - float(r1["loss"])) <= 0.002, (r2, r1)
        assert abs(float(r2["mlm_acc"]) - float(r1["mlm_acc"])) <= 0.0001, (r2, r1)
        # rank 1's scores agreed bit for bit with rank 0's at every update (one all-reduce checks it)
        assert float(r2["imp_rank_mismatch"]) == 0 and "imp_rank_mismatch" not in r1
    params_two, scores_two, _ = state(root / "legacy" / "checkpoint_last.pt")
    params_one, scores_one, _ = state(root / "one" / "checkpoint_last.pt")
    for key in params_one:
        assert torch.allclose(params_two[key], params_one[key], rtol=1e-4, atol=1e-5), key
    assert (scores_one != 10.0).sum() >= 20  # the comparison is about scores that did move
    assert torch.allclose(scores_two, scores_one, rtol=1e-5, atol=1e-5)

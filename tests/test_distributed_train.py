"""Two data-parallel ranks (gloo, CPU) through stock ``fairseq-train``, launched by ``torchrun``,
against one process that sees the union of both ranks' batches.

How it is launched, and why: on CPU stock fairseq cannot take torchrun's environment by
itself (``_infer_torch_distributed_launch_init`` computes ``rank % torch.cuda.device_count()``,
a ZeroDivisionError without GPUs), and its c10d DDP wrapper passes ``device_ids=[0]``, which
DDP refuses for CPU modules. Stock flags get around both: ``--distributed-init-method env://``
skips that inference (torchrun's MASTER_ADDR/PORT still do the rendezvous), each rank reads
its ``--distributed-rank`` from torchrun's ``$RANK`` through ``sh -c``, and
``--ddp-backend legacy_ddp`` all-reduces gradients without DDP's device checks.

Why the single process sees the same data: fairseq shuffles the list of batches with the
run's seed and then gives batch i to rank i % world_size (``ShardedIterator``); with
``--update-freq 2`` one process groups batches 2k and 2k+1 into update k. Masking is seeded
per sample, and dropout is off, so both runs compute the same losses for the same tokens.
"""
import pytest
import sys

import torch

from conftest import logged, run_cli, train_flags
from test_fairseq_train import saved_scores

pytestmark = pytest.mark.slow  # starts processes: not in the fast tier (tests/run.sh --fast)

UPDATES = 6
FLAGS = ["--max-update", UPDATES, "--token-drop", "0.5", "--sample-break-mode", "none", "--disable-validation",
         "--dropout", "0", "--attention-dropout", "0", "--cpu", "--token-importance-beta", "0.8"]


def test_two_ranks_match_one_process_over_the_union_of_their_batches(data_bin, tmp_path):
    ranks = run_cli(
        "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--no-python",
        "sh", "-c", 'exec "$0" -m fairseq_cli.train "$@" --distributed-rank "$RANK"', sys.executable,
        *train_flags(data_bin, tmp_path / "ranks", *FLAGS),
        "--distributed-world-size", "2", "--distributed-backend", "gloo", "--distributed-init-method", "env://",
        "--distributed-no-spawn", "--ddp-backend", "legacy_ddp")
    union = run_cli("fairseq_cli.train", *train_flags(data_bin, tmp_path / "union", *FLAGS, "--update-freq", "2"))
    two, one = logged(ranks.stdout), logged(union.stdout)
    assert [r["num_updates"] for r in two] == [r["num_updates"] for r in one] == [str(n) for n in range(1, UPDATES + 1)]

    for r2, r1 in zip(two, one):
        # reduced over both ranks: 2 x 8 sentences per update, the union's loss and accuracy
        assert r2["bsz"] == r1["bsz"] == "16" and r2["wpb"] == r1["wpb"]
        assert abs(float(r2["loss"]) - float(r1["loss"])) <= 0.002, (r2, r1)
        assert abs(float(r2["mlm_acc"]) - float(r1["mlm_acc"])) <= 0.0001, (r2, r1)
        # rank 1's scores agreed bit for bit with rank 0's at every update (one all-reduce checks it)
        assert float(r2["imp_rank_mismatch"]) == 0 and "imp_rank_mismatch" not in r1
    assert two[0]["loss"] == one[0]["loss"]  # same weights, same tokens: the first update is exact

    a = torch.load(tmp_path / "ranks" / "checkpoint_last.pt", weights_only=True)
    b = torch.load(tmp_path / "union" / "checkpoint_last.pt", weights_only=True)
    for key in a["model"]:
        assert torch.allclose(a["model"][key], b["model"][key], rtol=1e-4, atol=1e-5), key
    scores_two = saved_scores(tmp_path / "ranks" / "checkpoint_last.pt")
    scores_one = saved_scores(tmp_path / "union" / "checkpoint_last.pt")
    moved = scores_one != 10.0
    assert moved.sum() >= 20  # the comparison is about scores that did move
    assert torch.allclose(scores_two, scores_one, rtol=1e-5, atol=1e-5)

"""A job's whole life under data parallelism: two gloo ranks through stock ``fairseq-train``
(torchrun, docs/distributed.md's command), stopped at a target, started from a checkpoint, killed and
started again, and with a number of batches the ranks cannot share evenly.

Each 2-rank run is checked against an uninterrupted 2-rank run (bit for bit, CPU) or against one
process with ``--update-freq 2`` over the same batches (equal up to float summation order; see
``test_distributed_train.py`` for why the batches are the same). The runs use
``--ddp-backend legacy_ddp`` unless named ``torch_ddp``: those run fairseq's default backend
(torch DDP, through ``two_ranks.py``) and must end bit for bit as the legacy_ddp run. The runs
are shared:

- ``stopped``: importance dropping, validation at each epoch end, ``--stop-at-mlm-acc`` reached
  at the first validation (end of epoch 1): once where that is the run's last validation
  (``--max-epoch 1``, an uninterrupted run to that update), once with an epoch to go, under
  each backend.
- ``finetuned``: random dropping + ScTD (interval 3) started from the first stopped run's
  checkpoint (scores far from their init) with ``--restore-file`` and the four reset flags, one
  epoch whose batch count is odd (the last update has a dummy batch on rank 1). Against it: one
  process started with ``--finetune-from-model`` (fairseq's name for the same four resets) over the
  same batches, and a 2-rank job started with ``--finetune-from-model``, SIGKILLed as a whole after
  its update-8 save, then started again with the same command (so it resumes from
  checkpoint_last.pt), once with fairseq's rank-0 load and broadcast, once with
  ``--load-checkpoint-on-all-dp-ranks``; and the same killed and restarted job under torch DDP
  with ``--checkpoint-activations``.
- ``ltd_resumed``: random-LTD on its kept-length schedule with ScTD (interval 3), uninterrupted and
  SIGKILLed after its update-8 save then started again: the kept length and the layerwise draws
  follow from the update count, so the restart ends as the uninterrupted job.
"""
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from conftest import REPO, logged, run_cli, train_flags
from test_checkpoint_faults import snapshot
from test_fairseq_train import saved_scores
from two_ranks import DEFAULT, assert_same_state, state, two_rank_args, two_ranks

pytestmark = pytest.mark.slow  # starts processes: not in the fast tier (tests/run.sh --fast)

COMMON = ["--token-drop", "0.5", "--sample-break-mode", "none", "--cpu", "--dropout", "0",
          "--attention-dropout", "0", "--token-importance-beta", "0.8"]


# reached at the first validation whatever the accuracy there (about 0.09)
STOP = [*COMMON, "--stop-at-mlm-acc", "0.0001"]


@pytest.fixture(scope="session")
def stopped(data_bin, tmp_path_factory):
    root = tmp_path_factory.mktemp("stopped")
    return dict(root=root, at_last=two_ranks(data_bin, root / "at_last", "--max-epoch", "1", *STOP),
                mid_run=two_ranks(data_bin, root / "mid_run", "--max-epoch", "2", *STOP),
                mid_run_torch_ddp=two_ranks(data_bin, root / "mid_run_torch_ddp", "--max-epoch", "2", *STOP,
                                            backend=DEFAULT))


@pytest.mark.parametrize("run", ["at_last", "mid_run", "mid_run_torch_ddp"])
def test_stop_at_target_exits_every_rank_once_the_checkpoint_is_written(stopped, run):
    root, proc = stopped["root"], stopped[run]  # exit status 0 from both ranks (run_cli checked it)
    out = proc.stdout + proc.stderr
    update = int(logged(proc.stdout, "valid")[0]["valid_num_updates"])  # the end of epoch 1
    assert [int(r["num_updates"]) for r in logged(proc.stdout)] == list(range(1, update + 1))
    assert out.count(f"target reached at update {update}, checkpoint") == 1 and "closed by peer" not in out
    assert ("stopping: target reached" in out) == (run != "at_last")  # at_last: fairseq's own ending
    summary = json.loads((root / run / "stop_at_mlm_acc.json").read_text())
    assert summary["update"] == update and os.path.dirname(summary["checkpoint"]) == str(root / run)
    # the run that stopped with an epoch to go saved what the uninterrupted run to that update saved
    assert_same_state(root / "at_last" / "checkpoint_last.pt", summary["checkpoint"])
    assert_same_state(root / "at_last" / "checkpoint_last.pt", root / run / "checkpoint_last.pt")


@pytest.mark.parametrize("run,epochs,reason", [
    ("at_last", "1", "epoch 1 is done (--max-epoch 1)"),
    ("mid_run", "2", "validation mlm_acc"),  # --stop-at-mlm-acc, with an epoch to go
])
def test_a_finished_job_started_again_does_nothing_on_every_rank(data_bin, stopped, run, epochs, reason):
    """What a scheduler's requeue of a finished job does: the same command again."""
    save_dir = stopped["root"] / run
    before = snapshot(save_dir)
    again = two_ranks(data_bin, save_dir, "--max-epoch", epochs, *STOP)  # torchrun, i.e. both ranks, exit 0
    out = again.stdout + again.stderr
    assert out.count("nothing to do: this run is finished (") == 1 and reason in out  # rank 0 logs INFO
    assert logged(again.stdout) == [] and logged(again.stdout, "valid") == [] and "closed by peer" not in out
    assert snapshot(save_dir) == before  # the checkpoints and stop_at_mlm_acc.json untouched


SCTD_RANDOM = [*COMMON, "--criterion", "masked_lm_tokendrop", "--sctd-interval", "3", "--token-drop-strategy",
               "random", "--max-epoch", "1", "--disable-validation", "--save-interval-updates", "8"]
KILL_AFTER = 8


def process_tree(pid):
    """``pid`` and all its descendants (torchrun starts each worker in a session of its own)."""
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        for task in os.listdir(f"/proc/{p}/task"):
            with open(f"/proc/{p}/task/{task}/children") as f:
                todo.extend(int(c) for c in f.read().split())
    return tree


def kill_job_after_save(args, update):
    """Start the 2-rank job; once fairseq has logged the save of ``update``, SIGKILL torchrun and
    both workers at once, as a preemption does. Returns torchrun's exit status."""
    cmd = [sys.executable, "-m", "torch.distributed.run", *map(str, args)]
    job = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        for line in job.stdout:
            if f"@ {update} updates" in line and "Saved checkpoint" in line:
                break
    finally:
        for pid in process_tree(job.pid) if job.poll() is None else []:
            os.kill(pid, signal.SIGKILL)  # all three were alive a moment ago: none exits by itself mid-run
        job.wait()
    return job.returncode


@pytest.fixture(scope="session")
def finetuned(data_bin, stopped, tmp_path_factory):
    root = tmp_path_factory.mktemp("finetuned")
    checkpoint = stopped["root"] / "at_last" / "checkpoint_last.pt"
    start = ["--finetune-from-model", checkpoint, *SCTD_RANDOM]
    ranks = two_ranks(data_bin, root / "ranks", "--restore-file", checkpoint, "--reset-optimizer",
                      "--reset-dataloader", "--reset-meters", "--reset-lr-scheduler", *SCTD_RANDOM)
    one = run_cli("fairseq_cli.train", *train_flags(data_bin, root / "one", *start, "--update-freq", "2"))
    status = kill_job_after_save(two_rank_args(data_bin, root / "killed", *start), KILL_AFTER)
    killed = dict(killed=(status, state(root / "killed" / "checkpoint_last.pt")[2]))
    shutil.copytree(root / "killed", root / "killed_all_ranks")
    restarted = dict(killed=two_ranks(data_bin, root / "killed", *start),
                     # the same restart with every rank reading the file itself (a shared filesystem), no broadcast
                     killed_all_ranks=two_ranks(data_bin, root / "killed_all_ranks", *start,
                                                "--load-checkpoint-on-all-dp-ranks"))
    killed["killed_all_ranks"] = killed["killed"]
    # the same job under fairseq's default backend (torch DDP) and with activation checkpointing, which
    # must end bit for bit as the legacy_ddp job without it (test_distributed_train.py says why)
    torch_ddp = [*start, "--checkpoint-activations"]
    status = kill_job_after_save(two_rank_args(data_bin, root / "killed_torch_ddp", *torch_ddp, backend=DEFAULT),
                                 KILL_AFTER)
    killed["killed_torch_ddp"] = (status, state(root / "killed_torch_ddp" / "checkpoint_last.pt")[2])
    restarted["killed_torch_ddp"] = two_ranks(data_bin, root / "killed_torch_ddp", *torch_ddp, backend=DEFAULT)
    return dict(root=root, ranks=ranks, one=one, killed=killed, restarted=restarted, start=checkpoint)


def test_a_start_from_a_checkpoint_and_uneven_data_match_one_process(finetuned):
    root = finetuned["root"]
    two, one = logged(finetuned["ranks"].stdout), logged(finetuned["one"].stdout)
    assert [r["num_updates"] for r in two] == [r["num_updates"] for r in one]
    # an odd number of batches: the last update has one real batch, rank 1 a dummy batch
    assert [r["bsz"] for r in two] == [r["bsz"] for r in one] == ["16"] * (len(one) - 1) + ["8"]
    assert all(float(r["imp_rank_mismatch"]) == 0 for r in two)
    # both started from the checkpoint's scores, not from --token-importance-init
    assert two[0]["imp_mean"] == one[0]["imp_mean"] != "10"
    params_two, scores_two, _ = state(root / "ranks" / "checkpoint_last.pt")
    params_one, scores_one, _ = state(root / "one" / "checkpoint_last.pt")
    for key in params_one:
        # k_proj.bias has a zero gradient in exact arithmetic (softmax ignores a shift of all of a
        # query's scores); what it gets is rounding noise, which Adam scales up to lr-sized steps
        if not key.endswith("k_proj.bias"):
            assert torch.allclose(params_two[key], params_one[key], rtol=1e-4, atol=1e-5), key
    assert torch.allclose(scores_two, scores_one, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(scores_one, saved_scores(finetuned["start"]), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("run", ["killed", "killed_all_ranks", "killed_torch_ddp"])
def test_a_job_killed_mid_run_and_started_again_ends_as_the_uninterrupted_one(finetuned, run):
    """The uninterrupted job is the --restore-file one: --finetune-from-model starts exactly like it."""
    root, restarted = finetuned["root"], finetuned["restarted"][run]
    assert finetuned["killed"][run] == (-signal.SIGKILL, KILL_AFTER)  # torchrun's status, the last save
    assert f"Loaded checkpoint {root / run / 'checkpoint_last.pt'}" in restarted.stdout + restarted.stderr
    assert int(logged(restarted.stdout)[0]["num_updates"]) == KILL_AFTER + 1
    assert_same_state(root / "ranks" / "checkpoint_last.pt", root / run / "checkpoint_last.pt")
    assert logged(finetuned["ranks"].stdout)[-1]["loss"] == logged(restarted.stdout)[-1]["loss"]


LTD_SCHEDULE = [*COMMON[2:], "--criterion", "masked_lm_tokendrop", "--sctd-interval", "3", "--token-drop-strategy",
                "random-ltd", "--token-keep-schedule", "8,32,12,4", "--max-epoch", "1", "--disable-validation",
                "--save-interval-updates", "8"]
assert COMMON[:2] == ["--token-drop", "0.5"]  # replaced by the schedule: at most one of them


@pytest.fixture(scope="session")
def ltd_resumed(data_bin, tmp_path_factory):
    root = tmp_path_factory.mktemp("random_ltd")
    straight = two_ranks(data_bin, root / "straight", *LTD_SCHEDULE)
    status = kill_job_after_save(two_rank_args(data_bin, root / "killed", *LTD_SCHEDULE), KILL_AFTER)
    killed_last = state(root / "killed" / "checkpoint_last.pt")[2]
    restarted = two_ranks(data_bin, root / "killed", *LTD_SCHEDULE)
    return dict(root=root, straight=straight, status=status, killed_last=killed_last, restarted=restarted)


def test_a_random_ltd_job_on_a_schedule_killed_and_started_again_ends_as_the_uninterrupted_one(ltd_resumed):
    root, straight, restarted = ltd_resumed["root"], logged(ltd_resumed["straight"].stdout), \
        logged(ltd_resumed["restarted"].stdout)
    assert ltd_resumed["status"] == -signal.SIGKILL and ltd_resumed["killed_last"] == KILL_AFTER
    assert int(restarted[0]["num_updates"]) == KILL_AFTER + 1
    assert_same_state(root / "straight" / "checkpoint_last.pt", root / "killed" / "checkpoint_last.pt")
    assert straight[-1]["loss"] == restarted[-1]["loss"]
    # update n runs at step n-1: floor((n-1)/12*24 + 8) = 8 + 2(n-1), down to a multiple of 4, up to T = 32
    kept = [r["kept_len"] for r in straight]
    assert len(kept) > 14 and kept[:14] == ["8", "8", "12", "12", "16", "16", "20", "20", "24", "24", "28", "28",
                                            "32", "32"]
    assert [r["kept_len"] for r in restarted] == kept[KILL_AFTER:]
    assert all(float(r["imp_rank_mismatch"]) == 0 for r in straight)

"""Two gloo ranks through stock ``fairseq-train``, launched by ``torchrun``, under a chosen
``--ddp-backend``; and the comparison of the checkpoints such runs write.

How it is launched, and why: on CPU stock fairseq cannot take torchrun's environment by itself
(``_infer_torch_distributed_launch_init`` computes ``rank % torch.cuda.device_count()``, a
ZeroDivisionError without GPUs). Stock flags get around it: ``--distributed-init-method env://``
skips that inference (torchrun's MASTER_ADDR/PORT still do the rendezvous) and each rank reads
its ``--distributed-rank`` from torchrun's ``$RANK`` through ``sh -c``. ``legacy_ddp`` (fairseq's
own all-reduce after the backward) runs as it stands; fairseq's torch-DDP backends (``c10d``,
``pytorch_ddp``, the default) pass CUDA ``device_ids``, so they run through
``train_c10d_on_cpu.py``, which drops those two arguments for a CPU module and nothing else.
"""
import shlex
import sys

import torch

from conftest import REPO, run_cli, train_flags
from test_fairseq_train import saved_scores

DEFAULT = None  # no --ddp-backend: fairseq's default, pytorch_ddp
TORCH_DDP = ("c10d", "pytorch_ddp", DEFAULT)
C10D_ON_CPU = str(REPO / "tests" / "train_c10d_on_cpu.py")


def two_rank_args(data_bin, save_dir, *extra, backend="legacy_ddp"):
    """torchrun's arguments for a 2-rank ``fairseq-train`` job with ``train_flags`` and ``extra``."""
    flags = train_flags(data_bin, save_dir, *extra)
    entry = [C10D_ON_CPU] if backend in TORCH_DDP else ["-m", "fairseq_cli.train"]
    rank = f'exec "$0" {shlex.join(entry)} "$@" --distributed-rank "$RANK"'
    return ["--standalone", "--nproc-per-node", "2", "--no-python", "sh", "-c", rank, sys.executable, *flags,
            "--distributed-world-size", "2", "--distributed-backend", "gloo", "--distributed-init-method",
            "env://", "--distributed-no-spawn", *(["--ddp-backend", backend] if backend else [])]


def two_ranks(data_bin, save_dir, *extra, **kw):
    """Run the job; run_cli fails the test unless torchrun, i.e. every rank, exits 0."""
    return run_cli("torch.distributed.run", *two_rank_args(data_bin, save_dir, *extra, **kw))


def state(path):
    ckpt = torch.load(path, weights_only=True)
    return ckpt["model"], saved_scores(path), ckpt["optimizer_history"][-1]["num_updates"]


def assert_same_state(a, b):
    """Bit for bit: the parameters, the importance scores and the update count of two checkpoints."""
    (params_a, scores_a, updates_a), (params_b, scores_b, updates_b) = state(a), state(b)
    assert updates_a == updates_b
    assert params_a.keys() == params_b.keys()
    for key in params_a:
        assert torch.equal(params_a[key], params_b[key]), key
    assert torch.equal(scores_a, scores_b)

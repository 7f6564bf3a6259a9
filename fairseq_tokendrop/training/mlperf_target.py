"""MLPerf-style training to a target masked-LM accuracy.

MLPerf BERT evaluates every ``floor(0.05 * (230.23 * B + 3e6) / 25000) * 25000``
training samples for a global batch of ``B`` samples and stops the first time
the eval accuracy reaches the target (0.720 on ``eval_10k``).

fairseq-train has no "stop at metric" switch and gives a task no handle on the
trainer. What it does give a task: ``post_validate(model, stats, agg)`` on
every rank after each validation, ``post_save(path, num_updates)`` on the rank
that saved, and ``train_step`` before any collective of the next update. So:
every rank records the crossing in ``post_validate``; the saving rank writes
the summary in ``post_save``, once the checkpoint of that update is on disk;
every rank, the saving one included, ends at its next ``train_step``. If fairseq
ends the run at that same validation (``--max-update``, the last epoch), there
is no next ``train_step`` and every rank leaves through fairseq's own ending.
That needs every validation to come with a save, which ``check_saves_follow_validation``
enforces at start-up.

Why no rank can wait on a peer that left (a hang under NCCL, "Connection closed
by peer" under gloo): (1) every rank takes the same decision at the same update,
since ``post_validate`` sees validation metrics that fairseq has already summed
over all ranks, so ``mlm_acc`` is the same number everywhere; (2) after that
validation the ranks run no collective until the next update (the save is file
I/O on the saving rank; the epoch change builds iterators locally), and fairseq
calls ``task.train_step`` for that update on every rank, a rank out of data
included (with a dummy batch); (3) the exit is raised there before the forward
(DDP's buffer broadcast), the backward (the gradient all-reduce) and the
importance all-reduce. So either every rank exits at the same ``train_step``
and none reaches the barrier that ends fairseq's ``distributed_main``, or no
rank exits early and all of them meet in that barrier.
"""
import json
import logging
import math
import os
import sys
import time
from typing import Optional

from ..atomic_file import atomic_path
from ..errors import TokendropError

logger = logging.getLogger(__name__)


def mlperf_eval_interval_samples(global_batch: int) -> int:
    """Samples between evaluations in MLPerf BERT for ``global_batch`` samples per step."""
    return math.floor(0.05 * (230.23 * global_batch + 3_000_000) / 25_000) * 25_000


def eval_interval_updates(spec: str, global_batch: int) -> tuple:
    """(samples, updates) for ``--eval-interval-samples SPEC`` ('mlperf' or a count).

    Updates are rounded up so that each evaluation comes after at least the
    requested number of samples.
    """
    flag = "--eval-interval-samples"
    if spec == "mlperf":
        samples = mlperf_eval_interval_samples(global_batch)
    else:
        try:
            samples = int(spec)
        except ValueError:
            raise TokendropError(f"{flag} must be 'mlperf' or a number of samples, got {spec!r}")
        if samples <= 0:
            raise TokendropError(f"{flag} must be positive, got {samples}")
    return samples, max(1, math.ceil(samples / global_batch))


def global_batch_size(batch_size: Optional[int], update_freq, world_size: int) -> int:
    """Samples per update: per-GPU ``--batch-size`` x ``--update-freq`` x world size."""
    if not batch_size:
        raise TokendropError("--eval-interval-samples counts samples, so it needs a fixed --batch-size "
                        "(with only --max-tokens the samples per update vary)")
    # --update-freq is a per-epoch list; the first entry is what the run starts with
    freq = update_freq if isinstance(update_freq, int) else update_freq[0]
    return batch_size * int(freq) * max(1, world_size)


def check_saves_follow_validation(validate_interval_updates: int, save_interval_updates: int,
                                  validate_interval: int, save_interval: int) -> None:
    """Fail unless fairseq saves a checkpoint at every update where it validates.

    fairseq validates at every mid-epoch save, every ``--validate-interval-updates``
    and every ``--validate-interval`` epochs; it saves every
    ``--save-interval-updates`` and every ``--save-interval`` epochs.
    """
    problems = []
    if validate_interval_updates and (not save_interval_updates
                                      or validate_interval_updates % save_interval_updates):
        problems.append(f"--validate-interval-updates {validate_interval_updates} is not a multiple of "
                        f"--save-interval-updates {save_interval_updates}")
    if validate_interval % save_interval:
        problems.append(f"--validate-interval {validate_interval} is not a multiple of "
                        f"--save-interval {save_interval}")
    if problems:
        raise TokendropError("--stop-at-mlm-acc stores the checkpoint of the update that reached the target, "
                        "so every validation must come with a save: " + "; ".join(problems))


class StopAtTarget:
    """Ends fairseq-train the first time validation ``mlm_acc`` reaches ``target``."""

    def __init__(self, target: float, no_save: bool):
        self.target = target
        self.no_save = no_save
        self.started = time.time()
        self.reached = None  # dict once the target is reached

    def observe(self, stats: dict, agg) -> None:
        if self.reached is not None:
            return
        # the logged mlm_acc is rounded to 4 places; compare the exact mean
        meter = agg["mlm_acc"] if "mlm_acc" in agg else None
        acc = meter.avg if meter is not None else stats.get("mlm_acc")
        if acc is None:
            raise TokendropError("--stop-at-mlm-acc: validation logged no mlm_acc; "
                            "use --criterion masked_lm_tokendrop")
        if float(acc) >= self.target:
            self.reached = {"update": int(stats["num_updates"]), "mlm_acc": float(acc),
                            "target": self.target, "wall_s": round(time.time() - self.started, 3)}
            logger.info(f"mlm_acc {acc:.5f} reached --stop-at-mlm-acc {self.target} at update "
                        f"{self.reached['update']} after {self.reached['wall_s']:.1f} s")

    def after_save(self, checkpoint_path: str, num_updates: int) -> None:
        """On the saving rank: record the result beside the checkpoint of the update that reached it."""
        if self.reached is None or num_updates != self.reached["update"]:
            return
        summary = dict(self.reached, checkpoint=checkpoint_path)
        path = os.path.join(os.path.dirname(checkpoint_path), "stop_at_mlm_acc.json")
        with atomic_path(path) as tmp, open(tmp, "w") as f:
            json.dump(summary, f, indent=2)
        logger.info(f"target reached at update {num_updates}, checkpoint {checkpoint_path}")

    def before_update(self) -> None:
        """On every rank: once the target is reached, stop before the next update (see the module doc)."""
        if self.reached is None:
            return
        if self.no_save:
            logger.info("stopping: target reached (--no-save, no checkpoint written)")
        else:
            logger.info(f"stopping: target reached at update {self.reached['update']}")
        exit_now()


def exit_now() -> None:
    """End the process with status 0 from inside fairseq's training loop.

    Not ``sys.exit``: fairseq's batch prefetcher (``BufferedIterator``) is a daemon
    thread that may be inside torch code at this moment, and Python's finalization
    kills such a thread where it stands, which aborts the process from C++
    (SIGABRT, "terminate called without an active exception"). So do what a
    finished process does except finalization: wait for fairseq's asynchronous
    checkpoint writes, run the exit handlers (fairseq's tensorboard writers, logging),
    flush, and leave.
    """
    import atexit

    from fairseq.file_io import PathManager

    PathManager.async_close()  # a no-op unless --write-checkpoints-asynchronously started writes
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

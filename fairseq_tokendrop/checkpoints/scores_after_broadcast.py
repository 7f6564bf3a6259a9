"""Token-importance scores across fairseq's rank-0 load-and-broadcast of a checkpoint.

With more than one data-parallel rank, ``Trainer.load_checkpoint`` reads the file
on rank 0 only (unless ``--load-checkpoint-on-all-dp-ranks``) and sends it with
``distributed_utils.broadcast_object``, which rebuilds every dict as a plain one:
``state_dict._metadata``, where the scores ride, is gone on every rank, rank 0
included. Only the state dict's keys reach the model, and a key would break the
strict load into stock ``--arch roberta_base``. So the model notes that it was
loaded without scores (``TokenImportance.missing_from_last_load``, alike on every
rank, as every rank got the same broadcast), and before the first update rank 0
reads the scores from the file fairseq loaded and broadcasts them: one tensor, no
pickle. Nodes without a shared filesystem are fine: only rank 0 reads.
"""
import os
from typing import Optional

import torch
from fairseq.file_io import PathManager

from ..errors import TokendropError
from ..method.importance import TokenImportance
from ..method.rank_agreement import data_parallel_group
from .scores_in_state_dict import load_saved_scores, scores_in


def loaded_checkpoint_path(checkpoint_cfg) -> Optional[str]:
    """The file ``fairseq.checkpoint_utils.load_checkpoint`` chose, if any.

    Its rule (fairseq main, mid-2025): a non-default ``--restore-file`` as given; else
    ``SAVE_DIR/checkpoint_last.pt`` if it exists, else ``--continue-once`` or
    ``--finetune-from-model``. Asked before the first save, so checkpoint_last.pt
    exists now exactly when it did at the load.
    """
    cp = checkpoint_cfg
    suffix = cp.checkpoint_suffix or ""
    if cp.restore_file != "checkpoint_last.pt":
        return cp.restore_file.replace(".pt", suffix + ".pt") if suffix else cp.restore_file
    last = os.path.join(cp.save_dir, f"checkpoint_last{suffix}.pt")
    if PathManager.exists(last):
        return last
    return getattr(cp, "continue_once", None) or cp.finetune_from_model


def saved_scores(path: str) -> Optional[torch.Tensor]:
    """The scores a checkpoint file carries in its model state dict's metadata, or None."""
    # mmap: only the pages of what is read here come off the disk, not the whole state
    state = torch.load(PathManager.get_local_path(path), map_location="cpu", mmap=True, weights_only=True)
    found = scores_in(state.get("model"))
    return found[0][1].clone() if len(found) == 1 else None


def restore_scores_lost_in_broadcast(tracker: TokenImportance, checkpoint_cfg, device: torch.device) -> None:
    """On every rank, after fairseq's checkpoint load and before the first update.

    A collective only when the load lost the scores, which every rank knows alike. A file that
    carries no scores (a stock RoBERTa checkpoint) leaves the initial scores, as a one-rank load of
    it does; a file rank 0 cannot find is refused on every rank, rather than leaving every rank at
    its initial scores without a word.
    """
    group, world = data_parallel_group()
    if world == 1 or not tracker.missing_from_last_load:
        return
    tracker.missing_from_last_load = False
    from fairseq.distributed import utils as distributed_utils

    path = loaded_checkpoint_path(checkpoint_cfg)
    found = torch.zeros(2 + tracker.scores.numel(), device=device)  # [file found, has scores, scores...]
    if distributed_utils.get_rank(group) == 0 and path is not None and PathManager.exists(path):
        found[0] = 1.0
        scores = saved_scores(path)
        if scores is not None:
            found[1], found[2:] = 1.0, scores.to(device)
    distributed_utils.broadcast(found, src=0, group=group)
    file_found, has_scores = found[:2].tolist()
    if not file_found:
        named = path or "none: no --restore-file, checkpoint_last.pt, --continue-once or --finetune-from-model"
        raise TokendropError(f"the importance scores did not survive fairseq's broadcast of the checkpoint, and rank 0 "
                             f"cannot find the file it loaded to read them from ({named}): refusing to train every "
                             "rank from the initial scores")
    if has_scores:
        load_saved_scores(tracker, found[2:])

"""What a start of fairseq-train does with the checkpoint it finds.

Before fairseq loads (:func:`choose_checkpoint`, called by the task's ``setup_task``):

- the file fairseq will load is checked whole, against its CRC-32s and for finite
  scores (``checkpoints/verification.py``). A damaged ``checkpoint_last.pt`` (the
  default ``--restore-file``) gives way to the newest whole checkpoint of the save dir,
  in one line naming both; an explicit ``--restore-file`` that is damaged, or a save dir
  with no whole checkpoint, is refused in one line. Rank 0 decides and every rank
  follows, so no rank waits on one that left;
- temporary files that a killed save left in the save dir are removed;
- every token-dropping flag that differs from the checkpoint's is said in one line;
  the run then does what the new flags say (``TokenImportance.load_saved`` for the pins).

After fairseq loads (:func:`finished_reason`, from the task's ``set_checkpoint_dict``):
a run that had finished (``--max-update``, ``--max-epoch``, ``--stop-at-mlm-acc``) ends
on every rank, with status 0 and one line, before it trains or writes anything.
"""
import glob
import logging
import os
from dataclasses import fields
from typing import List, Optional

import torch
from fairseq.file_io import PathManager
from omegaconf import OmegaConf

from ..checkpoints.fairseq_saves import is_local
from ..checkpoints.scores_after_broadcast import loaded_checkpoint_path
from ..checkpoints.verification import damage, non_finite_scores
from ..criterions.masked_lm_tokendrop import MaskedLmTokenDropConfig
from ..errors import TokendropError
from ..models.tokendrop_config import DEFAULT_PINS, TokenDropConfig, comma_list

logger = logging.getLogger(__name__)

DEFAULT_RESTORE_FILE = "checkpoint_last.pt"  # fairseq's default: resume in --save-dir
# What a killed save leaves: fairseq's FILE.tmp and atomic_file's FILE.tmp-PID
TEMPORARY_FILES = "checkpoint*.pt.tmp*"


def choose_checkpoint(root_cfg) -> None:
    """On every rank, before ``checkpoint_utils.load_checkpoint``: see the module doc.

    May set ``--restore-file`` to the checkpoint to fall back to (and clear
    ``--finetune-from-model``, which fairseq ignores anyway once ``checkpoint_last.pt`` exists).
    """
    cp = root_cfg.checkpoint
    decision = None
    if rank() == 0:
        remove_temporaries(cp.save_dir)
        decision = decide(cp)
        if decision[0] != "refuse" and decision[2] is not None:
            for line in changed_flags(decision[2], root_cfg):
                logger.info(line)
    decision = agree(decision)
    kind, message, path = decision
    if kind == "refuse":
        raise TokendropError(message)
    if kind == "fallback":
        logger.warning(message)
        cp.restore_file, cp.finetune_from_model = path, None


def decide(cp) -> tuple:
    """(kind, message, the file to load or None): kind "load", "fallback" or "refuse"."""
    path = loaded_checkpoint_path(cp)
    if path is None or not is_local(path) or not PathManager.isfile(path):
        return "load", "", None  # nothing to load, or fairseq's remote handlers: as fairseq does
    problem = damage(path) or non_finite_scores(path)
    if problem is None:
        return "load", "", path
    suffix = cp.checkpoint_suffix or ""
    if cp.restore_file != DEFAULT_RESTORE_FILE or path != os.path.join(cp.save_dir, f"checkpoint_last{suffix}.pt"):
        flag = next((f for f, value in (("--finetune-from-model", cp.finetune_from_model),
                                         ("--continue-once", getattr(cp, "continue_once", None)))
                     if value == path), "--restore-file")
        return "refuse", f"refused {flag} {path}: {problem}", None
    for candidate in newest_first(cp.save_dir, path, suffix):
        if damage(candidate) is None and non_finite_scores(candidate) is None:
            return "fallback", (f"{path} is unusable ({problem}): resuming from {candidate}, the newest whole "
                                f"checkpoint in {cp.save_dir}"), candidate
    return "refuse", f"refused {path}: {problem}; no other whole checkpoint in {cp.save_dir} to resume from", None


def newest_first(save_dir: str, damaged: str, suffix: str) -> List[str]:
    """The save dir's other checkpoints, the most recently written first."""
    found = [p for p in glob.glob(os.path.join(glob.escape(save_dir), f"checkpoint*{suffix}.pt"))
             if os.path.abspath(p) != os.path.abspath(damaged)]
    return sorted(found, key=lambda p: (os.path.getmtime(p), p), reverse=True)


def remove_temporaries(save_dir: str) -> None:
    """Delete what killed saves left (no writer is running yet: this start is the only one)."""
    leftovers = sorted(glob.glob(os.path.join(glob.escape(save_dir), TEMPORARY_FILES)))
    for path in leftovers:
        os.remove(path)
    if leftovers:
        logger.info(f"removed {len(leftovers)} temporary file(s) left by an interrupted save: "
                    + ", ".join(os.path.basename(p) for p in leftovers))


def rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def agree(decision):
    """Rank 0's decision on every rank."""
    if not torch.distributed.is_initialized() or torch.distributed.get_world_size() == 1:
        return decision
    shared = [decision]
    torch.distributed.broadcast_object_list(shared, src=0)
    return shared[0]


# What a change of these flags does on resume, where it is more than "from now on"
CHANGE_NOTES = {
    "token_importance_init": "the saved scores stay; it gives the score of an id that is pinned no more",
    "init_token_importance": "the saved scores stay; it gives the score of an id that is pinned no more",
    "token_allow_list": "the pins follow the new lists",
    "token_deny_list": "the pins follow the new lists",
}


def changed_flags(path: str, root_cfg) -> List[str]:
    """One line per token-dropping or ScTD flag whose value differs from the checkpoint's."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("cfg") or {}
    except Exception:
        return []  # not a plain state (a legacy file, a pickle torch refuses): fairseq's load says why
    lines = []
    for section, config in (("model", TokenDropConfig), ("criterion", MaskedLmTokenDropConfig)):
        before, now = saved.get(section), root_cfg.get(section)
        for f in fields(config):
            old, new = setting(before, f.name), setting(now, f.name)
            if old is MISSING or new is MISSING or old == new:
                continue
            flag = "--" + f.name.replace("_", "-")
            note = CHANGE_NOTES.get(f.name)
            lines.append(f"resuming with {flag} {new} (the checkpoint was trained with {old})"
                         + (f": {note}" if note else ""))
    return lines


MISSING = object()


def setting(section, name: str):
    """A flag's value in a saved or current config section (a dict, a Namespace or an OmegaConf node)."""
    if section is None:
        return MISSING
    value = section.get(name, MISSING) if hasattr(section, "get") else getattr(section, name, MISSING)
    if name in PIN_FLAGS and value is None:  # unset: the strategy's default lists, what the run pinned
        strategy = setting(section, "token_drop_strategy")
        value = DEFAULT_PINS.get(strategy if strategy is not MISSING else "importance", ("", ""))[PIN_FLAGS[name]]
        return value or "none"
    return comma_list(value) if isinstance(value, (list, tuple)) or OmegaConf.is_list(value) else value


PIN_FLAGS = {"token_allow_list": 0, "token_deny_list": 1}  # their place in DEFAULT_PINS' pairs


def finished_reason(root_cfg, num_updates: Optional[int], train_batches, reached_target: Optional[dict]) -> str:
    """Why the run fairseq has just loaded has nothing left to do ("" if it has).

    Args:
        num_updates: the loaded update count (None where the model does not keep it).
        train_batches: fairseq's epoch iterator over the training data, at the loaded position.
        reached_target: what ``--stop-at-mlm-acc`` recorded in the checkpoint (``StopAtTarget.reached``).
    """
    optimization, task = root_cfg.optimization, root_cfg.task
    if num_updates is not None and optimization.max_update and num_updates >= optimization.max_update:
        return f"update {num_updates} is --max-update {optimization.max_update}"
    if optimization.max_epoch and train_batches.next_epoch_idx > optimization.max_epoch:
        return f"epoch {optimization.max_epoch} is done (--max-epoch {optimization.max_epoch})"
    target = getattr(task, "stop_at_mlm_acc", 0.0)
    if target and reached_target is not None and reached_target["mlm_acc"] >= target:
        return (f"validation mlm_acc {reached_target['mlm_acc']:.5f} reached --stop-at-mlm-acc {target} at update "
                f"{reached_target['update']}")
    return ""

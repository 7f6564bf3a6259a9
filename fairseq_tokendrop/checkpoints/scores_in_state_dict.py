"""Importance scores in a model's state dict, without a key of their own.

A key would break the strict load into stock ``--arch roberta_base``, and a
buffer would be cast by ``model.half()``. The scores ride in the state dict's
module-local metadata instead (``state_dict._metadata[prefix]``), which
``torch.save``/``torch.load`` keep and stock loaders ignore. fairseq's rank-0
broadcast of a checkpoint does not keep it; ``scores_after_broadcast`` brings
the scores back on every rank.
"""
import logging
from typing import List, Tuple

import torch

from ..method.importance import TokenImportance
from .saved_scores import refuse_non_finite

logger = logging.getLogger(__name__)

METADATA_KEY = "token_importance"


def keep_scores_in_state_dict(tracker: TokenImportance) -> None:
    """Make ``tracker``'s scores part of every ``state_dict()`` and ``load_state_dict()`` of its model."""
    tracker._register_state_dict_hook(_save_scores)
    tracker._register_load_state_dict_pre_hook(_load_scores, with_module=True)


def _save_scores(tracker, state_dict, prefix, local_metadata):
    local_metadata[METADATA_KEY] = tracker.get().cpu()


def _load_scores(tracker, state_dict, prefix, local_metadata, *unused):
    tracker.missing_from_last_load = METADATA_KEY not in local_metadata
    if not tracker.missing_from_last_load:
        load_saved_scores(tracker, local_metadata[METADATA_KEY])


def load_saved_scores(tracker: TokenImportance, scores) -> None:
    """Saved scores into ``tracker``: refused if one is not finite; the ids the current lists no longer
    pin are said (``TokenImportance.load_saved``)."""
    refuse_non_finite(torch.as_tensor(scores), "the loaded token-importance scores")
    unpinned = tracker.load_saved(scores)
    if unpinned:
        logger.info(f"{' '.join(unpinned)} were pinned in the loaded scores and are pinned no more "
                    "(--token-allow-list/--token-deny-list): they start from this run's initial score, as in a "
                    "fresh run with these lists")


def scores_in(model_state) -> List[Tuple[str, torch.Tensor]]:
    """(module prefix, scores) of every score vector a loaded model state dict carries in its metadata."""
    metadata = getattr(model_state, "_metadata", None) or {}
    return [(prefix, entry[METADATA_KEY]) for prefix, entry in metadata.items() if METADATA_KEY in entry]

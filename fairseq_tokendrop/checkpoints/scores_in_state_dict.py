"""Importance scores in a model's state dict, without a key of their own.

A key would break the strict load into stock ``--arch roberta_base``, and a
buffer would be cast by ``model.half()``. The scores ride in the state dict's
module-local metadata instead (``state_dict._metadata[prefix]``), which
``torch.save``/``torch.load`` keep and stock loaders ignore. fairseq's rank-0
broadcast of a checkpoint does not keep it; ``scores_after_broadcast`` brings
the scores back on every rank.
"""
from ..method.importance import TokenImportance

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
        tracker.set(local_metadata[METADATA_KEY])

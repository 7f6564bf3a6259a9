"""What ``fairseq-train --tensorboard-logdir`` shows of the dropping besides the logged metrics.

At every validation (fairseq's ``post_validate`` hook; once per update when there are several
validation subsets), on the rank fairseq gives the log dir to, into fairseq's own writer of the
``train_inner`` run (the run where ``kept_frac`` and ``kept_len`` already are, at the same steps):

- ``token_importance``: a histogram of the unpinned importance scores;
- ``kept_share_special``, ``kept_share_top10pct``, ``kept_share_rest``: of the tokens of each kind
  that came in since the last validation, the share the dropping layers kept (random-LTD: its first
  wrapped layer, as ``kept_frac`` counts); the kinds are ``kept_by_kind.vocabulary_kinds``, by the frequency of each id in
  the batches this rank trained on so far.

Training forwards add to the device counts of ``kept_by_kind.KeptTally`` (no host read); they are
read here, once per validation. ``kept_len`` needs nothing new: the criterion logs it every update.
Without validation (``--disable-validation``) nothing is written.
"""
import logging
from typing import Optional

import numpy as np
from fairseq.distributed import utils as distributed_utils
from fairseq.logging import progress_bar

from ..method.importance import TokenImportance
from .kept_by_kind import KeptTally, kept_shares, vocabulary_kinds

logger = logging.getLogger(__name__)

RUN = "train_inner"  # fairseq's tag, and so the run directory, of the per-log-interval training metrics
HISTOGRAM = "token_importance"


def share_tag(kind_name: str) -> str:
    return f"kept_share_{kind_name}"


class TensorboardView:
    def __init__(self, logdir: str, tracker: TokenImportance, encoder, dictionary):
        self.logdir, self.tracker, self.dictionary = logdir, tracker, dictionary
        self.tally = KeptTally(len(dictionary))
        encoder.kept_tally = self.tally
        self.counts_before = np.zeros((2, len(dictionary)))
        self.logged_update: Optional[int] = None

    def at_validation(self, num_updates: int) -> None:
        if num_updates == self.logged_update:  # the second validation subset of the same update
            return
        self.logged_update = num_updates
        # fairseq's get-or-create of the run's writer: the one its progress bar writes train_inner with
        writer = progress_bar.TensorboardProgressBarWrapper(None, self.logdir)._writer(RUN)
        if writer is None:  # fairseq has warned that tensorboard is missing
            return
        scores = self.tracker.get().cpu().numpy()
        free = ~self.tracker.pins.pinned.cpu().numpy()
        writer.add_histogram(HISTOGRAM, scores[free], num_updates)
        counts = self.tally.read()
        window, self.counts_before = counts - self.counts_before, counts
        shares = kept_shares(window, vocabulary_kinds(self.dictionary, counts[0]))
        for name, share in shares.items():
            if not np.isnan(share):  # nothing of that kind came in, or nothing was dropped
                writer.add_scalar(share_tag(name), share, num_updates)
        writer.flush()
        if not all(np.isnan(s) for s in shares.values()):
            logger.info("kept since the last validation: " + ", ".join(
                f"{name} {share:.3f}" for name, share in shares.items()))


def tensorboard_view(root_cfg, model) -> Optional[TensorboardView]:
    """The view for this run, or None: no ``--tensorboard-logdir``, not the logging rank, or no tracker."""
    logdir = root_cfg.common.tensorboard_logdir
    tracker = getattr(model, "token_importance", None)  # None for a stock roberta under the task
    if not logdir or not isinstance(tracker, TokenImportance) or not distributed_utils.is_master(
            root_cfg.distributed_training):
        return None
    return TensorboardView(logdir, tracker, model.encoder, model.encoder.dictionary)

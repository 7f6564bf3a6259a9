"""The importance ranking of a vocabulary, against corpus frequency and between checkpoints.

Importance dropping (Hou et al., ACL 2022) keeps the tokens whose ids have the highest moving-average
MLM loss, and the paper reads its learned ranking as "frequent, easy tokens are unimportant". So the
ranking is shown beside the frequency of each id: Spearman's rank correlation between score and
frequency near -1 means importance is (close to) inverse frequency. Between checkpoints of one run,
the rank correlation of the scores tells whether the ranking has settled.

Only the ids the ranking is made of count: pinned ids (``--token-allow-list``/``--token-deny-list``)
sit at +-1e4 and are no part of it, and ids never a masked target since the start keep the initial
score (``--token-importance-init``) and rank by nothing.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from tokendrop_readers.glue_metrics import average_ranks, pearson


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (ties get average ranks, as ``scipy.stats.spearmanr``); NaN where it is
    undefined, either side constant, as scipy answers (GLUE's metric counts that case 0 instead)."""
    ra, rb = average_ranks(a), average_ranks(b)
    if np.all(ra == ra[0]) or np.all(rb == rb[0]):
        return float("nan")
    return pearson(ra, rb)


def dictionary_frequency(dictionary) -> Optional[np.ndarray]:
    """The counts dict.txt holds per id (fairseq-preprocess counts the training text), or None where
    they tell nothing: all entries equal (a WordPiece conversion writes 1 for every entry)."""
    counts = np.asarray(dictionary.count, dtype=np.float64)
    entries = counts[dictionary.nspecial:]
    return None if len(entries) == 0 or np.all(entries == entries[0]) else counts


@dataclass
class Ranking:
    """The ranked ids of one checkpoint's scores."""

    scores: np.ndarray  # [V] float
    ranked: np.ndarray  # bool [V]: unpinned and moved from the initial score
    at_init: int  # unpinned ids left out because they still hold the initial score

    def ends(self, n: int) -> Tuple[np.ndarray, np.ndarray]:
        """The ``n`` most important ids (highest first) and the ``n`` least (lowest first)."""
        ids = np.flatnonzero(self.ranked)
        best_first = ids[np.argsort(-self.scores[ids], kind="stable")]
        return best_first[:n], best_first[::-1][:n]

    def frequency_correlation(self, frequency: np.ndarray) -> float:
        """Spearman of score against frequency over the ranked ids the corpus holds."""
        ids = np.flatnonzero(self.ranked & (frequency > 0))
        return spearman(self.scores[ids], frequency[ids]) if len(ids) > 1 else float("nan")


def ranking(scores: np.ndarray, pinned: np.ndarray, init_value: Optional[float]) -> Ranking:
    """``init_value``: the initial score every id started from, None when the run started from saved
    scores (``--init-token-importance``: then no id can be told to be unmoved)."""
    scores = np.asarray(scores, dtype=np.float32)
    unpinned = ~np.asarray(pinned, dtype=bool)
    unmoved = unpinned & (scores == np.float32(init_value)) if init_value is not None else np.zeros_like(unpinned)
    return Ranking(scores.astype(np.float64), unpinned & ~unmoved, int(unmoved.sum()))


def ranking_correlation(before: Ranking, after: Ranking) -> float:
    """Spearman of two checkpoints' scores over the ids both rank."""
    ids = np.flatnonzero(before.ranked & after.ranked)
    return spearman(before.scores[ids], after.scores[ids]) if len(ids) > 1 else float("nan")


def switch_share(before: List[np.ndarray], after: List[np.ndarray]) -> float:
    """Of the marks two checkpoints give the same sentences (``[rows, T]`` bool each), the share that
    differ: tokens moved between kept and dropped. Sentences whose rows differ in shape are left out."""
    pairs = [(a, b) for a, b in zip(before, after) if a.shape == b.shape]
    total = sum(a.size for a, _ in pairs)
    return sum(int((a != b).sum()) for a, b in pairs) / total if total else float("nan")

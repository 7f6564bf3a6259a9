"""Which kinds of token the dropping layers keep: special tokens, the most frequent tenth of the
vocabulary, and the rest.

Hou et al. (ACL 2022) argue that importance dropping learns to skip frequent, easy tokens; this is
the number that shows whether a run does. :class:`KeptTally` counts on the device, per vocabulary
id, how often each id came in and how often the dropping layers kept it (a few kernels per training
forward, no host read); :func:`kept_shares` turns two readings of it into the share of each kind
kept in between. The kinds are fixed by :func:`vocabulary_kinds` from a frequency per id.
"""
import math
from typing import Dict, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from ..method.layer_plans import LayerwisePlan, TokenDroppingPlan

SPECIAL, FREQUENT, REST, NONE = 0, 1, 2, 3  # NONE: padding, counted in no kind
KIND_NAMES = {SPECIAL: "special", FREQUENT: "top10pct", REST: "rest"}
FREQUENT_SHARE = 0.1


def vocabulary_kinds(dictionary, frequency: Sequence[float]) -> np.ndarray:
    """``[V]`` kind of every id: the dictionary's special symbols (``<s> </s> <unk>``, ``<mask>``),
    the most frequent tenth of the other ids by ``frequency`` (ties to the lower id, which in a
    fairseq-preprocess dict.txt is the more frequent), the rest; ``<pad>`` is in none."""
    frequency = np.asarray(frequency, dtype=np.float64)
    kinds = np.full(len(dictionary), REST, dtype=np.int64)
    special = [dictionary.bos(), dictionary.eos(), dictionary.unk()]
    if "<mask>" in dictionary.indices:
        special.append(dictionary.index("<mask>"))
    kinds[special] = SPECIAL
    kinds[dictionary.pad()] = NONE
    others = np.flatnonzero(kinds == REST)
    most_first = others[np.argsort(-frequency[others], kind="stable")]
    kinds[most_first[:math.ceil(FREQUENT_SHARE * len(others))]] = FREQUENT
    return kinds


def kept_ids(src_tokens: Tensor, plan: Union[TokenDroppingPlan, LayerwisePlan]) -> Tensor:
    """``[B, K]`` ids the dropping layers saw; for random-LTD the first wrapped layer's, as ``kept_frac``
    counts them (every wrapped layer draws its subset alike)."""
    index = plan.index[0] if plan.index.dim() == 3 else plan.index
    return src_tokens.gather(1, index)


class KeptTally:
    """Running counts per vocabulary id, on the device: ``counts[0]`` tokens that came in, ``counts[1]``
    tokens kept."""

    def __init__(self, vocab_size: int):
        self.counts = torch.zeros(2, vocab_size, dtype=torch.float64)
        self._one = torch.ones((), dtype=torch.float64)

    def add(self, src_tokens: Tensor, plan: Union[TokenDroppingPlan, LayerwisePlan]) -> None:
        """One training forward's tokens and the plan it ran; no host read."""
        if self.counts.device != src_tokens.device:  # once: a tensor made per call would copy to the device per call
            self.counts, self._one = self.counts.to(src_tokens.device), self._one.to(src_tokens.device)
        kept = kept_ids(src_tokens, plan)
        self.counts[0].index_add_(0, src_tokens.reshape(-1), self._one.expand(src_tokens.numel()))
        self.counts[1].index_add_(0, kept.reshape(-1), self._one.expand(kept.numel()))

    def read(self) -> np.ndarray:
        """``[2, V]`` float64 on the host (one read): a copy, which later adds leave as it is."""
        return self.counts.to("cpu", copy=True).numpy()


def kept_shares(counts: np.ndarray, kinds: np.ndarray) -> Dict[str, float]:
    """Kept share of each kind from ``[2, V]`` counts (a difference of two readings): kept / came in,
    NaN for a kind that never came in."""
    shares = {}
    for kind, name in KIND_NAMES.items():
        seen, kept = counts[:, kinds == kind].sum(axis=1)
        shares[name] = kept / seen if seen > 0 else float("nan")
    return shares

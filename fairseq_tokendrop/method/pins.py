"""Allow and deny pins: vocabulary ids whose score is fixed at the extremes.

TF Model Garden's token-dropping BERT (``token_allow_list``/``token_deny_list``)
sets allow-listed ids to +1e4 and deny-listed ids to -1e4, finite values: an
allow-listed token is always kept, a deny-listed one dropped first. The
importance scores carry the pins (they are re-applied after every update), and
the random strategy lays them over its noise.
"""
from typing import Iterable

import torch
from torch import Tensor

PIN = 1e4


class Pins:
    """``value`` ``[V]`` float32 (+PIN allow, -PIN deny, 0 elsewhere) and ``pinned`` ``[V]`` bool."""

    def __init__(self, vocab_size: int, allow_ids: Iterable[int], deny_ids: Iterable[int]):
        self.value = torch.zeros(vocab_size)
        self.pinned = torch.zeros(vocab_size, dtype=torch.bool)
        for ids, value in ((list(deny_ids), -PIN), (list(allow_ids), PIN)):
            self.value[ids] = value
            self.pinned[ids] = True

    def follow(self, device: torch.device) -> None:
        # plain tensors, moved lazily: the model's .to()/.half() skip them, as they skip the scores
        if self.value.device != device:
            self.value, self.pinned = self.value.to(device), self.pinned.to(device)

    def over_vocabulary(self, scores: Tensor) -> Tensor:
        """``[V]`` scores with the pinned ids set to their pins."""
        self.follow(scores.device)
        return torch.where(self.pinned, self.value, scores)

    def over_positions(self, tokens: Tensor, scores: Tensor) -> Tensor:
        """``[B, T]`` per-position scores with the positions of pinned ids set to their pins."""
        self.follow(tokens.device)
        return torch.where(self.pinned[tokens], self.value[tokens], scores)

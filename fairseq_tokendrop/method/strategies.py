"""The dropping strategies, one small class each: which tokens each layer sees.

The encoder asks its strategy once per training forward, with the batch, the
number of tokens to keep and the update count, and gets a plan
(``layer_plans.py``) that runs every layer on its tokens. Stock RoBERTa (no
dropping) has no strategy.

- :class:`ImportanceDropping`: keep the highest-scored positions, a position's
  score being its id's moving-average MLM loss (Hou et al., ACL 2022; TF Model
  Garden), through the middle layers of the token-dropping layout;
- :class:`RandomDropping`: a uniform random subset in the same layout, with the
  allow/deny pins kept: the ablation of importance;
- :class:`RandomLtd`: a fresh uniform subset for every wrapped layer (Yao et
  al. 2022; DeepSpeed's random-LTD).
"""
from abc import ABC, abstractmethod
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from .importance import TokenImportance
from .layer_plans import LayerwisePlan, TokenDroppingPlan
from .noise import MicroBatchNoise
from .pins import Pins
from .random_ltd import draw_kept, layer_slots
from .token_selection import select_kept

# What importance dropping does when nothing feeds the scores its losses (a task or criterion that refuses
# it says so).
WITHOUT_UPDATES = ("every score would stay at its initial value and dropping would keep the first positions "
                   "of each sequence (--token-drop-strategy random or random-ltd drops without importance)")


class _KeepHighestScores(ABC):
    """The token-dropping layout's selection: the ``kept`` highest-scored positions of each row,
    padding last whatever its score (the allow and deny lists may name ``<pad>`` or leave it out)."""

    layerwise_layers: Optional[Tuple[int, ...]] = None  # not layerwise (for the MAC count)

    def __init__(self, num_layers: int, padding_idx: int):
        self.num_layers, self.padding_idx = num_layers, padding_idx

    @abstractmethod
    def scores(self, src_tokens: Tensor, num_updates: int) -> Tensor:
        """``[B, T]`` float32 score of each position."""

    def plan(self, src_tokens: Tensor, kept: int, num_updates: int) -> TokenDroppingPlan:
        scores = self.scores(src_tokens, num_updates)
        return TokenDroppingPlan(select_kept(scores, kept, src_tokens.eq(self.padding_idx)), self.num_layers)


class ImportanceDropping(_KeepHighestScores):
    moves_importance = True  # the scores it selects by must be updated: the task and criterion feed them

    def __init__(self, importance: TokenImportance, num_layers: int, padding_idx: int):
        super().__init__(num_layers, padding_idx)
        self.importance = importance

    def scores(self, src_tokens: Tensor, num_updates: int) -> Tensor:
        return self.importance.position_scores(src_tokens)


class RandomDropping(_KeepHighestScores):
    moves_importance = False

    def __init__(self, pins: Pins, noise: MicroBatchNoise, num_layers: int, padding_idx: int):
        super().__init__(num_layers, padding_idx)
        self.pins, self.noise = pins, noise

    def scores(self, src_tokens: Tensor, num_updates: int) -> Tensor:
        """Uniform noise in [0, 1) with the allow/deny pins laid over it."""
        generator = self.noise.generator(num_updates, src_tokens.device)
        noise = torch.rand(src_tokens.shape, device=src_tokens.device, generator=generator)
        return self.pins.over_positions(src_tokens, noise)


class RandomLtd:
    moves_importance = False

    def __init__(self, noise: MicroBatchNoise, layers: Sequence[int], num_layers: int, padding_idx: int):
        self.noise, self.padding_idx = noise, padding_idx
        self.layerwise_layers = tuple(layers)  # the wrapped layers (DeepSpeed's random_ltd_layer_id)
        self.slots = layer_slots(num_layers, self.layerwise_layers)

    def plan(self, src_tokens: Tensor, kept: int, num_updates: int) -> LayerwisePlan:
        generator = self.noise.generator(num_updates, src_tokens.device)
        index = draw_kept(generator, src_tokens.eq(self.padding_idx), len(self.layerwise_layers), kept)
        return LayerwisePlan(self.slots, index)

"""Which tokens each encoder layer sees in one forward: the two dropping layouts.

A plan is made once per forward (``strategies.py``) and then asked, layer by
layer, to run that layer on its tokens, so one layer loop serves both layouts
(``token_dropping_encoder.py``). Hidden states are time-first ``[T, B, C]``.

- :class:`TokenDroppingPlan` (Hou et al. 2022; TF Model Garden
  ``token_dropping/encoder.py``; ScTD, Zhong et al. 2023), for N layers and
  kept positions ``index`` ``[B, K]``: layers ``[0, N//2-1)`` see all tokens;
  layer ``N//2-1`` attends from the kept tokens to all tokens and returns the
  kept tokens only; layers ``[N//2, N-1)`` see the kept tokens only, in
  positional order; the dropped tokens re-enter with the state they had
  entering layer ``N//2-1``, and layer ``N-1`` sees all tokens.
- :class:`LayerwisePlan` (random-LTD, Yao et al. 2022; see ``random_ltd.py``):
  every layer sees all tokens except the wrapped ones, each of which runs on
  its own kept tokens and passes the others through unchanged.

Padding masks follow the stock encoder's rule (``has_pads``): a layer gets a
mask only when its tokens include padding (:class:`PaddingMasks`).
"""
from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor, nn

from .random_ltd import kept_padding_masks, run_on_kept
from .token_selection import scatter_tokens


class PaddingMasks(NamedTuple):
    """The masks the layers get: None where their tokens hold no padding, so every attention call
    without padding can take PyTorch's flash backend, which takes no mask."""

    padding: Tensor  # [B, T] bool
    full: Optional[Tensor]  # [B, T] for layers that see every token
    kept: Optional[Tensor]  # the plan's kept padding ([B, K] or [L, B, K]) for layers on kept tokens


def padding_masks(padding: Tensor, kept_padding: Tensor) -> PaddingMasks:
    """Whether the full and the kept tokens hold padding, read in one host sync per forward:
    the one the stock encoder pays for its ``has_pads``."""
    has_pads, kept_has_pads = torch.stack([padding.any(), kept_padding.any()]).tolist()
    return PaddingMasks(padding, padding if has_pads else None, kept_padding if kept_has_pads else None)


class TokenDroppingPlan:
    """One kept subset through the middle layers."""

    full_length_states = False  # the middle layers' outputs hold K tokens, not T

    def __init__(self, index: Tensor, num_layers: int):
        self.index = index  # [B, K] ascending kept positions
        self.split = num_layers // 2 - 1
        self.last = num_layers - 1
        self.entry: Optional[Tensor] = None  # [T, B, C] input of layer ``split``
        self.last_layer_input: Optional[Tensor] = None  # [T, B, C] input of the last layer

    def kept_padding(self, padding: Tensor) -> Tensor:
        """``[B, T]`` padding -> ``[B, K]`` padding of the kept tokens."""
        return padding.gather(1, self.index)

    def first_kept_padding(self, kept_padding: Tensor) -> Tensor:
        return kept_padding

    def run(self, i: int, layer: nn.Module, x: Tensor, masks: PaddingMasks) -> Tensor:
        if i < self.split:
            return layer(x, encoder_padding_mask=masks.full)
        if i == self.split:
            self.entry = x
            return layer(x, encoder_padding_mask=masks.full, keep_index=self.index)
        if i < self.last:
            return layer(x, encoder_padding_mask=masks.kept)
        self.last_layer_input = scatter_tokens(self.entry, self.index, x)
        return layer(self.last_layer_input, encoder_padding_mask=masks.full)


class LayerwisePlan:
    """A fresh kept subset for every wrapped layer (random-LTD)."""

    full_length_states = True

    def __init__(self, slots: Tuple[Optional[int], ...], index: Tensor):
        self.slots = slots  # per layer: its row of ``index``, None for a layer that sees every token
        self.index = index  # [L, B, K] kept positions of the L wrapped layers
        self.last_layer_input: Optional[Tensor] = None

    def kept_padding(self, padding: Tensor) -> Tensor:
        """``[B, T]`` -> ``[L, B, K]``. Padding is drawn last, so either every wrapped layer has
        padding among its kept tokens or none has: one ``any()`` tells for all."""
        return kept_padding_masks(padding, self.index)

    def first_kept_padding(self, kept_padding: Tensor) -> Tensor:
        # every wrapped layer sees as many real tokens, so the first one's count stands for all
        return kept_padding[0]

    def run(self, i: int, layer: nn.Module, x: Tensor, masks: PaddingMasks) -> Tensor:
        if i == len(self.slots) - 1:
            self.last_layer_input = x
        slot = self.slots[i]
        if slot is None:
            return layer(x, encoder_padding_mask=masks.full)
        return run_on_kept(layer, x, self.index[slot], None if masks.kept is None else masks.kept[slot])

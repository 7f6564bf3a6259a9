"""Random-LTD: every wrapped layer runs on its own uniform random subset of the tokens.

Yao et al., "Random-LTD: Random and Layerwise Token Dropping Brings Efficient
Training for Large-scale Transformers" (2022); DeepSpeed's
``runtime/data_pipeline/data_routing/basic_layer.py`` and
``ops/random_ltd/dropping_utils.py``:

- the indices of every wrapped layer are drawn at once, before the first
  wrapped layer runs: a fresh uniform draw without replacement per layer and
  per sample, sorted ascending (positions keep their order, and absolute
  position embeddings were added at the input, so they ride with the tokens);
- a wrapped layer runs on its gathered tokens, with the padding mask gathered
  alike, and its output is scattered into a copy of its input: the tokens it
  did not draw skip that layer unchanged;
- layers that are not wrapped, the first and the last always among them, see
  every token, so the output is full length and the MLM head needs nothing.

One departure, on purpose: DeepSpeed draws over all positions, padding
included. Here padding is drawn only once a row has no real token left, so a
row with at least K real tokens gives every wrapped layer K real tokens.

DeepSpeed draws with ``torch.multinomial`` over equal weights; the K largest of
T independent uniform numbers are a uniform K-subset as well, and that is how
the draw is made here, on the noise of one generator per micro-batch.
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .token_selection import gather_tokens, scatter_tokens, select_kept


def default_layers(num_layers: int) -> Tuple[int, ...]:
    """Every layer but the first and the last (DeepSpeed's usual ``random_ltd_layer_id``)."""
    return tuple(range(1, num_layers - 1))


def parse_layers(spec: str, num_layers: int) -> Tuple[int, ...]:
    """Comma-separated layer ids, e.g. ``1,2,3``; empty: ``default_layers``.

    Raises ValueError with a one-line reason (the caller names the flag).
    """
    if not spec or not str(spec).strip():
        return default_layers(num_layers)
    try:
        ids = [int(p) for p in str(spec).split(",")]
    except ValueError:
        raise ValueError(f"expected comma-separated layer ids such as 1,2,3, got {spec!r}")
    allowed = default_layers(num_layers)
    outside = [i for i in ids if i not in allowed]
    if outside:
        raise ValueError(f"layer {outside[0]} is not in 1..{num_layers - 2}: the first and the last of "
                         f"the {num_layers} layers always see every token")
    if len(set(ids)) != len(ids):
        raise ValueError(f"a layer is named twice in {spec!r}")
    return tuple(sorted(ids))


def draw_kept(generator: torch.Generator, padding: Tensor, num_layers: int, kept: int) -> Tensor:
    """The kept positions of every wrapped layer for one micro-batch.

    Args:
        generator: the micro-batch's noise source, on ``padding``'s device.
        padding: ``[B, T]`` bool, True at padding.
        num_layers: how many layers are wrapped (L); kept: K <= T.
    Returns:
        ``[L, B, K]`` long, ascending within each row; real tokens first, padding
        only where a row has fewer than K real tokens.
    """
    noise = torch.rand((num_layers, *padding.shape), generator=generator, device=padding.device)
    return select_kept(noise, kept, padding)


def kept_padding_masks(padding: Tensor, index: Tensor) -> Tensor:
    """``[B, T]`` padding and ``[L, B, K]`` kept positions -> ``[L, B, K]`` padding of the kept tokens."""
    return padding.unsqueeze(0).expand(index.size(0), -1, -1).gather(2, index)


def run_on_kept(layer: nn.Module, x: Tensor, index: Tensor, padding_mask: Optional[Tensor]) -> Tensor:
    """One wrapped layer: ``layer`` on the rows ``index [B, K]`` of ``x [T, B, C]``, scattered back.

    ``padding_mask`` ``[B, K]`` (None: no padding among the kept tokens). The
    rows not in ``index`` come back as they went in.
    """
    kept = layer(gather_tokens(x, index), encoder_padding_mask=padding_mask)
    return scatter_tokens(x, index, kept)


def layer_slots(num_layers: int, wrapped: Sequence[int]) -> Tuple[Optional[int], ...]:
    """For each of ``num_layers`` layers, its row in ``draw_kept``'s output, or None if it sees every token."""
    slot = {layer: i for i, layer in enumerate(wrapped)}
    return tuple(slot.get(i) for i in range(num_layers))

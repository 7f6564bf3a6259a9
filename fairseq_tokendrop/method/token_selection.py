"""Which tokens the middle layers see, and moving hidden states between full and kept length.

Shape letters: B batch, T padded length, K kept tokens, C channels.
Hidden states are time-first ``[T, B, C]`` as in fairseq's encoder.

The gather/scatter pair follows the unpadding helpers of MosaicML's BERT
(``bert_padding.py``): the indices are built once per forward and every layer
reuses them, so there is no per-layer sort and no boolean-mask reshape.
"""
import math
from typing import Optional

import torch
from torch import Tensor

PADDING_SCORE = float("-inf")  # below every score, the deny pin (-1e4) included


def num_kept(seq_len: int, drop_fraction: float, keep_k: int) -> int:
    """How many of ``seq_len`` positions stay: ``min(keep_k, T)`` (TF
    ``token_keep_k``) or ``T - floor(P*T)`` (ScTD ``--token-drop P``)."""
    if keep_k:
        return min(keep_k, seq_len)
    return seq_len - math.floor(drop_fraction * seq_len)


def select_kept(scores: Tensor, k: int, padding: Optional[Tensor] = None) -> Tensor:
    """Positions of the ``k`` highest scores of each row, padding last.

    Args:
        scores: ``[..., T]`` float.
        padding: ``[..., T]`` bool (broadcast against ``scores``), True at padding: those positions
            come after every real one, whatever their score, so a row keeps padding only once it
            has no real token left to keep.
    Returns:
        ``[..., K]`` long, ascending within each row, so kept tokens keep their
        positional order. Equal scores go to the earlier position (a stable
        sort keeps equal elements in input order).
    """
    if padding is not None:
        scores = scores.masked_fill(padding, PADDING_SCORE)
    best_first = torch.sort(scores, dim=-1, descending=True, stable=True).indices
    return best_first[..., :k].sort(dim=-1).values


def _time_first_index(index: Tensor, channels: int) -> Tensor:
    return index.t().unsqueeze(-1).expand(-1, -1, channels)


def gather_tokens(x: Tensor, index: Tensor) -> Tensor:
    """``x[index[b, k], b]`` for every b, k.

    Args:
        x: ``[T, B, C]``; index: ``[B, K]`` long.
    Returns:
        ``[K, B, C]``.
    """
    return x.gather(0, _time_first_index(index, x.size(-1)))


def scatter_tokens(full: Tensor, index: Tensor, kept: Tensor) -> Tensor:
    """``full`` with the rows named by ``index`` replaced by ``kept``.

    Args:
        full: ``[T, B, C]``; index: ``[B, K]`` long; kept: ``[K, B, C]``.
    Returns:
        a new ``[T, B, C]`` tensor (out of place, so autograd reaches both inputs).
    """
    return full.scatter(0, _time_first_index(index, full.size(-1)), kept)

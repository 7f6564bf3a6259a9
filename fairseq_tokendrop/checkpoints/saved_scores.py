"""A saved token-importance score vector, in either layout it comes in.

This plugin saves one float per dictionary entry, ``[V]`` (``importance.pt``,
``--init-token-importance``). The ScTD authors' fork (Zhong et al., ACL 2023;
github.com/WHU-ZQH/ScTD) keeps its scores as a frozen ``nn.Embedding`` weight,
``[V, 1]``, in its checkpoints and its ``--init-token-importance`` files alike.
Training reads such a file at startup and the fork import reads the fork's
checkpoint, so the reading lives here, beside what training loads.
"""
from typing import Optional

import torch
from torch import Tensor

from ..errors import TokendropError

FLAG = "--init-token-importance"


def score_vector(scores, vocab_size: int) -> Optional[Tensor]:
    """float32 ``[V]`` from this plugin's ``[V]`` or the fork's ``[V, 1]`` layout; None for any other."""
    if not torch.is_tensor(scores) or not scores.is_floating_point():
        return None
    if scores.shape == (vocab_size, 1):
        scores = scores[:, 0]
    return scores.float() if scores.shape == (vocab_size,) else None


def load_init_scores(path: str, vocab_size: int) -> torch.Tensor:
    """float32 ``[vocab_size]`` from a file written with ``torch.save``; TokendropError naming the file otherwise."""
    try:
        scores = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise TokendropError(f"{FLAG}: no such file: {path}")
    except Exception as e:
        raise TokendropError(f"{FLAG}: cannot read {path} as a saved tensor ({type(e).__name__}: {e})")
    vector = score_vector(scores, vocab_size)  # ours [V], or the ScTD fork's [V, 1]
    if vector is None:
        shape = tuple(scores.shape) if torch.is_tensor(scores) else type(scores).__name__
        raise TokendropError(f"{FLAG}: {path} holds {shape}, expected a float tensor of shape "
                        f"({vocab_size},) (or the ScTD fork's ({vocab_size}, 1)), one score per dictionary entry")
    refuse_non_finite(vector, f"{FLAG}: {path}")
    return vector


def refuse_non_finite(scores: Tensor, source: str) -> None:
    """TokendropError naming ``source`` and the first non-finite entry of the ``[V]`` ``scores``.

    A NaN or inf score would keep or drop its token forever and turn the logged mean to nan.
    """
    finite = torch.isfinite(scores)
    if not finite.all():
        bad = int((~finite).nonzero()[0])
        raise TokendropError(f"{source} holds a non-finite score (entry {bad}: {scores[bad].item()})")

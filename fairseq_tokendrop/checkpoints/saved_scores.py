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


def score_vector(scores, vocab_size: int) -> Optional[Tensor]:
    """float32 ``[V]`` from this plugin's ``[V]`` or the fork's ``[V, 1]`` layout; None for any other."""
    if not torch.is_tensor(scores) or not scores.is_floating_point():
        return None
    if scores.shape == (vocab_size, 1):
        scores = scores[:, 0]
    return scores.float() if scores.shape == (vocab_size,) else None

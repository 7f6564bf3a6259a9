"""ScTD: semantic-consistent learning on a hybrid schedule.

Zhong et al., "Revisiting Token Dropping Strategy in Efficient BERT
Pretraining" (ACL 2023, arXiv 2305.15273). Every F-th update the same batch
goes through the token-dropping model and the full model, and

    loss = (1-a) L_drop + a L_full + l (KL_local + KL_global)

where KL = KL(p_full || p_drop), p the softmax over the hidden dimension of
the position-0 (<s>) state, summed over the batch; local compares the
output of layer N-2 (the last dropped layer), global the final layer.
Gradients flow through both passes. (The public fork computes L_full from the
drop pass by mistake; this is the paper's formula.)
"""
import torch.nn.functional as F
from torch import Tensor


def is_sctd_update(num_updates: int, interval: int) -> bool:
    return interval > 0 and num_updates % interval == 0


def cls_kl(h_full: Tensor, h_drop: Tensor) -> Tensor:
    """KL(softmax(h_full) || softmax(h_drop)) over the last dim, summed; fp32.

    Args: ``[B, C]`` each (the position-0 states). Returns a scalar.
    """
    return F.kl_div(
        F.log_softmax(h_drop.float(), dim=-1),
        F.log_softmax(h_full.float(), dim=-1),
        reduction="sum",
        log_target=True,
    )


def sctd_mlm_loss(l_drop: Tensor, l_full: Tensor, full_weight: float) -> Tensor:
    """The objective's masked-LM part, ``(1-a) L_drop + a L_full``."""
    return (1 - full_weight) * l_drop + full_weight * l_full


def sctd_loss(l_drop: Tensor, l_full: Tensor, kl_local: Tensor, kl_global: Tensor,
              full_weight: float, kl_weight: float) -> Tensor:
    return sctd_mlm_loss(l_drop, l_full, full_weight) + kl_weight * (kl_local + kl_global)

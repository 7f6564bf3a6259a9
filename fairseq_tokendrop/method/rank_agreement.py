"""Data-parallel ranks that keep one set of importance scores.

Neither TF Model Garden nor the ScTD fork synchronise the scores across
replicas, so their ranks drift apart. Here each optimizer step's per-id loss
sums and counts go through one all-reduce, so every rank applies the same
update; the same collective carries a fingerprint of each rank's scores, which
tells whether they already differed (logged as ``imp_rank_mismatch``).
"""
from typing import Optional, Tuple

import torch
import torch.distributed as dist
from torch import Tensor

# Fingerprints are integers below this prime. The check sums h and h*h over ranks in float64,
# exact while world_size * h < 2**26.5, i.e. up to ~11k ranks; two different score vectors
# collide with probability 1/FINGERPRINT_PRIME per step.
FINGERPRINT_PRIME = 8191


def data_parallel_group():
    """(fairseq's data-parallel group, its size); (None, 1) without torch.distributed."""
    if not (dist.is_available() and dist.is_initialized()):
        return None, 1
    from fairseq.distributed import utils as distributed_utils

    group = distributed_utils.get_data_parallel_group()
    return group, distributed_utils.get_world_size(group)


def data_parallel_rank_and_size() -> Tuple[int, int]:
    group, world = data_parallel_group()
    if world == 1:
        return 0, 1
    from fairseq.distributed import utils as distributed_utils

    return distributed_utils.get_rank(group), world


def fingerprint_weights(vocab_size: int) -> Tensor:
    """Fixed per-id weights, the same on every rank (seeded), for :func:`fingerprint`."""
    return torch.randint(1, FINGERPRINT_PRIME, (vocab_size,), generator=torch.Generator().manual_seed(0))


def fingerprint(scores: Tensor, weights: Tensor) -> Tensor:
    """An integer in ``[0, FINGERPRINT_PRIME)`` (int64 0-dim) that changes with any bit of ``scores``."""
    bits = scores.view(torch.int32).long() % FINGERPRINT_PRIME
    return (bits * weights.to(scores.device)).sum() % FINGERPRINT_PRIME


def sum_over_ranks(stats: Tensor, scores_fingerprint: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
    """All-reduce (sum) float64 ``stats`` over the data-parallel ranks, with the scores' fingerprint.

    Every rank must call this at the same step. Returns the summed ``stats`` and a
    bool 0-dim tensor, True when the ranks' fingerprints differed (None with one
    rank). No host sync.
    """
    group, world = data_parallel_group()
    if world == 1:
        return stats, None
    from fairseq.distributed import utils as distributed_utils

    h = scores_fingerprint.double()
    buf = torch.cat([stats.reshape(-1), torch.stack([h, h * h])])
    distributed_utils.all_reduce(buf, group)
    total, total_sq = buf[-2], buf[-1]
    # sum_{i<j} (h_i - h_j)^2 = n * sum h^2 - (sum h)^2, exact for integers in float64
    return buf[:-2].view(stats.shape), world * total_sq - total * total > 0

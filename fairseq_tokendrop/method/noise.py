"""The random strategies' noise: one generator per micro-batch, seeded by (seed, update, index).

Random selection in the token-dropping layout and random-LTD's layerwise draws
(``strategies.py``) take their noise from here, not from torch's global RNG,
which fairseq seeds alike on every rank (``seed + num_updates``). Each
micro-batch of each rank gets its own noise, the same noise one process would
draw for the same batch over the union of the ranks' batches, and a resumed run
draws what an uninterrupted one does.
"""
import hashlib

import torch

from .rank_agreement import data_parallel_rank_and_size


def noise_seed(seed: int, num_updates: int, micro_batch: int) -> int:
    """A 63-bit generator seed for one micro-batch's noise; distinct inputs give unrelated seeds."""
    digest = hashlib.blake2b(f"{seed},{num_updates},{micro_batch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class MicroBatchNoise:
    """Hands out the generator of each micro-batch; ``seed`` is fairseq's ``--seed``."""

    def __init__(self, seed: int):
        self.seed = seed
        self._update, self._draws = None, 0

    def generator(self, num_updates: int, device: torch.device) -> torch.Generator:
        """The noise source of the next micro-batch of update ``num_updates``.

        The i-th call of an update on data-parallel rank r of W is global micro-batch
        ``i*W + r``: fairseq hands batch ``b`` of the shuffled epoch to rank ``b % W`` and
        groups each rank's consecutive ``--update-freq`` batches, so that is the index
        the same batch has for one process with ``--update-freq`` x W.
        """
        if self._update != num_updates:
            self._update, self._draws = num_updates, 0
        rank, world = data_parallel_rank_and_size()
        index = self._draws * world + rank
        self._draws += 1
        generator = torch.Generator(device=device)
        generator.manual_seed(noise_seed(self.seed, num_updates, index))
        return generator

"""Per-vocabulary token importance: a moving average of the MLM loss.

Hou et al., "Token Dropping for Efficient BERT Pretraining" (ACL 2022), and TF
Model Garden ``TokenImportanceWithMovingAvg``: one float32 score per
vocabulary id; a position's importance is the score of its input id.

Departures from both reference implementations, on purpose:
- one update per applied optimizer step, from every target of that step: the
  forward only accumulates sums and counts (all micro-batches of
  ``--update-freq``), the moving average moves when the optimizer really steps
  (``apply_pending``, called by the task), as TF updates once per step. Every micro-batch
  of a step selects with the scores from before the step. A step the loss
  scaler skips, and fairseq's dummy batches, leave the scores untouched;
- duplicate ids are averaged, not last-write-wins;
- sums and counts are all-reduced over data-parallel workers (one collective
  per step), so every rank keeps identical scores; the same collective
  checks that they are (``imp_rank_mismatch``);
- non-finite per-token losses are left out.

The scores are not a parameter or buffer: ``model.half()`` would cast a buffer,
and a stock ``roberta_base`` loads its state dict strictly. They travel in the
state dict's module-local metadata instead (``state_dict._metadata``), which
``torch.save``/``torch.load`` keep and stock loaders ignore. fairseq's rank-0
broadcast of a checkpoint does not keep it; ``checkpoints.scores_after_broadcast``
brings the scores back on every rank.

The random strategies (random selection in the token-dropping layout, and
random-LTD's layerwise draws, ``random_ltd.py``) draw their noise from a generator
seeded by (``--seed``, update, global micro-batch index), not from torch's global
RNG, which fairseq seeds alike on every rank: each micro-batch of each rank gets
its own noise, the same noise one process would draw for the same batch over the
union of the ranks' batches, and a resumed run draws what an uninterrupted one does.
"""
import hashlib
from typing import Iterable, Optional, Tuple

import torch
import torch.distributed as dist
from torch import Tensor, nn

PIN = 1e4  # finite, as in TF: allow-list ids are always kept, deny-list ids dropped first
METADATA_KEY = "token_importance"
# Rank-agreement fingerprints are integers below this prime. The check sums h and h*h over
# ranks in float64, exact while world_size * h < 2**26.5, i.e. up to ~11k ranks; two different
# score vectors collide with probability 1/FINGERPRINT_PRIME per step.
FINGERPRINT_PRIME = 8191


class TokenImportance(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        init_value: float,
        beta: float,
        allow_ids: Iterable[int],
        deny_ids: Iterable[int],
        init_scores: Optional[Tensor] = None,
        seed: int = 1,
    ):
        super().__init__()
        self.beta = beta
        self.seed = seed
        self.num_updates = 0  # set by fairseq before every micro-batch (set_num_updates)
        self._noise_step, self._noise_draws = None, 0
        self.missing_from_last_load = False  # a state dict without scores was loaded (fairseq's broadcast)
        self.pin_value = torch.zeros(vocab_size)
        self.pinned = torch.zeros(vocab_size, dtype=torch.bool)
        for ids, value in ((list(deny_ids), -PIN), (list(allow_ids), PIN)):
            self.pin_value[ids] = value
            self.pinned[ids] = True
        self.scores = torch.full((vocab_size,), float(init_value))
        # float64 [2, V]: sums and counts of finite target losses since the last optimizer step
        # (float64: counts stay exact integers and the fingerprint check below stays exact)
        self.pending: Optional[Tensor] = None
        self.collecting = True  # off while fairseq runs a dummy (ignore_grad) micro-batch
        self.fingerprint_weights = torch.randint(
            1, FINGERPRINT_PRIME, (vocab_size,), generator=torch.Generator().manual_seed(0))
        if init_scores is not None:
            self.set(init_scores)
        self._pin()
        self._register_state_dict_hook(_save_scores_in_metadata)

    def _follow(self, device: torch.device) -> None:
        # Moved lazily: ``.to()``/``.half()`` on the model skip plain tensors,
        # which is exactly what keeps the scores float32 under --fp16.
        if self.scores.device != device:
            self.scores = self.scores.to(device)
            self.pin_value = self.pin_value.to(device)
            self.pinned = self.pinned.to(device)
            self.fingerprint_weights = self.fingerprint_weights.to(device)

    def _pin(self) -> None:
        self.scores = torch.where(self.pinned, self.pin_value, self.scores)

    def position_scores(self, tokens: Tensor) -> Tensor:
        """``[B, T]`` token ids -> ``[B, T]`` float32 importance of each position."""
        self._follow(tokens.device)
        return self.scores[tokens]

    def set_num_updates(self, num_updates: int) -> None:
        self.num_updates = num_updates

    def micro_batch_generator(self, device: torch.device) -> torch.Generator:
        """The noise source of the next micro-batch of this update, seeded by (seed, update, index).

        The i-th call of an update on data-parallel rank r of W is global micro-batch
        ``i*W + r``: fairseq hands batch ``b`` of the shuffled epoch to rank ``b % W`` and
        groups each rank's consecutive ``--update-freq`` batches, so that is the index
        the same batch has for one process with ``--update-freq`` x W.
        """
        if self._noise_step != self.num_updates:
            self._noise_step, self._noise_draws = self.num_updates, 0
        rank, world = _data_parallel_rank_and_size()
        index = self._noise_draws * world + rank
        self._noise_draws += 1
        generator = torch.Generator(device=device)
        generator.manual_seed(noise_seed(self.seed, self.num_updates, index))
        return generator

    def random_scores(self, tokens: Tensor) -> Tensor:
        """Uniform random scores with the allow/deny pins kept (the ``random`` strategy:
        random selection in the token-dropping layout)."""
        self._follow(tokens.device)
        generator = self.micro_batch_generator(tokens.device)
        noise = torch.rand(tokens.shape, device=tokens.device, generator=generator)
        return torch.where(self.pinned[tokens], self.pin_value[tokens], noise)

    @torch.no_grad()
    def accumulate(self, ids: Tensor, losses: Tensor) -> None:
        """Add one micro-batch's target losses to the pending step; no collective, scores unchanged.

        Args:
            ids: ``[M]`` long, the target ids of the masked positions.
            losses: ``[M]`` their MLM losses (any float dtype); NaN/inf are left out.
        """
        if not self.collecting:
            return
        self._follow(ids.device)
        losses = losses.detach().double()
        finite = torch.isfinite(losses)
        if self.pending is None:
            self.pending = torch.zeros(2, self.scores.numel(), dtype=torch.float64, device=ids.device)
        self.pending[0].index_add_(0, ids, torch.where(finite, losses, torch.zeros_like(losses)))
        self.pending[1].index_add_(0, ids, finite.double())

    def discard_pending(self) -> None:
        self.pending = None

    def fingerprint(self) -> Tensor:
        """An integer in ``[0, FINGERPRINT_PRIME)`` (int64 0-dim) that changes with any bit of the scores."""
        bits = self.scores.view(torch.int32).long() % FINGERPRINT_PRIME
        return (bits * self.fingerprint_weights).sum() % FINGERPRINT_PRIME

    @torch.no_grad()
    def apply_pending(self, applied: Optional[Tensor] = None) -> Optional[Tensor]:
        """``score <- beta*score + (1-beta)*mean loss`` for every id that was a target since the last call.

        With more than one data-parallel rank, every rank must call this at the same
        step (fairseq's optimizer step): the sums, the counts and a fingerprint of the
        scores go through one all-reduce. Returns a bool 0-dim tensor, True when the
        ranks held different scores before this update (None with one rank). No host sync.
        ``applied``, a bool 0-dim tensor, tells on the device whether the optimizer step was
        taken: where False the scores stay and the pending sums are dropped, as
        ``discard_pending`` drops them, without reading the flag on the host.
        """
        group, world = _data_parallel_group()
        if self.pending is None:
            if world == 1:
                return None
            # a rank whose micro-batches were all dummies still joins the collective
            self.pending = torch.zeros(2, self.scores.numel(), dtype=torch.float64, device=self.scores.device)
        stats, self.pending = self.pending, None
        mismatch = None
        if world > 1:
            self._follow(stats.device)
            h = self.fingerprint().double()
            buf = torch.cat([stats.view(-1), torch.stack([h, h * h])])
            from fairseq.distributed import utils as distributed_utils

            distributed_utils.all_reduce(buf, group)
            stats = buf[:-2].view(2, -1)
            total, total_sq = buf[-2], buf[-1]
            # sum_{i<j} (h_i - h_j)^2 = n * sum h^2 - (sum h)^2, exact for integers in float64
            mismatch = world * total_sq - total * total > 0
        sums, counts = stats
        mean = (sums / counts.clamp(min=1)).float()
        moved = self.beta * self.scores + (1.0 - self.beta) * mean
        update = counts > 0 if applied is None else (counts > 0) & applied
        self.scores = torch.where(update, moved, self.scores)
        self._pin()
        return mismatch

    def summary(self):
        """Mean and standard deviation of the unpinned scores, as tensors (no host sync)."""
        free = (~self.pinned).float()
        n = free.sum().clamp(min=1)
        mean = (self.scores * free).sum() / n
        std = (((self.scores - mean) ** 2 * free).sum() / n).sqrt()
        return mean, std

    def get(self) -> Tensor:
        return self.scores.detach().clone().float()

    def set(self, scores: Tensor) -> None:
        scores = torch.as_tensor(scores)
        if scores.shape != self.scores.shape:
            raise ValueError(
                f"token importance has shape {tuple(scores.shape)}, expected "
                f"{tuple(self.scores.shape)} (one score per dictionary entry)"
            )
        self.scores = scores.detach().to(self.scores.device, torch.float32).clone()
        self._pin()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)
        self.missing_from_last_load = METADATA_KEY not in local_metadata
        if not self.missing_from_last_load:
            self.set(local_metadata[METADATA_KEY])


def _save_scores_in_metadata(module, state_dict, prefix, local_metadata):
    local_metadata[METADATA_KEY] = module.get().cpu()


def find_token_importance(model: nn.Module) -> TokenImportance:
    # tokendrop_roberta's attribute, read without a module walk (the criterion asks every forward;
    # fairseq's DDP wrappers forward attribute reads to the model)
    direct = getattr(model, "token_importance", None)
    if isinstance(direct, TokenImportance):
        return direct
    found = [m for m in model.modules() if isinstance(m, TokenImportance)]
    if len(found) != 1:
        raise TypeError(
            f"expected a tokendrop_roberta model with one token-importance tracker, "
            f"found {len(found)} in {type(model).__name__}"
        )
    return found[0]


def _data_parallel_group():
    if not (dist.is_available() and dist.is_initialized()):
        return None, 1
    from fairseq.distributed import utils as distributed_utils

    group = distributed_utils.get_data_parallel_group()
    return group, distributed_utils.get_world_size(group)


def _data_parallel_rank_and_size() -> Tuple[int, int]:
    group, world = _data_parallel_group()
    if world == 1:
        return 0, 1
    from fairseq.distributed import utils as distributed_utils

    return distributed_utils.get_rank(group), world


def noise_seed(seed: int, num_updates: int, micro_batch: int) -> int:
    """A 63-bit generator seed for one micro-batch's noise; distinct inputs give unrelated seeds."""
    digest = hashlib.blake2b(f"{seed},{num_updates},{micro_batch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def get_token_importance(model: nn.Module) -> Tensor:
    """float32 ``[len(dictionary)]``, a copy of the model's current scores."""
    return find_token_importance(model).get()


def set_token_importance(model: nn.Module, scores: Tensor) -> None:
    """Replace the model's scores; allow/deny pins are re-applied."""
    find_token_importance(model).set(scores)

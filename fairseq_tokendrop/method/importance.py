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
  per step, ``rank_agreement.py``), so every rank keeps identical scores;
- non-finite per-token losses are left out.

The scores are not a parameter or buffer: ``model.half()`` would cast a buffer,
and a stock ``roberta_base`` loads its state dict strictly. They travel in the
state dict's metadata instead (``checkpoints/scores_in_state_dict.py``).
"""
from typing import Iterable, List, Optional, Sequence

import torch
from torch import Tensor, nn

from .pins import PIN, Pins
from .rank_agreement import data_parallel_group, fingerprint, fingerprint_weights, sum_over_ranks


class TokenImportance(nn.Module):
    def __init__(self, vocab_size: int, init_value: float, beta: float, allow_ids: Iterable[int],
                 deny_ids: Iterable[int], init_scores: Optional[Tensor] = None, symbols: Sequence[str] = ()):
        super().__init__()
        self.symbols = list(symbols)  # the dictionary's, to name ids in messages
        self.beta = beta
        self.pins = Pins(vocab_size, allow_ids, deny_ids)
        self.scores = self.pins.over_vocabulary(torch.full((vocab_size,), float(init_value)))
        # float64 [2, V]: sums and counts of finite target losses since the last optimizer step
        # (float64: counts stay exact integers and the fingerprint check stays exact)
        self.pending: Optional[Tensor] = None
        self.collecting = True  # off while fairseq runs a dummy (ignore_grad) micro-batch
        self.fingerprint_weights = fingerprint_weights(vocab_size)
        self.missing_from_last_load = False  # a state dict without scores was loaded (fairseq's broadcast)
        if init_scores is not None:
            self.set(init_scores)
        self.initial = self.scores.clone()  # what this run gives an id before it has scored it

    def _follow(self, device: torch.device) -> None:
        # Moved lazily: ``.to()``/``.half()`` on the model skip plain tensors,
        # which is exactly what keeps the scores float32 under --fp16.
        if self.scores.device != device:
            self.scores = self.scores.to(device)
            self.fingerprint_weights = self.fingerprint_weights.to(device)

    def position_scores(self, tokens: Tensor) -> Tensor:
        """``[B, T]`` token ids -> ``[B, T]`` float32 importance of each position."""
        self._follow(tokens.device)
        return self.scores[tokens]

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
        """An integer (int64 0-dim) that changes with any bit of the scores (``rank_agreement``)."""
        return fingerprint(self.scores, self.fingerprint_weights)

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
        if self.pending is None:
            if data_parallel_group()[1] == 1:
                return None
            # a rank whose micro-batches were all dummies still joins the collective
            self.pending = torch.zeros(2, self.scores.numel(), dtype=torch.float64, device=self.scores.device)
        stats, self.pending = self.pending, None
        self._follow(stats.device)
        (sums, counts), mismatch = sum_over_ranks(stats, self.fingerprint())
        mean = (sums / counts.clamp(min=1)).float()
        moved = self.beta * self.scores + (1.0 - self.beta) * mean
        update = counts > 0 if applied is None else (counts > 0) & applied
        self.scores = self.pins.over_vocabulary(torch.where(update, moved, self.scores))
        return mismatch

    def summary(self):
        """Mean and standard deviation of the unpinned scores, as tensors (no host sync)."""
        free = (~self.pins.pinned.to(self.scores.device)).float()
        n = free.sum().clamp(min=1)
        mean = (self.scores * free).sum() / n
        std = (((self.scores - mean) ** 2 * free).sum() / n).sqrt()
        return mean, std

    def get(self) -> Tensor:
        return self.scores.detach().clone().float()

    def set(self, scores: Tensor) -> None:
        scores = self._checked(scores)
        self.scores = self.pins.over_vocabulary(scores.detach().to(self.scores.device, torch.float32).clone())

    def load_saved(self, scores: Tensor) -> List[str]:
        """Take scores saved by a run whose allow/deny lists may have differed; returns the ids unpinned
        (their symbols, where the dictionary's were given).

        An id pinned then (its score exactly +-PIN) and not now gets this run's initial score
        (``--token-importance-init``, or its ``--init-token-importance`` entry), the score a fresh
        run with these lists gives it: a pin is no average of losses, and an id that is never a
        target (``<mask>``) would otherwise keep it forever. The current pins are then applied.
        """
        scores = self._checked(scores).detach().to(torch.float32).clone()
        unpinned = (scores.abs() == PIN) & ~self.pins.pinned.to(scores.device)
        scores[unpinned] = self.initial.to(scores.device)[unpinned]
        self.set(scores)
        ids = unpinned.nonzero().flatten().tolist()
        return [self.symbols[i] if i < len(self.symbols) else str(i) for i in ids]

    def _checked(self, scores) -> Tensor:
        scores = torch.as_tensor(scores)
        if scores.shape != self.scores.shape:
            raise ValueError(
                f"token importance has shape {tuple(scores.shape)}, expected "
                f"{tuple(self.scores.shape)} (one score per dictionary entry)"
            )
        return scores


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


def get_token_importance(model: nn.Module) -> Tensor:
    """float32 ``[len(dictionary)]``, a copy of the model's current scores."""
    return find_token_importance(model).get()


def set_token_importance(model: nn.Module, scores: Tensor) -> None:
    """Replace the model's scores; allow/deny pins are re-applied."""
    find_token_importance(model).set(scores)


def apply_token_importance(model: nn.Module) -> None:
    """Move the scores by the losses the criterion collected since the last call: in a training loop of
    one's own, call it once after every optimizer step (fairseq-train's task does it for its steps).
    With several data-parallel ranks every rank calls it at the same step (one all-reduce)."""
    find_token_importance(model).apply_pending()

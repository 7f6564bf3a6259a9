"""When fairseq's Trainer starts an attempt and when it applies a step, as token importance needs it.

The importance tracker (``method.importance``) only accumulates and applies;
this module holds the knowledge of fairseq's ``Trainer`` that tells it when:
which micro-batch starts a new attempt, which is a dummy batch, and which
optimizer step was really taken.
"""
import weakref
from contextlib import contextmanager
from typing import NamedTuple, Optional

from torch import Tensor, nn

from ..method.importance import TokenImportance


class _Found(NamedTuple):
    tracker: TokenImportance
    first_parameter: Tensor  # the first parameter that requires grad: every backward writes its gradient


# Looked up once per model, not per micro-batch: a module walk and a parameter scan of
# roberta_large cost ~2.6 ms of Python per step. Weak keys: a cached model can still be freed.
_found = weakref.WeakKeyDictionary()


def _lookup(model: nn.Module) -> Optional[_Found]:
    """The model's tracker and first trainable parameter, or None for a model without a
    tracker (a stock ``roberta`` under this task)."""
    if model not in _found:
        tracker = getattr(model, "token_importance", None)  # fairseq's DDP wrappers forward attribute reads
        if not isinstance(tracker, TokenImportance):
            _found[model] = None
        else:
            _found[model] = _Found(tracker, next(p for p in model.parameters() if p.requires_grad))
    return _found[model]


@contextmanager
def micro_batch(model: nn.Module, ignore_grad: bool):
    """Wrap one ``task.train_step`` (forward and backward of one micro-batch).

    A pending accumulation belongs to the optimizer step whose gradients it was
    collected with. fairseq's ``Trainer.train_step`` sets every gradient to None
    (``optimizer.zero_grad``) before the first micro-batch of each attempt, and
    again after an OOM, and never between micro-batches of one attempt. So "no
    parameter holds a gradient" marks the first micro-batch of a new attempt:
    whatever is pending then came from an attempt that never reached an applied
    optimizer step (fp16 overflow, an OOM, an AMP retry) and is dropped with its
    gradients. One parameter tells: fairseq clears all gradients at once, and every
    backward writes the gradient of the first trainable one (the token embedding,
    which every forward reads, dummy batches included). ``ignore_grad`` (fairseq's
    dummy batch for a rank that ran out of data) contributes nothing, as it
    contributes no gradient.
    """
    found = _lookup(model)
    if found is None:
        yield
        return
    tracker = found.tracker
    if found.first_parameter.grad is None:
        tracker.discard_pending()
    tracker.collecting = not ignore_grad
    try:
        yield
    finally:
        tracker.collecting = True


@contextmanager
def optimizer_step(model: nn.Module, optimizer):
    """Wrap ``task.optimizer_step``: apply the pending update if the step was applied, else drop it.

    fairseq calls ``task.optimizer_step`` only for steps it takes, except under
    ``--amp``, where it always calls it and torch's ``GradScaler`` skips a step with
    non-finite gradients internally; the scaler then lowers its scale (and only
    then), which is how a skipped AMP step is told apart: on the device, from the
    scale tensors before and after, so that no step waits for the host to read them
    (``GradScaler.get_scale`` would, twice a step). ``--fp16`` and
    ``--memory-efficient-fp16`` raise ``OverflowError`` before the optimizer step,
    so the pending update is dropped by ``micro_batch`` at the next attempt.
    Logs ``imp_rank_mismatch`` with more than one data-parallel rank.
    """
    found = _lookup(model)
    scaler = getattr(optimizer, "scaler", None)
    scale_before = None if found is None else _scale_on_device(scaler)
    yield
    if found is None:
        return
    applied = None if scale_before is None else _scale_on_device(scaler) >= scale_before
    mismatch = found.tracker.apply_pending(applied)
    if mismatch is not None:
        from fairseq import metrics

        metrics.log_scalar("imp_rank_mismatch", mismatch.float(), round=3)


def _scale_on_device(scaler) -> Optional[Tensor]:
    """A copy of a torch ``GradScaler``'s current scale, a tensor on the gradients' device; None
    for fairseq's ``DynamicLossScaler`` (``--fp16``, a Python number), a disabled scaler or none.
    A copy: ``GradScaler.update`` changes its scale tensor in place."""
    scale = scaler._get_scale_async() if hasattr(scaler, "_get_scale_async") else None
    return None if scale is None else scale.clone()

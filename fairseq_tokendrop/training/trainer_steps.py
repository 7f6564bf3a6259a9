"""When fairseq's Trainer starts an attempt and when it applies a step, as token importance needs it.

The importance tracker (``method.importance``) only accumulates and applies;
this module holds the knowledge of fairseq's ``Trainer`` that tells it when:
which micro-batch starts a new attempt, which is a dummy batch, and which
optimizer step was really taken; and it refuses a training loop of its own
(``standalone.build_model``) that never applies the update (``collect_losses``).
"""
import functools
import weakref
from contextlib import contextmanager
from typing import NamedTuple, Optional

from torch import Tensor, nn

from ..errors import TokendropError
from ..method.importance import TokenImportance
from ..method.strategies import WITHOUT_UPDATES


class _Found(NamedTuple):
    tracker: TokenImportance
    first_parameter: Tensor  # the first parameter that requires grad: every backward writes its gradient


# Looked up once per model, not per micro-batch: a module walk and a parameter scan of
# roberta_large cost ~2.6 ms of Python per step. Weak keys: a cached model can still be freed.
_found = weakref.WeakKeyDictionary()
# Per tracker: the first trainable parameter's version counter when its pending losses last went
# through a backward (``collect_losses``); weak keys as above.
_backpropagated = weakref.WeakKeyDictionary()


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


def collect_losses(model: nn.Module, tracker: TokenImportance, ids: Tensor, losses: Tensor) -> None:
    """Hand one training micro-batch's per-target losses to the pending update (the criterion's forward
    calls this), and refuse importance dropping in a training loop that never applies them.

    fairseq's Trainer (through the task's hooks) and the research tools (``research.mode``) apply or
    drop the pending losses at every step, so a step starts with nothing pending. A loop of its own
    that does neither would select tokens by scores stuck at their initial value. It is stopped at
    its second step: losses are still pending from a micro-batch whose backward ran, and since that
    backward the gradients were cleared (the first trainable parameter's ``.grad`` is None, what
    ``zero_grad()`` leaves by default) or the parameters were stepped in place (its version counter
    moved). A fused optimizer with ``zero_grad(set_to_none=False)`` leaves neither trace.
    """
    found = _lookup(model)
    if tracker.pending is None:
        _backpropagated.pop(tracker, None)
    elif found is not None and tracker in _backpropagated and getattr(model, "needs_importance_updates", False):
        parameter = found.first_parameter
        if parameter.grad is None or parameter._version != _backpropagated[tracker]:
            raise TokendropError("importance dropping: an optimizer step went by and its losses never reached the "
                                 "importance scores: call fairseq_tokendrop.apply_token_importance(model) after every "
                                 f"optimizer step (fairseq-train's task does), or {WITHOUT_UPDATES}")
    tracker.accumulate(ids, losses)
    if found is not None and tracker.collecting and losses.requires_grad:
        losses.register_hook(functools.partial(_mark_backpropagated, tracker, found.first_parameter))


def _mark_backpropagated(tracker: TokenImportance, parameter: Tensor, grad: Tensor) -> None:
    _backpropagated[tracker] = parameter._version

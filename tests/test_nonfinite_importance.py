"""fp16/AMP safety of token importance, through fairseq's own ``Trainer`` in-process.

Each step is checked against a hand computation: per-target losses of a copy of
the model taken before the step, averaged per id over every micro-batch of the
step, NaN/inf left out, one moving-average update. So the tests also show that
every micro-batch of a step selects tokens with the scores from before the step.

Overflows are real: a loss scale too large for the precision makes the backward
overflow while the forward's losses stay finite (the case a loss scaler exists
for, and one where a skipped step has finite losses it could wrongly fold in),
and an embedding row set to NaN makes every loss non-finite (the LM head is tied
to the embeddings).
Two things stock fairseq cannot do on CPU, and how the tests get around them:
- ``--fp16`` flattens its fp32 master copy on ``torch.cuda.current_device()``:
  the tests use ``--memory-efficient-fp16`` (same ``DynamicLossScaler``, same
  ``OverflowError``). Its overflow handler then calls
  ``torch.tensor(0.0).cuda()`` (trainer.py) *after* the step was skipped:
  where CUDA cannot be used that raises (``AssertionError`` from a CPU-only
  torch, ``RuntimeError`` from a CUDA build on a machine without a GPU), with a
  GPU it returns. The test checks the skip, whichever of the three builds runs
  it, and the next ``train_step`` starts, as on a GPU, with ``zero_grad``.
- ``--amp`` builds ``torch.cuda.amp.GradScaler``, which disables itself
  without CUDA; the test hands the same ``AMPOptimizer`` torch's CPU
  ``GradScaler``, so the step is really skipped by the scaler.
"""
import copy

import pytest
import torch
import torch.nn.functional as F

from fairseq_tokendrop import get_token_importance

from conftest import fairseq_trainer

pytestmark = pytest.mark.slow  # starts processes: not in the fast tier (tests/run.sh --fast)

BETA = 0.9


def build_trainer(data_bin, tmp_path, *precision):
    return fairseq_trainer(data_bin, tmp_path, "--token-drop", "0.5", "--token-importance-beta", str(BETA),
                           "--dropout", "0", "--attention-dropout", "0", *precision)


def expected_scores(trainer, micro_batches):
    """The scores one applied step must leave, computed by hand from a copy of the model before it."""
    model = copy.deepcopy(trainer.model).train()
    pad = trainer.task.source_dictionary.pad()
    before = get_token_importance(model)
    losses_by_id = {}
    with torch.no_grad():
        for sample in micro_batches:
            masked = sample["target"].ne(pad)
            targets = sample["target"][masked]
            logits, _ = model(**sample["net_input"], masked_tokens=masked)
            for tid, loss in zip(targets.tolist(), F.cross_entropy(logits.float(), targets, reduction="none")):
                if torch.isfinite(loss):
                    losses_by_id.setdefault(tid, []).append(loss.item())
    expected = before.clone()
    pinned = before.abs() == 1e4
    for tid, losses in losses_by_id.items():
        if not pinned[tid]:
            expected[tid] = BETA * before[tid] + (1 - BETA) * sum(losses) / len(losses)
    return before, expected


def poison(trainer, batch, value):
    """Set the input embedding of the batch's first word to ``value``; returns (id, old row)."""
    tid = batch["net_input"]["src_tokens"][0, 1].item()
    weight = trainer.model.encoder.sentence_encoder.embed_tokens.weight
    old = weight.data[tid].clone()
    weight.data[tid] = value
    return tid, old


def assert_step(trainer, micro_batches):
    before, expected = expected_scores(trainer, micro_batches)
    trainer.train_step(micro_batches)
    after = get_token_importance(trainer.model)
    assert after.dtype == torch.float32
    assert (after != before).sum() >= 5
    assert torch.allclose(after, expected, rtol=1e-6, atol=1e-6)


def overflowing_step(trainer, micro_batches):
    """A step whose fp16 gradients overflow; fairseq's handler then calls ``.cuda()`` (see the top)."""
    try:
        trainer.train_step(micro_batches)
    except (AssertionError, RuntimeError):
        if torch.cuda.is_available():  # with a usable GPU the handler's .cuda() cannot be what failed
            raise


def test_memory_efficient_fp16_overflow_and_dummy_batches_leave_scores_untouched(data_bin, tmp_path):
    trainer, batches = build_trainer(data_bin, tmp_path, "--memory-efficient-fp16", "--update-freq", "2")
    assert trainer.model.encoder.sentence_encoder.embed_tokens.weight.dtype == torch.half
    assert_step(trainer, batches[0:2])  # one update from both micro-batches, fp32 scores from fp16 losses

    scores, scaler = get_token_importance(trainer.model), trainer.optimizer.scaler
    scale, scaler.loss_scale = scaler.loss_scale, 2.0 ** 30  # fp16 gradients overflow, losses stay finite
    overflowing_step(trainer, batches[2:4])
    assert scaler.loss_scale == 2.0 ** 29  # the scaler saw the overflow and skipped the step
    assert trainer.get_num_updates() == 1
    assert torch.equal(get_token_importance(trainer.model), scores)
    assert trainer.model.encoder.token_importance.pending[1].sum() > 0  # finite losses, never applied
    scaler.loss_scale = scale

    # fairseq moves on to the next batches; with the same ones a carried-over accumulation would hide
    assert_step(trainer, batches[4:6])  # nothing of the skipped attempt is carried in
    scores = get_token_importance(trainer.model)
    trainer.train_step([{}, {}])  # fairseq's dummy batch (a rank out of data): ignore_grad
    assert trainer.get_num_updates() == 3
    assert torch.equal(get_token_importance(trainer.model), scores)


def test_steps_the_amp_scaler_skips_and_nan_losses_leave_scores_untouched(data_bin, tmp_path):
    trainer, batches = build_trainer(data_bin, tmp_path, "--amp")
    scaler = trainer.optimizer._grad_scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 127)  # see the top
    params = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    scores = get_token_importance(trainer.model)
    # the scaled fp32 loss overflows, the losses do not; fairseq retries --amp-batch-retries times, then skips
    trainer.train_step(batches[0:1])
    assert trainer.get_num_updates() == 0 and scaler.get_scale() < 2.0 ** 127
    assert torch.equal(get_token_importance(trainer.model), scores)
    for n, p in trainer.model.named_parameters():
        assert torch.equal(p, params[n]), n  # the scaler really skipped the update
    scaler.update(128.0)

    tid, old = poison(trainer, batches[1], float("nan"))  # every loss NaN
    trainer.train_step(batches[1:2])
    assert trainer.get_num_updates() == 0 and scaler.get_scale() < 128.0
    assert torch.equal(get_token_importance(trainer.model), scores)
    trainer.model.encoder.sentence_encoder.embed_tokens.weight.data[tid] = old
    scaler.update(128.0)
    assert_step(trainer, batches[1:2])

"""The research tools' training step (``research.mode``) keeps the trainer's rule for token importance.

fairseq's trainer moves the scores once per applied optimizer step and not on a step the loss
scaler skipped (``training.trainer_steps``). The overflow is real: a CPU ``GradScaler`` whose
scale is too large for fp32 makes the scaled loss, and so every gradient, infinite, while the
per-token losses the scores are fed stay finite (the case where a skipped step has finite losses
it could wrongly fold in).
"""
import torch

from fairseq_tokendrop import get_token_importance
from fairseq_tokendrop.research import benchmark
from fairseq_tokendrop.research.mode import make_batches
from fairseq_tokendrop.standalone import made_up_dictionary

FLAGS = ["--layers", "4", "--dim", "16", "--ffn", "32", "--heads", "2", "--vocab", "60", "--seq-len", "20",
         "--batch-size", "8", "--device", "cpu", "--modes", "importance", "--token-drop", "0.5"]
OVERFLOWING_SCALE = 2.0 ** 127  # the loss per masked token (~ln 60) times this exceeds fp32's maximum, ~2**128
SANE_SCALE = 128.0


def importance_mode(scale):
    args = benchmark.parse_args(FLAGS)
    dictionary = made_up_dictionary(args.vocab)
    samples, _ = make_batches(dictionary, args)
    modes, _ = benchmark.build_modes(args, dictionary)  # the baseline first, then importance
    mode = modes[1]
    assert mode.name == "importance"
    mode.optimizer.scaler = torch.amp.GradScaler("cpu", init_scale=scale)
    return mode, samples


def test_a_step_the_grad_scaler_skips_leaves_the_scores_and_the_next_step_as_without_it():
    mode, samples = importance_mode(OVERFLOWING_SCALE)
    scaler = mode.optimizer.scaler
    scores = get_token_importance(mode.model)
    params = [p.detach().clone() for p in mode.model.parameters()]
    mode.step(samples[0])
    assert scaler.get_scale() < OVERFLOWING_SCALE  # the scaler saw the overflow and skipped the step
    assert all(torch.equal(p, q) for p, q in zip(mode.model.parameters(), params))
    assert torch.equal(get_token_importance(mode.model), scores)

    # the next step is the same as a first step: nothing of the skipped one is carried in
    scaler.update(SANE_SCALE)
    fresh, _ = importance_mode(SANE_SCALE)  # same seed: the same initial weights
    fresh.num_updates = mode.num_updates
    for m in (mode, fresh):
        torch.manual_seed(0)  # the same dropout masks
        m.step(samples[1])
    after = get_token_importance(mode.model)
    assert (after != scores).sum() >= 10  # the applied step moved the scores of its targets
    assert torch.equal(after, get_token_importance(fresh.model))

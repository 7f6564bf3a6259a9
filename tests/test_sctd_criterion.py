"""The criterion's loss, gradients, importance update and metrics against hand computations."""
import math

import pytest
import torch
import torch.nn.functional as F
from fairseq import metrics

from fairseq_tokendrop import get_token_importance, set_token_importance
from fairseq_tokendrop.method.importance import find_token_importance
from fairseq_tokendrop.method.sctd_loss import cls_kl, is_sctd_update, sctd_loss
from fairseq_tokendrop.criterions.masked_lm_tokendrop import MaskedLmTokenDropConfig, MaskedLmTokenDropLoss

from fairseq_tokendrop.standalone import StandaloneTask

from conftest import build_tokendrop, random_tokens, tiny_dictionary

ALPHA, LAMBDA, F_INTERVAL = 0.3, 0.2, 4


def setup():
    d = tiny_dictionary()
    model = build_tokendrop(d, token_drop=0.5, token_importance_beta=0.8)
    with torch.no_grad():  # BERT's 0.02 init makes drop and full states nearly equal; spread them
        for p in model.parameters():
            p.mul_(6)
    set_token_importance(model, torch.rand(len(d), generator=torch.Generator().manual_seed(1)) * 5)
    crit = MaskedLmTokenDropLoss(
        MaskedLmTokenDropConfig(sctd_interval=F_INTERVAL, sctd_full_weight=ALPHA, sctd_kl_weight=LAMBDA),
        StandaloneTask(d, 64))
    tokens = random_tokens(d, 3, 16, seed=5, pad_tail=(0, 4, 7))
    target = torch.full_like(tokens, d.pad())
    for b, pos in ((0, 3), (0, 7), (1, 2), (1, 9), (2, 5), (0, 11)):
        target[b, pos] = tokens[b, pos]
        tokens[b, pos] = d.index("<mask>")
    target[0, 11] = target[0, 3]  # a duplicate target id
    sample = {"net_input": {"src_tokens": tokens}, "target": target,
              "ntokens": int(tokens.ne(d.pad()).sum()), "nsentences": 3}
    return d, model, crit, sample


def hand_masked_lm(model, tokens, masked, targets, drop):
    features, extra = model(tokens, features_only=True, drop_tokens=drop)
    log_probs = F.log_softmax(model.encoder.output_layer(features, masked_tokens=masked).float(), -1)
    token_losses = -log_probs.gather(1, targets[:, None])[:, 0]
    return token_losses, features[:, 0], extra["last_layer_input"][:, 0], log_probs.argmax(-1)


def hand_kl(h_full, h_drop):
    p_full = torch.softmax(h_full, -1)
    return (p_full * (torch.log(p_full) - torch.log_softmax(h_drop, -1))).sum()


def test_cls_kl_is_kl_of_full_from_drop_summed_over_batch():
    g = torch.Generator().manual_seed(0)
    h_full, h_drop = torch.randn(3, 8, generator=g) * 3, torch.randn(3, 8, generator=g) * 3
    assert cls_kl(h_full, h_drop).item() == pytest.approx(hand_kl(h_full, h_drop).item(), rel=1e-5)
    assert cls_kl(h_full, h_full).item() == pytest.approx(0.0, abs=1e-6)


def test_sctd_loss_weights():
    assert sctd_loss(torch.tensor(2.0), torch.tensor(4.0), torch.tensor(1.0), torch.tensor(3.0),
                     0.5, 0.05).item() == pytest.approx(0.5 * 2 + 0.5 * 4 + 0.05 * 4)
    assert [is_sctd_update(n, 10) for n in (0, 5, 10, 20, 21)] == [True, False, True, True, False]
    assert not is_sctd_update(0, 0)


@pytest.mark.parametrize("num_updates", [2 * F_INTERVAL, 2 * F_INTERVAL + 1])
def test_loss_gradients_and_importance_match_hand_computation(num_updates):
    d, model, crit, sample = setup()
    model.train()
    model.set_num_updates(num_updates)
    before = get_token_importance(model)

    model.zero_grad()
    loss, sample_size, log = crit(model, sample)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    find_token_importance(model).apply_pending()  # what task.optimizer_step does after the step
    after = get_token_importance(model)

    set_token_importance(model, before)
    model.zero_grad()
    tokens, target = sample["net_input"]["src_tokens"], sample["target"]
    masked = target.ne(d.pad())
    targets = target[masked]
    drop_losses, drop_final, drop_local, drop_pred = hand_masked_lm(model, tokens, masked, targets, True)
    expected = expected_mlm = drop_losses.sum()
    if num_updates % F_INTERVAL == 0:
        full_losses, full_final, full_local, _ = hand_masked_lm(model, tokens, masked, targets, False)
        kl_local, kl_global = hand_kl(full_local, drop_local), hand_kl(full_final, drop_final)
        expected_mlm = (1 - ALPHA) * drop_losses.sum() + ALPHA * full_losses.sum()
        expected = expected_mlm + LAMBDA * (kl_local + kl_global)
        assert log["kl_local"].item() == pytest.approx(kl_local.item(), rel=1e-4)
        assert log["kl_global"].item() == pytest.approx(kl_global.item(), rel=1e-4)
        assert kl_local.item() > 1e-2 and abs(kl_local.item() - kl_global.item()) > 1e-2
        assert log["loss_full"].item() == pytest.approx(full_losses.sum().item(), rel=1e-5)
        assert log["sctd_sample_size"].item() == 6
    else:
        assert "kl_local" not in log and "loss_full" not in log
    # the logged loss is the objective's masked-LM part, without the KL terms
    assert log["loss"].item() == pytest.approx(expected_mlm.item(), rel=1e-5)
    expected.backward()

    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert sample_size.item() == 6
    assert log["mlm_correct"].item() == (drop_pred == targets).sum().item()
    for name, p in model.named_parameters():
        if p.grad is not None:
            assert torch.allclose(grads[name], p.grad, rtol=1e-4, atol=1e-5), name

    hand = before.clone()
    for tid in targets.unique().tolist():
        hand[tid] = 0.8 * before[tid] + 0.2 * drop_losses.detach()[targets == tid].mean()
    assert torch.allclose(after, hand, atol=1e-6)


def test_validation_neither_drops_nor_updates_importance():
    d, model, crit, sample = setup()
    model.eval()
    model.set_num_updates(0)
    before = get_token_importance(model)
    _, _, log = crit(model, sample)
    assert torch.equal(get_token_importance(model), before)
    assert log["kept_tokens"].item() == log["tokens"].item() == sample["ntokens"]
    assert "kl_local" not in log


def test_reduced_metrics_are_ratios_of_sums():
    logs = [
        {"loss": 6.0, "sample_size": 4, "mlm_correct": 1, "kept_tokens": 10, "tokens": 20,
         "sctd_updates": 1, "kl_local": 0.5, "kl_global": 0.25, "loss_full": 5.0, "sctd_sample_size": 4,
         "imp_mean": 9.0, "imp_std": 1.0, "imp_logs": 1, "kept_len": 16, "train_batches": 1},
        {"loss": 3.0, "sample_size": 2, "mlm_correct": 2, "kept_tokens": 8, "tokens": 12,
         "imp_mean": 9.0, "imp_std": 1.0, "imp_logs": 1, "kept_len": 12, "train_batches": 1},
        {"loss": 0.0, "sample_size": 0, "mlm_correct": 0, "kept_tokens": 0, "tokens": 0,  # a dummy batch, zeroed
         "imp_mean": 0.0, "imp_std": 0.0, "imp_logs": 0, "kept_len": 0, "train_batches": 0},
    ]
    with metrics.aggregate(new_root=True) as agg:
        MaskedLmTokenDropLoss.reduce_metrics(logs)
        values = agg.get_smoothed_values()
    assert values["loss"] == pytest.approx(round(9.0 / 6 / math.log(2), 3))
    assert values["mlm_acc"] == pytest.approx(round(3 / 6, 4))
    assert values["kept_frac"] == pytest.approx(round(18 / 32, 3))
    assert values["kept_len"] == 14  # the mean over the real micro-batches (one padded shorter than 16)
    assert values["kl_local"] == 0.5 and values["kl_global"] == 0.25
    assert values["loss_full"] == pytest.approx(round(5.0 / 4 / math.log(2), 3))  # over the ScTD update only

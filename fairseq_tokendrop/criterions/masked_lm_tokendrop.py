"""Masked-LM loss for ``tokendrop_roberta``: feeds token importance, adds ScTD.

In training, the drop pass's per-target losses go to the importance tracker's
pending step (``training.trainer_steps.collect_losses``); the scores move once per applied
optimizer step (``training.trainer_steps.optimizer_step``, called by the task, or
``apply_token_importance`` in a loop of one's own), never here.

Logs ``loss`` (base 2, per masked token, as fairseq's ``masked_lm``; the
objective's masked-LM part: L_drop, on ScTD updates ``(1-a) L_drop + a L_full``,
the KL terms apart), ``loss_full`` (L_full, over the ScTD updates),
``mlm_acc`` (MLPerf's masked-LM accuracy: correct / masked), ``kept_frac``
(non-padding tokens the middle layers saw / non-padding tokens),
``kl_local``/``kl_global`` (per ScTD update), the mean and spread of the
unpinned importance scores, and in training ``macs`` (the update's matmul
multiply-accumulates, forward and backward, ScTD's full pass included, in the
model's layout and at the update's kept length: the x-axis of ``compare_runs``)
and ``kept_len`` (the tokens per sequence the dropping layers saw in that
update: ``--token-keep-schedule``'s value at it, or the padded length when
nothing was dropped; a log window's mean with ``--log-interval`` above 1).
"""
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor
from fairseq import metrics, modules
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass

from ..errors import TokendropError
from ..method.flops import training_update_macs
from ..method.importance import find_token_importance
from ..method.sctd_loss import cls_kl, is_sctd_update, sctd_loss, sctd_mlm_loss
from ..training import trainer_steps


@dataclass
class MaskedLmTokenDropConfig(FairseqDataclass):
    sctd_interval: int = field(default=0, metadata={
        "help": "ScTD: every F-th update also runs the full model and adds the "
                "semantic-consistency losses (the paper uses 10); 0 = vanilla token dropping"})
    sctd_full_weight: float = field(default=0.5, metadata={
        "help": "ScTD: weight a of the full-model MLM loss: (1-a)*L_drop + a*L_full"})
    sctd_kl_weight: float = field(default=0.05, metadata={
        "help": "ScTD: weight of each KL term (local and global)"})


def update_macs(model, src_tokens: Tensor, masked: Tensor, kept: int, full_pass: bool) -> Tensor:
    """Training MACs of this batch (``flops.training_update_macs``) at its real padded
    length, kept count and masked count, in the model's layout; a tensor, so logging
    it needs no host sync."""
    args, encoder = model.args, model.encoder
    batch, seq_len = src_tokens.shape
    layerwise = None if encoder.layerwise_layers is None else len(encoder.layerwise_layers)
    return training_update_macs(args.encoder_layers, args.encoder_embed_dim, args.encoder_ffn_embed_dim,
                                encoder.lm_head.weight.size(0), batch, seq_len, kept, masked.sum(), full_pass,
                                layerwise=layerwise)


def check_sctd_args(cfg: MaskedLmTokenDropConfig) -> None:
    """Raise TokendropError for the first bad value, naming its flag."""
    if cfg.sctd_interval < 0:
        raise TokendropError(f"--sctd-interval must be >= 0, got {cfg.sctd_interval}")
    if not 0.0 <= cfg.sctd_full_weight <= 1.0:
        raise TokendropError(f"--sctd-full-weight must be in [0, 1], got {cfg.sctd_full_weight}")
    if not 0.0 <= cfg.sctd_kl_weight < math.inf:
        raise TokendropError(f"--sctd-kl-weight must be finite and >= 0, got {cfg.sctd_kl_weight}")


def summed_on_host(logging_outputs) -> Counter:
    """Each key's sum over the logging outputs, as Python floats read from the device at once
    (0 for a key no output has).

    The values are tensors on the model's device (after fairseq's multi-rank all-reduce, all of
    them) or Python numbers. fairseq's meters would read a tensor on the host each on its own,
    every update: ``round`` of a tensor and the ``n > 0`` test of a tensor weight each wait for
    the device. Here the sums are taken in float64 on the device, as ``float()`` of each value
    and Python's sum of them would, and one ``tolist`` reads them all.
    """
    keys = dict.fromkeys(key for log in logging_outputs for key in log)
    sums = {key: sum(_float64(log[key]) for log in logging_outputs if key in log) for key in keys}
    on_device = {key: value for key, value in sums.items() if torch.is_tensor(value)}
    if on_device:
        device = next(iter(on_device.values())).device
        stacked = torch.stack([value.to(device).reshape(()) for value in on_device.values()])
        sums.update(zip(on_device, stacked.tolist()))
    return Counter({key: float(value) for key, value in sums.items()})


def _float64(value):
    return value.detach().to(torch.float64) if torch.is_tensor(value) else value


class MlmPass(NamedTuple):
    loss: Tensor  # summed over masked positions
    token_losses: Tensor  # [M] fp32
    correct: Tensor
    extra: dict


@register_criterion("masked_lm_tokendrop", dataclass=MaskedLmTokenDropConfig)
class MaskedLmTokenDropLoss(FairseqCriterion):
    @classmethod
    def add_args(cls, parser):
        # masked_lm_tokendrop (the task) adds these flags itself, so that they work without --criterion
        if "--sctd-interval" not in parser._option_string_actions:
            super().add_args(parser)

    def __init__(self, cfg: MaskedLmTokenDropConfig, task):
        super().__init__(task)
        check_sctd_args(cfg)
        self.cfg = cfg

    def _mlm_pass(self, model, sample, masked: Tensor, targets: Tensor, drop_tokens: bool) -> MlmPass:
        logits, extra = model(**sample["net_input"], masked_tokens=masked, drop_tokens=drop_tokens)
        # fairseq's masked_lm loss (log_softmax(dtype=float32), or apex's fused kernel): no fp32 copy
        # of the [masked, vocab] logits under --fp16/--amp; .float() copies only the [M] losses
        token_losses = modules.cross_entropy(logits, targets, reduction="none").float()
        correct = (logits.argmax(-1) == targets).sum()
        return MlmPass(token_losses.sum(), token_losses, correct, extra)

    def forward(self, model, sample, reduce=True):
        masked = sample["target"].ne(self.padding_idx)
        targets = sample["target"][masked]
        sample_size = masked.int().sum()

        drop = self._mlm_pass(model, sample, masked, targets, drop_tokens=True)
        importance = find_token_importance(model)
        if model.training:
            trainer_steps.collect_losses(model, importance, targets, drop.token_losses)

        loss = drop.loss
        logging_output = {
            "ntokens": sample["ntokens"],
            "nsentences": sample["nsentences"],
            "sample_size": sample_size,
            "mlm_correct": drop.correct,
            "kept_tokens": drop.extra["kept_tokens"],
            "tokens": drop.extra["tokens"],
        }
        full_pass = model.training and is_sctd_update(model.num_updates, self.cfg.sctd_interval)
        if model.training:
            src_tokens = sample["net_input"]["src_tokens"]
            kept = model.encoder.kept_length(src_tokens.size(1))
            logging_output.update(macs=update_macs(model, src_tokens, masked, kept, full_pass),
                                  kept_len=kept, train_batches=1)
        if full_pass:
            full = self._mlm_pass(model, sample, masked, targets, drop_tokens=False)
            kl_local = cls_kl(full.extra["last_layer_input"][:, 0], drop.extra["last_layer_input"][:, 0])
            kl_global = cls_kl(full.extra["features"][:, 0], drop.extra["features"][:, 0])
            loss = sctd_loss(drop.loss, full.loss, kl_local, kl_global,
                             self.cfg.sctd_full_weight, self.cfg.sctd_kl_weight)
            # logged `loss` is the objective's masked-LM part, so it does not jump by the KL terms every F updates
            mlm_loss = sctd_mlm_loss(drop.loss, full.loss, self.cfg.sctd_full_weight)
            logging_output.update(sctd_updates=1, kl_local=kl_local.data, kl_global=kl_global.data,
                                  loss_full=full.loss.data, sctd_sample_size=sample_size)
        else:
            mlm_loss = loss
        logging_output["loss"] = mlm_loss.data
        imp_mean, imp_std = importance.summary()
        logging_output.update(imp_mean=imp_mean, imp_std=imp_std, imp_logs=1)
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        total = summed_on_host(logging_outputs)
        sample_size = total["sample_size"]
        metrics.log_scalar("loss", total["loss"] / max(sample_size, 1) / math.log(2), sample_size, round=3)
        metrics.log_derived("ppl", lambda meters: 2 ** meters["loss"].avg)
        metrics.log_scalar("mlm_acc", total["mlm_correct"] / max(sample_size, 1), sample_size, round=4)
        metrics.log_scalar("kept_frac", total["kept_tokens"] / max(total["tokens"], 1), round=3)
        if "macs" in total:  # training only; one reduce per update, so the log window's mean MACs per update
            metrics.log_scalar("macs", total["macs"])
        if "train_batches" in total:  # the update's micro-batches' mean (they differ only where one is padded shorter)
            metrics.log_scalar("kept_len", total["kept_len"] / max(total["train_batches"], 1))
        if "sctd_updates" in total:
            sctd_updates = total["sctd_updates"]
            metrics.log_scalar("kl_local", total["kl_local"] / max(sctd_updates, 1), sctd_updates, round=4)
            metrics.log_scalar("kl_global", total["kl_global"] / max(sctd_updates, 1), sctd_updates, round=4)
            sctd_size = total["sctd_sample_size"]
            metrics.log_scalar("loss_full", total["loss_full"] / max(sctd_size, 1) / math.log(2), sctd_size, round=3)
        if "imp_logs" in total:
            logs = max(total["imp_logs"], 1)
            metrics.log_scalar("imp_mean", total["imp_mean"] / logs, round=3)
            metrics.log_scalar("imp_std", total["imp_std"] / logs, round=3)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True

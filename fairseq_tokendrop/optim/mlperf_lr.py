"""``--lr-scheduler mlperf_polynomial``: the learning rate of MLPerf BERT's reference, warmup offset included.

mlcommons/training, language_model/tensorflow/bert/optimization.py (create_optimizer), at update t:

    decayed(t) = (lr - end) * (1 - min(t, total) / total) ** power + end    # tf.train.polynomial_decay
    lr(t)      = lr * (t - start) / warmup   where warmup > 0 and t - start < warmup
               = decayed(t)                  otherwise

with total = num_train_steps, warmup = num_warmup_steps, start = start_warmup_step (MLPerf's TPU
run: lr 0.00288293, warmup 287 from start -76, power 1, end 0). The decay runs from update 0, under
the warmup, so the rate drops when the warmup ends; fairseq's polynomial_decay instead decays from
the end of the warmup and has no start offset. TF computes in float32, this in float64.

fairseq sets the rate for the update that takes num_updates from t to t + 1 with step_update(t), as
TF's global step t selects it for the update that makes t + 1.
"""
from dataclasses import dataclass, field
from typing import List

from fairseq.dataclass import FairseqDataclass
from fairseq.optim.lr_scheduler import FairseqLRScheduler, register_lr_scheduler
from omegaconf import II

from ..errors import TokendropError


@dataclass
class MlperfPolynomialConfig(FairseqDataclass):
    warmup_updates: int = field(
        default=0, metadata={"help": "warm up linearly over this many updates, counted from --warmup-start-update "
                                     "(MLPerf's num_warmup_steps); 0 = no warmup"})
    warmup_start_update: int = field(
        default=0, metadata={"help": "the update at which the warmup ramp is at 0 (MLPerf's start_warmup_step); "
                                     "negative: training starts part way up the ramp, e.g. -76"})
    end_learning_rate: float = field(default=0.0, metadata={"help": "learning rate to decay to"})
    power: float = field(default=1.0, metadata={"help": "decay exponent (MLPerf's poly_power)"})
    total_num_update: float = field(
        default=II("optimization.max_update"),
        metadata={"help": "the update at which the decay reaches --end-learning-rate (MLPerf's num_train_steps)"})
    lr: List[float] = II("optimization.lr")


def mlperf_learning_rate(num_updates, peak, total, warmup=0, warmup_start=0, end=0.0, power=1.0):
    """The learning rate for the update after ``num_updates`` updates (see the module docstring)."""
    since_start = num_updates - warmup_start
    if warmup > 0 and since_start < warmup:
        return peak * since_start / warmup
    return (peak - end) * (1 - min(num_updates, total) / total) ** power + end


@register_lr_scheduler("mlperf_polynomial", dataclass=MlperfPolynomialConfig)
class MlperfPolynomialSchedule(FairseqLRScheduler):
    def __init__(self, cfg: MlperfPolynomialConfig, optimizer):
        super().__init__(cfg, optimizer)
        if len(cfg.lr) != 1:
            raise TokendropError(f"--lr: --lr-scheduler mlperf_polynomial takes one value, got {list(cfg.lr)}")
        if cfg.total_num_update <= 0:
            raise TokendropError("--total-num-update (or --max-update): mlperf_polynomial needs a positive number of updates")
        if cfg.warmup_updates < 0:
            raise TokendropError(f"--warmup-updates: must be >= 0, got {cfg.warmup_updates}")
        if cfg.warmup_start_update > 0:
            # TF's formula gives a negative learning rate before a positive start
            raise TokendropError(f"--warmup-start-update: must be <= 0, got {cfg.warmup_start_update}")
        self.optimizer.set_lr(self.learning_rate(0))

    def learning_rate(self, num_updates):
        cfg = self.cfg
        return mlperf_learning_rate(num_updates, cfg.lr[0], cfg.total_num_update, cfg.warmup_updates,
                                    cfg.warmup_start_update, cfg.end_learning_rate, cfg.power)

    def step_update(self, num_updates):
        self.optimizer.set_lr(self.learning_rate(num_updates))
        return self.optimizer.get_lr()

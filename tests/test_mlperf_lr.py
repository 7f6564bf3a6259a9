"""--lr-scheduler mlperf_polynomial against MLPerf BERT's learning-rate formula, worked by hand at the
boundaries of the seed's TPU run (lr 0.00288293, 287 warmup updates from -76, 600 updates)."""
import pytest
import torch

import fairseq_tokendrop.optim  # noqa: F401  (registers the scheduler; the plugin's __init__ may not yet)
from fairseq_tokendrop.errors import TokendropError
from fairseq_tokendrop.optim.fairseq_lamb import FairseqLamb, LambConfig
from fairseq_tokendrop.optim.mlperf_lr import MlperfPolynomialConfig, MlperfPolynomialSchedule

PEAK = 0.00288293


def schedule(**overrides):
    settings = dict(lr=[PEAK], warmup_updates=287, warmup_start_update=-76, total_num_update=600)
    settings.update(overrides)
    optimizer = FairseqLamb(LambConfig(lr=settings["lr"]), [torch.nn.Parameter(torch.ones(3))])
    return MlperfPolynomialSchedule(MlperfPolynomialConfig(**settings), optimizer), optimizer


@pytest.mark.parametrize("update,expected", [
    (0, PEAK * 76 / 287),            # the ramp started 76 updates before training: a quarter of the way up
    (1, PEAK * 77 / 287),
    (210, PEAK * 286 / 287),         # the last warmup update: 210 + 76 = 286 < 287
    (211, PEAK * (1 - 211 / 600)),   # the decay, which ran from update 0 underneath, takes over
    (599, PEAK * (1 - 599 / 600)),
    (600, 0.0),                      # the end of training
    (900, 0.0),                      # and after it, as tf.train.polynomial_decay clamps the step
])
def test_the_seeds_schedule_at_its_boundaries(update, expected):
    scheduler, optimizer = schedule()
    assert scheduler.step_update(update) == pytest.approx(expected, rel=1e-12, abs=1e-18)
    assert optimizer.get_lr() == scheduler.step_update(update)


def test_the_first_update_uses_the_rate_of_update_zero_before_any_step_update():
    _, optimizer = schedule()
    assert optimizer.get_lr() == pytest.approx(PEAK * 76 / 287, rel=1e-12)


def test_power_and_end_rate_as_tf_polynomial_decay():
    scheduler, _ = schedule(warmup_updates=0, power=2.0, end_learning_rate=1e-5)
    assert scheduler.step_update(150) == pytest.approx((PEAK - 1e-5) * (1 - 150 / 600) ** 2 + 1e-5, rel=1e-12)


@pytest.mark.parametrize("overrides,flag", [
    (dict(warmup_start_update=5), "--warmup-start-update"),
    (dict(warmup_updates=-1), "--warmup-updates"),
    (dict(total_num_update=0), "--total-num-update"),
    (dict(lr=[PEAK, PEAK]), "--lr"),
])
def test_bad_settings_are_one_line_naming_the_flag(overrides, flag):
    with pytest.raises(TokendropError, match=flag):
        schedule(**overrides)

"""The kept-length schedule against DeepSpeed's formula: by hand at boundary steps, and against
DeepSpeed's own ``RandomLTDScheduler`` stepped update by update.

The second comparison runs where deepspeed is installed (``DS_BUILD_OPS=0 pip install deepspeed``
takes about 10 s on CPU). It is not in the ``test`` extra on purpose: fairseq imports deepspeed
whenever it can (``fairseq/optim/cpu_adam.py``), so every fairseq-train and every command would
pay its import and print its accelerator warning on stdout.
"""
import pytest

from fairseq_tokendrop.method.keep_schedule import KeepSchedule, parse_keep_schedule

# (schedule, step, kept), each worked by hand from
# v = floor(step / R * (MAX - MIN) + MIN); v -= v % S; kept = min(v, MAX)
HAND = [
    # 128,512 over 1000 steps in 16s: the slope is 0.384 tokens per step
    ((128, 512, 1000, 16), 0, 128),     # floor(128) = 128, a multiple of 16
    ((128, 512, 1000, 16), 41, 128),    # 128 + 15.744 -> 143 -> 143 - 15
    ((128, 512, 1000, 16), 42, 144),    # 128 + 16.128 -> 144, the first step of the next 16
    ((128, 512, 1000, 16), 999, 496),   # 128 + 383.616 -> 511 -> 511 - 15
    ((128, 512, 1000, 16), 1000, 512),  # 128 + 384 = MAX
    ((128, 512, 1000, 16), 5000, 512),  # 128 + 1920 = 2048, capped at MAX
    # MIN and MAX not multiples of S: it starts below MIN and reaches MAX one step after REQUIRE_STEPS
    ((100, 200, 10, 30), 0, 90),        # 100 -> 100 - 10
    ((100, 200, 10, 30), 1, 90),        # 110 -> 110 - 20
    ((100, 200, 10, 30), 2, 120),       # 120
    ((100, 200, 10, 30), 9, 180),       # 190 -> 190 - 10
    ((100, 200, 10, 30), 10, 180),      # 200 -> 200 - 20: not yet MAX at REQUIRE_STEPS
    ((100, 200, 10, 30), 11, 200),      # 210 -> 210, capped at 200
    # in binary floating point 29/100 is 0.28999999999999998, times 100 is 28.999999999999996:
    # DeepSpeed's float formula gives 29 here where exact arithmetic would give 30
    ((1, 101, 100, 1), 29, 29),
    ((1, 101, 100, 1), 30, 31),         # 0.3 * 100 = 30.000000000000004, + 1 -> 31
]


@pytest.mark.parametrize("schedule,step,kept", HAND)
def test_kept_length_at_boundary_steps_is_deepspeeds_formula(schedule, step, kept):
    assert KeepSchedule(*schedule).kept(step) == kept


def deepspeed_scheduler(schedule):
    """DeepSpeed's own random-LTD scheduler, configured as its JSON config would configure it."""
    constants = pytest.importorskip(
        "deepspeed.runtime.data_pipeline.constants",
        reason="deepspeed is not installed (DS_BUILD_OPS=0 pip install deepspeed; see the module docstring)")
    from deepspeed.runtime.data_pipeline.data_routing.scheduler import RandomLTDScheduler

    low, high, steps, grain = schedule
    return RandomLTDScheduler({
        constants.RANDOM_LTD_TOTAL_LAYER_NUM: 12,
        constants.RANDOM_LTD_LAYER_NUM: 10,
        constants.RANDOM_LTD_GLOBAL_BATCH_SIZE: 8,
        constants.RANDOM_LTD_LAYER_TOKEN_LR_SCHEDULE: {constants.RANDOM_LTD_LAYER_TOKEN_LR_ENABLED: False},
        constants.RANDOM_LTD_SCHEDULER: {
            constants.RANDOM_LTD_MIN_VALUE: low,
            constants.RANDOM_LTD_MAX_VALUE: high,
            constants.RANDOM_LTD_SCHEDULER_TYPE: "fixed_linear",
            constants.RANDOM_LTD_SCHEDULE_CONFIG: {constants.RANDOM_LTD_REQUIRE_STEP: steps,
                                                   constants.RANDOM_LTD_INCREASE_STEP: grain},
        },
    })


@pytest.mark.parametrize("schedule", [(128, 512, 1000, 16), (100, 200, 10, 30), (1, 101, 100, 1),
                                      (64, 512, 777, 64), (5, 64, 3, 4)])
def test_every_step_equals_deepspeeds_scheduler(schedule):
    """DeepSpeed's engine calls ``update_seq`` with the completed-step count before every forward;
    ours is a function of the step alone, so it also holds when a run resumes mid-way."""
    ds = deepspeed_scheduler(schedule)
    ours = KeepSchedule(*schedule)
    for step in range(schedule[2] + 50):
        ds.update_seq(step)
        assert ours.kept(step) == ds.get_current_seq(), step


@pytest.mark.parametrize("text,seq_len,reason", [
    ("128,512,1000", 512, "four integers"),
    ("128,512,1000,sixteen", 512, "four integers"),
    ("128,512,1000,16.5", 512, "four integers"),
    ("128,512,0,16", 512, "REQUIRE_STEPS"),
    ("128,512,1000,0", 512, "SEQ_PER_STEP"),
    ("8,512,1000,16", 512, "MIN must be >= SEQ_PER_STEP"),
    ("512,512,1000,16", 512, "MIN must be below MAX"),
    ("128,1024,1000,16", 512, "--tokens-per-sample 512"),
])
def test_a_malformed_or_unfitting_schedule_is_refused_with_its_reason(text, seq_len, reason):
    with pytest.raises(ValueError, match=reason) as err:
        parse_keep_schedule(text, seq_len)
    assert "\n" not in str(err.value)


def test_a_good_schedule_parses_and_prints_as_given():
    schedule = parse_keep_schedule(" 128, 512,1000,16", 512)
    assert schedule == KeepSchedule(128, 512, 1000, 16) and str(schedule) == "128,512,1000,16"

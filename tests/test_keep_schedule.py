"""The kept-length schedule against DeepSpeed's formula: by hand at boundary steps, and against
DeepSpeed's own ``RandomLTDScheduler`` stepped update by update.

DeepSpeed runs in a process of its own that never imports the plugin or fairseq, from
``VENV/deepspeed-site``, where scripts/setup_env.sh installs it outside the venv's path: fairseq imports
deepspeed whenever it can (``fairseq/optim/cpu_adam.py``), so on the path it would cost every
fairseq-train and every command its import and an accelerator warning on stdout.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

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


DEEPSPEED_SITE = Path(sys.prefix) / "deepspeed-site"

# DeepSpeed's scheduler configured as its JSON config would configure it, stepped as its engine steps it:
# update_seq with the completed-step count before every forward. Prints the kept length at every step.
DEEPSPEED_SEQUENCE = """
import json, sys
from deepspeed.runtime.data_pipeline import constants as c
from deepspeed.runtime.data_pipeline.data_routing.scheduler import RandomLTDScheduler
low, high, steps, grain = json.loads(sys.argv[1])
ds = RandomLTDScheduler({
    c.RANDOM_LTD_TOTAL_LAYER_NUM: 12, c.RANDOM_LTD_LAYER_NUM: 10, c.RANDOM_LTD_GLOBAL_BATCH_SIZE: 8,
    c.RANDOM_LTD_LAYER_TOKEN_LR_SCHEDULE: {c.RANDOM_LTD_LAYER_TOKEN_LR_ENABLED: False},
    c.RANDOM_LTD_SCHEDULER: {
        c.RANDOM_LTD_MIN_VALUE: low, c.RANDOM_LTD_MAX_VALUE: high, c.RANDOM_LTD_SCHEDULER_TYPE: "fixed_linear",
        c.RANDOM_LTD_SCHEDULE_CONFIG: {c.RANDOM_LTD_REQUIRE_STEP: steps, c.RANDOM_LTD_INCREASE_STEP: grain}}})
kept = []
for step in range(steps + 50):
    ds.update_seq(step)
    kept.append(ds.get_current_seq())
print("KEPT", json.dumps(kept))
"""


def deepspeed_kept(schedule):
    if not (DEEPSPEED_SITE / "deepspeed").is_dir():
        pytest.skip(f"no DeepSpeed at {DEEPSPEED_SITE} (scripts/setup_env.sh installs it there)")
    env = dict(os.environ, PYTHONPATH=str(DEEPSPEED_SITE), DS_BUILD_OPS="0")
    proc = subprocess.run([sys.executable, "-c", DEEPSPEED_SEQUENCE, json.dumps(schedule)], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [line for line in proc.stdout.splitlines() if line.startswith("KEPT ")]
    return json.loads(line[len("KEPT "):])


@pytest.mark.slow
@pytest.mark.parametrize("schedule", [(128, 512, 1000, 16), (100, 200, 10, 30), (1, 101, 100, 1),
                                      (64, 512, 777, 64), (5, 64, 3, 4)])
def test_every_step_equals_deepspeeds_scheduler(schedule):
    """Ours is a function of the step alone, so it also holds when a run resumes mid-way."""
    ours = KeepSchedule(*schedule)
    theirs = deepspeed_kept(schedule)
    assert len(theirs) == schedule[2] + 50
    assert [ours.kept(step) for step in range(len(theirs))] == theirs


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

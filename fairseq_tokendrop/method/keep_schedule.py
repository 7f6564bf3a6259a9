"""The kept-length schedule of random-LTD, usable by every dropping mode.

Yao et al., "Random-LTD: Random and Layerwise Token Dropping Brings Efficient
Training for Large-scale Transformers" (2022), and DeepSpeed's ``fixed_linear``
random-LTD schedule (``deepspeed/runtime/data_pipeline/data_routing/scheduler.py``,
the paper's "MSLG"): at update ``step`` (0 at the first)

    v = floor(step / REQUIRE_STEPS * (MAX - MIN) + MIN)
    v = v - v % SEQ_PER_STEP
    kept = min(v, MAX)

DeepSpeed keeps the value in its scheduler state, recomputed from the step
count at every training forward while it is below MAX. The formula never
decreases in ``step``, so with MIN < MAX that state is the formula itself:
here the kept length is computed from fairseq's update count alone, and a
resumed run keeps exactly what the uninterrupted one did.
"""
import math
from typing import NamedTuple

FORMAT = "MIN,MAX,REQUIRE_STEPS,SEQ_PER_STEP"


class KeepSchedule(NamedTuple):
    min_value: int
    max_value: int
    require_steps: int
    seq_per_step: int

    def kept(self, step: int) -> int:
        """Tokens kept per sequence at update ``step`` (0 at the first), DeepSpeed's formula."""
        value = math.floor(step / self.require_steps * (self.max_value - self.min_value) + self.min_value)
        value -= value % self.seq_per_step
        return min(value, self.max_value)

    def __str__(self) -> str:
        return ",".join(map(str, self))


def parse_keep_schedule(text: str, seq_len: int) -> KeepSchedule:
    """``MIN,MAX,REQUIRE_STEPS,SEQ_PER_STEP`` for sequences of ``seq_len`` tokens.

    Raises ValueError with a one-line reason (the caller names the flag).
    """
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4:
        raise ValueError(f"expected four integers {FORMAT}, got {text!r}")
    schedule = KeepSchedule(*values)
    low, high, steps, grain = schedule
    if steps < 1 or grain < 1:
        raise ValueError(f"REQUIRE_STEPS and SEQ_PER_STEP must be >= 1, got {schedule}")
    if low < grain:
        # the formula rounds down to a multiple of SEQ_PER_STEP: it would keep no token at all
        raise ValueError(f"MIN must be >= SEQ_PER_STEP ({grain}), got {schedule}")
    if low >= high:
        raise ValueError(f"MIN must be below MAX (a constant kept length is --token-keep-k), got {schedule}")
    if high > seq_len:
        raise ValueError(f"MAX {high} is longer than --tokens-per-sample {seq_len}")
    return schedule

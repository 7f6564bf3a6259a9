"""The benchmark's statistics of step times, from Python's ``statistics``.

Step statistic: for a mode with ScTD interval F, steps with num_updates % F == 0 (with a full
pass) and the others are two strata, and the statistic is ((F-1) * median(others) +
median(full-pass steps)) / F, the average cost per update over a cycle; for the other modes it
is the plain median. The spread columns apply the same rule to the quartiles (linear
interpolation between order statistics: ``statistics.quantiles(method="inclusive")``).

The ScTD check compares average step costs, i.e. means over the timed steps (whole cycles):
mean(sctd) / mean(baseline) against "token dropping plus one full step every F",
mean(importance) / mean(baseline) + 1/F. Means, because averages add up and medians do not: a
full-pass step sums a drop pass and a full pass, and under right-skewed noise the median of a sum
exceeds the sum of the medians (on the dev machine a median-based check read 0.02-0.05 higher at
F=5).
"""
import statistics
from typing import List, Sequence, Tuple

SCTD_TARGET = 0.03  # the bound on |measured - expected| ScTD cost, in baseline steps


def quartiles(values: Sequence[float]) -> List[float]:
    """[q1, median, q3]; a single value is all three."""
    if len(values) == 1:  # statistics.quantiles needs two (Python < 3.13)
        return [values[0]] * 3
    return statistics.quantiles(values, n=4, method="inclusive")


def strata(times, updates, interval) -> Tuple[list, list]:
    """(full-pass steps, drop-only steps) of a ScTD mode with this interval."""
    full = [t for t, u in zip(times, updates) if u % interval == 0]
    drop = [t for t, u in zip(times, updates) if u % interval != 0]
    return full, drop


def step_statistic(times, updates, interval) -> List[float]:
    """[q1, median, q3] by the module docstring's rule: plain, or the ScTD-cycle average of the strata's."""
    if interval <= 0:
        return quartiles(times)
    full, drop = strata(times, updates, interval)
    if not drop:  # interval 1: every step is a full-pass step
        return quartiles(full)
    return [((interval - 1) * d + f) / interval for d, f in zip(quartiles(drop), quartiles(full))]


def sctd_check(results, interval, times="step_times_s"):
    """ScTD's average step cost against 'token dropping + one baseline step every F',
    in mean baseline steps (see the module docstring)."""
    if "sctd" not in results or "importance" not in results or not results["sctd"][times]:
        return None
    s = results["sctd"]
    base, imp = statistics.fmean(results["baseline"][times]), statistics.fmean(results["importance"][times])
    full, drop = strata(s[times], s["num_updates"], interval)
    measured = statistics.fmean(s[times]) / base
    expected = imp / base + 1.0 / interval
    return {
        "measured_ratio": measured,
        "expected_ratio": expected,
        "difference": measured - expected,
        "target": SCTD_TARGET,
        "within_target": abs(measured - expected) <= SCTD_TARGET,
        # where a miss comes from: the drop-only steps against plain token dropping,
        # and the extra cost of a full-pass step against one baseline step
        "drop_step_vs_importance": statistics.fmean(drop) / imp if drop else None,
        "full_pass_extra_vs_baseline": (statistics.fmean(full) - statistics.fmean(drop)) / base if drop else None,
    }

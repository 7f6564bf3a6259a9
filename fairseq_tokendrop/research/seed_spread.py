"""Mean and spread over seeds, and the plain-text tables compare_runs prints them in."""
import statistics
from typing import List


def spread(values: List[float]) -> dict:
    """Mean and sample standard deviation (0 for one value; None for none)."""
    if not values:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def fmt(stat: dict, spec: str) -> str:
    """``mean±sd`` (the mean alone for one value, ``-`` for none)."""
    if stat["mean"] is None:
        return "-"
    text = format(stat["mean"], spec)
    return text + ("±" + format(stat["sd"], spec) if stat["n"] > 1 else "")


def aligned(lines: List[List[str]]) -> str:
    """Rows of cells as columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(line, widths))) for line in lines)

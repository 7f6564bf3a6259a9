"""compare_runs' downstream picture: each mode's fine-tuned score minus the baseline's, at equal pretraining MACs.

One panel per fine-tuning task, one row per mode (a forest plot): a dot for each pretraining seed's paired
difference, the mean as a diamond with a bar of 2 se either side (inside it the study cannot tell the gap
from none, research/downstream.py), and the zero line. A row's label carries the mode's pretraining
wall-clock as a ratio to the baseline's, since equal MACs did not mean equal time (docs/study.md).
"""
from pathlib import Path
from typing import Dict, List

from .png_figure import pyplot, save_png

PANEL_IN, ROW_IN, MARGIN_IN, DPI = 7.0, 0.45, 1.5, 100  # a panel's width; its height: a row a mode + margin


def rows(task: dict, wall_ratio: Dict[str, float]) -> List[dict]:
    """The panel's rows, top to bottom: label, mean difference, its se (None where not measured), per-seed ones."""
    return [{"label": f"{row['mode']} (wall {wall_ratio[row['mode']]:.2f}x)", "mean": row["paired"]["delta"]["mean"],
             "se": row["paired"]["se"], "runs": list(row["paired"]["runs"].values())}
            for row in task["modes"] if row["paired"] is not None]


def draw(ax, label: str, task: dict, baseline: str, wall_ratio: Dict[str, float]) -> None:
    from matplotlib.ticker import MaxNLocator  # matplotlib is the optional research extra

    shown = rows(task, wall_ratio)
    for y, row in enumerate(reversed(shown)):
        ax.scatter(row["runs"], [y] * len(row["runs"]), s=14, color="grey", alpha=0.7, zorder=2)
        ax.errorbar([row["mean"]], [y], xerr=None if row["se"] is None else [[2 * row["se"]], [2 * row["se"]]],
                    fmt="D", color="C0" if row["se"] is None or abs(row["mean"]) <= 2 * row["se"] else "C3",
                    capsize=4, zorder=3)
    ax.axvline(0.0, color="black", linewidth=1)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6))  # differences like -0.0125 need room
    ax.set_yticks(range(len(shown)))
    ax.set_yticklabels([row["label"] for row in reversed(shown)])
    metric = task["metrics"][0] if len(task["metrics"]) == 1 else "score"
    ax.set_xlabel(f"{metric} minus {baseline}'s, paired by pretraining seed\n"
                  "dots: the seeds; diamond, bar: their mean \u00b1 2 se (red: 0 outside)",
                  fontsize="small")
    ax.set_title(f"{label} ({task['task']}, {task['dev_examples']} dev examples), fine-tuning seeds "
                 f"{' '.join(map(str, task['finetune_seeds']))}", fontsize="small")
    ax.grid(axis="x", alpha=0.3)


def downstream_png(curves_png: Path) -> Path:
    """Where ``--plot CURVES.png --downstream`` writes this picture: CURVES_downstream.png beside it."""
    return curves_png.with_name(f"{curves_png.stem}_downstream{curves_png.suffix}")


def figure(summary: dict):
    """The picture of compare_runs' ``summary`` (its ``--json``, with ``--downstream``): a panel per task."""
    pretraining = {row["mode"]: row for row in summary["modes"]}
    base_wall = pretraining[summary["baseline"]]["wall_s"]["mean"]
    wall_ratio = {mode: row["wall_s"]["mean"] / base_wall for mode, row in pretraining.items()}
    tasks = summary["downstream"]
    height = ROW_IN * max(len(task["modes"]) for task in tasks.values()) + MARGIN_IN
    fig, axes = pyplot().subplots(1, len(tasks), figsize=(PANEL_IN * len(tasks), height), dpi=DPI, squeeze=False)
    for ax, (label, task) in zip(axes[0], tasks.items()):
        draw(ax, label, task, summary["baseline"], wall_ratio)
    fig.tight_layout()
    return fig


def plot_downstream(summary: dict, path: Path) -> None:
    save_png(figure(summary), path, DPI)

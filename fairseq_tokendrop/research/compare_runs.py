"""Compare pretraining runs at equal compute, from their fairseq JSON logs.

Each run directory holds the log of one ``fairseq-train --log-format json``
session: ``DIR/train.log`` (what the examples tee fairseq's output into; a
``--log-file`` written there works too), or pass the log file itself. Runs
must be trained with ``--criterion masked_lm_tokendrop``: it logs ``macs``, the
matmul multiply-accumulates of each update (``method/flops.py``: forward plus
backward at the batch's padded length, kept count and masked count, in the
run's layout, token dropping or random-LTD's layerwise one, at the kept length
that update had under ``--token-keep-schedule``, ScTD's full pass included),
averaged over each log window. So a scheduled run, whose updates grow dearer
as its kept length grows, is measured at the compute it really spent. The
baseline is this model with ``--token-drop 0``, which is stock RoBERTa.

Cumulative training MACs are exact at every ``train_inner`` record (window mean
x updates in the window) and every epoch-end ``train`` record; in between
(a validation off the log grid) they are interpolated linearly in updates, as
is fairseq's ``wall`` (seconds since the start, validation included).

Seeds: a directory named ``NAME_seedK`` is seed K of mode NAME; any other name
is a mode of its own (a log file given itself goes by its directory's name).
The baseline is ``--baseline`` or the first run's mode.

Per mode, as mean and spread (sample standard deviation) over seeds:
- the compute, updates and wall-clock to the first validation with
  ``valid_mlm_acc >= --target`` (MLPerf's rule: no interpolation between
  validations), over the seeds that reach it;
- ``valid_mlm_acc`` at the baseline's total compute (the mean over its seeds):
  linear in MACs between the two validations around it; a run that ends short
  of it by at most 5% counts with its last validation, one shorter gets none;
- the final ``valid_mlm_acc``.
The plot shows valid mlm_acc and valid loss against cumulative training MACs,
one line per mode (the mean over seeds, on the union of their validation
points inside the range all seeds cover), shaded mean +- one sd. With
``--downstream`` a second PNG beside it, ``STEM_downstream.png``, shows each
mode's fine-tuned score minus the baseline's (``research/downstream_plot.py``). Without
matplotlib (the ``research`` extra) it is skipped in one line, and the table and
``--json`` are written all the same.
"""
import argparse
import importlib.util
import json
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from ..atomic_file import atomic_path
from ..errors import TokendropError
from .downstream import downstream_table, summarize_downstream
from .downstream_plot import downstream_png, plot_downstream
from .png_figure import pyplot, save_png
from .seed_spread import aligned, fmt, spread

SEED_SUFFIX = re.compile(r"^(?P<mode>.+)_seed\d+$")
SHORTFALL = 0.05  # a run this much short of the baseline's compute still counts as equal compute
FIGSIZE, DPI = (11.0, 4.2), 100  # the PNG is 1100 x 420 pixels


@dataclass
class Validation:
    updates: int
    macs: float
    wall: float
    mlm_acc: float
    loss: float


@dataclass
class Run:
    name: str
    mode: str
    updates: int
    train_macs: float
    wall: float
    valid: List[Validation]


def mode_of(run_name: str) -> str:
    match = SEED_SUFFIX.match(run_name)
    return match.group("mode") if match else run_name


def find_log(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise TokendropError(f"--runs {path}: no such run directory or log file")
    if not (path / "train.log").is_file():
        raise TokendropError(f"--runs {path}: no train.log in it (pass the log file itself if it has another name)")
    return path / "train.log"


def read_records(log: Path) -> Dict[str, list]:
    """The JSON records fairseq's json progress bar wrote, by kind (train_inner, train, valid)."""
    found = {"train_inner": [], "train": [], "valid": []}
    pattern = re.compile(r"\| (train_inner|train|valid) \| (\{.*\})\s*$")
    with open(log, errors="replace") as f:
        for number, line in enumerate(f, 1):
            match = pattern.search(line)
            if match:
                try:
                    found[match.group(1)].append(json.loads(match.group(2)))
                except json.JSONDecodeError as e:
                    raise TokendropError(f"{log}:{number}: unreadable JSON record ({e.msg})")
    return found


def knots(log: Path, inner: list, epochs: list):
    """(update, cumulative MACs, wall) where the log pins them exactly, ascending."""
    points = {0: (0.0, 0.0)}
    for kind, prefix, records in (("train_inner", "", inner), ("train", "train_", epochs)):
        last, total = 0, 0.0
        for record in records:
            record = {k[len(prefix):]: v for k, v in record.items() if k.startswith(prefix)}
            if "macs" not in record:
                raise TokendropError(f"{log}: a {kind} record has no 'macs' (train with "
                               "--criterion masked_lm_tokendrop; the baseline is --token-drop 0)")
            updates = int(record["num_updates"])
            if updates <= last:
                raise TokendropError(f"{log}: num_updates goes back from {last} to {updates} (a resumed run?); "
                               "compare_runs reads one uninterrupted session per log")
            total += float(record["macs"]) * (updates - last)
            last = updates
            points.setdefault(updates, (total, float(record["wall"])))
    return sorted((u, macs, wall) for u, (macs, wall) in points.items())


def interpolate(x: float, xs: List[float], ys: List[float]) -> float:
    """Piecewise linear through (xs, ys), xs ascending; x must lie in [xs[0], xs[-1]]."""
    for i in range(1, len(xs)):
        if x <= xs[i]:
            span = xs[i] - xs[i - 1]
            return ys[i] if span == 0 else ys[i - 1] + (ys[i] - ys[i - 1]) * (x - xs[i - 1]) / span
    return ys[-1]


def load_run(path: Path) -> Run:
    log = find_log(path)
    records = read_records(log)
    if not records["train_inner"] and not records["train"]:
        raise TokendropError(f"{log}: no train_inner/train JSON records (was it run with --log-format json?)")
    if not records["valid"]:
        raise TokendropError(f"{log}: no valid JSON records (validation disabled?)")
    points = knots(log, records["train_inner"], records["train"])
    updates, macs, wall = ([p[i] for p in points] for i in range(3))
    valid = []
    for record in records["valid"]:
        u = int(record["valid_num_updates"])
        if u > updates[-1]:
            raise TokendropError(f"{log}: a validation at update {u} after the last training record ({updates[-1]})")
        valid.append(Validation(u, interpolate(u, updates, macs), interpolate(u, updates, wall),
                                float(record["valid_mlm_acc"]), float(record["valid_loss"])))
    name = path.parent.name if path.is_file() else path.name
    return Run(name, mode_of(name), updates[-1], macs[-1], wall[-1], valid)


def first_reaching(run: Run, target: float) -> Optional[Validation]:
    return next((v for v in run.valid if v.mlm_acc >= target), None)


def acc_at(run: Run, macs: float) -> Optional[float]:
    xs = [v.macs for v in run.valid]
    ys = [v.mlm_acc for v in run.valid]
    if macs < xs[0]:
        return None
    if macs > xs[-1]:
        return ys[-1] if macs - xs[-1] <= SHORTFALL * macs else None
    return interpolate(macs, xs, ys)


def summarize(modes: Dict[str, List[Run]], baseline: str, target: Optional[float]) -> dict:
    base_macs = statistics.mean(r.train_macs for r in modes[baseline])
    rows = []
    for mode, runs in modes.items():
        row = {"mode": mode, "seeds": [r.name for r in runs],
               "updates": spread([r.updates for r in runs]),
               "train_macs": spread([r.train_macs for r in runs]),
               "train_macs_vs_baseline": statistics.mean(r.train_macs for r in runs) / base_macs,
               "wall_s": spread([r.wall for r in runs]),
               "valid_mlm_acc_at_baseline_macs": spread(
                   [a for a in (acc_at(r, base_macs) for r in runs) if a is not None]),
               "final_valid_mlm_acc": spread([r.valid[-1].mlm_acc for r in runs])}
        if target is not None:
            hits = [h for h in (first_reaching(r, target) for r in runs) if h is not None]
            row["to_target"] = {"reached": len(hits), "of": len(runs),
                                "macs": spread([h.macs for h in hits]),
                                "updates": spread([h.updates for h in hits]),
                                "wall_s": spread([h.wall for h in hits])}
        rows.append(row)
    return {"baseline": baseline, "baseline_train_macs": base_macs, "target": target, "modes": rows}


def table(summary: dict) -> str:
    target = summary["target"]
    header = ["mode", "seeds", "updates", "train MACs", "vs base", "acc@base MACs", "final acc"]
    if target is not None:
        header += [f"MACs to {target:g}", "updates to it", "wall s to it", "reached"]
    lines = [header]
    for row in summary["modes"]:
        line = [row["mode"], str(len(row["seeds"])), fmt(row["updates"], ".0f"), fmt(row["train_macs"], ".3e"),
                f"{row['train_macs_vs_baseline']:.3f}",
                fmt(row["valid_mlm_acc_at_baseline_macs"], ".4f"), fmt(row["final_valid_mlm_acc"], ".4f")]
        if target is not None:
            hit = row["to_target"]
            line += [fmt(hit["macs"], ".3e"), fmt(hit["updates"], ".0f"), fmt(hit["wall_s"], ".0f"),
                     f"{hit['reached']}/{hit['of']}"]
        lines.append(line)
    return (aligned(lines) + f"\nmean±sd over seeds; the baseline mode is {summary['baseline']!r}, its total training MACs "
            f"{summary['baseline_train_macs']:.4e} (mean over seeds)")


def mean_curve(runs: List[Run], field: str):
    """Mean and sd over seeds on the union of their validation MACs inside the range all cover."""
    lo, hi = max(r.valid[0].macs for r in runs), min(r.valid[-1].macs for r in runs)
    grid = sorted({v.macs for r in runs for v in r.valid if lo <= v.macs <= hi})
    per_seed = [[interpolate(x, [v.macs for v in r.valid], [getattr(v, field) for v in r.valid]) for x in grid]
                for r in runs]
    means = [statistics.mean(col) for col in zip(*per_seed)]
    sds = [statistics.stdev(col) if len(col) > 1 else 0.0 for col in zip(*per_seed)]
    return grid, means, sds


def plot(modes: Dict[str, List[Run]], summary: dict, path: Path) -> None:
    plt = pyplot()
    top = max(r.train_macs for runs in modes.values() for r in runs)
    scale, unit = next((10.0 ** p, name) for p, name in ((18, "E"), (15, "P"), (12, "T"), (9, "G"), (0, ""))
                       if top >= 10.0 ** p)
    fig, axes = plt.subplots(1, 2, figsize=FIGSIZE, dpi=DPI)
    for ax, field, label in ((axes[0], "mlm_acc", "valid mlm_acc"), (axes[1], "loss", "valid loss (base 2)")):
        for mode, runs in modes.items():
            grid, means, sds = mean_curve(runs, field)
            grid = [x / scale for x in grid]
            line, = ax.plot(grid, means, marker=".", label=f"{mode} ({len(runs)} seed{'s' * (len(runs) > 1)})")
            if len(runs) > 1:
                ax.fill_between(grid, [m - s for m, s in zip(means, sds)], [m + s for m, s in zip(means, sds)],
                                color=line.get_color(), alpha=0.2, linewidth=0)
        ax.axvline(summary["baseline_train_macs"] / scale, color="grey", linestyle=":", linewidth=1,
                   label=f"{summary['baseline']}'s total")
        if field == "mlm_acc" and summary["target"] is not None:
            ax.axhline(summary["target"], color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel(f"cumulative training {unit}MACs (matmul, forward + backward)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize="small")
    fig.tight_layout()
    save_png(fig, path, DPI)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", type=Path, required=True,
                        help="run directories (or their log files); NAME_seedK groups into mode NAME")
    parser.add_argument("--baseline", help="the mode the others are measured at the compute of (default: the first)")
    parser.add_argument("--target", type=float, help="valid mlm_acc whose first reaching is timed")
    parser.add_argument("--plot", type=Path, help="write the two-panel PNG here (with --downstream also "
                        "STEM_downstream.png beside it)")
    parser.add_argument("--json", type=Path, help="write the table and per-run numbers here")
    parser.add_argument("--downstream", action="store_true",
                        help="also each run's fine-tunes, RUN/finetune/LABEL/seedJ/metrics.json (examples/study.sh "
                             "writes them): the task's score per mode next to pretraining MACs and wall-clock")
    args = parser.parse_args(argv)

    modes: Dict[str, List[Run]] = {}
    run_dirs: Dict[str, Path] = {}
    for path in args.runs:
        run = load_run(path)
        if run.name in run_dirs:
            raise TokendropError(f"--runs {path}: a second run named {run.name}")
        modes.setdefault(run.mode, []).append(run)
        run_dirs[run.name] = path if path.is_dir() else path.parent
    baseline = args.baseline or next(iter(modes))
    if baseline not in modes:
        raise TokendropError(f"--baseline {baseline}: no such mode among {', '.join(modes)}")
    summary = summarize(modes, baseline, args.target)
    print(table(summary))
    if args.downstream:
        summary["downstream"] = summarize_downstream(
            run_dirs, {mode: [r.name for r in runs] for mode, runs in modes.items()}, baseline)
        print("\n" + downstream_table(summary))
    if args.plot and importlib.util.find_spec("matplotlib") is None:  # the picture is optional, the numbers are not
        print(f"compare_runs: --plot {args.plot} skipped: matplotlib is not installed (pip install .[research])",
              file=sys.stderr)
    elif args.plot:
        plot(modes, summary, args.plot)
        if args.downstream:
            plot_downstream(summary, downstream_png(args.plot))
    if args.json:
        summary["runs"] = [{"run": r.name, "mode": r.mode, "updates": r.updates, "train_macs": r.train_macs,
                            "wall_s": r.wall, "valid_mlm_acc": r.valid[-1].mlm_acc,
                            "valid_loss": r.valid[-1].loss, "curve": [vars(v) for v in r.valid]}
                           for runs in modes.values() for r in runs]
        with atomic_path(str(args.json)) as tmp, open(tmp, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

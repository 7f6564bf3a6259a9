"""Compare pretraining runs from their fairseq JSON logs (``--log-format json``).

For each run directory (holding ``train.log``): the validation masked-LM
accuracy and loss over updates (the full model: validation never drops), the
median seconds per update (from fairseq's updates/s per log window, so start-up
and validation are left out), and the mean kept fraction. Prints a table with
sparklines of the curves and writes the numbers as JSON.
"""
import argparse
import json
import os
import statistics
import sys
from pathlib import Path

BARS = "▁▂▃▄▅▆▇█"


def records(log: Path, kind: str):
    tag = f"| {kind} | "
    with open(log) as f:
        return [json.loads(line.split(tag, 1)[1]) for line in f if tag in line]


def sparkline(values, lo, hi):
    span = (hi - lo) or 1.0
    return "".join(BARS[min(len(BARS) - 1, int((v - lo) / span * len(BARS)))] for v in values)


def summarize(run: Path) -> dict:
    log = run / "train.log"
    if not log.exists():
        raise SystemExit(f"demo_report: error: no train.log in {run}")
    train, valid = records(log, "train_inner"), records(log, "valid")
    if not train or not valid:
        raise SystemExit(f"demo_report: error: {log} has no train_inner/valid JSON records "
                         "(was it run with --log-format json?)")
    return {
        "run": run.name,
        "updates": int(train[-1]["num_updates"]),
        "sec_per_update": statistics.median(1.0 / float(r["ups"]) for r in train if float(r["ups"]) > 0),
        "kept_frac": statistics.mean(float(r["kept_frac"]) for r in train),
        "valid_updates": [int(r["valid_num_updates"]) for r in valid],
        "valid_mlm_acc": [float(r["valid_mlm_acc"]) for r in valid],
        "valid_loss": [float(r["valid_loss"]) for r in valid],
        "train_loss": [float(r["loss"]) for r in train],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", type=Path, required=True,
                        help="run directories; the first is the baseline the others are compared to")
    parser.add_argument("--json", type=Path, help="write the summary here")
    args = parser.parse_args(argv)

    runs = [summarize(r) for r in args.runs]
    base = runs[0]
    accs = [a for r in runs for a in r["valid_mlm_acc"]]
    losses = [v for r in runs for v in r["train_loss"]]
    print(f"{'run':<11} {'updates':>7} {'kept':>5} {'s/update':>9} {'vs base':>8} "
          f"{'valid mlm_acc':>13} {'valid loss':>10}  mlm_acc over updates / train loss")
    for r in runs:
        ratio = r["sec_per_update"] / base["sec_per_update"]
        print(f"{r['run']:<11} {r['updates']:>7} {r['kept_frac']:>5.2f} {r['sec_per_update']:>9.3f} {ratio:>8.3f} "
              f"{r['valid_mlm_acc'][-1]:>13.4f} {r['valid_loss'][-1]:>10.3f}  "
              f"{sparkline(r['valid_mlm_acc'], min(accs), max(accs))} / "
              f"{sparkline(r['train_loss'], min(losses), max(losses))}")
    for r in runs[1:]:
        print(f"\n{r['run']}: {r['sec_per_update'] / base['sec_per_update']:.3f}x the baseline's time per update, "
              f"masked-LM accuracy {r['valid_mlm_acc'][-1]:.4f} vs {base['valid_mlm_acc'][-1]:.4f} "
              f"after {r['updates']} updates (validation uses the full model).")
    print("These s/update come from runs timed one after the other on a shared machine;\n"
          "scripts/benchmark.py interleaves the modes step by step and is the figure to trust.")
    if args.json:
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json.dumps(runs, indent=2))
        os.replace(tmp, args.json)


if __name__ == "__main__":
    sys.exit(main())

"""The downstream half of a study: what fine-tuning wrote per pretraining run, per mode, paired with the baseline.

A run directory of ``compare_runs`` (``MODE_seedK``) holds its fine-tunes as
``examples/study.sh`` writes them: ``RUN/finetune/LABEL/seedJ/`` with the
``metrics.json`` and ``dev_predictions.txt`` of ``fairseq-tokendrop-finetune-glue``
(or ``examples/finetune_hf.py``, which writes the same files), LABEL naming the
task folder and J the fine-tuning seed. Every run must hold the same labels
and seeds, fine-tuned with one recipe (all but the seed alike) on the same dev
set, from a checkpoint of its own: anything else is refused in one line naming
the file.

Per label and mode, over pretraining seeds (sample sd, as compare_runs):

- ``score``: each run's score (the task's metric as ``metrics.json`` gives it)
  averaged over its fine-tuning seeds, then mean and sd over the mode's runs;
- ``finetune_seed_sd``: the sd over fine-tuning seeds of one checkpoint,
  averaged over the mode's runs: what one fine-tune adds on its own (None
  with one fine-tuning seed, which measures no such spread);
- ``paired``: run K of the mode against the baseline's run of the same
  pretraining seed K (same initialisation, data order and masks), each a mean
  over the same fine-tuning seeds: each of the mode's runs' difference (``runs``),
  their mean and sd, and in how many seeds the mode is above. Where the score
  is accuracy, the examples pair too:
  ``d_i`` is example i's correctness under the mode minus under the baseline,
  averaged over the paired fine-tunes, and ``dev_se`` = sd(d) / sqrt(n) is the
  dev set's sampling error of the difference (examples both get right or both
  get wrong cancel, so it is below an unpaired one). ``se`` joins the two
  sources: sqrt(sd^2 / seeds + dev_se^2), the pretraining-and-fine-tuning noise
  of a mean over few seeds and the dev set's. A difference inside 2 se is one
  the study cannot tell from none; with 3 pretraining seeds the sd itself is
  rough (2 degrees of freedom).
"""
import json
import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from tokendrop_readers.glue import GlueError, read_split

from ..errors import TokendropError
from .seed_spread import aligned, fmt, spread

FINETUNE_DIR = "finetune"
SEED_DIR = re.compile(r"^seed(\d+)$")
REQUIRED = ("task", "checkpoint", "folder", "metrics", "score", "dev_examples", "recipe")


@dataclass
class FineTune:
    seed: int
    result: dict  # metrics.json
    correct: Optional[List[bool]]  # per dev example, where the task's score is its accuracy


def read_metrics(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            result = json.load(handle)
    except FileNotFoundError:
        raise TokendropError(f"{path}: missing (fine-tune this run, or leave out --downstream)") from None
    except json.JSONDecodeError as e:
        raise TokendropError(f"{path}: unreadable JSON ({e.msg}, line {e.lineno})") from None
    missing = [key for key in REQUIRED if not isinstance(result, dict) or key not in result]
    if missing:
        raise TokendropError(f"{path}: no {', '.join(map(repr, missing))}: not a metrics.json of "
                             "fairseq-tokendrop-finetune-glue or finetune_hf.py")
    return result


def read_correct(folder: Path, result: dict, gold_cache: dict) -> Optional[List[bool]]:
    """Per-example correctness from dev_predictions.txt against the task folder's dev labels, checked
    against the accuracy metrics.json states; None where the score is not accuracy."""
    if set(result["metrics"]) != {"accuracy"}:
        return None
    key = (result["folder"], result["task"])
    if key not in gold_cache:
        try:
            examples, _ = read_split(result["folder"], result["task"], "dev")
        except (GlueError, OSError) as e:
            raise TokendropError(f"{folder / 'metrics.json'}: its dev set cannot be read for the paired "
                                 f"comparison: {e}") from None
        gold_cache[key] = [e.label for e in examples]
    gold = gold_cache[key]
    path = folder / "dev_predictions.txt"
    if not path.is_file():
        raise TokendropError(f"{path}: missing (metrics.json is there; the paired comparison needs both)")
    predicted = path.read_text(encoding="utf-8").split("\n")
    predicted = predicted[:-1] if predicted and predicted[-1] == "" else predicted
    if len(predicted) != len(gold) or len(gold) != result["dev_examples"]:
        raise TokendropError(f"{path}: {len(predicted)} predictions, {result['dev_examples']} dev examples in "
                             f"metrics.json, {len(gold)} in {result['folder']}")
    correct = [p == g for p, g in zip(predicted, gold)]
    if abs(sum(correct) / len(gold) - result["metrics"]["accuracy"]) > 1e-9:
        raise TokendropError(f"{path}: gives accuracy {sum(correct) / len(gold):.6f}, metrics.json says "
                             f"{result['metrics']['accuracy']:.6f}")
    return correct


def load_finetunes(run_dir: Path, run_name: str, gold_cache: dict) -> Dict[str, List[FineTune]]:
    """label -> the run's fine-tunes, by seed."""
    root = run_dir / FINETUNE_DIR
    if not root.is_dir():
        raise TokendropError(f"{root}: missing (fine-tune the run: examples/study.sh does, or leave out --downstream)")
    found = {}
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        tunes = []
        for seed_dir in sorted(p for p in label_dir.iterdir() if SEED_DIR.match(p.name)):
            result = read_metrics(seed_dir / "metrics.json")
            seed = int(SEED_DIR.match(seed_dir.name).group(1))
            if result["recipe"].get("seed") != seed:
                raise TokendropError(f"{seed_dir / 'metrics.json'}: recipe seed {result['recipe'].get('seed')}, "
                                     f"but its directory says seed {seed}")
            if run_name not in Path(result["checkpoint"]).parts:
                raise TokendropError(f"{seed_dir / 'metrics.json'}: fine-tuned {result['checkpoint']}, not a "
                                     f"checkpoint of {run_name}")
            tunes.append(FineTune(seed, result, read_correct(seed_dir, result, gold_cache)))
        if tunes:
            found[label_dir.name] = sorted(tunes, key=lambda t: t.seed)
    if not found:
        raise TokendropError(f"{root}: no LABEL/seedJ/metrics.json in it")
    return found


def check_alike(runs: Dict[str, Dict[str, List[FineTune]]], run_dirs: Dict[str, Path]) -> None:
    """Every run: the same labels and seeds, one recipe but the seed, the same task and dev set."""
    first_name = next(iter(runs))
    first = runs[first_name]
    for name, labels in runs.items():
        for label in sorted(set(first) | set(labels)):
            where = run_dirs[name] / FINETUNE_DIR / label
            if label not in labels or label not in first:
                have, lack = (first_name, name) if label not in labels else (name, first_name)
                raise TokendropError(f"{run_dirs[lack] / FINETUNE_DIR / label}: missing ({have} has it): "
                                     "every run needs the same fine-tunes")
            seeds, expected = [t.seed for t in labels[label]], [t.seed for t in first[label]]
            if seeds != expected:
                raise TokendropError(f"{where}: fine-tuning seeds {seeds}, {first_name} has {expected}: every "
                                     "run needs the same fine-tunes")
            reference = first[label][0].result
            for tune in labels[label]:
                result = tune.result
                recipe = {k: v for k, v in result["recipe"].items() if k != "seed"}
                expected_recipe = {k: v for k, v in reference["recipe"].items() if k != "seed"}
                for key, what in (("task", "task"), ("dev_examples", "dev examples"), ("folder", "task folder")):
                    if result[key] != reference[key]:
                        raise TokendropError(f"{where}/seed{tune.seed}/metrics.json: {what} {result[key]}, "
                                             f"{first_name}'s is {reference[key]}")
                if recipe != expected_recipe:
                    differ = sorted(k for k in set(recipe) | set(expected_recipe)
                                    if recipe.get(k) != expected_recipe.get(k))
                    raise TokendropError(f"{where}/seed{tune.seed}/metrics.json: recipe differs from "
                                         f"{first_name}'s in {', '.join(differ)}: one recipe for every mode")


def run_score(tunes: List[FineTune]) -> float:
    return statistics.mean(t.result["score"] for t in tunes)


def paired(mode: str, mode_runs: Dict[str, List[FineTune]], baseline: str,
           base_runs: Dict[str, List[FineTune]]) -> Optional[dict]:
    """The mode against the baseline, run by run of the same pretraining seed (MODE_seedK with BASELINE_seedK)."""
    named = {name: (tunes, base_runs[baseline + name[len(mode):]]) for name, tunes in mode_runs.items()
             if baseline + name[len(mode):] in base_runs}
    if not named:
        return None
    pairs = list(named.values())
    deltas = [run_score(m) - run_score(b) for m, b in pairs]
    result = {"delta": spread(deltas), "above": sum(d > 0 for d in deltas), "of": len(deltas),
              "runs": dict(zip(named, deltas)), "dev_se": None, "se": None}
    if all(t.correct is not None for m, b in pairs for t in m + b):
        per_example = [statistics.mean(int(tm.correct[i]) - int(tb.correct[i]) for m, b in pairs
                                       for tm, tb in zip(m, b))
                       for i in range(len(pairs[0][0][0].correct))]
        result["dev_se"] = statistics.stdev(per_example) / math.sqrt(len(per_example))
        if len(deltas) > 1:
            result["se"] = math.sqrt(result["delta"]["sd"] ** 2 / len(deltas) + result["dev_se"] ** 2)
    return result


def summarize_downstream(run_dirs: Dict[str, Path], modes: Dict[str, List[str]], baseline: str) -> dict:
    """run_dirs: run name -> its directory; modes: mode -> its run names (compare_runs' grouping)."""
    gold_cache: dict = {}
    runs = {name: load_finetunes(path, name, gold_cache) for name, path in run_dirs.items()}
    check_alike(runs, run_dirs)
    labels = {}
    for label, reference in next(iter(runs.values())).items():
        result = reference[0].result
        rows = []
        for mode, names in modes.items():
            per_run = {name: runs[name][label] for name in names}
            rows.append({"mode": mode, "score": spread([run_score(t) for t in per_run.values()]),
                         "finetune_seed_sd": None if len(reference) == 1 else statistics.mean(
                             statistics.stdev(x.result["score"] for x in t) for t in per_run.values()),
                         "paired": None if mode == baseline else paired(
                             mode, per_run, baseline, {name: runs[name][label] for name in modes[baseline]})})
        labels[label] = {"task": result["task"], "folder": result["folder"], "dev_examples": result["dev_examples"],
                         "majority": result.get("majority"), "metrics": sorted(result["metrics"]),
                         "recipe": {k: v for k, v in result["recipe"].items() if k != "seed"},
                         "finetune_seeds": [t.seed for t in reference],
                         "modes": rows,
                         "runs": {name: {"scores": {t.seed: t.result["score"] for t in runs[name][label]},
                                         "mean": run_score(runs[name][label])} for name in run_dirs}}
    return labels


def signed(stat: dict) -> str:
    text = fmt(stat, "+.4f")
    return text.replace("±+", "±")


def downstream_table(summary: dict) -> str:
    """One table a task: each mode's score next to its pretraining MACs and wall-clock (compare_runs' rows)."""
    pretraining = {row["mode"]: row for row in summary["modes"]}
    base = pretraining[summary["baseline"]]
    blocks = []
    for label, task in summary["downstream"].items():
        metric = task["metrics"][0] if len(task["metrics"]) == 1 else "score"
        recipe = task["recipe"]
        title = (f"downstream {label}: {task['task']} {metric}, {task['dev_examples']} dev examples"
                 + (f", majority class {task['majority']:.4f}" if task["majority"] is not None else "")
                 + f"; fine-tuning seeds {' '.join(map(str, task['finetune_seeds']))} per checkpoint, "
                 f"lr {recipe['lr']:g}, batch {recipe['batch_size']}, {recipe['epochs']} epochs")
        lines = [["mode", "seeds", "train MACs", "vs base", "wall s", "vs base", metric, "ft-seed sd",
                  "minus base (paired)", "se", "above base"]]
        for row in task["modes"]:
            run = pretraining[row["mode"]]
            pair = row["paired"]
            lines.append([row["mode"], str(row["score"]["n"]), fmt(run["train_macs"], ".3e"),
                          f"{run['train_macs']['mean'] / base['train_macs']['mean']:.3f}", fmt(run["wall_s"], ".0f"),
                          f"{run['wall_s']['mean'] / base['wall_s']['mean']:.3f}", fmt(row["score"], ".4f"),
                          "-" if row["finetune_seed_sd"] is None else f"{row['finetune_seed_sd']:.4f}",
                          signed(pair["delta"]) if pair else "-",
                          f"{pair['se']:.4f}" if pair and pair["se"] is not None else "-",
                          f"{pair['above']}/{pair['of']}" if pair else "-"])
        blocks.append(title + "\n" + aligned(lines))
    return ("\n\n".join(blocks) + "\nmean±sd over pretraining seeds, each the mean over its fine-tunes; 'minus base': "
            "paired by pretraining seed; se: of that difference, seeds' and dev set's sampling (docs/study.md)")

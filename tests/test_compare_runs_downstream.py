"""compare_runs --downstream on hand-written fine-tuning files, against answers worked out by hand."""
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import torch

from fairseq_tokendrop.research import compare_runs

from conftest import REPO, logged
from test_compare_runs import runs  # noqa: F401 (the four hand-written pretraining logs)

GOLD = ["1", "0", "1", "1"]
# (run, fine-tuning seed) -> predicted labels of the four dev examples; correct ones marked below
PREDICTIONS = {
    ("baseline_seed1", 1): "1 0 0 1",  # 3/4
    ("baseline_seed1", 2): "1 1 0 1",  # 2/4 -> run mean 0.625
    ("baseline_seed2", 1): "1 0 1 1",  # 4/4
    ("baseline_seed2", 2): "0 0 1 1",  # 3/4 -> 0.875
    ("drop_seed1", 1): "1 0 1 1",  # 4/4
    ("drop_seed1", 2): "1 0 1 0",  # 3/4 -> 0.875
    ("drop_seed2", 1): "1 0 1 1",  # 4/4
    ("drop_seed2", 2): "1 0 1 1",  # 4/4 -> 1.0
}
RECIPE = {"lr": 0.0001, "batch_size": 32, "epochs": 3, "warmup_ratio": 0.06, "weight_decay": 0.1, "max_length": 64}


def write_finetune(run_dir, seed, predicted, task_dir, **changes):
    out = run_dir / "finetune" / "rt" / f"seed{seed}"
    out.mkdir(parents=True)
    labels = predicted.split()
    result = {"task": "SST-2", "path": "fairseq", "checkpoint": str(run_dir / "checkpoint_last.pt"),
              "folder": str(task_dir), "metrics": {"accuracy": sum(p == g for p, g in zip(labels, GOLD)) / 4},
              "majority": 0.75, "train_examples": 8, "dev_examples": 4, "recipe": dict(RECIPE, seed=seed),
              "seconds": {"binarize": 1.0, "train": 2.0, "evaluate": 0.5}}
    result["score"] = result["metrics"]["accuracy"]
    result.update(changes)
    (out / "metrics.json").write_text(json.dumps(result))
    (out / "dev_predictions.txt").write_text("".join(f"{p}\n" for p in labels))
    return out


@pytest.fixture
def tuned(runs, tmp_path):  # noqa: F811
    task_dir = tmp_path / "rotten"
    task_dir.mkdir()
    (task_dir / "dev.tsv").write_text("sentence\tlabel\n" + "".join(f"text {i}\t{g}\n" for i, g in enumerate(GOLD)))
    for (name, seed), predicted in PREDICTIONS.items():
        write_finetune(tmp_path / name, seed, predicted, task_dir)
    return runs


def test_downstream_numbers_match_the_hand_computation(tuned, tmp_path, capsys):
    out = tmp_path / "out.json"
    assert compare_runs.main(["--runs", *map(str, tuned), "--downstream", "--json", str(out)]) == 0
    task = json.loads(out.read_text())["downstream"]["rt"]
    assert task["task"] == "SST-2" and task["dev_examples"] == 4 and task["finetune_seeds"] == [1, 2]
    base, drop = task["modes"]
    # runs: baseline 0.625 and 0.875, drop 0.875 and 1.0
    assert base["score"]["mean"] == pytest.approx(0.75) and base["score"]["sd"] == pytest.approx(0.25 / 2 ** 0.5)
    assert drop["score"]["mean"] == pytest.approx(0.9375) and drop["score"]["sd"] == pytest.approx(0.125 / 2 ** 0.5)
    # one checkpoint's fine-tunes: baseline 0.75/0.5 and 1.0/0.75; drop 1.0/0.75 and 1.0/1.0
    assert base["finetune_seed_sd"] == pytest.approx(0.25 / 2 ** 0.5)
    assert drop["finetune_seed_sd"] == pytest.approx(0.125 / 2 ** 0.5)
    assert base["paired"] is None
    pair = drop["paired"]
    # seed 1: 0.875 - 0.625, seed 2: 1.0 - 0.875
    assert pair["delta"]["mean"] == pytest.approx(0.1875) and pair["delta"]["sd"] == pytest.approx(0.125 / 2 ** 0.5)
    assert (pair["above"], pair["of"]) == (2, 2)
    # example i's correctness, drop minus baseline, over the four paired fine-tunes (s1f1, s1f2, s2f1, s2f2):
    # example 0: 0, 0, 0, +1; 1: 0, +1, 0, 0; 2: +1, +1, 0, 0; 3: 0, -1, 0, 0 -> 0.25, 0.25, 0.5, -0.25
    # (mean 0.1875, squared deviations 0.0625^2 + 0.0625^2 + 0.3125^2 + 0.4375^2 = 0.296875)
    dev_se = math.sqrt(0.296875 / 3) / 2
    assert pair["dev_se"] == pytest.approx(dev_se)
    assert pair["se"] == pytest.approx(math.sqrt((0.125 / 2 ** 0.5) ** 2 / 2 + dev_se ** 2))
    assert pair["runs"] == pytest.approx({"drop_seed1": 0.25, "drop_seed2": 0.125})
    assert task["runs"]["drop_seed1"]["scores"] == {"1": 1.0, "2": 0.75}
    printed = capsys.readouterr().out.split("downstream rt:", 1)[1]
    # pretraining next to it: MACs 2500 and 2700 (1.080 of the baseline), wall 40 and 20 s against 30 and 24 s
    drop_line = next(line for line in printed.splitlines() if line.startswith("drop "))
    assert drop_line.split() == ["drop", "2", "2.700e+03±4.243e+02", "1.080", "27±4", "0.900", "0.9375±0.0884",
                                 "0.0884", "+0.1875±0.0884", f"{pair['se']:.4f}", "2/2"]
    assert "30±14" in printed and "majority class 0.7500" in printed and "lr 0.0001, batch 32, 3 epochs" in printed


def test_one_fine_tuning_seed_reports_no_seed_spread(tuned, tmp_path, capsys):
    """A study fine-tuned once per checkpoint has measured no spread over fine-tuning seeds: none is shown, not 0."""
    for name, seed in PREDICTIONS:
        if seed == 2:
            shutil.rmtree(tmp_path / name / "finetune" / "rt" / "seed2")
    out = tmp_path / "out.json"
    assert compare_runs.main(["--runs", *map(str, tuned), "--downstream", "--json", str(out)]) == 0
    task = json.loads(out.read_text())["downstream"]["rt"]
    base, drop = task["modes"]
    assert task["finetune_seeds"] == [1] and base["finetune_seed_sd"] is None and drop["finetune_seed_sd"] is None
    # seed-1 fine-tunes alone: baseline 0.75 and 1.0, drop 1.0 and 1.0
    assert base["score"]["mean"] == pytest.approx(0.875) and drop["score"]["mean"] == pytest.approx(1.0)
    assert drop["paired"]["delta"]["mean"] == pytest.approx(0.125) and (drop["paired"]["above"], drop["paired"]["of"]) == (1, 2)
    printed = capsys.readouterr().out.split("downstream rt:", 1)[1]
    drop_line = next(line for line in printed.splitlines() if line.startswith("drop "))
    assert drop_line.split()[6:8] == ["1.0000±0.0000", "-"]


def test_downstream_picture_draws_each_seed_and_the_mean_with_two_se(tuned, tmp_path):
    """The forest plot's marks, read back from matplotlib, are the hand-computed differences of the test above."""
    import copy

    import matplotlib.pyplot as plt
    from matplotlib.image import imread

    from fairseq_tokendrop.research.downstream_plot import DPI, MARGIN_IN, PANEL_IN, ROW_IN, draw, figure

    png, out = tmp_path / "curves.png", tmp_path / "out.json"
    assert compare_runs.main(["--runs", *map(str, tuned), "--downstream", "--plot", str(png), "--json", str(out)]) == 0
    # one panel, a row's height for each of the two modes (the baseline's row is left as room)
    assert imread(str(tmp_path / "curves_downstream.png")).shape[:2] == (round(DPI * (2 * ROW_IN + MARGIN_IN)),
                                                                          round(DPI * PANEL_IN))
    summary = json.loads(out.read_text())
    se = math.sqrt((0.125 / 2 ** 0.5) ** 2 / 2 + (math.sqrt(0.296875 / 3) / 2) ** 2)  # as worked out above
    fig = figure(summary)
    ax, = fig.axes
    seeds = ax.collections[0].get_offsets()
    assert sorted(seeds[:, 0]) == pytest.approx([0.125, 0.25]) and list(seeds[:, 1]) == [0, 0]
    diamond = ax.lines[0]
    assert diamond.get_xdata()[0] == pytest.approx(0.1875)
    assert diamond.get_color() == "C0" and 0.1875 < 2 * se  # zero inside the bar: not the red of a clear gap
    bar = ax.collections[1].get_segments()[0]  # errorbar's horizontal bar
    assert bar[:, 0] == pytest.approx([0.1875 - 2 * se, 0.1875 + 2 * se])
    # pretraining wall-clock: drop's runs 30 and 24 s, the baseline's 40 and 20 s
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"drop (wall {27 / 30:.2f}x)"]
    plt.close(fig)
    narrow = copy.deepcopy(summary["downstream"]["rt"])
    narrow["modes"][1]["paired"]["se"] = 0.05  # 0.1875 is then outside 2 se: the red of a clear gap
    fig, ax = plt.subplots()
    draw(ax, "rt", narrow, "baseline", {"baseline": 1.0, "drop": 0.9})
    assert ax.lines[0].get_color() == "C3"
    plt.close(fig)


def edit_metrics(path, **changes):
    result = json.loads(path.read_text())
    result.update(changes)
    path.write_text(json.dumps(result))


@pytest.mark.parametrize("edit,message", [
    (lambda d: (d / "drop_seed2/finetune/rt/seed2/metrics.json").unlink(),
     "drop_seed2/finetune/rt/seed2/metrics.json: missing"),
    (lambda d: (d / "drop_seed2/finetune/rt/seed2/metrics.json").write_text("{"),
     "drop_seed2/finetune/rt/seed2/metrics.json: unreadable JSON"),
    (lambda d: edit_metrics(d / "drop_seed1/finetune/rt/seed1/metrics.json", recipe=dict(RECIPE, seed=1, lr=0.001)),
     "drop_seed1/finetune/rt/seed1/metrics.json: recipe differs from baseline_seed1's in lr: one recipe"),
    (lambda d: edit_metrics(d / "drop_seed1/finetune/rt/seed2/metrics.json", recipe=dict(RECIPE, seed=3)),
     "drop_seed1/finetune/rt/seed2/metrics.json: recipe seed 3, but its directory says seed 2"),
    (lambda d: edit_metrics(d / "drop_seed1/finetune/rt/seed1/metrics.json",
                            checkpoint=str(d / "baseline_seed1" / "checkpoint_last.pt")),
     "not a checkpoint of drop_seed1"),
    (lambda d: (d / "drop_seed1/finetune/rt/seed1/dev_predictions.txt").write_text("1\n1\n1\n1\n"),
     "drop_seed1/finetune/rt/seed1/dev_predictions.txt: gives accuracy 0.750000, metrics.json says 1.000000"),
    (lambda d: (d / "drop_seed1/finetune/rt/seed1/dev_predictions.txt").write_text("1\n0\n1\n"),
     "drop_seed1/finetune/rt/seed1/dev_predictions.txt: 3 predictions, 4 dev examples"),
    (lambda d: shutil.rmtree(d / "drop_seed2/finetune/rt/seed2"),
     "drop_seed2/finetune/rt: fine-tuning seeds [1], baseline_seed1 has [1, 2]"),
    (lambda d: shutil.rmtree(d / "drop_seed2/finetune"), "drop_seed2/finetune: missing"),
    (lambda d: shutil.copytree(d / "baseline_seed1/finetune/rt", d / "baseline_seed1/finetune/other"),
     "baseline_seed2/finetune/other: missing (baseline_seed1 has it)"),
    (lambda d: edit_metrics(d / "baseline_seed2/finetune/rt/seed1/metrics.json",
                            folder=str(shutil.copytree(d / "rotten", d / "copy"))),
     "baseline_seed2/finetune/rt/seed1/metrics.json: task folder"),
])
def test_missing_or_inconsistent_fine_tunes_are_refused_in_one_line(tuned, tmp_path, edit, message):
    edit(tmp_path)
    with pytest.raises(SystemExit) as error:
        compare_runs.main(["--runs", *map(str, tuned), "--downstream"])
    text = str(error.value)
    assert text.startswith("fairseq_tokendrop: error: ") and message in text and "\n" not in text



@pytest.mark.slow
def test_study_fine_tunes_every_final_checkpoint_with_one_recipe(english_sentencepiece_bin, rotten_tomatoes, tmp_path):
    """examples/study.sh shrunk: 2 modes x 2 seeds of a tiny model on the task's English, each final checkpoint
    fine-tuned twice on 200 of its snippets; the table recounted from the predictions with scikit-learn."""
    from sklearn.metrics import accuracy_score

    task_dir = tmp_path / "rt"  # not a GLUE name: FOLDER=TASK
    task_dir.mkdir()
    for split in ("train", "dev"):
        lines = (rotten_tomatoes["full"] / f"{split}.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
        (task_dir / f"{split}.tsv").write_text("".join(lines[:201]), encoding="utf-8")
    out = tmp_path / "study"
    env = dict(os.environ, OUT=str(out), DATA_BIN=str(english_sentencepiece_bin), MODES="baseline random",
               SEEDS="1 2", BASE_UPDATES="20", LAYERS="4", DIM="32", FFN="64", HEADS="2", T="32", B="8",
               VALIDATIONS="2", LOG_INTERVAL="5", VALID_STEPS="2", JOBS="2",
               FINETUNE_TASKS=f"{task_dir}=SST-2", FINETUNE_SEEDS="1 2",
               FINETUNE_RECIPE="--lr 1e-3 --batch-size 16 --epochs 2",
               TOKENDROP_VENV=str(Path(sys.executable).parents[1]))
    proc = subprocess.run(["bash", str(REPO / "examples" / "study.sh")], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "results.json").read_text())
    updates = {r["run"]: r["updates"] for r in summary["runs"]}
    gold = [line.split("\t")[1] for line in (task_dir / "dev.tsv").read_text().splitlines()[1:]]
    per_run = {}
    for run in ("baseline_seed1", "baseline_seed2", "random_seed1", "random_seed2"):
        scores = []
        for seed in (1, 2):
            tune = out / run / "finetune" / "rt" / f"seed{seed}"
            result = json.loads((tune / "metrics.json").read_text())
            # the run's final checkpoint (the one its last update wrote), one recipe for every run
            assert result["checkpoint"] == str(out / run / "checkpoint_last.pt")
            state = torch.load(result["checkpoint"], map_location="cpu", weights_only=False)
            assert state["optimizer_history"][-1]["num_updates"] == updates[run]
            assert result["task"] == "SST-2" and result["recipe"] == {
                "lr": 0.001, "batch_size": 16, "epochs": 2, "warmup_ratio": 0.06, "weight_decay": 0.1,
                "max_length": 32, "seed": seed}
            # the learning rate decays to 0 at the fine-tune's last update (25 = 2 epochs of 13 batches - 1)
            epoch_ends = logged((tune / "train.log").read_text(), "train")
            assert [r["train_num_updates"] for r in epoch_ends] == ["13", "26"] and epoch_ends[-1]["train_lr"] == "0"
            assert not (tune / "checkpoints").exists()
            predicted = (tune / "dev_predictions.txt").read_text().split()
            scores.append(accuracy_score(gold, predicted))
        per_run[run] = numpy.mean(scores)
    # the pretraining runs decay theirs to 0 at their own last update too
    assert all(logged((out / run / "train.log").read_text(), "train")[-1]["train_lr"] == "0" for run in per_run)
    base, drop = summary["downstream"]["rt"]["modes"]
    for row, runs_of in ((base, ["baseline_seed1", "baseline_seed2"]), (drop, ["random_seed1", "random_seed2"])):
        values = [per_run[r] for r in runs_of]
        assert row["score"]["mean"] == pytest.approx(numpy.mean(values))
        assert row["score"]["sd"] == pytest.approx(numpy.std(values, ddof=1))
    deltas = [per_run["random_seed1"] - per_run["baseline_seed1"], per_run["random_seed2"] - per_run["baseline_seed2"]]
    assert drop["paired"]["delta"]["mean"] == pytest.approx(numpy.mean(deltas))
    assert "downstream rt: SST-2 accuracy, 200 dev examples" in proc.stdout
    assert "== random_seed2 rt seed 2: {'accuracy': " in proc.stderr

"""MLPerf-style schedule: evaluation interval from samples, and stopping at a target mlm_acc."""
import json
import math
from fractions import Fraction

import pytest
import torch

from fairseq_tokendrop.training.mlperf_target import mlperf_eval_interval_samples

from conftest import logged, run_cli, train_flags


@pytest.mark.parametrize("batch", [8, 448, 1536, 4096, 65536])
def test_the_mlperf_interval_formula_matches_exact_rational_arithmetic(batch):
    # floor(0.05 * (230.23 * B + 3e6) / 25000) * 25000, computed without floating point
    exact = Fraction(5, 100) * (Fraction(23023, 100) * batch + 3_000_000) / 25_000
    assert mlperf_eval_interval_samples(batch) == math.floor(exact) * 25_000


@pytest.mark.slow
def test_mlperf_interval_becomes_fairseqs_validate_and_save_interval(data_bin, tmp_path):
    proc = run_cli("fairseq_cli.train", *train_flags(
        data_bin, tmp_path, "--max-update", "1", "--update-freq", "2", "--eval-interval-samples", "mlperf"))
    global_batch = 8 * 2  # --batch-size 8, --update-freq 2, one process
    updates = math.ceil(mlperf_eval_interval_samples(global_batch) / global_batch)
    assert f"validating and saving every {updates} updates" in proc.stderr + proc.stdout


@pytest.mark.slow
def test_stop_at_mlm_acc_stops_at_the_first_validation_that_reaches_it(data_bin, tmp_path):
    every = ["--eval-interval-samples", "64", "--token-drop", "0.5"]  # 8 updates at batch 8
    full = run_cli("fairseq_cli.train", *train_flags(data_bin, tmp_path / "full", "--max-update", "48", *every))
    history = [(int(r["valid_num_updates"]), float(r["valid_mlm_acc"])) for r in logged(full.stdout, "valid")]
    assert [u for u, _ in history][:6] == [8, 16, 24, 32, 40, 48]
    # aim at the best accuracy seen; the first validation that reached it is where a stop must happen
    # (the stopped run may go to 64 updates, so not stopping fails even when that is update 48)
    best = max(acc for _, acc in history)
    first_hit = next(u for u, acc in history if acc >= best)
    # the log rounds to 4 places and the stop compares the exact value: aim half a unit below
    target = best - 0.00005

    stopped = run_cli("fairseq_cli.train", *train_flags(
        data_bin, tmp_path / "stop", "--max-update", "64", "--stop-at-mlm-acc", str(target), *every))
    valid = logged(stopped.stdout, "valid")
    assert int(valid[-1]["valid_num_updates"]) == first_hit
    assert len(logged(stopped.stdout)) == first_hit  # no update trained after the target
    summary = json.loads((tmp_path / "stop" / "stop_at_mlm_acc.json").read_text())
    assert summary["update"] == first_hit and summary["mlm_acc"] >= target and summary["wall_s"] > 0

    last = torch.load(tmp_path / "stop" / "checkpoint_last.pt", weights_only=True)
    reference = torch.load(tmp_path / "full" / summary["checkpoint"].rsplit("/", 1)[1], weights_only=True)
    assert last["optimizer_history"][-1]["num_updates"] == first_hit
    for name, value in reference["model"].items():
        assert torch.equal(last["model"][name], value), name


@pytest.mark.slow
@pytest.mark.parametrize("bad,flag", [
    (["--stop-at-mlm-acc", "0.7", "--validate-interval-updates", "3", "--save-interval-updates", "2"],
     "--validate-interval-updates"),
    (["--stop-at-mlm-acc", "1.5"], "--stop-at-mlm-acc"),
    (["--eval-interval-samples", "64", "--save-interval-updates", "5"], "--save-interval-updates"),
    (["--eval-interval-samples", "often"], "--eval-interval-samples"),
])
def test_a_bad_schedule_is_one_clear_line(data_bin, tmp_path, bad, flag):
    proc = run_cli("fairseq_cli.train", *train_flags(data_bin, tmp_path, "--max-update", "1", *bad), check=False)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("fairseq_tokendrop: error:") and flag in last, proc.stderr[-2000:]

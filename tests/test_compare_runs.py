"""compare_runs on hand-written fairseq JSON logs, against answers worked out by hand; the MACs the
criterion logs; examples/study.sh at equal compute."""
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import torch

from fairseq_tokendrop.research import compare_runs
from fairseq_tokendrop.criterions.masked_lm_tokendrop import MaskedLmTokenDropConfig, MaskedLmTokenDropLoss
from fairseq_tokendrop.standalone import StandaloneTask

from conftest import REPO, build_tokendrop, logged, random_tokens, run_cli, tiny_dictionary, train_flags


def fairseq_line(kind, record):
    return f"2026-12-01 20:00:00 | INFO | {kind} | {json.dumps({k: str(v) for k, v in record.items()})}\n"


def write_run(path, inner, valid, epochs=()):
    """inner: (num_updates, mean MACs per update, wall); valid: (num_updates, mlm_acc, loss);
    epochs: end-of-epoch records (num_updates, mean MACs per update, wall), fairseq's train_ prefix."""
    path.mkdir(parents=True)
    lines = ["2026-12-01 20:00:00 | INFO | fairseq_cli.train | training on 1 devices\n"]
    for u, macs, wall in inner:
        lines.append(fairseq_line("train_inner", {"epoch": 1, "loss": 9.0, "macs": macs, "num_updates": u,
                                                   "wall": wall}))
    for u, acc, loss in valid:
        lines.append("2026-12-01 20:00:00 | INFO | fairseq_cli.train | begin validation on \"valid\" subset\n")
        lines.append(fairseq_line("valid", {"epoch": 1, "valid_loss": loss, "valid_mlm_acc": acc,
                                             "valid_num_updates": u}))
    for u, macs, wall in epochs:
        lines.append(fairseq_line("train", {"epoch": 1, "train_loss": 9.0, "train_macs": macs,
                                             "train_num_updates": u, "train_wall": wall}))
    (path / "train.log").write_text("".join(lines))
    return path


@pytest.fixture
def runs(tmp_path):
    # baseline_seed1: 100 MACs/update for 1-10, then only the epoch record: mean 150 over 20 updates,
    # so 3000 at update 20 and the off-grid validation at 15 sits at 2000 MACs, wall 30.
    # baseline_seed2: 100/update, 2000 in all. Baseline compute = (3000 + 2000) / 2 = 2500.
    # drop_seed1: 50/update for 60 updates (3000); drop_seed2: 50/update for 48 updates, logged every
    # 12 (2400: 4% short of 2500, so its last validation stands for 2500).
    return [
        write_run(tmp_path / "baseline_seed1", [(10, 100, 20)], [(10, 0.1, 9.0), (15, 0.2, 8.0), (20, 0.3, 7.0)],
                  epochs=[(20, 150, 40)]),
        write_run(tmp_path / "baseline_seed2", [(10, 100, 10), (20, 100, 20)], [(10, 0.1, 9.0), (20, 0.5, 6.0)]),
        write_run(tmp_path / "drop_seed1", [(u, 50, u / 2) for u in (10, 20, 30, 40, 50, 60)],
                  [(20, 0.2, 8.0), (40, 0.4, 7.0), (60, 0.5, 6.5)]),
        write_run(tmp_path / "drop_seed2", [(u, 50, u / 2) for u in (12, 24, 36, 48)],
                  [(24, 0.3, 7.5), (48, 0.6, 6.0)]),
    ]


@pytest.mark.slow
def test_table_numbers_match_the_hand_computation(runs, tmp_path, capsys):
    out = tmp_path / "out.json"
    assert compare_runs.main(["--runs", *map(str, runs), "--target", "0.3", "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["baseline"] == "baseline" and summary["baseline_train_macs"] == pytest.approx(2500)
    base, drop = summary["modes"]
    assert base["seeds"] == ["baseline_seed1", "baseline_seed2"] and drop["mode"] == "drop"
    assert base["train_macs"]["mean"] == pytest.approx(2500) and drop["train_macs"]["mean"] == pytest.approx(2700)
    assert drop["train_macs_vs_baseline"] == pytest.approx(2700 / 2500)
    # first validation >= 0.3: baseline at updates 20 / 20 (3000 and 2000 MACs, wall 40 and 20);
    # drop at 40 (2000 MACs, wall 20) and 24 (1200 MACs, wall 12)
    hit = base["to_target"]
    assert (hit["reached"], hit["of"]) == (2, 2)
    assert hit["macs"]["mean"] == pytest.approx(2500) and hit["macs"]["sd"] == pytest.approx(1000 / 2 ** 0.5)
    assert hit["wall_s"]["mean"] == pytest.approx(30) and hit["updates"]["sd"] == 0
    hit = drop["to_target"]
    assert hit["macs"]["mean"] == pytest.approx(1600) and hit["macs"]["sd"] == pytest.approx(800 / 2 ** 0.5)
    assert hit["updates"]["mean"] == pytest.approx(32) and hit["wall_s"]["mean"] == pytest.approx(16)
    # at 2500 MACs: baseline_seed1 halfway between 0.2 (2000) and 0.3 (3000); baseline_seed2 ends 20%
    # short (none); drop_seed1 halfway between 0.4 (2000) and 0.5 (3000); drop_seed2 its last, 0.6
    at = base["valid_mlm_acc_at_baseline_macs"]
    assert (at["n"], at["mean"]) == (1, pytest.approx(0.25))
    at = drop["valid_mlm_acc_at_baseline_macs"]
    assert at["n"] == 2 and at["mean"] == pytest.approx(0.525) and at["sd"] == pytest.approx(0.15 / 2 ** 0.5)
    assert base["final_valid_mlm_acc"]["mean"] == pytest.approx(0.4)
    assert drop["final_valid_mlm_acc"]["mean"] == pytest.approx(0.55)
    per_run = {r["run"]: r for r in summary["runs"]}
    assert per_run["baseline_seed1"]["curve"][1] == {"updates": 15, "macs": 2000, "wall": 30, "mlm_acc": 0.2,
                                                     "loss": 8.0}
    assert [per_run[n]["train_macs"] for n in ("drop_seed1", "drop_seed2")] == [3000, 2400]
    printed = capsys.readouterr().out
    assert "2.500e+03±7.071e+02" in printed and "0.5250±0.1061" in printed and "2/2" in printed


def test_curve_is_the_seed_mean_on_the_common_range(runs):
    baseline = [compare_runs.load_run(r) for r in runs[:2]]
    # seed 2 ends at 2000 MACs; the union of validation points inside [1000, 2000] is {1000, 2000}
    grid, means, sds = compare_runs.mean_curve(baseline, "mlm_acc")
    assert grid == [1000, 2000]
    assert means == pytest.approx([0.1, 0.35]) and sds == pytest.approx([0, 0.3 / 2 ** 0.5])


@pytest.mark.slow
def test_plot_is_a_png_of_the_stated_size(runs, tmp_path):
    from matplotlib.image import imread

    png = tmp_path / "curves.png"
    compare_runs.main(["--runs", *map(str, runs), "--plot", str(png)])
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    assert struct.unpack(">II", head[16:24]) == (1100, 420)
    pixels = imread(str(png))
    assert pixels.shape[:2] == (420, 1100) and pixels.std() > 0  # something is drawn


def test_a_directory_name_without_seed_suffix_is_its_own_mode():
    assert compare_runs.mode_of("importance_seed12") == "importance"
    assert compare_runs.mode_of("baseline") == "baseline" and compare_runs.mode_of("a_seedx") == "a_seedx"


@pytest.mark.slow
@pytest.mark.parametrize("edit,message", [
    (lambda text: text.replace('"macs"', '"other"'), "has no 'macs' (train with --criterion masked_lm_tokendrop"),
    (lambda text: text + fairseq_line("train_inner", {"macs": 1, "num_updates": 5, "wall": 1}),
     "num_updates goes back from 20 to 5"),
    (lambda text: text.replace("| valid |", "| other |"), "no valid JSON records"),
])
def test_bad_logs_are_one_line_naming_the_file(tmp_path, edit, message):
    run = write_run(tmp_path / "r", [(10, 100, 10), (20, 100, 20)], [(20, 0.5, 6.0)])
    log = run / "train.log"
    log.write_text(edit(log.read_text()))
    with pytest.raises(SystemExit) as error:
        compare_runs.main(["--runs", str(run)])
    assert str(error.value).startswith(f"fairseq_tokendrop: error: {log}") and message in str(error.value)


@pytest.mark.slow
def test_missing_run_directory_names_it(tmp_path):
    with pytest.raises(SystemExit, match=f"--runs {tmp_path / 'nope'}: no such run directory"):
        compare_runs.main(["--runs", str(tmp_path / "nope")])


def hand_layer(queries, keys, d=16, f=32):
    """Q and O projections on the queries, K and V on the keys, the FFN on the queries, QK^T and AV."""
    return 2 * queries * d * d + 2 * keys * d * d + 2 * queries * d * f + 2 * queries * keys * d


@pytest.mark.parametrize("num_updates,full_pass", [(5, False), (4, True)])
def test_criterion_logs_the_hand_counted_training_macs_of_the_batch(num_updates, full_pass):
    d = tiny_dictionary()
    model = build_tokendrop(d, token_drop=0.5)  # 6 layers, d 16, ffn 32: T 16 keeps 8
    crit = MaskedLmTokenDropLoss(MaskedLmTokenDropConfig(sctd_interval=4), StandaloneTask(d, 64))
    tokens = random_tokens(d, 3, 16, seed=5, pad_tail=(0, 4, 7))
    target = torch.full_like(tokens, d.pad())
    for b, pos in ((0, 3), (0, 7), (1, 2), (1, 9), (2, 5)):
        target[b, pos], tokens[b, pos] = tokens[b, pos], d.index("<mask>")
    sample = {"net_input": {"src_tokens": tokens}, "target": target, "ntokens": 30, "nsentences": 3}
    model.train()
    model.set_num_updates(num_updates)
    _, _, log = crit(model, sample)
    # layers 0-1 and 5 full, 2 cross (8 queries over 16), 3-4 on the 8 kept; padding rows count in full
    drop_encoder = 3 * hand_layer(16, 16) + hand_layer(8, 16) + 2 * hand_layer(8, 8)
    head = 5 * (16 * 16 + 16 * len(d))  # the dense layer and the vocabulary projection on 5 targets
    forward = 3 * drop_encoder + head + (3 * 6 * hand_layer(16, 16) + head if full_pass else 0)
    assert int(log["macs"]) == 3 * forward  # backward = two forwards
    model.eval()
    assert "macs" not in crit(model, sample)[2]


@pytest.mark.parametrize("num_updates,kept", [(0, 4), (3, 8), (6, 16)])
def test_criterion_logs_random_ltds_hand_counted_macs_and_the_scheduled_kept_length(num_updates, kept):
    d = tiny_dictionary()
    # 6 layers, d 16, ffn 32; layers 1 and 3 wrapped; kept = floor(u/5*12 + 4) down to a multiple of 4:
    # 4 at update 0, 11.2 -> 8 at update 3, 18.4 -> 16 = T at update 6 (nothing dropped)
    model = build_tokendrop(d, token_drop_strategy="random-ltd", random_ltd_layers="1,3",
                            token_keep_schedule="4,16,5,4")
    crit = MaskedLmTokenDropLoss(MaskedLmTokenDropConfig(), StandaloneTask(d, 64))
    tokens = random_tokens(d, 2, 16, seed=6, pad_tail=(0, 5))
    target = torch.full_like(tokens, d.pad())
    for b, pos in ((0, 3), (1, 2), (1, 6)):
        target[b, pos], tokens[b, pos] = tokens[b, pos], d.index("<mask>")
    sample = {"net_input": {"src_tokens": tokens}, "target": target, "ntokens": 27, "nsentences": 2}
    model.train()
    model.set_num_updates(num_updates)
    _, _, log = crit(model, sample)
    # 4 full layers and 2 wrapped ones of `kept` queries over the same `kept` tokens, per padded row
    encoder = 4 * hand_layer(16, 16) + 2 * hand_layer(kept, kept)
    head = 3 * (16 * 16 + 16 * len(d))
    assert int(log["macs"]) == 3 * (2 * encoder + head) and log["kept_len"] == kept


@pytest.mark.slow
def test_fairseq_log_windows_sum_to_the_per_update_macs(data_bin, tmp_path):
    """A run logged every 3 updates (7 updates, so the last ones only in the epoch records) against
    the same run logged every update."""
    totals = {}
    for interval in (1, 3):
        save = tmp_path / f"every{interval}"
        proc = run_cli("fairseq_cli.train", *train_flags(data_bin, save, "--max-update", "7", "--token-drop", "0.5", "--criterion", "masked_lm_tokendrop",
                                                         "--sctd-interval", "3", "--log-interval", str(interval),
                                                         "--validate-interval-updates", "2", "--no-save"))
        save.mkdir(exist_ok=True)
        (save / "train.log").write_text(proc.stdout + proc.stderr)
        totals[interval] = compare_runs.load_run(save)
    per_update = [float(r["macs"]) for r in logged((tmp_path / "every1" / "train.log").read_text())]
    assert len(per_update) == 7 and len(set(per_update)) > 2  # ScTD updates 3 and 6 cost more
    cumulative = [sum(per_update[:u]) for u in range(8)]
    windowed = totals[3]
    assert windowed.train_macs == pytest.approx(cumulative[7], rel=1e-5)  # the log keeps 6 digits
    # exact where the every-3 log pins the total (its windows and epoch ends), linear in updates between
    epoch_ends = [int(r["train_num_updates"]) for r in logged((tmp_path / "every3" / "train.log").read_text(), "train")]
    pinned = sorted({0, 3, 6, *epoch_ends})
    assert pinned[-1] == 7 and [v.updates for v in windowed.valid][:3] == [2, 4, 6]
    for v in windowed.valid:
        expected = numpy.interp(v.updates, pinned, [cumulative[u] for u in pinned])
        assert v.macs == pytest.approx(expected, rel=1e-5), v


@pytest.mark.slow
def test_study_script_gives_every_mode_the_baseline_compute(data_bin, tmp_path):
    out = tmp_path / "study"
    env = dict(os.environ, OUT=str(out), DATA_BIN=str(data_bin), MODES="baseline random random-ltd importance-schedule",
               SEEDS="1",
               BASE_UPDATES="20", LAYERS="4", DIM="32", FFN="64", HEADS="2", T="32", B="8",
               VALIDATIONS="2", LOG_INTERVAL="5", VALID_STEPS="2", JOBS="2", FINETUNE_TASKS="",
               TOKENDROP_VENV=str(Path(sys.executable).parents[1]))
    proc = subprocess.run(["bash", str(REPO / "examples" / "study.sh")], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {r["run"]: r for r in json.loads((out / "results.json").read_text())["runs"]}
    base, drop = runs["baseline_seed1"], runs["random_seed1"]
    # 4 layers, 16 of 32 tokens through layers 1-2: a step costs about 0.76 of a full one
    assert base["updates"] == 20 and 20 / 0.8 < drop["updates"] < 20 / 0.7
    assert drop["train_macs"] / base["train_macs"] == pytest.approx(1, abs=0.05)
    # random-LTD on the default schedule 16,32,20,2: its updates sum to the baseline's compute by their
    # logged MACs, each at its own kept length: 16 + 0.8 u rounded down to even, so the log windows of
    # 5 updates average 16, 16, 16, 18, 18 -> 16.8, then 20.8, 24.8, 28.8; 32 = T from update 21 on
    ltd = runs["random-ltd_seed1"]
    assert 20 < ltd["updates"] and ltd["train_macs"] / base["train_macs"] == pytest.approx(1, abs=0.05)
    kept = [float(r["kept_len"]) for r in logged((out / "random-ltd_seed1" / "train.log").read_text())]
    assert kept[:4] == [16.8, 20.8, 24.8, 28.8]
    # the token-dropping layout saves less (its layer 1 attends from the kept tokens to all): no more updates
    scheduled = runs["importance-schedule_seed1"]
    assert 20 < scheduled["updates"] <= ltd["updates"]
    assert scheduled["train_macs"] / base["train_macs"] == pytest.approx(1, abs=0.05)
    assert len(base["curve"]) >= 2 and (out / "curves.png").exists()
    assert "baseline_seed1" in proc.stderr and proc.stdout.startswith("mode")


def test_plot_without_matplotlib_is_skipped_in_one_line_and_the_numbers_are_kept(runs, tmp_path, monkeypatch,
                                                                                  capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what a venv without the research extra has
    png, out = tmp_path / "curves.png", tmp_path / "out.json"
    assert compare_runs.main(["--runs", *map(str, runs), "--plot", str(png), "--json", str(out)]) == 0
    assert not png.exists()
    assert [r["run"] for r in json.loads(out.read_text())["runs"]] == [r.name for r in runs]
    captured = capsys.readouterr()
    assert captured.out.startswith("mode")  # the table
    assert captured.err == (f"compare_runs: --plot {png} skipped: matplotlib is not installed "
                            "(pip install .[research])\n")

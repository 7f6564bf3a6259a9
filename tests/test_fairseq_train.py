"""Stock ``fairseq-train --user-dir fairseq_tokendrop`` end to end, on a corpus binarized by fairseq-preprocess."""

import pytest
import torch
from fairseq import checkpoint_utils

from fairseq_tokendrop import get_token_importance
from fairseq_tokendrop.checkpoints.scores_in_state_dict import METADATA_KEY

from conftest import logged, run_cli, train_flags

pytestmark = pytest.mark.slow  # starts processes: not in the fast tier (tests/run.sh --fast)


def saved_scores(path):
    return torch.load(path, weights_only=True)["model"]._metadata["encoder.token_importance"][METADATA_KEY]


@pytest.mark.parametrize("bad,flag", [
    (["--token-drop", "1.5"], "--token-drop"),
    (["--token-drop", "0.5", "--token-keep-k", "4"], "--token-keep-k"),
    (["--token-allow-list", "<s>,nosuchword"], "--token-allow-list"),
    (["--token-drop", "0.5", "--encoder-layers", "3"], "--encoder-layers"),
    (["--criterion", "masked_lm_tokendrop", "--sctd-interval", "-2"], "--sctd-interval"),
    (["--token-keep-schedule", "8,64,10,4"], "--token-keep-schedule 8,64,10,4: MAX 64 is longer than "
                                             "--tokens-per-sample 32"),
])
def test_a_bad_flag_is_one_clear_line_and_a_non_zero_exit(data_bin, tmp_path, bad, flag):
    proc = run_cli("fairseq_cli.train", *train_flags(data_bin, tmp_path, "--max-update", "1", *bad), check=False)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("fairseq_tokendrop: error:") and flag in last, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("extra", [
    ["--token-drop", "0.5"],  # no --criterion: the task picks masked_lm_tokendrop, as the seed command needs
    ["--token-keep-k", "16", "--criterion", "masked_lm_tokendrop", "--sctd-interval", "3"],
])
def test_training_lowers_the_loss_and_logs_its_metrics(data_bin, tmp_path, extra):
    tb = tmp_path / "tb"
    proc = run_cli("fairseq_cli.train", *train_flags(
        data_bin, tmp_path / "ck", "--max-update", "60", "--tensorboard-logdir", tb, *extra))
    train = logged(proc.stdout)
    losses = [float(r["loss"]) for r in train]
    assert len(losses) == 60
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.3, (first, last)  # bits per masked token; ~0.6 seen at lr 5e-3
    assert all(abs(float(r["kept_frac"]) - 0.5) < 0.05 for r in train)
    assert all(float(r["imp_mean"]) < 10.0 for r in train[5:])  # scores moved from their init
    if "--sctd-interval" in extra:
        assert sum(r["kl_local"] is not None for r in train) == 20  # updates 0, 3, ..., 57
    valid = logged(proc.stdout, "valid")[-1]
    assert float(valid["valid_kept_frac"]) == 1.0 and 0 < float(valid["valid_mlm_acc"]) <= 1

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(tb / "train_inner"))
    events.Reload()
    acc = {e.step: e.value for e in events.Scalars("mlm_acc")}
    assert acc[60] == pytest.approx(float(train[-1]["mlm_acc"]), abs=1e-4)


@pytest.mark.parametrize("extra", [
    ["--token-drop", "0.5"],  # vanilla token dropping: importance strategy, no ScTD
    ["--token-drop", "0.5", "--criterion", "masked_lm_tokendrop", "--sctd-interval", "3"],
    ["--token-drop", "0.5", "--token-drop-strategy", "random"],
    ["--token-keep-schedule", "8,32,6,4", "--token-drop-strategy", "random-ltd"],
], ids=["vanilla", "sctd", "random", "random-ltd-schedule"])
def test_resume_from_checkpoint_last_continues_exactly(data_bin, tmp_path, extra):
    def train(save_dir, updates):
        return run_cli("fairseq_cli.train", *train_flags(
            data_bin, save_dir, "--max-update", updates, "--disable-validation", *extra))

    straight = train(tmp_path / "straight", 10)
    train(tmp_path / "split", 5)
    half_scores = saved_scores(tmp_path / "split" / "checkpoint_last.pt")
    resumed = train(tmp_path / "split", 10)
    assert "Loaded checkpoint" in resumed.stdout + resumed.stderr
    assert [r["num_updates"] for r in logged(resumed.stdout)] == [str(n) for n in range(6, 11)]

    a = torch.load(tmp_path / "straight" / "checkpoint_last.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoint_last.pt", weights_only=True)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert torch.equal(saved_scores(tmp_path / "straight" / "checkpoint_last.pt"),
                       saved_scores(tmp_path / "split" / "checkpoint_last.pt"))
    assert not torch.equal(half_scores, saved_scores(tmp_path / "split" / "checkpoint_last.pt"))
    assert logged(straight.stdout)[-1]["loss"] == logged(resumed.stdout)[-1]["loss"]
    if "--token-keep-schedule" in extra:
        # update n runs at step n-1: floor((n-1)/6*24 + 8) = 8 + 4(n-1), a multiple of 4, up to T = 32
        kept = ["8", "12", "16", "20", "24", "28", "32", "32", "32", "32"]
        assert [r["kept_len"] for r in logged(straight.stdout)] == kept
        assert [r["kept_len"] for r in logged(resumed.stdout)] == kept[5:]
        assert [r["kept_frac"] for r in logged(straight.stdout)][-4:] == ["1"] * 4  # no dropping at T


def test_checkpoint_loads_into_stock_roberta_and_back_into_tokendrop(data_bin, tmp_path):
    run_cli("fairseq_cli.train", *train_flags(data_bin, tmp_path / "td", "--max-update", "4",
                                               "--token-drop", "0.5", "--disable-validation"))
    ckpt = tmp_path / "td" / "checkpoint_last.pt"
    # stock arch, stock task, stock criterion; --user-dir only for the weights_only allowlist
    stock = run_cli("fairseq_cli.train", *train_flags(
        data_bin, tmp_path / "stock", "--max-update", "2", "--restore-file", ckpt,
        "--reset-optimizer", "--reset-dataloader", "--reset-meters", "--reset-lr-scheduler",
        "--criterion", "masked_lm", arch="roberta_base", task="masked_lm"))
    assert f"Loaded checkpoint {ckpt}" in stock.stdout + stock.stderr

    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(ckpt)])
    assert type(models[0]).__name__ == "TokenDropRobertaModel"
    assert torch.equal(get_token_importance(models[0]), saved_scores(ckpt))


def test_training_exits_zero_after_a_validation_cut_short(data_bin, tmp_path):
    # --max-valid-steps abandons the validation iterator; its fairseq prefetch thread, still collating
    # batches when the process ended, made every such run abort (SIGABRT) after "done training".
    # Validating on the train split gives that thread more batches than its buffer holds.
    proc = run_cli("fairseq_cli.train", *train_flags(
        data_bin, tmp_path / "ck", "--max-update", "2", "--valid-subset", "train", "--max-valid-steps", "1",
        "--batch-size-valid", "16", "--no-save"), check=False)
    output = proc.stdout + proc.stderr
    assert 'begin validation on "train" subset' in output and "done training" in output
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "terminate called" not in proc.stderr

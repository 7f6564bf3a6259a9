"""The recipes in examples/ run as written (shrunk by their EXTRA_ARGS hook, on CPU), and a recipe that
cannot reach its goal, or the venv script on a Python it cannot serve, refuses in one line before it
spends anything."""
import json
import re
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO, TINY_MODEL_FLAGS, write_tiny_corpus

pytestmark = pytest.mark.slow  # starts processes: not in the fast tier (tests/run.sh --fast)

SHRINK = TINY_MODEL_FLAGS + ["--max-update", "2", "--batch-size", "4", "--num-workers", "0",
                             "--log-interval", "1", "--disable-validation"]


@pytest.mark.parametrize("script,extra_env", [
    ("sctd_roberta_large.sh", {}),
    ("tokendrop_bert_base_tf.sh", {"PER_GPU": "4", "NGPU": "1",
                                   "EXTRA_ARGS_PREFIX": "--token-keep-k 16 --update-freq 1"}),
])
def test_recipe_runs(data_bin, tmp_path, script, extra_env):
    prefix = extra_env.pop("EXTRA_ARGS_PREFIX", "")
    env = dict(os.environ, DATA_DIR=str(data_bin), SAVE_DIR=str(tmp_path), FP16="",
               EXTRA_ARGS=f"{prefix} {' '.join(SHRINK)}",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"], **extra_env)
    proc = subprocess.run(["bash", str(REPO / "examples" / script)], env=env, capture_output=True, text=True)
    log = (tmp_path / "train.log").read_text()
    assert proc.returncode == 0, log[-3000:]
    records = [json.loads(line.split("| train_inner | ", 1)[1]) for line in log.splitlines()
               if "| train_inner | " in line]
    assert [r["num_updates"] for r in records] == ["1", "2"], log[-3000:]
    # padding is dropped first, so slightly more than half of the real tokens stay
    assert all(0.5 <= float(r["kept_frac"]) < 0.7 for r in records)
    assert (tmp_path / "checkpoint_last.pt").exists()


@pytest.mark.parametrize("packing", ["roberta", "bert"])
def test_text_to_target_recipe_stops_at_the_first_validation_reaching_the_target(tmp_path, packing):
    write_tiny_corpus(tmp_path / "train.txt", 300, seed=1)
    write_tiny_corpus(tmp_path / "valid.txt", 40, seed=2)
    target = 0.35  # the most frequent piece alone gives ~0.31 here; this needs some learning
    env = dict(os.environ, TRAIN_TXT=str(tmp_path / "train.txt"), VALID_TXT=str(tmp_path / "valid.txt"),
               OUT=str(tmp_path / "out"), TARGET=str(target), PACKING=packing, TOKENS="64", VOCAB="300",
               PER_GPU="8", EVAL_SAMPLES="32", PYTHON=sys.executable,
               EXTRA_ARGS=" ".join(TINY_MODEL_FLAGS[:-4] + ["--max-update", "60", "--warmup-updates", "5",
                                                             "--lr", "5e-3", "--num-workers", "0"]),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    proc = subprocess.run(["bash", str(REPO / "examples" / "pretrain_text_to_target.sh")], env=env,
                          capture_output=True, text=True)
    save_dir = tmp_path / "out" / "checkpoints"
    log = (save_dir / "train.log").read_text()
    assert proc.returncode == 0, proc.stderr[-2000:] + log[-3000:]
    valid = [json.loads(line.split("| valid | ", 1)[1]) for line in log.splitlines() if "| valid | " in line]
    updates = [int(r["valid_num_updates"]) for r in valid]
    # every 32 samples at batch 8, plus fairseq's end-of-epoch validations
    assert set(range(4, updates[-1] + 1, 4)) <= set(updates), updates
    # the logged accuracy is rounded to 4 places; the stop compares the exact mean
    hits = [i for i, r in enumerate(valid) if float(r["valid_mlm_acc"]) >= target + 1e-4]
    assert hits and hits[0] >= len(valid) - 1, [r["valid_mlm_acc"] for r in valid]
    summary = json.loads((save_dir / "stop_at_mlm_acc.json").read_text())
    assert summary["update"] == int(valid[-1]["valid_num_updates"]) and summary["mlm_acc"] >= target


def hf_masked_lm_counts(model, examples):
    """(correct, slots) of transformers' own BERT on pre-masked examples, segments included."""
    correct = slots = 0
    with torch.no_grad():
        for ex in examples:
            n, real = int(ex["input_mask"].sum()), ex["masked_lm_weights"] == 1
            ids = torch.from_numpy(ex["input_ids"][:n])[None]
            segments = torch.from_numpy(ex["segment_ids"][:n])[None]
            logits = model(input_ids=ids, token_type_ids=segments).logits[0]
            positions = torch.from_numpy(ex["masked_lm_positions"][real])
            labels = torch.from_numpy(ex["masked_lm_ids"][real])
            correct += int((logits[positions].argmax(-1) == labels).sum())
            slots += len(labels)
    return correct, slots


def test_mlperf_recipe_goes_from_tfrecords_and_an_hf_bert_to_the_target(tmp_path):
    import hashlib
    from premasked_fixtures import N_WORDS, make_examples, vocab_tokens, write_tfrecord, write_vocab

    mlperf = tmp_path / "mlperf"
    mlperf.mkdir()
    tokens = vocab_tokens()
    files = [write_vocab(mlperf / "vocab.txt", tokens),
             write_tfrecord(mlperf / "part-00000", make_examples(60, seed=1)),
             write_tfrecord(mlperf / "part-00001", make_examples(60, seed=2)),
             write_tfrecord(mlperf / "eval_10k", make_examples(24, seed=3))]
    eval_examples = make_examples(24, seed=3)
    import transformers
    (mlperf / "checksums.md").write_text("".join(
        f"{f.name} {f.stat().st_size} {hashlib.md5(f.read_bytes()).hexdigest()}\n" for f in files))
    config = transformers.BertConfig(vocab_size=len(tokens), hidden_size=32, num_hidden_layers=4,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=32)
    torch.manual_seed(0)
    bert = transformers.BertForMaskedLM(config).eval()
    with torch.no_grad():  # predictions among the data's words, so step 0 gets some slots right
        bert.cls.predictions.bias.fill_(-10.0)[104:104 + N_WORDS + 2] = 0.0
    bert.save_pretrained(str(tmp_path / "hf"))
    write_vocab(tmp_path / "hf" / "vocab.txt", tokens)

    target = 0.1  # the most frequent word alone scores ~0.2 on this Zipf data
    env = dict(os.environ, MLPERF_DIR=str(mlperf), OUT=str(tmp_path / "out"), INIT_HF=str(tmp_path / "hf"),
               TARGET=str(target), EVAL_SAMPLES="32", TOKENS="32", KEEP="16", PER_GPU="8", BATCH="8", WORKERS="2",
               ARCH="tokendrop_roberta_base", PYTHON=sys.executable,
               # LAMB steps each weight by lr times its norm: MLPerf's lr 0.0029, made for BERT-large at batch
               # 8192, would move this tiny model too little in 40 updates
               EXTRA_ARGS=" ".join(TINY_MODEL_FLAGS[:-4] + ["--max-update", "40", "--lr", "0.1", "--num-workers", "0"]),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    proc = subprocess.run(["bash", str(REPO / "examples" / "mlperf_bert_to_target.sh")], env=env,
                          capture_output=True, text=True)
    save_dir = tmp_path / "out" / "checkpoints"
    log = (save_dir / "train.log").read_text() if (save_dir / "train.log").exists() else ""
    assert proc.returncode == 0, proc.stderr[-3000:] + log[-3000:]
    assert (tmp_path / "out" / ".checksums-ok").exists()
    # MLPerf's step-0 check: the imported model before any update, on the eval set, segments included,
    # counts what transformers' own BERT counts
    step0 = (tmp_path / "out" / "step0_accuracy.txt").read_text()
    correct, slots = hf_masked_lm_counts(bert, eval_examples)
    assert 0 < correct < slots and f"({correct} of {slots} masked slots correct)" in step0, (correct, slots, step0)
    assert "--num-segment 2" in (tmp_path / "out" / "init" / "flags.txt").read_text()
    assert "loading pretrained model from" in log  # started from the imported BERT
    assert "--optimizer lamb: " in log  # MLPerf's optimizer, with or without apex
    valid = [json.loads(line.split("| valid | ", 1)[1]) for line in log.splitlines() if "| valid | " in line]
    hits = [i for i, r in enumerate(valid) if float(r["valid_mlm_acc"]) >= target + 1e-4]
    assert hits and hits[0] == len(valid) - 1
    summary = json.loads((save_dir / "stop_at_mlm_acc.json").read_text())
    assert summary["update"] == int(valid[-1]["valid_num_updates"])
    # the eval script's full-model accuracy on eval_10k is the validation that triggered the stop
    printed = float(re.findall(r"masked_lm_accuracy ([0-9.]+)", proc.stdout)[-1])  # the first is step 0's
    assert printed == pytest.approx(summary["mlm_acc"], abs=1e-6)


@pytest.mark.parametrize("env,named", [
    ({}, "INIT_TF"),  # MLPerf's schedule continues a checkpoint
    ({"FROM_SCRATCH": "1"}, "MAX_UPDATES"),  # from scratch, MLPerf's 600 updates are not a schedule
    ({"INIT_TF": "ckpt", "INIT_HF": "hf"}, "INIT_HF"),
])
def test_mlperf_recipe_refuses_before_anything_runs(tmp_path, env, named):
    mlperf = tmp_path / "mlperf"
    mlperf.mkdir()
    (mlperf / "checksums.md").write_text("part-00000 1 00000000000000000000000000000000\n")  # never read
    base = {k: v for k, v in os.environ.items() if k not in ("INIT_TF", "INIT_HF", "FROM_SCRATCH", "MAX_UPDATES")}
    proc = subprocess.run(["bash", str(REPO / "examples" / "mlperf_bert_to_target.sh")], capture_output=True,
                          text=True, env=dict(base, MLPERF_DIR=str(mlperf), OUT=str(tmp_path / "out"), **env))
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("mlperf_bert_to_target.sh: error: ") and named in line
    assert not (tmp_path / "out").exists()  # nothing verified, converted, imported or trained


def fake_python(bin_dir, name, version):
    """An executable NAME that answers the version query as Python VERSION and fails on anything else."""
    script = bin_dir / name
    script.write_text(f'#!/bin/sh\nif [ "$1" = -c ]; then echo {version}; exit 0; fi\n'
                      f'echo "{name} ran: $*" >&2; exit 3\n')
    script.chmod(0o755)


@pytest.mark.parametrize("pythons,python_env,expected", [
    # python3 is 3.13 and no 3.11/3.12 is on PATH: refused before any download
    ({"python3": "3.13"}, None, "no Python 3.11 or 3.12 on PATH (python3 is 3.13)"),
    ({"python3": "3.12"}, "python3.10", "PYTHON=python3.10 is not a Python that runs"),
    ({"python3": "3.12", "python3.10": "3.10"}, "python3.10", "PYTHON=python3.10 is Python 3.10"),
    # python3 is 3.10, python3.11 is found after it and builds the venv (the fake stops there)
    ({"python3": "3.10", "python3.11": "3.11"}, None, "python3.11 ran: -m venv"),
])
def test_setup_env_looks_for_a_supported_python_and_refuses_before_any_download(tmp_path, pythons, python_env,
                                                                               expected):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, version in pythons.items():
        fake_python(bin_dir, name, version)
    for tool in ("cat", "sha256sum", "cut", "dirname"):  # what the script runs before it picks a Python
        (bin_dir / tool).symlink_to(shutil.which(tool))
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "TOKENDROP_VENV": str(tmp_path / "venv")}
    if python_env:
        env["PYTHON"] = python_env
    proc = subprocess.run(["/bin/bash", str(REPO / "scripts" / "setup_env.sh")], capture_output=True, text=True,
                          env=env)
    assert proc.returncode != 0 and expected in proc.stderr, proc.stderr
    assert not (tmp_path / "venv").exists()
    if "ran: -m venv" not in expected:
        (line,) = proc.stderr.splitlines()
        assert line.startswith("setup_env: error: ") and "3.11 or 3.12" in line


def test_study_refuses_a_corpus_package_the_venv_lacks_before_any_run(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path / "study"), CORPUS_PACKAGES="numpy no_such_package_here",
               TOKENDROP_VENV=str(Path(sys.executable).parents[1]))
    proc = subprocess.run(["bash", str(REPO / "examples" / "study.sh")], env=env, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("study: error: CORPUS_PACKAGES names no_such_package_here")
    assert not (tmp_path / "study" / "corpus").exists() and not list((tmp_path / "study").glob("*_seed*"))

"""The fine-tuning recipes of examples/ run as written on a generated two-class task (tiny, CPU)."""
import json
import os
import random
import subprocess
import sys

import pytest
import torch


from conftest import REPO, TINY_MODEL_FLAGS, USER_DIR

pytestmark = pytest.mark.slow  # starts processes: not in the fast tier (tests/run.sh --fast)

# The pretraining dims without --tokens-per-sample, which sentence_prediction does not take.
_tps = TINY_MODEL_FLAGS.index("--tokens-per-sample")
ARCH_ARGS = " ".join(["--arch", "roberta_base"] + TINY_MODEL_FLAGS[:_tps] + TINY_MODEL_FLAGS[_tps + 2:])


def two_class_rows(n, seed):
    """Class 'a' uses words w0-w24, class 'b' words w25-w49: learnable from the words alone."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice("ab")
        base = 0 if label == "a" else 25
        rows.append((" ".join(f"w{base + rng.randrange(25)}" for _ in range(rng.randint(4, 10))), label))
    return rows


@pytest.fixture(scope="module")
def run(pretrained):
    return pretrained


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("glue_like")
    for split, n, seed in (("train", 192, 1), ("dev", 64, 2)):
        rows = two_class_rows(n, seed)
        (root / f"{split}.input0").write_text("".join(text + "\n" for text, _ in rows))
        (root / f"{split}.label").write_text("".join(label + "\n" for _, label in rows))
        (root / f"{split}.tsv").write_text("".join(f"{text}\t{label}\n" for text, label in rows))
    return root


def records(log, kind):
    return [json.loads(line.split(f"| {kind} | ", 1)[1]) for line in log.splitlines() if f"| {kind} | " in line]


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory):
    """One binarized task for both fairseq runs: the second finds the recipe's stamp and reuses it."""
    return tmp_path_factory.mktemp("glue_like_bin")


def run_glue_recipe(task_dir, bin_dir, out, checkpoint, updates, **env_overrides):
    """examples/finetune_glue_fairseq.sh as written, shrunk through its variables; returns its log."""
    env = dict(os.environ, TASK_DIR=str(task_dir), CHECKPOINT=str(checkpoint), SAVE_DIR=str(out / "ft"),
               BIN_DIR=str(bin_dir), ARCH_ARGS=ARCH_ARGS, FP16="", LR="5e-3", TOTAL_NUM_UPDATES=str(updates),
               WARMUP_UPDATES="2", MAX_EPOCH="2", WORKERS="1",
               EXTRA_ARGS=f"--num-workers 0 --log-interval 1 --save-interval-updates 1 --no-epoch-checkpoints "
                          f"--seed 1 --max-update {updates}",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"], **env_overrides)
    proc = subprocess.run(["bash", str(REPO / "examples" / "finetune_glue_fairseq.sh")], env=env,
                          capture_output=True, text=True)
    log = (out / "ft" / "train.log").read_text() if (out / "ft" / "train.log").exists() else ""
    assert proc.returncode == 0, proc.stderr[-3000:] + log[-3000:]
    assert f"Loaded checkpoint {checkpoint}" in log
    # Warmup starts at lr 0, so the checkpoint after update 1 holds the weights the run started from.
    pretrained_weights = torch.load(checkpoint, weights_only=True)["model"]
    start = torch.load(out / "ft" / "checkpoint_1_1.pt", weights_only=True)["model"]
    assert {k for k in start if not k.startswith("classification_heads.")} == set(pretrained_weights)
    assert all(torch.equal(start[k], pretrained_weights[k]) for k in pretrained_weights)
    assert len(records(log, "train_inner")) == updates
    return log


def test_fairseq_glue_recipe_from_an_export_starts_from_its_encoder_and_learns(run, task_dir, bin_dir, tmp_path):
    log = run_glue_recipe(task_dir, bin_dir, tmp_path, run["fairseq_export"] / "model.pt", updates=24)
    losses = [float(r["loss"]) for r in records(log, "train_inner")]  # bits; chance is 1
    assert sum(losses[-6:]) / 6 < sum(losses[:6]) / 6 - 0.3, losses
    assert float(records(log, "valid")[-1]["valid_accuracy"]) >= 80.0  # percent; chance is 50 (100 seen)


def test_fairseq_glue_recipe_from_a_raw_tokendrop_checkpoint_loads_into_stock_roberta(run, task_dir, bin_dir,
                                                                                       tmp_path):
    # Stock --arch roberta_base; the plugin is there only to unpickle the checkpoint's argparse.Namespace.
    log = run_glue_recipe(task_dir, bin_dir, tmp_path, run["checkpoint"], updates=2,
                          USER_DIR_ARGS=f"--user-dir {USER_DIR}", DICT=str(run["data"] / "dict.txt"),
                          SPM=str(run["data"] / "spm.model"))
    assert "fairseq_cli.train | model: RobertaModel\n" in log


def test_hf_recipe_learns_and_saves_a_model_transformers_reloads(run, task_dir, tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "finetune_hf.py"), "--model", str(run["hf_export"]),
                           "--train", str(task_dir / "train.tsv"), "--dev", str(task_dir / "dev.tsv"),
                           "--out", str(tmp_path / "ft"), "--epochs", "3", "--lr", "3e-3"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    epochs = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"] - 0.2  # nats; chance is 0.69
    assert epochs[-1]["dev_accuracy"] >= 0.8

    # Independently: reload with transformers, encode with fairseq's own dictionary, recount the accuracy.
    from fairseq.data import Dictionary
    import sentencepiece

    import transformers
    model = transformers.RobertaForSequenceClassification.from_pretrained(str(tmp_path / "ft")).eval()
    dictionary = Dictionary.load(str(run["data"] / "dict.txt"))
    dictionary.add_symbol("<mask>")
    sp = sentencepiece.SentencePieceProcessor(model_file=str(run["data"] / "spm.model"))
    correct = 0
    for line in (task_dir / "dev.tsv").read_text().splitlines():
        text, label = line.split("\t")
        ids = [0] + [dictionary.index(p) for p in sp.encode(text, out_type=str)] + [2]
        with torch.no_grad():
            predicted = model(input_ids=torch.tensor([ids])).logits.argmax(-1).item()
        correct += model.config.id2label[predicted] == label
    assert correct / 64 == pytest.approx(epochs[-1]["dev_accuracy"])

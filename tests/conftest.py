"""Shared builders: tiny models made in-process, and a tiny data-bin made by fairseq-preprocess."""
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fairseq import checkpoint_utils, options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.trainer import Trainer

import fairseq_tokendrop  # noqa: F401  (registers the plugin)
from fairseq_tokendrop.research.structured_corpus import write_structured_corpus
from fairseq_tokendrop.standalone import build_model, made_up_dictionary

REPO = Path(__file__).resolve().parents[1]
USER_DIR = str(REPO / "fairseq_tokendrop")


@pytest.fixture(autouse=True)
def fairseqs_own_checkpoint_writes():
    """A test that trains in this process has the task install the plugin's checkpoint writes into
    ``fairseq.checkpoint_utils`` (``checkpoints/fairseq_saves.py``, once per process, as in fairseq-train);
    the next test gets fairseq's own names back."""
    saved = checkpoint_utils.torch_persistent_save, checkpoint_utils.PathManager
    yield
    checkpoint_utils.torch_persistent_save, checkpoint_utils.PathManager = saved


def tiny_dictionary():
    return made_up_dictionary(45)


TINY_DIMS = dict(encoder_layers=6, encoder_embed_dim=16, encoder_ffn_embed_dim=32, encoder_attention_heads=2,
                 max_positions=64, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)


def build_tokendrop(dictionary=None, seed=0, **overrides):
    torch.manual_seed(seed)
    return build_model("tokendrop_roberta_base", dictionary or tiny_dictionary(), **{**TINY_DIMS, **overrides})


def build_stock_roberta(dictionary, **overrides):
    return build_model("roberta_base", dictionary, **{**TINY_DIMS, **overrides})


def random_tokens(dictionary, batch, length, seed=0, pad_tail=()):
    """[B, T] ids: <s> first, </s> last real token, words between; row b padded by pad_tail[b]."""
    g = torch.Generator().manual_seed(seed)
    words = torch.randint(dictionary.nspecial, len(dictionary) - 1, (batch, length), generator=g)
    words[:, 0] = dictionary.bos()
    for b in range(batch):
        n_pad = pad_tail[b] if b < len(pad_tail) else 0
        words[b, length - n_pad - 1] = dictionary.eos()
        if n_pad:
            words[b, length - n_pad:] = dictionary.pad()
    return words


def run_cli(module, *args, cwd=REPO, check=True):
    """Run a fairseq CLI (fairseq_cli.train, ...) in a fresh Python, as a user would."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def write_tiny_corpus(path, n_lines, seed):
    """The structured corpus at the suite's size: 50 words, lines of 8 to 30."""
    write_structured_corpus(path, n_lines, seed, vocab=50, max_words=30)


@pytest.fixture(scope="session")
def data_bin(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    write_tiny_corpus(root / "train.txt", 600, seed=1)
    write_tiny_corpus(root / "valid.txt", 60, seed=2)
    run_cli("fairseq_cli.preprocess", "--only-source", "--trainpref", root / "train.txt",
            "--validpref", root / "valid.txt", "--destdir", root / "bin", "--workers", "1")
    return root / "bin"


TINY_MODEL_FLAGS = [
    "--encoder-layers", "4", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
    "--encoder-attention-heads", "2", "--tokens-per-sample", "32", "--max-positions", "32",
]


def train_flags(data_bin, save_dir, *extra, arch="tokendrop_roberta_base", task="masked_lm_tokendrop"):
    return [
        data_bin, "--user-dir", USER_DIR, "--task", task, "--arch", arch, *TINY_MODEL_FLAGS,
        "--batch-size", "8", "--optimizer", "adam", "--lr", "5e-3", "--seed", "3",
        "--save-dir", save_dir, "--log-format", "json", "--log-interval", "1", "--no-progress-bar",
        "--num-workers", "0", "--no-epoch-checkpoints", *extra,
    ]


def fairseq_trainer(data_bin, save_dir, *extra, **kwargs):
    """fairseq's own Trainer in this process, built from fairseq's own parsing of ``train_flags`` on CPU,
    and the first epoch's batches in order."""
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [str(a) for a in train_flags(data_bin, save_dir, "--cpu", *extra,
                                                                             **kwargs)])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("train")
    model, criterion = task.build_model(cfg.model), task.build_criterion(cfg.criterion)
    trainer = Trainer(cfg, task, model, criterion)
    batches = list(trainer.get_train_iterator(epoch=1).next_epoch_itr(shuffle=False))
    return trainer, batches


def logged(stdout, kind="train_inner"):
    """The records of one kind (train_inner, valid, ...) that fairseq's --log-format json printed, in order."""
    records = []
    for line in stdout.splitlines():
        if f"| {kind} |" in line:
            records.append(json.loads(line.split(f"| {kind} | ", 1)[1]))
    return records


def load_script(name):
    """The module behind scripts/NAME.py (fairseq_tokendrop.commands.NAME or .research.NAME), to call its main(argv)."""
    room = "research" if (REPO / "fairseq_tokendrop" / "research" / f"{name}.py").exists() else "commands"
    return importlib.import_module(f"fairseq_tokendrop.{room}.{name}")


# session fixtures shared by several test files: pre-masked TFRecord/HDF5 data, a tiny
# pretraining run with its exports, and the fine-tuning task with models pretrained on its English
from premasked_fixtures import premasked, trained  # noqa: E402,F401
from pretrained_run import pretrained  # noqa: E402,F401
from english_pretrained import (english_sentencepiece, english_sentencepiece_bin, english_wordpiece,  # noqa: E402,F401
                               rotten_tomatoes)

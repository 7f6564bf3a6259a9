"""Where fairseq users go in their first hour: the arch named after the model, the criterion the task picks
(with its flags), refusals of setups that would silently freeze importance, every --sample-break-mode, and
fairseq-hydra-train (bf16 too).
"""
import argparse
import json
import os
import subprocess

import numpy as np

import pytest
import torch
from fairseq import options, tasks
from fairseq.dataclass.initialize import add_defaults, hydra_init
from fairseq.models import ARCH_CONFIG_REGISTRY
from fairseq.trainer import Trainer
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from fairseq_tokendrop.errors import TokendropError
from fairseq_tokendrop.tasks.masked_lm_tokendrop import MaskedLMTokenDropConfig, MaskedLMTokenDropTask

from conftest import REPO, USER_DIR, run_cli, train_flags
from test_nonfinite_importance import assert_step

CONFIG_DIR = REPO / "examples" / "config" / "pretraining"


def parse(*argv):
    return options.parse_args_and_arch(options.get_training_parser(), [str(a) for a in argv])


def test_task_picks_its_criterion_with_its_flags_and_the_arch_named_after_the_model():
    args = parse("data", "--task", "masked_lm_tokendrop", "--arch", "tokendrop_roberta", "--sctd-interval", "10")
    assert (args.criterion, args.sctd_interval) == ("masked_lm_tokendrop", 10)
    explicit = parse("data", "--task", "masked_lm_tokendrop", "--arch", "tokendrop_roberta",
                     "--criterion", "masked_lm_tokendrop", "--sctd-interval", "7")
    assert (explicit.criterion, explicit.sctd_interval) == ("masked_lm_tokendrop", 7)
    stock = argparse.Namespace()
    ARCH_CONFIG_REGISTRY["roberta"](stock)  # stock fairseq's arch named after its model
    for name, value in vars(stock).items():
        assert getattr(args, name) == value, name


def build(data_bin, tmp_path, *extra, task="masked_lm_tokendrop"):
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    cfg = convert_namespace_to_omegaconf(parse(*train_flags(data_bin, tmp_path, "--cpu", *extra, task=task)))
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    return task.build_criterion(cfg.criterion), model


@pytest.mark.slow
@pytest.mark.parametrize("task, criterion, refused", [
    ("masked_lm_tokendrop", "masked_lm", "--criterion masked_lm never updates token importance"),
    ("masked_lm", "masked_lm_tokendrop", "--task masked_lm never updates token importance"),
    ("masked_lm", "masked_lm", "--task masked_lm never updates token importance"),
])
def test_importance_dropping_that_nothing_would_feed_is_refused_at_startup(data_bin, tmp_path, task, criterion,
                                                                          refused):
    with pytest.raises(TokendropError, match=refused):
        build(data_bin, tmp_path, "--token-drop", "0.5", "--criterion", criterion, task=task)
    # the same setups are fine when nothing depends on the scores
    build(data_bin, tmp_path, "--token-drop", "0.5", "--token-drop-strategy", "random", "--criterion", criterion,
          task=task)
    build(data_bin, tmp_path, "--criterion", criterion, task=task)


@pytest.mark.slow
def test_a_stock_criterion_is_refused_in_one_line_by_fairseq_train(data_bin, tmp_path):
    proc = run_cli("fairseq_cli.train", *train_flags(data_bin, tmp_path, "--cpu", "--token-drop", "0.5",
                                                     "--criterion", "masked_lm", "--max-update", "1"), check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "fairseq_tokendrop: error: --criterion masked_lm never updates token importance")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["none", "complete", "complete_doc", "eos"])  # every mode masked_lm offers
def test_every_sample_break_mode_serves_the_corpus(data_bin, mode):
    """Each mode serves blocks of at most --tokens-per-sample tokens that hold the corpus (fairseq-preprocess
    adds </s> to each line; complete_doc leaves out the empty lines between documents), and eos one line
    per sample. eos runs through fairseq's TokenBlockDataset, which reads np.compat.long: gone in numpy 2."""
    lines = (data_bin.parent / "train.txt").read_text().splitlines()
    task = MaskedLMTokenDropTask.setup_task(MaskedLMTokenDropConfig(data=str(data_bin), tokens_per_sample=32,
                                                                    sample_break_mode=mode, seed=1))
    task.load_dataset("train")
    dataset = task.datasets["train"]
    sizes = np.array([dataset.num_tokens(i) for i in range(len(dataset))])  # each with its <s>
    served = [len(line.split()) + 1 for line in lines if mode != "complete_doc" or line.strip()]
    assert sizes.max() <= 32 and int((sizes - 1).sum()) == sum(served)
    if mode == "eos":
        assert sorted(sizes - 1) == sorted(served)


def hydra_records(stdout, kind):
    marker = f"][{kind}][INFO] - "
    return [json.loads(line.split(marker, 1)[1]) for line in stdout.splitlines() if marker in line]


@pytest.mark.slow
def test_tiny_hydra_config_runs_from_another_directory_with_plain_overrides(data_bin, tmp_path):
    save = tmp_path / "ckpt"
    proc = run_cli("fairseq_cli.hydra_train", "--config-dir", CONFIG_DIR, "--config-name", "tiny_cpu",
                   f"task.data={data_bin}", f"checkpoint.save_dir={save}", "model.token_drop=0.25",
                   "criterion.sctd_interval=2", "task.stop_at_mlm_acc=0.99", "optimization.max_update=4",
                   "model.checkpoint_activations=true", cwd=tmp_path)
    # fairseq's name for it, as on the command line (the model's own log line: the layers are wrapped)
    assert "activation checkpointing: 4 layers recomputed in the backward" in proc.stdout + proc.stderr
    train = hydra_records(proc.stdout + proc.stderr, "train_inner")
    assert len(train) == 4
    # ScTD every 2 updates: fairseq's update_num is 0, 1, 2, 3 in the four train_steps
    assert [r["kl_local"] is not None for r in train] == [True, False, True, False]
    state = torch.load(save / "checkpoint_last.pt", weights_only=True)
    cfg = state["cfg"]
    assert (cfg["model"]["_name"], cfg["model"]["token_drop"]) == ("tokendrop_roberta", 0.25)
    assert (cfg["criterion"]["_name"], cfg["criterion"]["sctd_interval"]) == ("masked_lm_tokendrop", 2)
    assert cfg["task"]["stop_at_mlm_acc"] == 0.99
    assert os.path.realpath(cfg["common"]["user_dir"]) == USER_DIR  # found from the config's own directory
    scores = next(m["token_importance"] for m in state["model"]._metadata.values() if "token_importance" in m)
    assert (scores[5:] != 10.0).sum() >= 5  # the importance update ran: nothing froze


def hydra_recipe_cfg(name, data_bin, *overrides):
    """A config of examples/config/pretraining as fairseq-hydra-train composes it, in-process.

    version_base 1.1: the hydra API fairseq itself calls (convert_namespace_to_omegaconf) is 1.1-era,
    and a newer version base, once set, holds for the whole process.
    """
    hydra_init(name)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.1"):
        cfg = compose(name, overrides=[f"task.data={data_bin}", f"common.user_dir={USER_DIR}", *overrides])
    add_defaults(cfg)
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    OmegaConf.set_struct(cfg, True)
    return cfg


@pytest.mark.slow
def test_bf16_through_hydra_runs_the_model_in_bf16_and_keeps_fp32_scores(data_bin, tmp_path):
    cfg = hydra_recipe_cfg("tiny_cpu", data_bin, f"checkpoint.save_dir={tmp_path}", "common.bf16=true",
                           "common.tpu=false", "model.dropout=0", "model.attention_dropout=0",
                           "model.token_importance_beta=0.9")  # the BETA assert_step computes with
    task = tasks.setup_task(cfg.task)
    task.load_dataset("train")
    trainer = Trainer(cfg, task, task.build_model(cfg.model), task.build_criterion(cfg.criterion))
    layer_dtypes = []
    layer = trainer.model.encoder.sentence_encoder.layers[1]
    layer.register_forward_hook(lambda module, inputs, output: layer_dtypes.append(output.dtype))
    batch = next(iter(trainer.get_train_iterator(epoch=1).next_epoch_itr(shuffle=False)))
    assert_step(trainer, [batch])  # fp32 scores, moved exactly as computed by hand from the bf16 model
    assert layer_dtypes and set(layer_dtypes) == {torch.bfloat16}
    assert trainer.model.encoder.sentence_encoder.embed_tokens.weight.dtype == torch.bfloat16


def shell_recipe_cfg(script, tmp_path, data_bin, **env):
    """The fairseq config of an examples/*.sh recipe: its fairseq-train command line, captured and parsed."""
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "fairseq-train").write_text('#!/bin/sh\nprintf "%s\\0" "$@" > "$ARGV_OUT"\n')
    (shim / "fairseq-train").chmod(0o755)
    argv_out = tmp_path / "argv"
    subprocess.run(["bash", REPO / "examples" / script], check=True, capture_output=True, env={
        **os.environ, "PATH": f"{shim}:{os.environ['PATH']}", "ARGV_OUT": str(argv_out),
        "DATA_DIR": str(data_bin), "SAVE_DIR": str(tmp_path / "save"), **env})
    argv = argv_out.read_bytes().decode().split("\0")[:-1]
    return convert_namespace_to_omegaconf(parse(*argv))


# what a recipe's command line sets apart from the training itself: paths, logging destinations
NOT_COMPARED = {"data", "save_dir", "user_dir", "tensorboard_logdir", "restore_file", "log_file"}


@pytest.mark.slow
@pytest.mark.parametrize("yaml_name, script, env", [
    ("sctd_roberta_large", "sctd_roberta_large.sh", {}),
    ("tokendrop_bert_base_tf", "tokendrop_bert_base_tf.sh", {"NGPU": "8"}),  # 32 x 2 x 8 = 512
])
def test_hydra_recipes_equal_the_shell_recipes(tmp_path, data_bin, yaml_name, script, env):
    shell = shell_recipe_cfg(script, tmp_path, data_bin, **env)
    hydra = hydra_recipe_cfg(yaml_name, data_bin)
    with open_dict(hydra.model):  # the arch fills in the rest, as build_model does on both routes
        ARCH_CONFIG_REGISTRY[hydra.model._name](hydra.model)
        ARCH_CONFIG_REGISTRY[shell.model.arch](shell.model)
    for section in ("common", "checkpoint", "dataset", "distributed_training", "optimization", "task",
                    "criterion", "optimizer", "lr_scheduler", "model"):
        ours, theirs = (vars(c) if isinstance(c, argparse.Namespace) else OmegaConf.to_container(c)
                        for c in (hydra[section], shell[section]))  # a CLI model section is a Namespace
        # the CLI's model Namespace holds every flag of every section, so the model compares on ours
        for key in sorted(set(ours) if section == "model" else set(ours) | set(theirs)):
            if key in NOT_COMPARED or key == "distributed_world_size":
                continue
            assert ours.get(key) == theirs.get(key), f"{section}.{key}"

"""fairseq-tokendrop-import-sctd on a checkpoint written in the ScTD fork's layout.

The fork's layout (github.com/WHU-ZQH/ScTD): stock RoBERTa keys plus
``encoder.sentence_encoder.token_importance.weight`` ``[V, 1]``, a cfg whose model is an
argparse Namespace with ``--token-drop``, and its stock criterion/task names.
"""
import pytest
import argparse

import torch
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.trainer import Trainer

from fairseq_tokendrop import get_token_importance
from fairseq_tokendrop.checkpoints.saved_scores import load_init_scores
from fairseq_tokendrop.standalone import build_model

from conftest import load_script, train_flags

DIMS = dict(encoder_layers=4, encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=2,
            max_positions=32, activation_fn="gelu", dropout=0.1, attention_dropout=0.1)  # conftest's TINY_MODEL_FLAGS
FORK_PINS = (0, 1, 2, -1)  # the fork's allow list: <s> <pad> </s> <mask>


def trainer_for(data_bin, tmp_path, *extra):
    args = options.parse_args_and_arch(options.get_training_parser(), [str(a) for a in train_flags(
        data_bin, tmp_path / "run", "--cpu", "--token-drop", "0.5", *extra)])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    return Trainer(cfg, task, task.build_model(cfg.model), task.build_criterion(cfg.criterion))


def write_fork_checkpoint(path, dictionary):
    torch.manual_seed(5)
    stock = build_model("roberta_base", dictionary, **DIMS)
    state = stock.state_dict()
    scores = 5 + 10 * torch.rand(len(dictionary), 1)
    scores[list(FORK_PINS)] = 1e4
    state["encoder.sentence_encoder.token_importance.weight"] = scores
    model_cfg = argparse.Namespace(**DIMS, arch="roberta_base", _name="roberta_base", token_drop=0.5,
                                   init_token_importance=None, start_layer=11, criterion="cross_entropy",
                                   task="masked_lm", fp16=True, memory_efficient_fp16=True)
    torch.save({
        "args": None,
        "cfg": {"model": model_cfg, "task": {"_name": "masked_lm", "data": "data-bin", "tokens_per_sample": 32},
                "criterion": {"_name": "cross_entropy", "sentence_avg": False}},
        "model": state,
        "criterion": None,
        "optimizer_history": [{"criterion_name": "CrossEntropyCriterion",
                               "optimizer_name": "MemoryEfficientFP16Optimizer",
                               "lr_scheduler_state": {"best": None}, "num_updates": 1000}],
        "task_state": {},
        "extra_state": {"train_iterator": {"epoch": 1, "iterations_in_epoch": 10, "shuffle": True}},
        "last_optimizer_state": {"state": {}, "param_groups": []},
    }, path)
    return stock, scores[:, 0]


@pytest.mark.slow
def test_fork_checkpoint_becomes_a_restore_file_with_its_scores_and_a_stock_roberta(data_bin, tmp_path):
    trainer = trainer_for(data_bin, tmp_path)
    dictionary = trainer.task.source_dictionary
    fork_model, fork_scores = write_fork_checkpoint(tmp_path / "fork.pt", dictionary)
    load_script("import_sctd").main([str(tmp_path / "fork.pt"), str(tmp_path / "imported")])

    # stock roberta_base loads the weights strictly, and they are the fork's
    stock = build_model("roberta_base", dictionary, **DIMS)
    converted = torch.load(tmp_path / "imported" / "model.pt", weights_only=True)
    stock.load_state_dict(converted["model"], strict=True)
    for name, value in fork_model.state_dict().items():
        assert torch.equal(stock.state_dict()[name], value), name
    assert torch.equal(torch.load(tmp_path / "imported" / "importance.pt", weights_only=True), fork_scores)
    assert converted["cfg"]["criterion"]["sctd_interval"] == 10
    assert converted["cfg"]["model"]["token_importance_beta"] == 0.95
    assert converted["cfg"]["model"]["token_drop"] == 0.5

    # --restore-file with the reset flags: fairseq's Trainer.load_checkpoint, strict, into tokendrop_roberta
    trainer.load_checkpoint(str(tmp_path / "imported" / "model.pt"), reset_optimizer=True,
                            reset_lr_scheduler=True, optimizer_overrides={}, reset_meters=True)
    for name, value in fork_model.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[name], value), name
    scores = get_token_importance(trainer.model)
    ours_pinned = [dictionary.index(s) for s in ("<s>", "</s>", "<unk>", "<mask>", "<pad>")]
    free = torch.ones_like(scores, dtype=torch.bool)
    free[ours_pinned] = False
    assert torch.equal(scores[free], fork_scores[free])
    assert scores[dictionary.pad()] == -1e4 and scores[dictionary.unk()] == 1e4  # this plugin's pins


def test_init_token_importance_takes_the_forks_score_file(tmp_path):
    scores = torch.rand(45, 1) * 10
    torch.save(scores, tmp_path / "fork_scores.pt")
    assert torch.equal(load_init_scores(str(tmp_path / "fork_scores.pt"), 45), scores[:, 0])

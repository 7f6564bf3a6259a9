"""A resume with changed token-dropping flags: each change said in one line, then the new flags obeyed;
the pins follow the current allow and deny lists; one start-up line states what is dropped."""
import logging
import math
import shutil

import pytest
import torch
from fairseq import options
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

from fairseq_tokendrop.checkpoints.scores_in_state_dict import load_saved_scores
from fairseq_tokendrop.method.importance import TokenImportance
from fairseq_tokendrop.method.pins import PIN
from fairseq_tokendrop.models.tokendrop_config import describe
from fairseq_tokendrop.training.resume import changed_flags

from conftest import logged, run_cli, tiny_dictionary, train_flags
from test_fairseq_train import saved_scores

ALLOW, DENY = "<s>,</s>,<unk>,<mask>", "<pad>"  # the defaults


def parsed(*flags, data="data-bin"):
    """fairseq-train's own configuration for these flags (the arch fills in its defaults)."""
    args = options.parse_args_and_arch(options.get_training_parser(), [
        data, "--task", "masked_lm_tokendrop", "--arch", "tokendrop_roberta_base", "--encoder-layers", "4",
        "--tokens-per-sample", "32", *flags])
    return convert_namespace_to_omegaconf(args)


def tracker(allow, deny, dictionary, **kwargs):
    ids = [[dictionary.index(s) for s in names.split(",") if s] for names in (allow, deny)]
    return TokenImportance(len(dictionary), 10.0, 0.9, *ids, symbols=dictionary.symbols, **kwargs)


def test_ids_pinned_no_more_start_from_this_runs_initial_score_and_the_new_pins_hold(caplog):
    dictionary = tiny_dictionary()
    saved = tracker(ALLOW, DENY, dictionary)
    saved.set(saved.get() + torch.linspace(-3, 3, len(dictionary)))  # scores that moved off the init
    scores = saved.get()
    unk, mask, word = dictionary.unk(), dictionary.index("<mask>"), dictionary.index("w7")
    assert scores[unk] == scores[mask] == PIN

    init_file = torch.arange(len(dictionary), dtype=torch.float32)  # --init-token-importance of this run
    now = tracker("<s>,</s>,w7", DENY, dictionary, init_scores=init_file)
    with caplog.at_level(logging.INFO):
        load_saved_scores(now, scores)
    got = now.get()
    # <unk> and <mask>: their entry of this run's start (the file), not the pin; w7 pinned now
    assert got[unk] == init_file[unk] and got[mask] == init_file[mask] and got[word] == PIN
    others = [i for i in range(len(dictionary)) if i not in (unk, mask, word)]
    assert torch.equal(got[others], scores[others])  # <s> </s> <pad> keep their pins, the rest their scores
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("<unk> <mask> were pinned in the loaded scores and are pinned no more") for m in said)


def test_each_changed_token_dropping_flag_is_one_line_against_the_checkpoints_cfg(tmp_path):
    before = parsed("--token-drop", "0.5", "--sctd-interval", "3")
    path = tmp_path / "checkpoint_last.pt"
    torch.save({"cfg": {"model": before.model, "criterion": dict(before.criterion)}}, path)
    after = parsed("--token-keep-k", "12", "--token-allow-list", "<s>,</s>", "--token-importance-beta", "0.9",
                   "--token-importance-init", "5", "--sctd-interval", "3", "--lr", "0.1")
    assert changed_flags(str(path), after) == [
        "resuming with --token-drop 0.0 (the checkpoint was trained with 0.5)",
        "resuming with --token-keep-k 12 (the checkpoint was trained with 0)",
        "resuming with --token-allow-list <s>,</s> (the checkpoint was trained with <s>,</s>,<unk>,<mask>): "
        "the pins follow the new lists",
        "resuming with --token-importance-init 5.0 (the checkpoint was trained with 10.0): the saved scores "
        "stay; it gives the score of an id that is pinned no more",
        "resuming with --token-importance-beta 0.9 (the checkpoint was trained with 0.995)",
    ]
    assert changed_flags(str(path), before) == []


@pytest.mark.parametrize("flags,line", [
    (["--token-drop", "0.3", "--sctd-interval", "10"],
     f"token dropping: importance, {32 - math.floor(0.3 * 32)} of 32 tokens kept (--token-drop 0.3); layers 1-2 of "
     "0-3 see them (layer 1 attends from them to all); always kept: <s>,</s>,<unk>,<mask>; dropped first: <pad>; "
     "ScTD every 10 updates"),
    (["--token-keep-schedule", "8,32,100,4", "--token-drop-strategy", "random-ltd"],
     "token dropping: random-ltd, 8 growing to 32 of 32 tokens kept over 100 updates (--token-keep-schedule "
     "8,32,100,4); layers 1,2 of 0-3 each draw their own; no pins (random-LTD draws among all tokens but "
     "padding); no ScTD"),
    ([], "token dropping: off (every layer sees every token); no ScTD"),
])
def test_the_start_up_line_states_the_effective_dropping(flags, line):
    cfg = parsed(*flags)
    assert describe(cfg.model, cfg.criterion.sctd_interval) == line


@pytest.mark.slow
def test_a_resume_with_changed_flags_says_each_and_follows_them(pretrained, tmp_path):
    """From the shared pretrained run (3 updates, --token-drop 0.5, default lists), two more updates."""
    save_dir = tmp_path / "ck"
    shutil.copytree(pretrained["checkpoint"].parent, save_dir)
    loaded = saved_scores(save_dir / "checkpoint_last.pt")
    proc = run_cli("fairseq_cli.train", *train_flags(
        pretrained["data"], save_dir, "--max-update", "5", "--disable-validation", "--token-drop", "0.3",
        "--token-allow-list", "<s>,</s>", "--token-importance-beta", "0.9", "--sctd-interval", "2"))
    lines = [line.split(" | ")[-1] for line in proc.stdout.splitlines()]
    assert [line for line in lines if line.startswith("resuming with")] == [
        "resuming with --token-drop 0.3 (the checkpoint was trained with 0.5)",
        "resuming with --token-allow-list <s>,</s> (the checkpoint was trained with <s>,</s>,<unk>,<mask>): "
        "the pins follow the new lists",
        "resuming with --token-importance-beta 0.9 (the checkpoint was trained with 0.995)",
        "resuming with --sctd-interval 2 (the checkpoint was trained with 0)",
    ]
    assert ("token dropping: importance, 23 of 32 tokens kept (--token-drop 0.3); layers 1-2 of 0-3 see them "
            "(layer 1 attends from them to all); always kept: <s>,</s>; dropped first: <pad>; ScTD every 2 updates"
            ) in lines
    assert any(line.startswith("<unk> <mask> were pinned in the loaded scores") for line in lines)

    records = logged(proc.stdout)
    assert [r["num_updates"] for r in records] == ["4", "5"]
    assert [r["kept_len"] for r in records] == ["23", "23"]
    assert [r.get("kl_local") is not None for r in records] == [False, True]  # ScTD at update_num 4
    # the scores the first resumed update selected by: the loaded ones, <unk> and <mask> back at the
    # init (10), summarized over the ids the new lists leave free
    with open(pretrained["data"] / "dict.txt") as f:
        symbols = ["<s>", "<pad>", "</s>", "<unk>"] + [line.split()[0] for line in f] + ["<mask>"]
    start = loaded.clone()
    start[[symbols.index("<unk>"), symbols.index("<mask>")]] = 10.0
    free = [i for i, s in enumerate(symbols) if s not in ("<s>", "</s>", "<pad>")]
    assert len(symbols) == loaded.numel()
    assert float(records[0]["imp_mean"]) == pytest.approx(start[free].mean().item(), abs=1.5e-3)
    final = saved_scores(save_dir / "checkpoint_last.pt")
    assert final[symbols.index("<mask>")] == 10.0  # never a target: it keeps the score a fresh run gives it

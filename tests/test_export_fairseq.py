"""scripts/export_checkpoint.py: a stock fairseq RoBERTa that loads without the plugin, and the importance scores."""
import argparse
import dataclasses
import subprocess
import sys

import pytest
import sentencepiece
import torch
from fairseq import checkpoint_utils
from fairseq.criterions.masked_lm import MaskedLmConfig
from fairseq.data import Dictionary

from fairseq_tokendrop.criterions.masked_lm_tokendrop import MaskedLmTokenDropConfig
from fairseq_tokendrop.checkpoints.saved_scores import load_init_scores
from fairseq_tokendrop.models import tokendrop_config
from fairseq_tokendrop.checkpoints.scores_in_state_dict import METADATA_KEY

from conftest import load_script, random_tokens

pytestmark = pytest.mark.slow  # starts processes: not in the fast tier (tests/run.sh --fast)

TEXT = "w3 w24 w1 w38"
MASKED = ("w3 w24", "w7 w11")  # fill_mask input: MASKED[0] <mask> MASKED[1]

# Runs in a fresh Python that never imports the plugin: what a user without it does.
WITHOUT_PLUGIN = r"""
import sys, torch
torch.set_num_threads(1)
from fairseq.models.roberta import RobertaModel
export_dir, tokens_path, out_path, text, left, right = sys.argv[1:7]
roberta = RobertaModel.from_pretrained(export_dir, "model.pt", bpe="sentencepiece").eval()
with torch.no_grad():
    logits = roberta.model(torch.load(tokens_path))[0]
torch.save({
    "logits": logits,
    "encoded": roberta.encode(text),
    "filled": roberta.fill_mask(f"{left} <mask> {right}", topk=3),
    "unsafe_globals": torch.serialization.get_unsafe_globals_in_checkpoint(export_dir + "/model.pt"),
    "model_class": type(roberta.model).__module__ + "." + type(roberta.model).__name__,
    "plugin_imported": any(m.startswith("fairseq_tokendrop") for m in sys.modules),
}, out_path)
"""


@pytest.fixture(scope="module")
def run(pretrained):
    return pretrained


def plugin_model(run):
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(run["checkpoint"])], arg_overrides={"data": str(run["data"])})
    return models[0].eval(), task.source_dictionary


def spm_ids(run, dictionary, text):
    """<s> pieces </s> as fairseq ids, from the sentencepiece library and dict.txt directly."""
    sp = sentencepiece.SentencePieceProcessor(model_file=str(run["data"] / "spm.model"))
    return [dictionary.bos()] + [dictionary.index(p) for p in sp.encode(text, out_type=str)] + [dictionary.eos()]


def all_keys(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from all_keys(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from all_keys(v)


def plugin_option_names():
    parser = argparse.ArgumentParser()
    tokendrop_config.add_tokendrop_args(parser)
    names = {a.dest for a in parser._actions} - {"help"}
    stock_criterion = {f.name for f in dataclasses.fields(MaskedLmConfig)}
    return names | {f.name for f in dataclasses.fields(MaskedLmTokenDropConfig)} - stock_criterion


def test_stock_fairseq_without_the_plugin_loads_the_export_and_gives_the_same_logits(run, tmp_path):
    model, dictionary = plugin_model(run)
    tokens = random_tokens(dictionary, batch=3, length=20, seed=4, pad_tail=(0, 5, 11))
    torch.save(tokens, tmp_path / "tokens.pt")
    proc = subprocess.run([sys.executable, "-c", WITHOUT_PLUGIN, str(run["fairseq_export"]),
                           str(tmp_path / "tokens.pt"), str(tmp_path / "out.pt"), TEXT, *MASKED],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = torch.load(tmp_path / "out.pt", weights_only=True)
    assert not out["plugin_imported"]
    assert out["model_class"] == "fairseq.models.roberta.model.RobertaModel"
    assert out["unsafe_globals"] == []  # nothing to allowlist: loads under weights_only with stock torch

    with torch.no_grad():
        expected = model(tokens)[0]
    real = tokens.ne(dictionary.pad())
    assert (out["logits"][real] - expected[real]).abs().max() <= 1e-6

    assert out["encoded"].tolist() == spm_ids(run, dictionary, TEXT)
    left, right = spm_ids(run, dictionary, MASKED[0]), spm_ids(run, dictionary, MASKED[1])
    masked = torch.tensor([left[:-1] + [dictionary.index("<mask>")] + right[1:]])
    with torch.no_grad():
        probs = model(masked)[0][0, len(left) - 1].softmax(-1)
    top = probs.topk(3)
    assert [round(p, 5) for _, p, _ in out["filled"]] == [round(p, 5) for p in top.values.tolist()]
    assert [tok.strip() for _, _, tok in out["filled"]] == \
        [dictionary[i].replace("\u2581", " ").strip() for i in top.indices.tolist()]


def test_export_cfg_is_stock_roberta_with_the_real_dimensions_and_no_plugin_state(run):
    export = torch.load(run["fairseq_export"] / "model.pt", weights_only=True)
    raw = torch.load(run["checkpoint"], weights_only=True)
    cfg, source = export["cfg"], vars(raw["cfg"]["model"])
    assert cfg["model"]["_name"] == cfg["model"]["arch"] == "roberta_base"
    for key in ("encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads",
                "max_positions", "activation_fn", "encoder_normalize_before", "dropout"):
        assert cfg["model"][key] == source[key], key
    assert (cfg["task"]["_name"], cfg["criterion"]["_name"]) == ("masked_lm", "masked_lm")
    assert cfg["common"]["user_dir"] is None
    assert not plugin_option_names() & set(all_keys(cfg))
    assert export["last_optimizer_state"] is None and "metrics" not in export["extra_state"]
    assert all(METADATA_KEY not in meta for meta in export["model"]._metadata.values())
    assert export["model"].keys() == raw["model"].keys()
    assert all(torch.equal(export["model"][k], raw["model"][k]) for k in raw["model"])
    assert (run["fairseq_export"] / "dict.txt").read_bytes() == (run["data"] / "dict.txt").read_bytes()
    assert (run["fairseq_export"] / "sentencepiece.bpe.model").read_bytes() == (run["data"] / "spm.model").read_bytes()


def test_keep_optimizer_and_saved_importance(run, tmp_path):
    load_script("export_checkpoint").main([str(run["checkpoint"]), "--fairseq-out", str(tmp_path), "--keep-optimizer"])
    export = torch.load(tmp_path / "model.pt", weights_only=True)
    raw = torch.load(run["checkpoint"], weights_only=True)
    assert export["optimizer_history"][-1]["criterion_name"] == "MaskedLmLoss"  # stock masked_lm's class
    assert export["optimizer_history"][-1]["num_updates"] == raw["optimizer_history"][-1]["num_updates"] == 3
    for i, state in raw["last_optimizer_state"]["state"].items():
        kept = export["last_optimizer_state"]["state"][i]
        assert state.keys() == kept.keys() and all(torch.equal(torch.as_tensor(state[k]), torch.as_tensor(kept[k]))
                                                   for k in state)

    saved = raw["model"]._metadata["encoder.token_importance"][METADATA_KEY]
    n = len(Dictionary.load(str(run["data"] / "dict.txt"))) + 1  # masked_lm appends <mask>
    scores = load_init_scores(str(run["importance"]), n)
    assert scores.dtype == torch.float32 and torch.equal(scores, saved)
    assert (scores.abs() < 1e4).any() and (scores[scores.abs() < 1e4] != 10.0).any()  # trained, not the init


@pytest.mark.parametrize("bad,named", [("checkpoint", "no such checkpoint"), ("data", "dict.txt")])
def test_bad_input_is_one_line_naming_it(run, tmp_path, bad, named):
    argv = [str(run["checkpoint"]), "--fairseq-out", str(tmp_path / "out")]
    if bad == "checkpoint":
        argv[0] = str(tmp_path / "missing.pt")
    else:
        argv += ["--data", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        load_script("export_checkpoint").main(argv)
    message = str(exit_info.value.code)
    assert message.startswith("fairseq_tokendrop: error:") and named in message and "\n" not in message
    assert not (tmp_path / "out" / "model.pt").exists()

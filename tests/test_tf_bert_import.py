"""TF BERT checkpoints -> transformers' own BertForMaskedLM reproduces what TensorFlow computed.

The fixtures (tests/fixtures/tf_bert, see make_tf_fixtures.py) hold a TF1 name-based
checkpoint, Model Garden trainer checkpoints of BertEncoder and TokenDropBertEncoder, and
TensorFlow's sequence output and MLM logits (eval mode, every position) on fixed inputs with
padding and segment ids 0 and 1. The mapped weights load strictly into a randomly initialised
BertForMaskedLM built from the mapped config. No TensorFlow here.
"""
import hashlib
import json

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForMaskedLM

from fairseq_tokendrop.errors import TokendropError
from fairseq_tokendrop.interop.tf_bert import read_tf_bert, tf_bert_to_hf
from tokendrop_readers.tf_checkpoint import TFCheckpoint

from test_tf_checkpoint import FIXTURES, metadata

IMPORTANCE_KEY = "encoder/_token_importance_embed/importance_embed/.ATTRIBUTES/VARIABLE_VALUE"


def bert_config():
    return json.loads((FIXTURES / "tf1" / "bert_config.json").read_text())


def imported(name):
    return read_tf_bert(str(FIXTURES / name), bert_config() if name == "tf1" else None)


def hf_outputs(state_dict, config):
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(**config)).eval()
    model.load_state_dict(state_dict, strict=True)
    inputs = {k: torch.from_numpy(v).long() for k, v in np.load(FIXTURES / "inputs.npz").items()}
    with torch.no_grad():
        out = model(input_ids=inputs["input_word_ids"], attention_mask=inputs["input_mask"],
                    token_type_ids=inputs["input_type_ids"], output_hidden_states=True)
    return out.hidden_states[-1].numpy(), out.logits.numpy()


@pytest.mark.parametrize("name", ["tf1", "tf2_bert", "tf2_tokendrop"])
def test_transformers_bert_reproduces_tensorflows_outputs(name):
    bert = imported(name)
    assert bert.layout == name
    assert bert.config["hidden_act"] == "gelu_new" and bert.config["layer_norm_eps"] == 1e-12
    sequence, logits = hf_outputs(bert.state_dict, bert.config)
    expected = np.load(FIXTURES / name / "outputs.npz")
    inputs = np.load(FIXTURES / "inputs.npz")
    assert inputs["input_type_ids"].max() == 1 and inputs["input_mask"].min() == 0  # both segments, and padding
    np.testing.assert_allclose(sequence, expected["sequence_output"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(logits, expected["mlm_logits"], atol=1e-4, rtol=0)
    assert any("pooler" in n for n in bert.notes) and any("next-sentence" in n for n in bert.notes)


def test_the_token_importance_is_tensorflows_moving_average_in_vocab_order():
    bert = imported("tf2_tokendrop")
    tf_digest = json.loads((FIXTURES / "tf2_tokendrop" / "variables.json").read_text())[IMPORTANCE_KEY]["sha256"]
    assert hashlib.sha256(bert.importance.astype("<f4").tobytes()).hexdigest().startswith(tf_digest)
    # three training steps moved the scores of the masked ids off their pins and initial value
    moved = ~np.isin(bert.importance, (10.0, 1e4, -1e4))
    assert moved.sum() >= 10
    assert imported("tf2_bert").importance is None and imported("tf1").importance is None


def one_line(call):
    with pytest.raises(TokendropError) as info:
        call()
    assert "\n" not in str(info.value)
    return info.value.message


def mapped_with(name, rename=None, drop=None):
    """tf_bert_to_hf on the real checkpoint with one tensor renamed or left out of its name list."""
    checkpoint = TFCheckpoint(str(FIXTURES / name))
    keys, full_names = list(checkpoint.entries), checkpoint.variable_names()
    if name == "tf1":
        keys = [rename.get(k, k) if rename else k for k in keys if k != drop]
        reverse = {v: k for k, v in (rename or {}).items()}
        return tf_bert_to_hf(keys, {}, lambda k: checkpoint.read(reverse.get(k, k)), "CKPT", bert_config())
    full_names = {k: (rename or {}).get(v, v) for k, v in full_names.items()}
    keys = [k for k in keys if drop is None or full_names.get(k) != drop]
    return tf_bert_to_hf(keys, full_names, checkpoint.read, "CKPT")


def test_a_renamed_tf1_variable_is_refused_naming_it():
    message = one_line(lambda: mapped_with("tf1", rename={"bert/encoder/layer_1/output/dense/kernel":
                                                          "bert/encoder/layer_1/output/dense/kernal"}))
    assert message == "CKPT: unknown variable bert/encoder/layer_1/output/dense/kernal for a TF1 BERT checkpoint"


def test_a_missing_tf1_variable_is_refused_naming_it():
    message = one_line(lambda: mapped_with("tf1", drop="cls/predictions/transform/LayerNorm/beta"))
    assert message == "CKPT: missing variable cls/predictions/transform/LayerNorm/beta for a tf1 BERT checkpoint"


def test_a_renamed_tf2_variable_is_refused_naming_it():
    old = "transformer/layer_2/intermediate/kernel"
    message = one_line(lambda: mapped_with("tf2_bert", rename={old: "transformer/layer_2/intermediate_2/kernel"}))
    assert message.startswith("CKPT: unknown variable transformer/layer_2/intermediate_2/kernel (encoder/")


def test_a_missing_tf2_variable_is_refused_by_its_model_garden_name():
    dropped = "token_drop_bert_encoder/transformer/layer_3/output/bias"
    message = one_line(lambda: mapped_with("tf2_tokendrop", drop=dropped))
    assert message == "CKPT: missing variable transformer/layer_3/output/bias for a tf2_tokendrop BERT checkpoint"


def test_a_tf1_checkpoint_needs_its_bert_config():
    message = one_line(lambda: read_tf_bert(str(FIXTURES / "tf1")))
    assert message.startswith(f"{FIXTURES / 'tf1' / 'model.ckpt-3'}: a TF1 checkpoint does not record")
    wrong = dict(bert_config(), hidden_size=32)
    assert one_line(lambda: read_tf_bert(str(FIXTURES / "tf1"), wrong)).startswith(
        "bert_config.json: hidden_size is 32 but")


def test_the_tf2_fixtures_hold_what_real_runs_save_besides_the_model():
    """The skip rules are exercised: optimizer slots (AdamW), counters and the object graph."""
    keys = json.loads((FIXTURES / "tf2_bert" / "variables.json").read_text())
    assert any("/.OPTIMIZER_SLOT/optimizer/m/" in k for k in keys)
    assert {"global_step/.ATTRIBUTES/VARIABLE_VALUE", "save_counter/.ATTRIBUTES/VARIABLE_VALUE",
            "_CHECKPOINTABLE_OBJECT_GRAPH"} <= set(keys)
    assert metadata()["checkpoints"]["tf2_bert"]["optimizer"] == "adamw"

"""fairseq-tokendrop-import-tf: the fairseq model it writes computes what TensorFlow computed.

Against the fixtures TensorFlow wrote (tests/fixtures/tf_bert, see make_tf_fixtures.py): the
imported model.pt, loaded the way fairseq loads checkpoints, gives TF's MLM logits on the fixed
inputs (segment-0 rows when the token types are folded into the positions, every row with their
segment ids under ``--keep-segments``); with the imported importance scores and TF's keep count
it drops the tokens TF's ``TokenDropBertEncoder`` drops; and eval_mlm_accuracy on the converted
eval TFRecord counts the slots Model Garden's evaluation counted. Ids are matched by the tokens'
text in the written dict.txt.

The import records TF's LayerNorm epsilon (1e-12) as ``--layer-norm-eps``; fairseq's own 1e-5 would
move these tiny random models' logits by up to ~4e-4, which the last test shows, so a model that lost
the flag fails the 1e-4 comparisons (measured ~5e-6).
"""
import re

import numpy as np
import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.data import Dictionary

from conftest import load_script
from test_tf_checkpoint import FIXTURES, metadata
from tokendrop_readers.tf_checkpoint import TFCheckpoint

import_tf = load_script("import_tf")
SPECIALS = {"[CLS]": "<s>", "[SEP]": "</s>", "[UNK]": "<unk>", "[MASK]": "<mask>"}
IMPORTANCE_KEY = "encoder/_token_importance_embed/importance_embed/.ATTRIBUTES/VARIABLE_VALUE"
TF_EPS = 1e-12


@pytest.fixture(scope="module")
def imports(tmp_path_factory):
    """layout, keep_segments -> the folder import_tf wrote, made once per module."""
    made = {}

    def get(layout, keep):
        if (layout, keep) not in made:
            out = tmp_path_factory.mktemp(f"{layout}_{'keep' if keep else 'fold'}")
            argv = [str(FIXTURES / layout), str(out), "--vocab", str(FIXTURES / "vocab.txt")]
            import_tf.main(argv + (["--keep-segments"] if keep else []))
            made[layout, keep] = out
        return made[layout, keep]

    return get


def fairseq_ids(out):
    """fairseq id of each vocab.txt id, by the token's text in the dict.txt the command wrote."""
    dictionary = Dictionary.load(str(out / "dict.txt"))
    dictionary.add_symbol("<mask>")
    vocab = (FIXTURES / "vocab.txt").read_text().split()
    return dictionary, np.array([dictionary.index(SPECIALS.get(t, t)) for t in vocab])


def load(out, **overrides):
    models, _cfg, _task = checkpoint_utils.load_model_ensemble_and_task(
        [str(out / "model.pt")], arg_overrides={"data": str(out), **overrides})
    return models[0].eval()


def logits_in_vocab_order(model, out, rows, segments):
    """[rows, T, V] logits over vocab.txt ids, padding as fairseq pads."""
    dictionary, ids = fairseq_ids(out)
    inputs = np.load(FIXTURES / "inputs.npz")
    tokens = ids[inputs["input_word_ids"][rows]]
    tokens[inputs["input_mask"][rows] == 0] = dictionary.pad()
    labels = torch.from_numpy(inputs["input_type_ids"][rows]).long() if segments else None
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(tokens), segment_labels=labels)
    return logits.numpy()[:, :, ids]


def assert_reproduces(model_for, out, rows, segments, expected):
    real = np.load(FIXTURES / "inputs.npz")["input_mask"][rows].astype(bool)
    got = logits_in_vocab_order(model_for(), out, rows, segments)
    np.testing.assert_allclose(got[real], expected[rows][real], atol=1e-4, rtol=0)


@pytest.mark.parametrize("layout", ["tf1", "tf2_bert", "tf2_tokendrop"])
@pytest.mark.parametrize("keep", [False, True], ids=["folded", "segments"])
def test_the_imported_model_gives_tensorflows_logits(imports, layout, keep):
    out = imports(layout, keep)
    inputs = np.load(FIXTURES / "inputs.npz")
    rows = [0, 1, 2, 3] if keep else [2, 3]
    assert inputs["input_type_ids"][rows].any() == keep  # folded: the rows hold segment 0 only
    expected = np.load(FIXTURES / layout / "outputs.npz")["mlm_logits"]
    assert_reproduces(lambda: load(out), out, rows, keep, expected)


def test_with_tfs_scores_and_keep_count_the_model_drops_what_tensorflow_drops(imports):
    out = imports("tf2_tokendrop", True)
    keep_k = metadata()["checkpoints"]["tf2_tokendrop"]["token_keep_k"]
    # TF's TokenDropBertEncoder drops tokens in eval mode too; the plugin drops only in training.
    expected = np.load(FIXTURES / "tf2_tokendrop" / "outputs.npz")
    assert not np.allclose(expected["tokendrop_mlm_logits"], expected["mlm_logits"], atol=1e-2)
    overrides = dict(token_keep_k=keep_k, dropout=0.0, attention_dropout=0.0)
    assert_reproduces(lambda: load(out, **overrides).train(), out, [0, 1, 2, 3], True,
                      expected["tokendrop_mlm_logits"])


def test_the_importance_file_holds_tfs_scores_in_dictionary_order(imports):
    out = imports("tf2_tokendrop", False)
    scores = torch.load(out / "importance.pt", weights_only=True)
    tf_scores = TFCheckpoint(str(FIXTURES / "tf2_tokendrop")).read(IMPORTANCE_KEY)
    dictionary, ids = fairseq_ids(out)
    assert scores.dtype == torch.float32 and scores.shape == (len(dictionary),)
    assert np.array_equal(scores.numpy()[ids], tf_scores)
    assert scores[dictionary.pad()] == -1e4  # fairseq's padding has no TF row: denied, as TF denies [PAD]
    # fairseq-train reads it through --init-token-importance, which the recorded cfg names
    model = load(out)
    assert torch.equal(model.encoder.token_importance.scores, scores)


@pytest.mark.parametrize("keep, eval_file", [(False, "eval_segment0.tfrecord"),
                                             (True, "eval_mixed_segments.tfrecord")])
def test_eval_mlm_accuracy_counts_the_slots_tensorflow_counted(imports, tmp_path, capsys, keep, eval_file):
    out = imports("tf1", keep)
    data = tmp_path / "data"
    load_script("convert_premasked").main(["--vocab", str(FIXTURES / "vocab.txt"), "--destdir", str(data),
                                           "--split", "valid", str(FIXTURES / "eval" / eval_file)])
    capsys.readouterr()
    load_script("eval_mlm_accuracy").main([str(out / "model.pt"), str(data), "--device", "cpu"])
    correct, slots = map(int, re.search(r"\((\d+) of (\d+) masked slots correct\)", capsys.readouterr().out).groups())
    tf = metadata()["eval"][f"eval/{eval_file}"]
    assert (correct, slots) == (tf["correct"], tf["slots"])
    assert 0 < correct < slots


def test_import_hf_keeps_segments_too(imports, tmp_path):
    """import_hf shares import_tf's writer: an HF BERT saved by transformers, imported with --keep-segments."""
    from transformers import BertConfig, BertForMaskedLM

    from fairseq_tokendrop.interop.tf_bert import read_tf_bert

    bert = read_tf_bert(str(FIXTURES / "tf2_bert"))
    hf = BertForMaskedLM(BertConfig(**bert.config)).eval()
    hf.load_state_dict(bert.state_dict, strict=True)
    hf.save_pretrained(tmp_path / "hf")
    (tmp_path / "hf" / "vocab.txt").write_text((FIXTURES / "vocab.txt").read_text())
    load_script("import_hf").main([str(tmp_path / "hf"), str(tmp_path / "imported"), "--keep-segments"])
    inputs = {k: torch.from_numpy(v).long() for k, v in np.load(FIXTURES / "inputs.npz").items()}
    with torch.no_grad():
        expected = hf(input_ids=inputs["input_word_ids"], attention_mask=inputs["input_mask"],
                      token_type_ids=inputs["input_type_ids"]).logits.numpy()
    out = tmp_path / "imported"
    assert_reproduces(lambda: load(out), out, [0, 1, 2, 3], True, expected)
    assert torch.load(out / "model.pt", weights_only=True)["cfg"]["model"]["num_segment"] == 2


def test_a_bad_checkpoint_path_ends_the_command_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        import_tf.main([str(tmp_path / "model.ckpt-1"), str(tmp_path / "out"), "--vocab", str(FIXTURES / "vocab.txt")])
    message = str(info.value.code)
    assert message.startswith(f"fairseq_tokendrop: error: {tmp_path / 'model.ckpt-1'}.index: no such file")
    assert "\n" not in message
    assert not (tmp_path / "out").exists()


def test_the_layer_norm_epsilon_is_carried_and_fairseqs_own_would_miss(imports):
    out = imports("tf1", True)
    model = load(out)
    epsilons = {m.eps for m in model.modules() if isinstance(m, torch.nn.LayerNorm)}
    assert epsilons == {TF_EPS}
    expected = np.load(FIXTURES / "tf1" / "outputs.npz")["mlm_logits"]
    real = np.load(FIXTURES / "inputs.npz")["input_mask"][[0, 1, 2, 3]].astype(bool)
    stock_eps = load(out, layer_norm_eps=1e-5)
    got = logits_in_vocab_order(stock_eps, out, [0, 1, 2, 3], True)
    assert np.abs(got[real] - expected[[0, 1, 2, 3]][real]).max() > 1e-4

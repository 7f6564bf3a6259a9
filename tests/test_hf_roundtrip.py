"""Hugging Face round trips against transformers itself: the export's logits, and BERT/RoBERTa imports."""
import json

import pytest
import torch
from fairseq import checkpoint_utils

from fairseq_tokendrop.errors import TokendropError
from fairseq_tokendrop.interop.hf_weights import check_exportable

from conftest import random_tokens, run_cli, train_flags
from conftest import load_script

import transformers
# The tiny dims of conftest.TINY_MODEL_FLAGS, so an import also restores into those fairseq-train runs.
DIMS = dict(num_hidden_layers=4, hidden_size=32, intermediate_size=64, num_attention_heads=2,
            layer_norm_eps=1e-5, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
# BERT's [PAD] is a token, fairseq's <pad> is padding: [PAD] keeps a dictionary entry of its own.
BERT_SPECIALS = {"[CLS]": "<s>", "[SEP]": "</s>", "[UNK]": "<unk>", "[MASK]": "<mask>"}


def fairseq_model(checkpoint, data):
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)],
                                                                    arg_overrides={"data": str(data)})
    return models[0].eval(), task.source_dictionary


def perturbed(model, seed):
    """HF's init leaves LayerNorms at 1/0 and biases at 0; move every weight so each mapping is exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


def hf_batch(bos, eos, pad, words, lengths, seed):
    """[B, T] HF ids: bos, random words, eos, then padding; and the attention mask."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    ids = torch.full((len(lengths), T), pad)
    for b, n in enumerate(lengths):
        ids[b, :n] = torch.tensor(words)[torch.randint(len(words), (n,), generator=g)]
        ids[b, 0], ids[b, n - 1] = bos, eos
    return ids, ids.ne(pad)


def assert_same_mlm_logits(hf_model, fs_model, hf_ids, mask, to_fairseq, pad):
    """to_fairseq[hf_id] = fairseq id, derived in the test from the token strings; HF pads by
    attention mask, fairseq by the ``pad`` id."""
    with torch.no_grad():
        expected = hf_model(input_ids=hf_ids, attention_mask=mask.long()).logits
        got = fs_model(torch.where(mask, to_fairseq[hf_ids], pad))[0]
    assert (got[mask][:, to_fairseq] - expected[mask]).abs().max() <= 1e-4  # columns in HF's order
    return got[mask]


# ------------------------------------------------------------------ export

@pytest.mark.slow
def test_hf_export_gives_fairseqs_logits_in_transformers(pretrained):
    run = pretrained
    fs_model, dictionary = fairseq_model(run["checkpoint"], run["data"])
    hf_model, info = transformers.RobertaForMaskedLM.from_pretrained(str(run["hf_export"]), output_loading_info=True)
    assert not any(info.values()), info  # no missing, unexpected or mismatched weight
    hf_model.eval()
    # the dictionary's ids first, then sentencepiece pieces it lacks (test_hf_export_sentencepiece.py)
    assert hf_model.config.fairseq_dictionary_size == len(dictionary) < hf_model.config.vocab_size
    tokens = random_tokens(dictionary, batch=3, length=24, seed=5, pad_tail=(0, 7, 15))
    mask = tokens.ne(dictionary.pad())
    with torch.no_grad():
        expected = fs_model(tokens)[0]
        got = hf_model(input_ids=tokens, attention_mask=mask.long()).logits[..., :len(dictionary)]
    assert (got[mask] - expected[mask]).abs().max() <= 1e-4
    assert (run["hf_export"] / "dict.txt").read_bytes() == (run["data"] / "dict.txt").read_bytes()


def test_hf_export_refuses_what_roberta_for_masked_lm_cannot_express():
    with pytest.raises(TokendropError, match="encoder_normalize_before"):
        check_exportable({"encoder_normalize_before": True})


# ------------------------------------------------------------------ import

@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """A random BertForPreTraining (pooler and NSP head included) with specials away from fairseq's ids."""
    root = tmp_path_factory.mktemp("bert")
    tokens = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(41)]
    config = transformers.BertConfig(vocab_size=len(tokens), max_position_embeddings=32, type_vocab_size=2,
                                     pad_token_id=0, **DIMS)
    torch.manual_seed(0)
    model = perturbed(transformers.BertForPreTraining(config), seed=1)
    model.save_pretrained(str(root / "hf"))
    (root / "hf" / "vocab.txt").write_text("\n".join(tokens) + "\n")
    load_script("import_hf").main([str(root / "hf"), str(root / "imported")])
    return dict(root=root, tokens=tokens, model=model, imported=root / "imported")


@pytest.mark.slow
def test_bert_import_gives_hfs_mlm_logits(bert):
    fs_model, dictionary = fairseq_model(bert["imported"] / "model.pt", bert["imported"])
    assert type(fs_model).__name__ == "TokenDropRobertaModel"
    tokens = bert["tokens"]
    to_fairseq = torch.tensor([dictionary.index(BERT_SPECIALS.get(t, t)) for t in tokens])
    # one to one, nothing is <unk>; only <pad> has no BERT row
    assert sorted(to_fairseq.tolist()) == [i for i in range(len(dictionary)) if i != dictionary.pad()]
    ids, mask = hf_batch(tokens.index("[CLS]"), tokens.index("[SEP]"), 0, list(range(7, len(tokens))),
                         lengths=(20, 13, 6), seed=2)
    ids[1, 4] = tokens.index("[MASK]")
    ids[0, 3] = ids[1, 2] = tokens.index("[PAD]")  # in-sequence [PAD]s (attention mask 1): tokens to BERT
    hf_mlm = transformers.BertForMaskedLM.from_pretrained(str(bert["root"] / "hf")).eval()
    with torch.no_grad():  # the MLM head of BertForPreTraining is BertForMaskedLM's
        assert torch.equal(bert["model"](input_ids=ids, attention_mask=mask.long()).prediction_logits,
                           hf_mlm(input_ids=ids, attention_mask=mask.long()).logits)
    logits = assert_same_mlm_logits(hf_mlm, fs_model, ids, mask, to_fairseq, dictionary.pad())
    assert logits.softmax(-1)[:, dictionary.pad()].max() == 0  # <pad>, which BERT lacks, is never predicted


@pytest.mark.slow
def test_fairseq_train_restores_the_bert_import(bert, tmp_path):
    """The documented start: --restore-file with the reset flags; update 1 runs at lr 0 (warmup from 0)."""
    words = [t for t in bert["tokens"] if t.startswith("w")]
    g = torch.Generator().manual_seed(3)
    lines = [" ".join(words[i] for i in torch.randint(len(words), (12,), generator=g)) for _ in range(64)]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    run_cli("fairseq_cli.preprocess", "--only-source", "--srcdict", bert["imported"] / "dict.txt",
            "--trainpref", tmp_path / "train.txt", "--destdir", tmp_path / "bin", "--workers", "1")
    restored = bert["imported"] / "model.pt"
    proc = run_cli("fairseq_cli.train", *train_flags(
        tmp_path / "bin", tmp_path / "ck", "--max-update", "2", "--token-drop", "0.5", "--disable-validation",
        "--restore-file", restored, "--reset-optimizer", "--reset-dataloader", "--reset-meters",
        "--reset-lr-scheduler", "--lr-scheduler", "polynomial_decay", "--warmup-updates", "2",
        "--total-num-update", "2", "--save-interval-updates", "1"))
    assert f"Loaded checkpoint {restored}" in proc.stdout + proc.stderr
    imported = torch.load(restored, weights_only=True)["model"]
    after_1 = torch.load(tmp_path / "ck" / "checkpoint_1_1.pt", weights_only=True)["model"]
    after_2 = torch.load(tmp_path / "ck" / "checkpoint_last.pt", weights_only=True)["model"]
    assert imported.keys() == after_1.keys()
    assert all(torch.equal(imported[k], after_1[k]) for k in imported)
    assert not all(torch.equal(imported[k], after_2[k]) for k in imported)  # and then it trains


@pytest.mark.slow
def test_roberta_import_gives_hfs_mlm_logits(tmp_path):
    # Specials shuffled, pad_token_id 3: positions start at 4 in HF and must land on fairseq's 2.
    tokens = ["w0", "w1", "<unk>", "<pad>", "w2", "<s>", "</s>"] + [f"w{i}" for i in range(3, 40)] + ["<mask>", "w40"]
    config = transformers.RobertaConfig(vocab_size=len(tokens), max_position_embeddings=36, type_vocab_size=1,
                                        pad_token_id=3, bos_token_id=5, eos_token_id=6, **DIMS)
    torch.manual_seed(0)
    model = perturbed(transformers.RobertaForMaskedLM(config), seed=4)
    model.save_pretrained(str(tmp_path / "hf"))
    (tmp_path / "hf" / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    load_script("import_hf").main([str(tmp_path / "hf"), str(tmp_path / "imported")])

    fs_model, dictionary = fairseq_model(tmp_path / "imported" / "model.pt", tmp_path / "imported")
    to_fairseq = torch.tensor([dictionary.index(t) for t in tokens])
    assert sorted(to_fairseq.tolist()) == list(range(len(dictionary)))
    assert fs_model.max_positions() == 32
    words = [i for i, t in enumerate(tokens) if t.startswith("w")]
    ids, mask = hf_batch(5, 6, 3, words, lengths=(32, 17, 5), seed=6)
    assert_same_mlm_logits(model, fs_model, ids, mask, to_fairseq, dictionary.pad())


@pytest.mark.slow
def test_import_refuses_a_bad_directory_in_one_line(tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(SystemExit) as exit_info:
        load_script("import_hf").main([str(tmp_path / "hf"), str(tmp_path / "out")])
    message = str(exit_info.value.code)
    assert message.startswith("fairseq_tokendrop: error: config.json: model_type 'gpt2'") and "\n" not in message
    assert not (tmp_path / "out" / "model.pt").exists()

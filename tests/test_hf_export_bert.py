"""export_checkpoint --hf-out of a model trained on pre-masked WordPiece data: a BertForMaskedLM with
vocab.txt's ids and BERT's tokenizer, checked in a plain ``python -I`` against BertTokenizer(vocab.txt)
and the fairseq model; the activation and LayerNorm eps carried exactly; import_hf closes the circle."""
import json

import pytest
import torch
from fairseq import checkpoint_utils

from fairseq_tokendrop.checkpoints.checkpoint_io import fresh_training_state, training_cfg
from fairseq_tokendrop.data.wordpiece_dictionary import wordpiece_to_fairseq, write_dict_txt

from conftest import build_tokendrop, load_script, random_tokens
from hf_isolated import run_isolated
from premasked_fixtures import by_symbol, vocab_tokens, write_vocab

pytestmark = pytest.mark.slow  # a python -I process, and fixtures that train

# The fixture's vocabulary is uncased (w0.., ##s, ##ing): upper case must be lowered, suffixes split off.
TEXTS = ["w3 w24 w1 w38", "W3 w24s W1ing", "w5, w7! w9?", "x9 unknownword", "", "[MASK] w2 [SEP] w4"]
MASKED = ["w3 w24 [MASK] w1", "[MASK] w7 w8 w9", "w1 w2 w3 w4 w5 [MASK]"]
TOP_K = 5

HF_SIDE = """
from transformers import AutoModelForMaskedLM, AutoTokenizer, BertForMaskedLM, BertTokenizer, pipeline
for name, job in args["exports"].items():
    result = out[name] = {}
    tokenizer = AutoTokenizer.from_pretrained(job["dir"])
    reference = BertTokenizer(job["vocab"], do_lower_case=job["lower_case"])  # vocab_file (v4), vocab (v5)
    result["ids"] = [tokenizer(text)["input_ids"] for text in job["texts"]]
    result["reference_ids"] = [reference(text)["input_ids"] for text in job["texts"]]
    auto = AutoModelForMaskedLM.from_pretrained(job["dir"])
    model, info = BertForMaskedLM.from_pretrained(job["dir"], output_loading_info=True)
    model.eval()
    result["classes"] = (type(auto).__name__, type(model).__name__)
    result["loading_info"] = {k: sorted(map(str, v)) for k, v in info.items()}
    result["config"] = model.config.to_dict()
    batch = {k: torch.tensor(job[k]) for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        result["logits"] = model(**batch).logits
        if job.get("other_activation"):  # the logits had the export named the other GELU
            other = BertForMaskedLM.from_pretrained(job["dir"], hidden_act=job["other_activation"]).eval()
            result["other_logits"] = other(**batch).logits
    if job.get("masked"):
        fill = pipeline("fill-mask", model=job["dir"])
        result["filled"] = [[(r["token"], r["score"]) for r in fill(text, top_k=args["top_k"])]
                            for text in job["masked"]]
        result["masked_reference_ids"] = [reference(text)["input_ids"] for text in job["masked"]]
"""


def wordpiece_batch(tokens, lengths, seed):
    """[B, T] WordPiece ids ([CLS] words [SEP], [PAD]-padded), the attention mask, and segment ids
    (1 from the middle of each row on); an in-sequence [PAD] and [MASK]."""
    g = torch.Generator().manual_seed(seed)
    words = [i for i, t in enumerate(tokens) if not t.startswith("[")]
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for b, n in enumerate(lengths):
        ids[b, :n] = torch.tensor(words)[torch.randint(len(words), (n,), generator=g)]
        ids[b, 0], ids[b, n - 1] = tokens.index("[CLS]"), tokens.index("[SEP]")
    ids[0, 3] = tokens.index("[PAD]")  # a token to BERT (attention mask 1)
    ids[1, 2] = tokens.index("[MASK]")
    mask, segments = torch.zeros_like(ids), torch.zeros_like(ids)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
        segments[b, n // 2:n] = 1
    return ids, mask, segments


def fairseq_logits(model, dictionary, wordpiece_ids, mask, segments):
    """The fairseq model on the same batch: ids mapped through the tokens' text, padding by <pad>."""
    ids = torch.from_numpy(by_symbol(vocab_tokens(), dictionary, wordpiece_ids.flatten().tolist()))
    ids = ids.view_as(wordpiece_ids)
    with torch.no_grad():
        return model(torch.where(mask.bool(), ids, dictionary.pad()), segment_labels=segments)[0]


def columns(dictionary):
    """Each wordpiece's fairseq column (fairseq's <pad> has none)."""
    return torch.from_numpy(by_symbol(vocab_tokens(), dictionary, range(len(vocab_tokens()))))


@pytest.fixture(scope="module")
def exports(premasked, trained, tmp_path_factory):
    """The trained model's export (its data dir holds vocab.txt), and that of a random model with the
    tanh GELU and two segments."""
    root = tmp_path_factory.mktemp("bert_export")
    checkpoint = trained["save"] / "checkpoint_last.pt"
    load_script("export_checkpoint").main([str(checkpoint), "--hf-out", str(root / "trained")])
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)],
                                                                    arg_overrides={"data": str(premasked["dest"])})

    # A model never trained, with the tanh GELU (fairseq's gelu_accurate is HF's gelu_new), segment
    # embeddings (BERT's token types) and BERT's LayerNorm eps.
    data = root / "random_data"
    data.mkdir()
    dictionary, _ = wordpiece_to_fairseq(str(premasked["vocab"]))
    write_dict_txt(dictionary, str(data / "dict.txt"))
    write_vocab(data / "vocab.txt", vocab_tokens())
    dims = dict(encoder_layers=2, encoder_embed_dim=16, encoder_ffn_embed_dim=64, encoder_attention_heads=2,
                max_positions=32, dropout=0.0, attention_dropout=0.0, activation_fn="gelu_accurate", num_segment=2,
                layer_norm_eps=1e-12)
    random_model = build_tokendrop(dictionary, seed=3, **dims).eval()
    with torch.no_grad():  # weights of BERT's init scale keep activations where the two GELUs agree
        for p in random_model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    cfg = training_cfg(str(data), "tokendrop_roberta_base", dims, "--activation-fn", "gelu_accurate",
                       "--num-segment", "2", "--layer-norm-eps", "1e-12")
    torch.save(fresh_training_state(cfg, random_model.state_dict(), "MaskedLmTokenDropLoss"), root / "random.pt")
    load_script("export_checkpoint").main([str(root / "random.pt"), "--hf-out", str(root / "random")])

    ids, attention, segments = wordpiece_batch(vocab_tokens(), (20, 13, 6), seed=2)
    job = lambda directory, **extra: dict(  # noqa: E731
        dir=str(directory), vocab=str(premasked["vocab"]), lower_case=True, texts=TEXTS, input_ids=ids.tolist(),
        attention_mask=attention.tolist(), token_type_ids=segments.tolist(), **extra)
    hf = run_isolated(HF_SIDE, {"top_k": TOP_K, "exports": {
        "trained": job(root / "trained", masked=MASKED), "random": job(root / "random", other_activation="gelu")}},
        str(root))
    return dict(root=root, hf=hf, ids=ids, attention=attention, segments=segments,
                vocab_bytes=premasked["vocab"].read_bytes(),
                models={"trained": (models[0].eval(), task.source_dictionary), "random": (random_model, dictionary)})


def test_transformers_loads_a_bert_with_every_weight(exports):
    for name, (act, eps) in {"trained": ("gelu", 1e-5), "random": ("gelu_new", 1e-12)}.items():
        hf = exports["hf"][name]
        assert hf["classes"] == ("BertForMaskedLM", "BertForMaskedLM")
        assert not any(hf["loading_info"].values()), hf["loading_info"]
        config = hf["config"]
        assert (config["vocab_size"], config["hidden_act"], config["layer_norm_eps"], config["type_vocab_size"]) == \
            (len(vocab_tokens()), act, eps, 2)
    assert (exports["root"] / "trained" / "vocab.txt").read_bytes() == exports["vocab_bytes"]
    assert json.loads((exports["root"] / "trained" / "tokenizer_config.json").read_text())["do_lower_case"] is True


def test_auto_tokenizer_encodes_as_bert_tokenizer_of_the_vocab(exports):
    hf = exports["hf"]["trained"]
    assert hf["ids"] == hf["reference_ids"]
    tokens = vocab_tokens()
    assert [tokens[i] for i in hf["ids"][1]] == ["[CLS]", "w3", "w24", "##s", "w1", "##ing", "[SEP]"]  # lowered


@pytest.mark.parametrize("name", ["trained", "random"])
def test_bert_gives_fairseqs_logits_in_vocab_txt_order(exports, name):
    """Token types are the segments: the random model's second segment row is its own, the trained
    model (no segments) adds nothing for either."""
    hf, (model, dictionary) = exports["hf"][name], exports["models"][name]
    expected = fairseq_logits(model, dictionary, exports["ids"], exports["attention"], exports["segments"])
    real = exports["attention"].bool()
    got = hf["logits"][real]
    assert (got - expected[real][:, columns(dictionary)]).abs().max() <= 1e-5
    if name == "random":  # the test tells the two GELUs apart, and sees the segments
        assert (hf["other_logits"][real] - got).abs().max() > 1e-3
        no_segments = fairseq_logits(model, dictionary, exports["ids"], exports["attention"],
                                     torch.zeros_like(exports["segments"]))
        assert (no_segments[real][:, columns(dictionary)] - got).abs().max() > 1e-3


def test_fill_mask_pipeline_predicts_what_the_fairseq_model_does(exports):
    """BERT's distribution is fairseq's over the wordpieces: fairseq's <pad> column, which BERT lacks, left out."""
    hf, (model, dictionary) = exports["hf"]["trained"], exports["models"]["trained"]
    for text, filled, reference in zip(MASKED, hf["filled"], hf["masked_reference_ids"]):
        ids = torch.from_numpy(by_symbol(vocab_tokens(), dictionary, reference))
        with torch.no_grad():
            logits = model(ids[None])[0][0, ids.tolist().index(dictionary.index("<mask>"))]
        top = logits[columns(dictionary)].softmax(-1).topk(TOP_K)
        assert [token for token, _ in filled] == top.indices.tolist(), text
        assert [score for _, score in filled] == pytest.approx(top.values.tolist(), abs=1e-6)


@pytest.mark.parametrize("name", ["trained", "random"])
def test_import_hf_of_the_bert_export_gives_the_model_back(exports, name, tmp_path):
    keep = ["--keep-segments"] if name == "random" else []  # the table back as segments, not folded
    load_script("import_hf").main([str(exports["root"] / name), str(tmp_path / "imported"), *keep])
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(tmp_path / "imported" / "model.pt")], arg_overrides={"data": str(tmp_path / "imported")})
    model, dictionary = exports["models"][name]
    assert task.source_dictionary.symbols == dictionary.symbols
    # segments where the model has them; the model without gets none back (its token-type row 0 folds away)
    assert models[0].state_dict().keys() == model.state_dict().keys()
    tokens = random_tokens(dictionary, batch=3, length=24, seed=5, pad_tail=(0, 7, 15))
    segments = (torch.arange(24)[None] >= torch.tensor([[12], [5], [3]])).long()
    with torch.no_grad():
        expected = model(tokens, segment_labels=segments)[0]
        got = models[0].eval()(tokens, segment_labels=segments)[0]
    real, pad = tokens.ne(dictionary.pad()), dictionary.pad()
    keep = [i for i in range(len(dictionary)) if i != pad]
    assert (got[real][:, keep] - expected[real][:, keep]).abs().max() <= 1e-5
    # fairseq's <pad>, which BERT has no row for, comes back never predicted
    assert (got[real][:, pad] < got[real][:, keep].min(-1).values - 1e3).all()
    # the import keeps vocab.txt and its casing, so exporting it again gives the same BERT
    load_script("export_checkpoint").main([str(tmp_path / "imported" / "model.pt"),
                                           "--hf-out", str(tmp_path / "again")])
    for file in ("vocab.txt", "tokenizer_config.json", "config.json"):
        assert (tmp_path / "again" / file).read_bytes() == (exports["root"] / name / file).read_bytes(), file


def test_the_stock_fairseq_export_refuses_segment_embeddings_in_one_line(exports, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        load_script("export_checkpoint").main([str(exports["root"] / "random.pt"),
                                               "--fairseq-out", str(tmp_path / "out")])
    message = str(exit_info.value.code)
    assert message.startswith("fairseq_tokendrop: error: --fairseq-out: the model has segment embeddings")
    assert "\n" not in message and not (tmp_path / "out").exists()

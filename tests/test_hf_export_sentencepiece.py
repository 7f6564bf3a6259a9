"""export_checkpoint --hf-out of a model trained on prepare_corpus data (sentencepiece): transformers
alone, in a plain ``python -I``, tokenizes as fairseq's ``roberta.encode`` does and predicts what the
fairseq model predicts; import_hf of the export gives the fairseq model back."""
import pytest
import sentencepiece
import torch
from fairseq import checkpoint_utils
from fairseq.models.roberta import RobertaModel

from conftest import load_script, random_tokens
from hf_isolated import run_isolated

pytestmark = pytest.mark.slow  # a python -I process, and fixtures that train

# Within the model's 32 positions; characters outside the w-words corpus become byte pieces.
TEXTS = ["w3 w24 w1 w38", "w3w24  w1", "  w7\tw8  ", "", "Paris, France.", "naïve ☃ 日本",
         "w12 w13 w14 w15 w16 w17 w18 w19 w20 w21 w22"]
MASKED = ["w3 w24 <mask> w11", "<mask> w7 w8", "w1 w2 w3 w4 w5 <mask>"]
TOP_K = 5

HF_SIDE = """
from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline
tokenizer = AutoTokenizer.from_pretrained(args["dir"])
model, info = AutoModelForMaskedLM.from_pretrained(args["dir"], output_loading_info=True)
model.eval()
out["model_class"] = type(model).__name__
out["loading_info"] = {k: sorted(map(str, v)) for k, v in info.items()}
out["ids"] = [tokenizer(text)["input_ids"] for text in args["texts"]]
out["tokens"] = [tokenizer.convert_ids_to_tokens(ids) for ids in out["ids"]]
with torch.no_grad():
    out["logits"] = [model(input_ids=torch.tensor([ids])).logits[0] for ids in out["ids"]]
fill = pipeline("fill-mask", model=args["dir"])
out["filled"] = []
for text in args["masked"]:
    results = fill(text.replace("<mask>", fill.tokenizer.mask_token), top_k=args["top_k"])
    out["filled"].append([(r["token"], r["score"], r["token_str"]) for r in results])
"""


@pytest.fixture(scope="module")
def fairseq_side(pretrained):
    """The trained model with the plugin, and its stock fairseq export's hub interface (encode, fill_mask)."""
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(pretrained["checkpoint"])], arg_overrides={"data": str(pretrained["data"])})
    hub = RobertaModel.from_pretrained(str(pretrained["fairseq_export"]), "model.pt", bpe="sentencepiece").eval()
    return dict(model=models[0].eval(), dictionary=task.source_dictionary, hub=hub)


@pytest.fixture(scope="module")
def hf_side(pretrained, tmp_path_factory):
    return run_isolated(HF_SIDE, {"dir": str(pretrained["hf_export"]), "texts": TEXTS, "masked": MASKED,
                                  "top_k": TOP_K}, str(tmp_path_factory.mktemp("hf_side")))


def test_transformers_loads_a_roberta_with_every_weight(hf_side):
    assert hf_side["model_class"] == "RobertaForMaskedLM"
    assert not any(hf_side["loading_info"].values()), hf_side["loading_info"]


def test_auto_tokenizer_gives_the_pieces_and_ids_of_fairseqs_encode(pretrained, fairseq_side, hf_side):
    dictionary, hub = fairseq_side["dictionary"], fairseq_side["hub"]
    sp = sentencepiece.SentencePieceProcessor(model_file=str(pretrained["data"] / "spm.model"))
    unknown = 0
    for text, ids, tokens in zip(TEXTS, hf_side["ids"], hf_side["tokens"]):
        assert tokens[1:-1] == sp.encode(text, out_type=str), text
        # a piece the dictionary lacks has an id after <mask>, where fairseq has <unk>
        assert [i if i < len(dictionary) else dictionary.unk() for i in ids] == hub.encode(text).tolist(), text
        assert all(dictionary.index(t) == dictionary.unk() for i, t in zip(ids, tokens) if i >= len(dictionary))
        unknown += sum(i >= len(dictionary) for i in ids)
    assert unknown > 0  # the texts out of the w-words corpus reach them (byte pieces never seen in training)


def test_the_hf_model_gives_fairseqs_logits_and_never_predicts_unknown_pieces(fairseq_side, hf_side):
    dictionary, model = fairseq_side["dictionary"], fairseq_side["model"]
    V = len(dictionary)
    for text, ids, hf_logits in zip(TEXTS, hf_side["ids"], hf_side["logits"]):
        fairseq_ids = torch.tensor([[i if i < V else dictionary.unk() for i in ids]])
        with torch.no_grad():
            expected = model(fairseq_ids)[0][0]
        assert (hf_logits[:, :V] - expected).abs().max() <= 1e-4, text
        assert (hf_logits[:, V:] < expected.min(-1, keepdim=True).values - 1e3).all()


def test_fill_mask_pipeline_predicts_what_fairseqs_fill_mask_does(fairseq_side, hf_side):
    hub = fairseq_side["hub"]
    for text, filled in zip(MASKED, hf_side["filled"]):
        expected = hub.fill_mask(text, topk=TOP_K)
        assert [token_str.strip() for _, _, token_str in filled] == [token.strip() for _, _, token in expected], text
        assert [score for _, score, _ in filled] == pytest.approx([p for _, p, _ in expected], abs=1e-5)


def test_import_hf_of_the_export_gives_the_model_back(pretrained, fairseq_side, tmp_path):
    load_script("import_hf").main([str(pretrained["hf_export"]), str(tmp_path / "imported")])
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(tmp_path / "imported" / "model.pt")], arg_overrides={"data": str(tmp_path / "imported")})
    dictionary = fairseq_side["dictionary"]
    assert task.source_dictionary.symbols == dictionary.symbols  # madeupword padding under its own name too
    tokens = random_tokens(dictionary, batch=3, length=24, seed=5, pad_tail=(0, 7, 15))
    with torch.no_grad():
        expected, got = fairseq_side["model"](tokens)[0], models[0].eval()(tokens)[0]
    real = tokens.ne(dictionary.pad())
    assert (got[real] - expected[real]).abs().max() <= 1e-5
    # and the import exports again to the same HF files: the round trip closes
    assert (tmp_path / "imported" / "sentencepiece.bpe.model").read_bytes() == \
        (pretrained["data"] / "spm.model").read_bytes()
    load_script("export_checkpoint").main([str(tmp_path / "imported" / "model.pt"),
                                           "--hf-out", str(tmp_path / "again")])
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json"):
        assert (tmp_path / "again" / name).read_bytes() == (pretrained["hf_export"] / name).read_bytes(), name

"""The tokenizer.json written for a sentencepiece model, read by transformers' AutoTokenizer in a plain
``python -I``, against fairseq's own encoding (its ``sentencepiece`` BPE and ``Dictionary.encode_line``,
what ``RobertaHubInterface.encode`` runs) for unigram and bpe models with byte fallback."""
import random

import pytest
import sentencepiece
from fairseq.data.encoders.sentencepiece_bpe import SentencepieceBPE, SentencepieceConfig
from fairseq.tasks.masked_lm import MaskedLMTask

from fairseq_tokendrop.errors import ERROR_PREFIX, TokendropError
from fairseq_tokendrop.interop.sentencepiece_tokenizer import hf_vocabulary, read_spm_model, write_tokenizer_files
from fairseq_tokendrop.standalone import made_up_dictionary

from hf_isolated import run_isolated

pytestmark = pytest.mark.slow  # a python -I process

# English from the standard library's docstrings, and lines in other scripts, some of whose
# characters the models do not cover (byte fallback, and bytes the dictionary never saw).
OTHER_SCRIPTS = ["Größe und Maß: naïve café, déjà vu.", "Ελληνικά γράμματα και αριθμοί 123.",
                 "Русский текст для проверки.", "日本語のテキストです。", "emoji 😀 and ☃ signs"]


def corpus_lines():
    import argparse as a, collections, json, textwrap  # noqa: E401  (their docstrings are the text)
    text = " ".join(m.__doc__ for m in (a, collections, json, textwrap))
    words = text.split()
    return [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]


def sample_texts(lines):
    """Held-out lines, lines of other scripts, whitespace oddities, and random strings."""
    rng = random.Random(0)
    chars = sorted(set("".join(lines))) + list("éüßΩж日本語😀\u3000\u00a0\t ＡＢﬁ①…—“”")
    fuzz = ["".join(rng.choice(chars) for _ in range(rng.randint(1, 30))) for _ in range(300)]
    odd = ["", " ", "  two   spaces  ", "\ttab\tand\nnewline ", "x" * 40, "ﬁne ＡＢＣ ①", "e\u0301 combining"]
    return lines[-40:] + OTHER_SCRIPTS + odd + fuzz


HF_SIDE = """
from transformers import AutoTokenizer
for kind, directory in args["dirs"].items():
    tokenizer = AutoTokenizer.from_pretrained(directory)
    out[kind] = {"class": type(tokenizer).__name__,
                 "ids": [tokenizer(text)["input_ids"] for text in args["texts"]],
                 "masked": [tokenizer(text)["input_ids"] for text in args["masked"]],
                 "mask_token": tokenizer.mask_token, "mask_id": tokenizer.mask_token_id,
                 "pair": tokenizer("first", "second")["input_ids"]}
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A unigram and a bpe model trained on the first lines, and each one's fairseq dictionary made
    from the training pieces the way fairseq-preprocess makes it (MaskedLMTask.build_dictionary)."""
    root = tmp_path_factory.mktemp("spm_tokenizer")
    lines = corpus_lines()
    train = root / "train.txt"
    train.write_text("\n".join(lines[:-40] + OTHER_SCRIPTS[:2]) + "\n", encoding="utf-8")
    built = {}
    for kind in ("unigram", "bpe"):
        sentencepiece.SentencePieceTrainer.train(input=str(train), model_prefix=str(root / kind), model_type=kind,
                                                 vocab_size=400, byte_fallback=True, character_coverage=0.9999,
                                                 minloglevel=2)
        sp = sentencepiece.SentencePieceProcessor(model_file=str(root / f"{kind}.model"))
        pieces = root / f"{kind}.pieces"
        pieces.write_text("".join(" ".join(sp.encode(line, out_type=str)) + "\n"
                                  for line in train.read_text(encoding="utf-8").splitlines()), encoding="utf-8")
        dictionary = MaskedLMTask.build_dictionary([str(pieces)], workers=1, padding_factor=8)
        dictionary.add_symbol("<mask>")
        out = root / f"hf_{kind}"
        out.mkdir()
        vocabulary = write_tokenizer_files(str(out), str(root / f"{kind}.model"), dictionary.symbols, 64)
        bpe = SentencepieceBPE(SentencepieceConfig(sentencepiece_model=str(root / f"{kind}.model")))
        built[kind] = dict(dictionary=dictionary, vocabulary=vocabulary, dir=str(out), bpe=bpe, sp=sp,
                           model=str(root / f"{kind}.model"))
    texts = sample_texts(lines)
    masked = ["The module <mask> objects.", "<mask> first", "last <mask>", "two<mask>glued", "Größe <mask> Maß"]
    hf = run_isolated(HF_SIDE, {"dirs": {k: v["dir"] for k, v in built.items()}, "texts": texts,
                                "masked": masked}, str(root))
    return dict(built=built, hf=hf, texts=texts, masked=masked)


def fairseq_encode(model, text):
    """RobertaHubInterface.encode: <s> + pieces + </s>, each looked up in the dictionary (<unk> if absent)."""
    pieces = model["bpe"].encode(text)
    return model["dictionary"].encode_line(f"<s> {pieces} </s>", append_eos=False, add_if_not_exist=False).tolist()


@pytest.mark.parametrize("kind", ["unigram", "bpe"])
def test_auto_tokenizer_gives_fairseqs_ids(models, kind):
    model, hf = models["built"][kind], models["hf"][kind]
    size, unk = model["vocabulary"].dictionary_size, model["dictionary"].unk()
    assert hf["class"] == "TokenizersBackend" or hf["class"].startswith("PreTrainedTokenizerFast")
    unknown_pieces_seen = 0
    for text, ids in zip(models["texts"], hf["ids"]):
        # ids past the dictionary are pieces it lacks: fairseq has <unk> there
        assert [i if i < size else unk for i in ids] == fairseq_encode(model, text), text
        unknown_pieces_seen += sum(i >= size for i in ids)
        # and they are the very pieces sentencepiece cut
        tokens = [model["vocabulary"].tokens[i][0] for i in ids[1:-1]]
        assert tokens == model["sp"].encode(text, out_type=str), text
    assert unknown_pieces_seen > 0 and model["vocabulary"].unknown_pieces > 0
    assert len(model["vocabulary"].unreachable) > 0  # fairseq-preprocess's madeupword padding, never produced


@pytest.mark.parametrize("kind", ["unigram", "bpe"])
def test_mask_token_splits_text_as_fairseqs_fill_mask(models, kind):
    """fairseq's fill_mask encodes the text on each side of <mask> on its own (RobertaHubInterface.fill_mask)."""
    model, hf = models["built"][kind], models["hf"][kind]
    mask = model["dictionary"].index("<mask>")
    assert (hf["mask_token"], hf["mask_id"]) == ("<mask>", mask) and mask == len(model["dictionary"]) - 1
    size, unk = model["vocabulary"].dictionary_size, model["dictionary"].unk()
    for text, ids in zip(models["masked"], hf["masked"]):
        left, right = text.split("<mask>")
        spans = [model["bpe"].encode(span.rstrip()) for span in (left, right)]
        expected = model["dictionary"].encode_line(f"<s> {' <mask> '.join(spans).strip()} </s>",
                                                   append_eos=False, add_if_not_exist=False).tolist()
        assert [i if i < size else unk for i in ids] == expected, text


def test_sentence_pairs_take_robertas_layout(models):
    model, hf = models["built"]["unigram"], models["hf"]["unigram"]
    first, second = (fairseq_encode(model, t) for t in ("first", "second"))
    assert hf["pair"] == first + [model["dictionary"].eos()] + second[1:]


def test_a_model_of_another_dictionary_or_no_model_is_named_in_one_line(models, tmp_path):
    path = models["built"]["unigram"]["model"]
    with pytest.raises(TokendropError, match=f"^{ERROR_PREFIX}{path} does not match the dictionary: 40 of its 45 entries"):
        hf_vocabulary(read_spm_model(path), made_up_dictionary(45).symbols, path)
    (tmp_path / "bad.model").write_bytes(b"not a sentencepiece model")
    with pytest.raises(TokendropError, match=f"^{ERROR_PREFIX}{tmp_path / 'bad.model'}: not a sentencepiece model"):
        read_spm_model(str(tmp_path / "bad.model"))

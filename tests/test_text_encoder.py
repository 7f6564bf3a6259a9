"""data/text_encoder.py: text -> a model's fairseq ids, checked against other implementations of each tokenizer.

- sentencepiece: fairseq's own hub path (``SentencepieceBPE.encode`` then ``Dictionary.encode_line``);
- WordPiece: transformers' pure-Python ``BertTokenizer`` over the same vocab.txt, its tokens mapped
  to fairseq's by their text;
- tokenizer.json: the HF export's, which must give the ids sentencepiece gives (slow: the fixture trains).
"""
import pytest
import sentencepiece
from fairseq.data import Dictionary
from fairseq.data.encoders.sentencepiece_bpe import SentencepieceBPE, SentencepieceConfig

from fairseq_tokendrop.data.text_encoder import find_text_encoder
from fairseq_tokendrop.errors import TokendropError
from fairseq_tokendrop.data.wordpiece_dictionary import wordpiece_to_fairseq, write_dict_txt

from premasked_fixtures import by_symbol, vocab_tokens, write_vocab

SENTENCES = ["The film is a quiet triumph.", "Dull, derivative -- and far too long!", "Ünïcödé café naïveté",
             "tabs\tand  spaces", "", "a " + "x" * 120, "<mask> and <s> as text"]
WORDPIECE_TEXTS = ["w3 w24 w1 w38", "W3 w24s W1ing", "w5, w7! w9?", "x9 unknownword", "", "[MASK] w2 [SEP] w4",
                   "w1" + "s" * 120, "Ẃ3 w2ïng"]


@pytest.fixture(scope="module")
def sentencepiece_dir(tmp_path_factory):
    """A unigram model trained here, and dict.txt of its pieces over the text (as fairseq-preprocess counts)."""
    root = tmp_path_factory.mktemp("spm")
    corpus = [f"{s} number {i} of the reviews, quiet and long." for i in range(200) for s in SENTENCES[:3]]
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(corpus), model_prefix=str(root / "spm"),
                                             vocab_size=60, minloglevel=2)
    processor = sentencepiece.SentencePieceProcessor(model_file=str(root / "spm.model"))
    dictionary = Dictionary()
    for line in corpus[:50]:
        for piece in processor.encode(line, out_type=str):
            dictionary.add_symbol(piece)
    dictionary.finalize()
    dictionary.save(str(root / "dict.txt"))
    return root


def test_sentencepiece_gives_fairseqs_hub_encoding(sentencepiece_dir):
    encoder = find_text_encoder(str(sentencepiece_dir))
    bpe = SentencepieceBPE(SentencepieceConfig(sentencepiece_model=str(sentencepiece_dir / "spm.model")))
    dictionary = Dictionary.load(str(sentencepiece_dir / "dict.txt"))
    expected = [dictionary.encode_line(bpe.encode(s), append_eos=False, add_if_not_exist=False).tolist()
                for s in SENTENCES]
    assert encoder.ids(SENTENCES) == expected
    assert any(dictionary.unk() in ids for ids in expected)  # pieces the dictionary lacks are <unk> in both
    assert (encoder.kind, encoder.bert) == ("sentencepiece", False)


@pytest.mark.parametrize("lower_case", [True, False])
def test_wordpiece_splits_as_bert_tokenizer(lower_case, tmp_path):
    from transformers import BertTokenizer

    tokens = vocab_tokens()
    write_vocab(tmp_path / "vocab.txt", tokens)
    encoder = find_text_encoder(str(tmp_path), lower_case=lower_case)
    reference = BertTokenizer(str(tmp_path / "vocab.txt"), do_lower_case=lower_case)
    expected = [by_symbol(tokens, encoder.dictionary, reference(t, add_special_tokens=False)["input_ids"]).tolist()
                for t in WORDPIECE_TEXTS]
    assert encoder.ids(WORDPIECE_TEXTS) == expected
    assert (encoder.kind, encoder.bert) == ("wordpiece", True)


def test_wordpiece_casing_defaults_to_the_vocabularys(tmp_path):
    write_vocab(tmp_path / "vocab.txt", vocab_tokens())  # no upper-case token: uncased
    assert find_text_encoder(str(tmp_path)).ids(["W3"]) == find_text_encoder(str(tmp_path), lower_case=True).ids(["w3"])


def test_a_dictionary_that_is_not_the_vocabularys_is_refused(tmp_path):
    write_vocab(tmp_path / "vocab.txt", vocab_tokens())
    dictionary, _ = wordpiece_to_fairseq(str(write_vocab(tmp_path / "other.txt", vocab_tokens(extra_words=3))))
    write_dict_txt(dictionary, str(tmp_path / "dict.txt"))
    with pytest.raises(TokendropError, match="dict.txt is not the dictionary of .*vocab.txt"):
        find_text_encoder(str(tmp_path))


def test_a_folder_without_a_tokenizer_is_refused_in_one_line(tmp_path):
    with pytest.raises(TokendropError, match="no vocab.txt and no dict.txt"):
        find_text_encoder(str(tmp_path))
    (tmp_path / "dict.txt").write_text("hello 1\n")
    with pytest.raises(TokendropError, match="dict.txt but no tokenizer"):
        find_text_encoder(str(tmp_path))


@pytest.mark.slow  # the session's pretraining fixture starts processes
def test_the_hf_exports_tokenizer_json_gives_the_sentencepiece_ids(pretrained, tmp_path):
    export = pretrained["hf_export"]
    texts = ["w3 w24 w1 w38", "w5w7 w9 and some letters outside", ""]
    # the same dir with the sentencepiece model hidden: tokenizer.json over dict.txt
    (tmp_path / "dict.txt").write_bytes((export / "dict.txt").read_bytes())
    (tmp_path / "tokenizer.json").write_bytes((export / "tokenizer.json").read_bytes())
    from_json = find_text_encoder(str(tmp_path))
    assert from_json.kind == "tokenizer.json"
    assert from_json.ids(texts) == find_text_encoder(str(export)).ids(texts)

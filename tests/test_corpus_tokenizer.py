"""data/corpus_tokenizer.py, tokenizer_json.py, vocabulary_order.py: which tokenizer a file is, and the fairseq ids
of its vocabulary, checked against layouts worked out by hand from fairseq's (<s> <pad> </s> <unk> first,
<mask> last) and each tokenizer's own."""
import json

import pytest
import sentencepiece
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from fairseq_tokendrop.data.corpus_tokenizer import load_corpus_tokenizer
from fairseq_tokendrop.errors import TokendropError

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "un", "##aff", "##able", "play", "##wright", "##s", "a", "cat"]


def roberta_layout_json(path, extra=()):
    """RoBERTa's layout (fairseq's own: <s>=0 <pad>=1 </s>=2 <unk>=3, <mask> last), as a WordLevel model."""
    tokens = ["<s>", "<pad>", "</s>", "<unk>", "a", "b", "c", *extra, "<mask>"]
    tokenizer = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tokenizer.save(str(path))
    return tokens


def bert_layout_json(path, post_processor=True, specials=BERT_SPECIALS):
    """BERT's layout ([PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4, then words) as a WordPiece model."""
    tokens = list(specials) + WORDS
    tokenizer = Tokenizer(models.WordPiece({t: i for i, t in enumerate(tokens)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.add_special_tokens(list(specials))
    if post_processor:
        tokenizer.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    tokenizer.save(str(path))
    return tokens


def one_line_error(call):
    with pytest.raises(TokendropError) as caught:
        call()
    assert "\n" not in caught.value.message
    return caught.value.message


def test_a_roberta_layout_keeps_every_id(tmp_path):
    tokens = roberta_layout_json(tmp_path / "tokenizer.json")
    loaded = load_corpus_tokenizer(str(tmp_path / "tokenizer.json"))
    assert loaded.kind == "tokenizer.json"
    assert loaded.id_map.tolist() == list(range(len(tokens)))
    assert loaded.dictionary.symbols == tokens


def test_a_bert_layout_tokenizer_json_puts_the_specials_on_fairseqs(tmp_path):
    bert_layout_json(tmp_path / "tokenizer.json")
    loaded = load_corpus_tokenizer(str(tmp_path / "tokenizer.json"))
    # [PAD]->1 (<pad>), [UNK]->3, [CLS]->0, [SEP]->2, [MASK]->last (4 + 9 words); the words keep 5..13 -> 4..12
    assert loaded.id_map.tolist() == [1, 3, 0, 2, 13] + list(range(4, 13))
    assert loaded.config == {"tokenizer_class": "PreTrainedTokenizerFast", "cls_token": "[CLS]", "bos_token": "[CLS]",
                             "sep_token": "[SEP]", "eos_token": "[SEP]", "mask_token": "[MASK]", "unk_token": "[UNK]",
                             "pad_token": "[PAD]"}


def test_a_vocab_txt_maps_as_convert_premasked_does(tmp_path):
    (tmp_path / "words.json").write_text("".join(t + "\n" for t in BERT_SPECIALS + WORDS))  # the name says nothing
    loaded = load_corpus_tokenizer(str(tmp_path / "words.json"), lower_case=False)
    # [PAD] stays a token of its own (the first entry after fairseq's four), fairseq's <pad> has no counterpart
    assert (loaded.kind, loaded.lower_case) == ("wordpiece", False)
    assert loaded.id_map.tolist() == [4, 3, 0, 2, 14] + list(range(5, 14))
    assert 1 not in loaded.id_map.tolist()


def test_a_sentencepiece_model_keeps_its_order(tmp_path):
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter([f"the unaffable playwright wrote play number {i}" for i in range(200)]),
        model_prefix=str(tmp_path / "m"), vocab_size=40, minloglevel=2)
    (tmp_path / "m.model").rename(tmp_path / "tokenizer.txt")
    loaded = load_corpus_tokenizer(str(tmp_path / "tokenizer.txt"))
    processor = sentencepiece.SentencePieceProcessor(model_file=str(tmp_path / "tokenizer.txt"))
    assert (processor.unk_id(), processor.bos_id(), processor.eos_id(), processor.pad_id()) == (0, 1, 2, -1)
    assert loaded.kind == "sentencepiece"
    assert loaded.id_map.tolist() == [3, 0, 2] + list(range(4, 41))
    assert loaded.dictionary.symbols[4:-1] == [processor.id_to_piece(i) for i in range(3, 40)]


def test_roles_come_from_tokenizer_config_first_then_the_file_then_the_names(tmp_path):
    bert_layout_json(tmp_path / "tokenizer.json", post_processor=False)
    loaded = load_corpus_tokenizer(str(tmp_path / "tokenizer.json"))  # by name
    assert loaded.id_map.tolist()[:5] == [1, 3, 0, 2, 13]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"cls_token": "a", "sep_token": {"content": "cat"}}))
    loaded = load_corpus_tokenizer(str(tmp_path / "tokenizer.json"))
    assert loaded.description.count("tokenizer_config.json") == 2
    # "a" (id 12) and "cat" (id 13) are now <s> and </s>; [CLS] and [SEP] are words like any other
    assert loaded.id_map.tolist() == [1, 3, 4, 5, 13] + list(range(6, 13)) + [0, 2]


def test_a_token_with_a_line_break_keeps_its_place(tmp_path):
    tokens = roberta_layout_json(tmp_path / "tokenizer.json", extra=("\n", "d"))
    loaded = load_corpus_tokenizer(str(tmp_path / "tokenizer.json"))
    assert loaded.id_map.tolist() == list(range(len(tokens)))
    assert loaded.dictionary.symbols[7:9] == ["<token 7>", "d"]


@pytest.mark.parametrize("case", ["corpus", "bytes", "json", "no_specials", "no_mask", "two_roles", "fairseq_symbol",
                                  "directory", "lowercase"])
def test_bad_tokenizers_are_refused_in_one_line(tmp_path, case):
    path = tmp_path / "tokenizer"
    kwargs = {}
    if case == "corpus":
        path.write_text("A corpus has several words a line.\nNot one token.\n")
        expected = f"--tokenizer {path}: neither a tokenizer.json, a WordPiece vocab.txt (one token a line) nor a " \
                   "sentencepiece model"
    elif case == "bytes":
        path.write_bytes(bytes(range(256)))
        expected = f"--tokenizer {path}: neither"
    elif case == "json":
        path.write_text('{"vocab": {"a": 0}}')
        expected = f"{path}: not a tokenizer.json the tokenizers library reads"
    elif case == "no_specials":
        path.write_text("".join(t + "\n" for t in WORDS + ["[CLS]"]))
        expected = f"{path}: special token(s) [SEP], [UNK], [MASK] not found"
    elif case == "no_mask":
        bert_layout_json(path, specials=["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
        expected = f"{path}: no mask_token (fairseq's <mask>): name it in a tokenizer_config.json next to the file"
    elif case == "two_roles":
        bert_layout_json(path)
        (tmp_path / "special_tokens_map.json").write_text(json.dumps({"cls_token": "[SEP]"}))
        expected = f"{path}: '[SEP]' is the token of two roles (fairseq's <s> and </s>)"
    elif case == "fairseq_symbol":
        bert_layout_json(path, specials=BERT_SPECIALS + ["<s>"])
        expected = f"{path}: token 5 ('<s>') is one of fairseq's own symbols but not the tokenizer's special token"
    elif case == "directory":
        path = tmp_path
        expected = f"--tokenizer: no such file: {tmp_path} (give the tokenizer file in it"
    else:
        roberta_layout_json(path)
        kwargs = {"lower_case": True}
        expected = f"--lowercase/--no-lowercase: {path} is a tokenizer.json, which says its own casing"
    assert one_line_error(lambda: load_corpus_tokenizer(str(path), **kwargs)).startswith(expected)

"""Text -> the symbols and ids of a model's fairseq dictionary, with the model's own tokenizer.

Three tokenizers, as the plugin's data and exports carry them:

- a sentencepiece model (``spm.model`` of ``prepare_corpus``, ``sentencepiece.bpe.model`` of an
  export) with the ``dict.txt`` that ``fairseq-preprocess`` made of its pieces: the pieces are the
  symbols, as fairseq's ``roberta.encode`` with ``bpe="sentencepiece"`` gives them;
- a BERT WordPiece ``vocab.txt`` (``convert_premasked`` data, ``import_hf`` of a BERT, the HF
  BERT export), split as BERT does by the ``tokenizers`` library (``BertNormalizer``,
  ``BertPreTokenizer``, ``WordPiece``, the special tokens' strings kept whole: what transformers'
  ``BertTokenizerFast`` builds); the
  dictionary is vocab.txt's (``wordpiece_dictionary``), ``[UNK]`` is fairseq's ``<unk>``;
- a ``tokenizer.json`` (any ``tokenizers`` tokenizer, the HF RoBERTa export's included) over a
  ``dict.txt``: its tokens are the symbols.

``symbols`` gives the line ``fairseq-preprocess --srcdict dict.txt`` binarizes (a symbol the
dictionary lacks becomes ``<unk>`` there, as in ``ids``); no ``<s>``/``</s>`` is added: the
task frames the text. ``find_text_encoder`` picks the tokenizer in a model's directory.
"""
import os
from typing import Callable, List, Optional, Sequence

from fairseq.data import Dictionary

from ..errors import TokendropError
from .tokenizer_json import tokenizers_library
from .wordpiece_casing import lower_case_of
from .wordpiece_dictionary import MASK_SYMBOL, SPECIAL_TOKENS, read_wordpiece_vocab, wordpiece_to_fairseq

SPM_NAMES = ("spm.model", "sentencepiece.bpe.model")  # prepare_corpus' name, fairseq hub's name
BERT_UNK, BERT_PAD = "[UNK]", "[PAD]"
BERT_MAX_CHARS_PER_WORD = 100  # google-research/bert WordpieceTokenizer: longer words are [UNK]


class TextEncoder:
    """``kind``: ``sentencepiece``, ``wordpiece`` or ``tokenizer.json``; ``bert``: whether the model's
    vocabulary is BERT's, whose pairs are framed ``[CLS] A [SEP] B [SEP]`` (RoBERTa's add a separator)."""

    def __init__(self, split: Callable[[Sequence[str]], List[List[str]]], dictionary: Dictionary, kind: str,
                 description: str):
        self._split = split
        self.dictionary = dictionary
        self.kind = kind
        self.description = description

    @property
    def bert(self) -> bool:
        return self.kind == "wordpiece"

    def symbols(self, texts: Sequence[str]) -> List[List[str]]:
        """The dictionary symbols of each text (a batch: the tokenizers run it in C++)."""
        return self._split(list(texts))

    def ids(self, texts: Sequence[str]) -> List[List[int]]:
        return [[self.dictionary.index(s) for s in symbols] for symbols in self.symbols(texts)]


def load_dictionary(dict_path: str) -> Dictionary:
    """``dict.txt`` as fairseq's masked_lm and sentence_prediction tasks load it: ``<mask>`` appended."""
    if not os.path.isfile(dict_path):
        raise TokendropError(f"no such dictionary: {dict_path}")
    try:
        dictionary = Dictionary.load(dict_path)
    except Exception as err:
        raise TokendropError(f"{dict_path}: not a fairseq dict.txt ({err})") from None
    dictionary.add_symbol(MASK_SYMBOL)
    return dictionary


def sentencepiece_encoder(spm_path: str, dict_path: str) -> TextEncoder:
    import sentencepiece

    if not os.path.isfile(spm_path):
        raise TokendropError(f"no such sentencepiece model: {spm_path}")
    processor = sentencepiece.SentencePieceProcessor(model_file=spm_path)
    return TextEncoder(lambda texts: processor.encode(texts, out_type=str), load_dictionary(dict_path),
                       "sentencepiece", f"sentencepiece {spm_path} over {dict_path}")


def bert_wordpiece_tokenizer(tokens: Sequence[str], lower_case: bool):
    """The ``tokenizers.Tokenizer`` transformers' ``BertTokenizerFast`` builds from vocab.txt's ``tokens``:
    its ids are vocab.txt's line numbers."""
    tokenizers = tokenizers_library()
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordPiece(
        {token: i for i, token in enumerate(tokens)}, unk_token=BERT_UNK,
        max_input_chars_per_word=BERT_MAX_CHARS_PER_WORD))
    tokenizer.normalizer = tokenizers.normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lower_case)
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    # As BertTokenizer(Fast): a special token's own string in the text is that token.
    tokenizer.add_special_tokens([t for t in tokens if t in SPECIAL_TOKENS or t == BERT_PAD])
    return tokenizer


def wordpiece_encoder(vocab_path: str, lower_case: bool, dict_path: Optional[str] = None) -> TextEncoder:
    """BERT's split of vocab.txt; ``dict_path``, when given, must be the dictionary vocab.txt gives."""
    try:
        tokens = read_wordpiece_vocab(vocab_path)
        dictionary, _ = wordpiece_to_fairseq(vocab_path)
    except OSError as err:
        raise TokendropError(str(err)) from None
    if dict_path is not None and load_dictionary(dict_path).symbols != dictionary.symbols:
        raise TokendropError(f"{dict_path} is not the dictionary of {vocab_path} (convert_premasked and import_hf "
                           "write it from vocab.txt: give the model's own vocab.txt)")
    tokenizer = bert_wordpiece_tokenizer(tokens, lower_case)

    def split(texts):
        return [[SPECIAL_TOKENS.get(t, t) for t in e.tokens]
                for e in tokenizer.encode_batch(texts, add_special_tokens=False)]

    return TextEncoder(split, dictionary, "wordpiece", f"WordPiece {vocab_path} (do_lower_case={lower_case})")


def tokenizer_json_encoder(tokenizer_path: str, dict_path: str) -> TextEncoder:
    tokenizers = tokenizers_library()
    try:
        tokenizer = tokenizers.Tokenizer.from_file(tokenizer_path)
    except Exception as err:
        raise TokendropError(f"{tokenizer_path}: not a tokenizers tokenizer.json ({err})") from None

    def split(texts):
        return [e.tokens for e in tokenizer.encode_batch(texts, add_special_tokens=False)]

    return TextEncoder(split, load_dictionary(dict_path), "tokenizer.json", f"{tokenizer_path} over {dict_path}")


def find_text_encoder(directory: str, lower_case: Optional[bool] = None) -> TextEncoder:
    """The tokenizer a model directory (a data-bin, an export) holds: ``vocab.txt`` first (its
    ``dict.txt``, when there, must match), then a sentencepiece model with ``dict.txt``, then
    ``tokenizer.json`` with ``dict.txt``. ``lower_case`` (WordPiece): default as the HF export
    decides it (``tokenizer_config.json`` next to vocab.txt, else whether vocab.txt is uncased)."""
    path = lambda name: os.path.join(directory, name)  # noqa: E731
    dict_path = path("dict.txt") if os.path.isfile(path("dict.txt")) else None
    if os.path.isfile(path("vocab.txt")):
        if lower_case is None:
            try:
                lower_case, _ = lower_case_of(path("vocab.txt"), read_wordpiece_vocab(path("vocab.txt")), None)
            except OSError as err:
                raise TokendropError(str(err)) from None
        return wordpiece_encoder(path("vocab.txt"), lower_case, dict_path)
    if dict_path is None:
        raise TokendropError(f"{directory}: no vocab.txt and no dict.txt: not a model's data dir or export")
    for name in SPM_NAMES:
        if os.path.isfile(path(name)):
            return sentencepiece_encoder(path(name), dict_path)
    if os.path.isfile(path("tokenizer.json")):
        return tokenizer_json_encoder(path("tokenizer.json"), dict_path)
    raise TokendropError(f"{directory}: dict.txt but no tokenizer ({', '.join(SPM_NAMES)}, vocab.txt or "
                       "tokenizer.json): give the model's tokenizer")

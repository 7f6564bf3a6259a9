"""Raw text to the ids a checkpoint was trained on, with the vocabulary of its data dir.

- sentencepiece (``prepare_corpus`` data): fairseq's own path, as ``RobertaHubInterface.encode``
  with ``bpe="sentencepiece"`` takes it: the pieces of ``SentencePieceProcessor.encode(text,
  out_type=str)`` looked up in the dictionary (a piece it lacks is ``<unk>``), between ``<s>`` and
  ``</s>``;
- a WordPiece ``vocab.txt`` (``convert_premasked`` or ``import_hf`` data): BERT's tokenizer
  (transformers' ``BertTokenizer``, with the casing the export uses), its ids mapped onto the
  dictionary's as the conversion maps them (``data/wordpiece_dictionary.py``), ``[CLS] ... [SEP]``
  becoming ``<s> ... </s>``.

Text longer than the model's positions is cut to them, ``</s>`` kept last.
"""
from typing import List

from ..data.wordpiece_dictionary import wordpiece_to_fairseq
from ..errors import TokendropError


class SentencePieceText:
    def __init__(self, spm_path: str, dictionary):
        import sentencepiece

        self.spm = sentencepiece.SentencePieceProcessor(model_file=spm_path)
        self.dictionary = dictionary

    def ids(self, text: str) -> List[int]:
        pieces = self.spm.encode(text, out_type=str)
        return [self.dictionary.index(piece) for piece in pieces]  # index() gives <unk> for a missing piece


class WordPieceText:
    def __init__(self, vocab_path: str, lower_case: bool, dictionary):
        try:
            from transformers import BertTokenizer
        except ImportError:
            raise TokendropError(f"raw text with the WordPiece vocabulary {vocab_path} is tokenized by transformers' "
                                 "BertTokenizer: pip install .[hf]") from None
        converted, self.id_map = wordpiece_to_fairseq(vocab_path)
        if list(converted.symbols) != list(dictionary.symbols):
            raise TokendropError(f"{vocab_path} does not give the checkpoint's dictionary ({len(converted)} entries "
                                 f"against {len(dictionary)}): give the vocab.txt the data was converted with (--vocab)")
        self.tokenizer = BertTokenizer(vocab_path, do_lower_case=lower_case)  # vocab_file (v4), vocab (v5)

    def ids(self, text: str) -> List[int]:
        wordpiece_ids = self.tokenizer.convert_tokens_to_ids(self.tokenizer.tokenize(text))
        return [int(self.id_map[i]) for i in wordpiece_ids]


def sentence_ids(encoder, text: str, dictionary, max_positions: int) -> List[int]:
    """``<s> ids </s>`` of one line, at most ``max_positions`` long."""
    body = encoder.ids(text)[:max_positions - 2]
    return [dictionary.bos(), *body, dictionary.eos()]

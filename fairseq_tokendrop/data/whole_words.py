"""Whole-word masking (``--mask-whole-words``) with the tokenizer of the data, masked anew every epoch as RoBERTa masks.

fairseq's ``masked_lm`` builds the mask from ``--bpe``: a dictionary entry starts a word when the
bpe's ``is_beginning_of_word`` says so, fairseq's specials and ``madeupword`` padding always
(``fairseq/data/encoders/utils.py`` ``get_whole_word_mask``); ``MaskTokensDataset`` then draws
whole words, and masks, replaces or keeps all of a word's tokens together. The bpe for each kind
of data dir ``prepare_corpus`` writes:

- WordPiece vocab.txt: fairseq's own ``--bpe bert --bpe-vocab-file DATA/vocab.txt`` (a token
  continues a word when it starts with ``##``; it loads transformers' ``BertTokenizer``);
- sentencepiece: fairseq's own ``--bpe sentencepiece --sentencepiece-model DATA/spm.model`` (a
  piece starts a word when it starts with ``▁``; byte pieces continue one);
- tokenizer.json: this plugin's ``--bpe tokenizer_json --tokenizer-json DATA/tokenizer.json``
  (``##`` or ``▁`` as the tokenizer marks words, see ``tokenizer_json``).

Stock ``masked_lm`` reads the bpe settings from ``self.args``, which only fairseq's legacy tasks
have, so ``--mask-whole-words`` fails there with an AttributeError (fairseq issue 3924);
``masked_lm_tokendrop`` gives it the run's ``--bpe`` settings (``bpe_settings``), and refuses
``--mask-whole-words`` without ``--bpe``, where fairseq would silently mask single tokens.
"""
from dataclasses import dataclass, field

from fairseq.data.encoders import register_bpe
from fairseq.dataclass import FairseqDataclass

from ..errors import TokendropError
from .tokenizer_json import read_tokenizer_json, word_start_rule

BPE_FLAGS = ("--bpe bert --bpe-vocab-file DATA/vocab.txt, --bpe sentencepiece --sentencepiece-model "
             "DATA/spm.model or --bpe tokenizer_json --tokenizer-json DATA/tokenizer.json")


def bpe_settings(task_cfg):
    """What ``get_whole_word_mask`` builds the bpe from: the run's ``--bpe`` config (one line when none)."""
    root = task_cfg._get_parent() if hasattr(task_cfg, "_get_parent") else None
    bpe = getattr(root, "bpe", None) if root is not None else None
    if bpe is None or not bpe.get("_name"):
        raise TokendropError(f"--mask-whole-words needs --bpe to tell where words start: {BPE_FLAGS}")
    return bpe


@dataclass
class TokenizerJsonBPEConfig(FairseqDataclass):
    tokenizer_json: str = field(default="???", metadata={"help": "the tokenizer.json of the data dir"})


@register_bpe("tokenizer_json", dataclass=TokenizerJsonBPEConfig)
class TokenizerJsonBPE:
    """A ``tokenizer.json`` as a fairseq bpe: its tokens as the dictionary's symbols, and where words start."""

    def __init__(self, cfg):
        vocabulary = read_tokenizer_json(cfg.tokenizer_json)
        self.tokenizer, self.roles = vocabulary.tokenizer, vocabulary.roles
        self.starts_word = word_start_rule(vocabulary)
        self.specials = {symbol: token for token, symbol in self.roles.items()}

    def encode(self, x: str) -> str:
        tokens = self.tokenizer.encode(x, add_special_tokens=False).tokens
        return " ".join(self.roles.get(t, t) for t in tokens)

    def decode(self, x: str) -> str:
        ids = [self.tokenizer.token_to_id(self.specials.get(s, s)) for s in x.split()]
        return self.tokenizer.decode([i for i in ids if i is not None])

    def is_beginning_of_word(self, x: str) -> bool:
        return x in self.specials or self.starts_word(x)

"""A tokenizer's vocabulary as a fairseq ``masked_lm`` dictionary that keeps the tokenizer's order.

fairseq's dictionary starts with ``<s> <pad> </s> <unk>`` (ids 0-3) and ``masked_lm`` appends
``<mask>`` (``fairseq_symbols``). The tokenizer's special tokens take those symbols by their role
(``roles``: token -> fairseq symbol); every other token keeps an entry of its own, in the
tokenizer's id order. So a token that is no special has fairseq id 4 + the number of such tokens
before it, and ``id_map[tokenizer_id]`` says it for every token. A fairseq symbol that no token
takes (BERT's vocab.txt has no ``<pad>``, see ``wordpiece_dictionary``) has no counterpart in the
tokenizer.

dict.txt is read a line at a time, so a token that is empty or holds a line break (a tokenizer
trained on text with newlines may hold ``"\n"``) cannot be its own symbol there: its entry is
named ``<token ID>`` instead, keeping its place. The corpus is split into lines before it is
encoded, so such a token never occurs in the data.
"""
from typing import Mapping, Sequence, Tuple

import numpy as np
from fairseq.data import Dictionary

from ..errors import TokendropError
from .fairseq_symbols import FAIRSEQ_SPECIALS, MASK_SYMBOL

FAIRSEQ_SYMBOLS = FAIRSEQ_SPECIALS + (MASK_SYMBOL,)
# dict.txt is read a line at a time in text mode, where "\r" also ends a line.
LINE_BREAKS = ("\n", "\r")


def tokens_to_fairseq(tokens: Sequence[str], roles: Mapping[str, str], source: str) -> Tuple[Dictionary, np.ndarray]:
    """The dictionary (``<mask>`` included) and ``id_map`` (int64, ``id_map[tokenizer_id] = fairseq_id``,
    one to one) of ``tokens`` (index = the tokenizer's id); one line naming ``source`` and the token
    when a token is a fairseq symbol without that role."""
    taken = {}
    for token, symbol in roles.items():
        if symbol not in FAIRSEQ_SYMBOLS:
            raise ValueError(f"{symbol!r} is not a fairseq special symbol")
        if symbol in taken:
            raise TokendropError(f"{source}: {taken[symbol]!r} and {token!r} would both be fairseq's {symbol}")
        taken[symbol] = token
    dictionary = Dictionary()
    id_map = np.empty(len(tokens), dtype=np.int64)
    for i, token in enumerate(tokens):
        if token in roles:
            continue
        if token in FAIRSEQ_SYMBOLS:
            raise TokendropError(f"{source}: token {i} ({token!r}) is one of fairseq's own symbols but not the "
                                 "tokenizer's special token of that role")
        symbol = token if token and not any(c in token for c in LINE_BREAKS) else f"<token {i}>"
        if symbol in dictionary.indices:
            raise TokendropError(f"{source}: token {i} ({token!r}) would be fairseq's {symbol!r} a second time")
        id_map[i] = dictionary.add_symbol(symbol)
    dictionary.add_symbol(MASK_SYMBOL)
    for i, token in enumerate(tokens):
        if token in roles:
            id_map[i] = dictionary.index(roles[token])
    return dictionary, id_map

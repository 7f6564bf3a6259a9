"""A BERT WordPiece ``vocab.txt`` as a fairseq dictionary, and the id map between them.

BERT's vocab.txt is one token per line, the line number is the id
(google-research/bert ``tokenization.load_vocab`` strips each line). BERT
checkpoints and pre-masked shards (MLPerf TFRecords, academic-budget-bert
HDF5) use those ids. fairseq's ``masked_lm`` task instead reads ``dict.txt``
after its four built-in symbols ``<s> <pad> </s> <unk>`` (ids 0-3) and then
appends ``<mask>`` (``MaskedLMTask.__init__``). So BERT's special tokens are
mapped onto fairseq's own (``[CLS]``->``<s>``, ``[SEP]``->``</s>``,
``[UNK]``->``<unk>``, ``[MASK]``->``<mask>``) and every other wordpiece keeps
an entry of its own, in vocab.txt order.

``[PAD]`` is one of those other wordpieces. In BERT it is a token: padding is
told by ``input_mask``, not by the id, and the producers of pre-masked data
replace 10% of the masked slots with a random id of the whole vocabulary,
``[PAD]`` included (google-research/bert ``create_masked_lm_predictions``).
fairseq's ``<pad>`` is padding by id (hidden from attention, a zero
embedding, skipped by the positions), so an in-sequence ``[PAD]`` mapped onto
it would stop being a token. fairseq's ``<pad>`` therefore has no BERT
counterpart, and the dictionary has one entry more than vocab.txt.
"""
import hashlib
from typing import List, Tuple

import numpy as np
from fairseq.data import Dictionary

from ..atomic_file import atomic_path
from ..errors import TokendropError
from .fairseq_symbols import MASK_SYMBOL
from .vocabulary_order import FAIRSEQ_SYMBOLS, tokens_to_fairseq

# BERT special token -> the fairseq symbol it becomes ([PAD] is a token of its own, see above).
SPECIAL_TOKENS = {"[CLS]": "<s>", "[SEP]": "</s>", "[UNK]": "<unk>", "[MASK]": MASK_SYMBOL}


def read_wordpiece_vocab(vocab_path: str) -> List[str]:
    """The tokens of a vocab.txt, id = index. Lines are stripped, as BERT's loader does."""
    with open(vocab_path, encoding="utf-8") as handle:
        tokens = [line.strip() for line in handle]
    # A trailing newline at the end of the file is not an empty token.
    while tokens and tokens[-1] == "":
        tokens.pop()
    seen = {}
    for line, token in enumerate(tokens, 1):
        if not token or any(c.isspace() for c in token):
            # dict.txt is "symbol count" per line: a symbol cannot be empty or hold whitespace.
            raise TokendropError(f"{vocab_path}: line {line}: token {token!r} is empty or contains whitespace")
        if token in seen:
            raise TokendropError(f"{vocab_path}: line {line}: token {token!r} repeats line {seen[token]}")
        if token in FAIRSEQ_SYMBOLS:
            raise TokendropError(f"{vocab_path}: line {line}: token {token!r} is one of fairseq's own symbols")
        seen[token] = line
    missing = [t for t in SPECIAL_TOKENS if t not in seen]
    if missing:
        raise TokendropError(f"{vocab_path}: special token(s) {', '.join(missing)} not found")
    return tokens


def wordpiece_to_fairseq(vocab_path: str) -> Tuple[Dictionary, np.ndarray]:
    """The fairseq dictionary of a vocab.txt (``<mask>`` included) and ``id_map``.

    ``id_map[wordpiece_id]`` is the fairseq id (int64 array of len(vocab)): one
    to one, onto every fairseq id but ``<pad>``.
    The dictionary equals what ``masked_lm`` builds from the ``dict.txt``
    that :func:`write_dict_txt` writes: ``Dictionary.load`` then
    ``add_symbol('<mask>')``.
    """
    return tokens_to_fairseq(read_wordpiece_vocab(vocab_path), SPECIAL_TOKENS, vocab_path)


def write_dict_txt(dictionary: Dictionary, path: str) -> None:
    """Write ``dict.txt`` atomically: the entries after fairseq's specials, without ``<mask>``.

    ``masked_lm`` appends ``<mask>`` itself; writing it here would move it.
    Counts are 1: nothing here derives frequencies from them.
    """
    assert dictionary[len(dictionary) - 1] == MASK_SYMBOL
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for i in range(dictionary.nspecial, len(dictionary) - 1):
            handle.write(f"{dictionary[i]} 1\n")


def vocab_sha256(vocab_path: str) -> str:
    """Hash of the vocab.txt bytes, recorded with converted data to catch a vocabulary mix-up."""
    with open(vocab_path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()

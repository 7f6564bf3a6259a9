"""The tokenizer ``prepare_corpus --tokenizer`` encodes a corpus with, and the fairseq dictionary of its vocabulary.

Three kinds, told by the file's content, never by its name:

- a Hugging Face ``tokenizer.json`` (a JSON object the ``tokenizers`` library reads; any model type:
  BPE, WordPiece, Unigram, WordLevel), encoded by ``tokenizers`` as transformers'
  ``PreTrainedTokenizerFast(tokenizer_file=...)`` encodes; its special tokens by role
  (``tokenizer_json``);
- a WordPiece ``vocab.txt`` (UTF-8, one token a line), encoded by ``tokenizers`` as transformers'
  ``BertTokenizerFast`` (``text_encoder.bert_wordpiece_tokenizer``), lower-cased or not
  (``--lowercase``; by default as ``wordpiece_casing`` tells it); ``[CLS] [SEP] [UNK] [MASK]`` map
  as ``convert_premasked`` maps them (``wordpiece_dictionary``), so both give the same dict.txt;
- a sentencepiece model (a protobuf ``sentencepiece`` loads), encoded by sentencepiece itself, as
  fairseq's own ``sentencepiece`` BPE encodes; its unknown, bos, eos (and pad) pieces are
  fairseq's ``<unk> <s> </s>`` (``<pad>``).

In every kind the dictionary keeps the tokenizer's order (``vocabulary_order``): the fairseq id of a
token is ``id_map[its id]``. Encoding returns the tokenizer's own ids of each text, no special
token added; ``encode_texts`` in the worker processes maps them.
"""
import json
import os
import shutil
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np
from fairseq.data import Dictionary

from ..errors import TokendropError
from .text_encoder import bert_wordpiece_tokenizer
from .tokenizer_json import read_tokenizer_json, special_tokens_config, tokenizers_library
from .vocabulary_order import tokens_to_fairseq
from .wordpiece_casing import HF_TOKENIZER_CONFIG, lower_case_of
from .wordpiece_dictionary import SPECIAL_TOKENS, read_wordpiece_vocab

KINDS = ("tokenizer.json", "wordpiece", "sentencepiece")
# The name each kind's file gets in the data dir: what export_checkpoint and text_encoder look for there.
DATA_DIR_NAMES = {"tokenizer.json": "tokenizer.json", "wordpiece": "vocab.txt", "sentencepiece": "spm.model"}


@dataclass
class CorpusTokenizer:
    kind: str
    path: str
    dictionary: Dictionary
    id_map: np.ndarray  # id_map[tokenizer id] = fairseq id
    lower_case: Optional[bool]  # WordPiece only
    description: str  # for the log: the kind, the casing, where each special came from
    config: Optional[dict]  # tokenizer_config.json for the data dir, None for sentencepiece

    @property
    def worker_args(self):
        """What a worker process needs to encode (picklable)."""
        return self.kind, self.path, self.lower_case, self.id_map

    def write_files(self, directory: str) -> List[str]:
        """Write the files that tell the tokenizer in a data dir (what export_checkpoint and text_encoder
        read there) into ``directory``; their names."""
        names = [DATA_DIR_NAMES[self.kind]]
        shutil.copyfile(self.path, os.path.join(directory, names[0]))
        if self.config is not None:
            names.append(HF_TOKENIZER_CONFIG)
            with open(os.path.join(directory, HF_TOKENIZER_CONFIG), "w", encoding="utf-8") as handle:
                json.dump(self.config, handle, indent=2)
        return names


def tokenizer_kind(path: str) -> str:
    """The kind of a tokenizer file, from its content; one line naming it when it is none of them."""
    try:
        with open(path, "rb") as handle:
            content = handle.read()
    except OSError as err:
        raise TokendropError(f"--tokenizer: cannot read {path} ({err.strerror or err})") from None
    if content.lstrip().startswith(b"{"):
        return "tokenizer.json"
    try:
        lines = content.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        lines = None
    if lines is not None and any(line.strip() for line in lines) and all(len(line.split()) <= 1 for line in lines):
        return "wordpiece"
    import sentencepiece

    try:
        if sentencepiece.SentencePieceProcessor(model_proto=content).get_piece_size():
            return "sentencepiece"
    except RuntimeError:
        pass
    raise TokendropError(f"--tokenizer {path}: neither a tokenizer.json, a WordPiece vocab.txt (one token a line) nor "
                         "a sentencepiece model")


def _wordpiece(path: str, lower_case_flag: Optional[bool]) -> CorpusTokenizer:
    try:
        tokens = read_wordpiece_vocab(path)
    except OSError as err:
        raise TokendropError(f"--tokenizer: {err}") from None
    lower_case, told = lower_case_of(path, tokens, lower_case_flag)
    dictionary, id_map = tokens_to_fairseq(tokens, SPECIAL_TOKENS, path)
    specials = ", ".join(f"{t}->{s}" for t, s in SPECIAL_TOKENS.items())
    return CorpusTokenizer("wordpiece", path, dictionary, id_map, lower_case,
                           f"WordPiece {path} as BertTokenizerFast splits it, do_lower_case={lower_case} ({told}); "
                           f"{specials}, [PAD] a token of its own",
                           {"tokenizer_class": "BertTokenizer", "do_lower_case": lower_case})


def _tokenizer_json(path: str) -> CorpusTokenizer:
    vocabulary = read_tokenizer_json(path)
    dictionary, id_map = tokens_to_fairseq(vocabulary.tokens, vocabulary.roles, path)
    told = ", ".join(f"{symbol}={token}" for symbol, token in vocabulary.told.items())
    return CorpusTokenizer("tokenizer.json", path, dictionary, id_map, None,
                           f"tokenizer.json {path} ({type(vocabulary.tokenizer.model).__name__}); {told}",
                           special_tokens_config(vocabulary))


def _sentencepiece(path: str) -> CorpusTokenizer:
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=path)
    tokens = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    role_ids = {processor.unk_id(): "<unk>", processor.bos_id(): "<s>", processor.eos_id(): "</s>",
                processor.pad_id(): "<pad>"}
    roles = {tokens[i]: symbol for i, symbol in role_ids.items() if i >= 0}
    dictionary, id_map = tokens_to_fairseq(tokens, roles, path)
    told = ", ".join(f"{t}->{s}" for t, s in roles.items())
    return CorpusTokenizer("sentencepiece", path, dictionary, id_map, None,
                           f"sentencepiece {path} ({len(tokens)} pieces); {told}, <mask> appended", None)


def load_corpus_tokenizer(path: str, lower_case: Optional[bool] = None) -> CorpusTokenizer:
    """The tokenizer of ``--tokenizer PATH``; ``lower_case``: ``--lowercase`` (WordPiece only)."""
    if not os.path.isfile(path):
        raise TokendropError(f"--tokenizer: no such file: {path}"
                             + (" (give the tokenizer file in it, e.g. tokenizer.json or vocab.txt)"
                                if os.path.isdir(path) else ""))
    kind = tokenizer_kind(path)
    if lower_case is not None and kind != "wordpiece":
        raise TokendropError(f"--lowercase/--no-lowercase: {path} is a {kind}, which says its own casing; the flags "
                             "are for a WordPiece vocab.txt")
    if kind == "wordpiece":
        return _wordpiece(path, lower_case)
    return _tokenizer_json(path) if kind == "tokenizer.json" else _sentencepiece(path)


def tokenizer_id_encoder(kind: str, path: str, lower_case: Optional[bool]) -> Callable[[Sequence[str]], List]:
    """texts -> the tokenizer's ids of each, no special token added (in a worker process)."""
    if kind == "sentencepiece":
        import sentencepiece

        processor = sentencepiece.SentencePieceProcessor(model_file=path)
        return lambda texts: processor.encode(list(texts), num_threads=1)
    if kind == "wordpiece":
        tokenizer = bert_wordpiece_tokenizer(read_wordpiece_vocab(path), lower_case)
    else:
        tokenizer = tokenizers_library().Tokenizer.from_file(path)
    return lambda texts: [e.ids for e in tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)]

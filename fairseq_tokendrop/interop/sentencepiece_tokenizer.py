"""A Hugging Face ``tokenizer.json`` that splits text as sentencepiece does and numbers the pieces as
a fairseq dictionary does, so ``AutoTokenizer`` gives the ids fairseq's ``RobertaModel.encode`` gives.

What it reproduces:

- fairseq's ``sentencepiece`` BPE (``fairseq/data/encoders/sentencepiece_bpe.py``) joins
  ``sp.Encode(text, out_type=str)`` with spaces; ``RobertaHubInterface.encode`` wraps that in
  ``<s> ... </s>`` and looks every piece up in the dictionary without adding symbols, so a piece
  the dictionary lacks becomes ``<unk>``. ``fairseq-preprocess`` writes ``dict.txt`` in order of
  frequency in the training pieces, after ``<s> <pad> </s> <unk>``, padded with
  ``madeupwordNNNN`` entries to a multiple of 8; ``masked_lm`` appends ``<mask>``.
- sentencepiece (``normalizer.cc``, ``unigram_model.cc``, ``bpe_model.cc``) normalizes with the
  model's precompiled character map, drops leading, trailing and repeated spaces, prefixes one
  ``▁`` and turns spaces into ``▁``; then segments the whole string: unigram takes the
  best-scoring path of pieces, bpe repeatedly merges the adjacent pair whose concatenation is the
  best-scoring piece (leftmost on a tie). Characters no piece covers become byte pieces
  ``<0xNN>`` with byte fallback, else one ``<unk>`` per run.
- the ``tokenizers`` library has the same parts: the ``Precompiled`` normalizer reads the
  charsmap, ``Unigram`` and ``BPE`` (with byte fallback; bpe needs merges, here every split of a
  piece into two pieces, ranked by the piece's score). A vocabulary entry has one id, its index.

So the vocabulary is the fairseq dictionary in its order, followed by the pieces sentencepiece
can emit that the dictionary lacks ("unknown pieces"): the exported model gives each of those
rows the ``<unk>`` embedding and a never-winning output bias (``hf_weights``), so the model sees
``<unk>`` wherever fairseq's does, while the HF id still names the piece. Dictionary entries
that are no piece of the model (the ``madeupword`` padding, or with no byte fallback the text
sentencepiece called unknown) end in a space, which normalized text never holds, so they are
never produced, as in fairseq.

Where it can differ from fairseq: text that holds a special token's string (``<s>``,
``<mask>``, ...; HF matches it, sentencepiece reads characters) or, with a unigram model, a
byte piece's name such as ``<0x41>``; unigram segmentations whose scores tie exactly, which
sentencepiece settles by float32 rounding and ``tokenizers`` by position; and, without byte
fallback, characters fairseq's dictionary holds although sentencepiece calls them unknown.
"""
import json
import os
from dataclasses import dataclass
from typing import List, Sequence, Tuple

from ..data.fairseq_symbols import FAIRSEQ_SPECIALS, MASK_SYMBOL
from ..errors import TokendropError
from .hf_weights import UNK_IDX

# Never in normalized text, where every space has become "▁": an entry holding one is never produced.
UNREACHABLE_MARK = " "

# Enum values of sentencepiece's sentencepiece_model.proto (SentencePiece.Type, TrainerSpec.ModelType).
NORMAL, USER_DEFINED, BYTE = 1, 4, 6
EMITTED_TYPES = (NORMAL, BYTE)
MODEL_TYPES = {1: "unigram", 2: "bpe"}


def read_spm_model(path: str):
    """The model's protobuf (``ModelProto``), refusing what this tokenizer cannot reproduce (one line
    naming the file). Reading it takes protobuf, which the ``hf`` extra installs."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    try:
        with open(path, "rb") as handle:
            proto.ParseFromString(handle.read())
    except OSError as err:
        raise TokendropError(f"{path}: cannot read the sentencepiece model ({err.strerror or err})")
    except Exception as err:  # protobuf's DecodeError
        raise TokendropError(f"{path}: not a sentencepiece model ({err})")
    problems = []
    if not proto.pieces:
        problems.append("no pieces")
    if proto.trainer_spec.model_type not in MODEL_TYPES:
        problems.append(f"model type {proto.trainer_spec.model_type} (only unigram and bpe)")
    if any(p.type == USER_DEFINED for p in proto.pieces):
        problems.append("user-defined symbols")
    if proto.trainer_spec.treat_whitespace_as_suffix or not proto.normalizer_spec.escape_whitespaces:
        problems.append("whitespace not escaped as a '▁' prefix")
    if problems:
        raise TokendropError(f"{path}: cannot be reproduced as a Hugging Face tokenizer: {'; '.join(problems)}")
    return proto


@dataclass
class SpmVocabulary:
    """The HF vocabulary: ``tokens[i]`` = (string, score) of HF id i."""

    tokens: List[Tuple[str, float]]
    dictionary_size: int  # ids below it are the fairseq dictionary's; the rest are unknown pieces
    unreachable: List[str]  # dictionary entries that are no piece of the model

    @property
    def unknown_pieces(self) -> int:
        return len(self.tokens) - self.dictionary_size


def hf_vocabulary(proto, symbols: Sequence[str], spm_path: str) -> SpmVocabulary:
    """``symbols``: the fairseq dictionary in id order (``<s> <pad> </s> <unk>`` first, ``<mask>`` last)."""
    if tuple(symbols[:4]) != FAIRSEQ_SPECIALS or symbols[-1] != MASK_SYMBOL:
        raise TokendropError(f"the dictionary does not start with {' '.join(FAIRSEQ_SPECIALS)} and end with "
                              f"{MASK_SYMBOL}")
    scores = {p.piece: p.score for p in proto.pieces if p.type in EMITTED_TYPES}
    tokens, unreachable = [], []
    for i, symbol in enumerate(symbols):
        if i < len(FAIRSEQ_SPECIALS) or i == len(symbols) - 1:
            tokens.append((symbol, 0.0))  # added tokens: matched in raw text before any segmentation
        elif symbol in scores:
            tokens.append((symbol, scores[symbol]))
        else:
            unreachable.append(symbol)
            tokens.append((symbol + UNREACHABLE_MARK, 0.0))
    if len(unreachable) > (len(symbols) - len(FAIRSEQ_SPECIALS) - 1) / 2:
        raise TokendropError(f"{spm_path} does not match the dictionary: {len(unreachable)} of its "
                              f"{len(symbols)} entries are no piece of this model (e.g. {unreachable[0]!r})")
    in_dictionary = set(symbols)
    size = len(tokens)
    tokens += [(p.piece, p.score) for p in proto.pieces if p.type in EMITTED_TYPES and p.piece not in in_dictionary]
    return SpmVocabulary(tokens, size, unreachable)


def dictionary_symbol(token: str) -> str:
    """The fairseq dictionary symbol of an HF vocabulary entry (import: the inverse of the mark)."""
    return token[:-len(UNREACHABLE_MARK)] if token.endswith(UNREACHABLE_MARK) else token


def _bpe_merges(proto) -> List[Tuple[str, str]]:
    """Every (left, right) with left + right a normal piece, best-scoring result first."""
    normal = {p.piece: (-p.score, i) for i, p in enumerate(proto.pieces) if p.type == NORMAL}
    merges = []
    for piece, rank in normal.items():
        for cut in range(1, len(piece)):
            if piece[:cut] in normal and piece[cut:] in normal:
                merges.append((rank, cut, piece[:cut], piece[cut:]))
    return [(left, right) for _, _, left, right in sorted(merges)]


def build_tokenizer(proto, vocabulary: SpmVocabulary):
    """The ``tokenizers.Tokenizer``: normalizer as sentencepiece's, no pre-tokenizer (sentencepiece
    segments the whole string), fairseq's ``<s> A </s>`` and RoBERTa's pair layout."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, processors

    byte_fallback = proto.trainer_spec.byte_fallback
    if MODEL_TYPES[proto.trainer_spec.model_type] == "unigram":
        model = models.Unigram(vocabulary.tokens, UNK_IDX, byte_fallback)
    else:
        ids = {token: i for i, (token, _) in enumerate(vocabulary.tokens)}
        model = models.BPE(ids, _bpe_merges(proto), unk_token="<unk>", fuse_unk=True, byte_fallback=byte_fallback)
    tokenizer = Tokenizer(model)
    spec = proto.normalizer_spec
    steps = [normalizers.Precompiled(spec.precompiled_charsmap)] if spec.precompiled_charsmap else []
    if spec.remove_extra_whitespaces:
        steps += [normalizers.Replace(Regex(" {2,}"), " "), normalizers.Replace(Regex("^ | $"), "")]
    if spec.add_dummy_prefix:
        steps.append(normalizers.Prepend("▁"))
    steps.append(normalizers.Replace(" ", "▁"))
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(" ", 1 if spec.add_dummy_prefix else 0, 0)])
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                  for t in FAIRSEQ_SPECIALS + (MASK_SYMBOL,)])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)])
    return tokenizer


def tokenizer_config(max_length: int) -> dict:
    """``tokenizer_config.json``: the generic fast tokenizer reads tokenizer.json as it is."""
    return {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_length,
            "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
            "mask_token": MASK_SYMBOL, "cls_token": "<s>", "sep_token": "</s>", "clean_up_tokenization_spaces": False}


def write_tokenizer_files(out_dir: str, spm_path: str, symbols: Sequence[str], max_length: int) -> SpmVocabulary:
    """tokenizer.json and tokenizer_config.json into ``out_dir`` (a directory being built)."""
    proto = read_spm_model(spm_path)
    vocabulary = hf_vocabulary(proto, symbols, spm_path)
    build_tokenizer(proto, vocabulary).save(os.path.join(out_dir, "tokenizer.json"))
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as handle:
        json.dump(tokenizer_config(max_length), handle, indent=2)
    return vocabulary

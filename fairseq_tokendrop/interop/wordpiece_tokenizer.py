"""BERT's own tokenizer files for a WordPiece ``vocab.txt``: what ``BertTokenizer`` and ``AutoTokenizer`` read.

A BERT checkpoint directory holds ``vocab.txt`` (one token a line, the line number is the id)
and ``tokenizer_config.json`` with ``do_lower_case`` (transformers' ``BertTokenizer``;
google-research/bert's ``FullTokenizer(vocab_file, do_lower_case)``), which with
``strip_accents`` unset also strips accents. The casing is not in vocab.txt, but it shows there:
an uncased vocabulary (bert-base-uncased, the MLPerf vocabulary) holds no token with an
upper-case letter besides its bracketed specials ([CLS], [unused0], ...), a cased one holds many.
"""
import json
import os
import shutil
from typing import Optional, Sequence, Tuple

from ..data.wordpiece_dictionary import SPECIAL_TOKENS

HF_TOKENIZER_CONFIG = "tokenizer_config.json"
BERT_PAD = "[PAD]"


def vocabulary_is_uncased(tokens: Sequence[str]) -> bool:
    return not any(t != t.lower() for t in tokens if not (t.startswith("[") and t.endswith("]")))


def recorded_lower_case(vocab_path: str) -> Optional[bool]:
    """``do_lower_case`` of the HF tokenizer_config.json next to vocab.txt (an HF BERT dir, or an
    import_hf output dir, which keeps it), or None."""
    path = os.path.join(os.path.dirname(os.path.abspath(vocab_path)), HF_TOKENIZER_CONFIG)
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle).get("do_lower_case")
    except (OSError, ValueError):
        return None
    return value if isinstance(value, bool) else None


def lower_case_of(vocab_path: str, tokens: Sequence[str], flag: Optional[bool]) -> Tuple[bool, str]:
    """The casing to tokenize with, and where it came from (for the log)."""
    if flag is not None:
        return flag, "--lowercase"
    recorded = recorded_lower_case(vocab_path)
    if recorded is not None:
        return recorded, f"do_lower_case in {HF_TOKENIZER_CONFIG} next to {vocab_path}"
    uncased = vocabulary_is_uncased(tokens)
    return uncased, f"{vocab_path} has {'no' if uncased else 'some'} upper-case tokens"


def tokenizer_config(tokens: Sequence[str], lower_case: bool, max_length: int) -> dict:
    """BERT's special tokens by their role; ``[PAD]`` only where vocab.txt has it (an added pad
    token would get an id past the model's rows)."""
    names = {fairseq: bert for bert, fairseq in SPECIAL_TOKENS.items()}
    config = {"tokenizer_class": "BertTokenizer", "do_lower_case": lower_case, "strip_accents": None,
              "tokenize_chinese_chars": True, "model_max_length": max_length,
              "cls_token": names["<s>"], "sep_token": names["</s>"], "unk_token": names["<unk>"],
              "mask_token": names["<mask>"]}
    if BERT_PAD in tokens:
        config["pad_token"] = BERT_PAD
    return config


def write_tokenizer_files(out_dir: str, vocab_path: str, tokens: Sequence[str], lower_case: bool,
                          max_length: int) -> None:
    """vocab.txt (the bytes given) and tokenizer_config.json into ``out_dir`` (a directory being built)."""
    shutil.copyfile(vocab_path, os.path.join(out_dir, "vocab.txt"))
    with open(os.path.join(out_dir, HF_TOKENIZER_CONFIG), "w", encoding="utf-8") as handle:
        json.dump(tokenizer_config(tokens, lower_case, max_length), handle, indent=2)

"""BERT's own tokenizer files for a WordPiece ``vocab.txt``: what ``BertTokenizer`` and ``AutoTokenizer`` read.

A BERT checkpoint directory holds ``vocab.txt`` (one token a line, the line number is the id)
and ``tokenizer_config.json`` with ``do_lower_case`` (transformers' ``BertTokenizer``;
google-research/bert's ``FullTokenizer(vocab_file, do_lower_case)``), which with
``strip_accents`` unset also strips accents; ``data/wordpiece_casing.py`` tells the casing.
"""
import json
import os
import shutil
from typing import Sequence

from ..data.wordpiece_casing import HF_TOKENIZER_CONFIG
from ..data.wordpiece_dictionary import SPECIAL_TOKENS

BERT_PAD = "[PAD]"


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

"""The casing a WordPiece ``vocab.txt`` is tokenized with (BERT's ``do_lower_case``).

The casing is not in vocab.txt, but it shows there: an uncased vocabulary
(bert-base-uncased, the MLPerf vocabulary) holds no token with an upper-case
letter besides its bracketed specials ([CLS], [unused0], ...), a cased one
holds many. An HF BERT directory (or an import of one) records it in
``tokenizer_config.json`` next to vocab.txt (transformers' ``BertTokenizer``;
google-research/bert's ``FullTokenizer(vocab_file, do_lower_case)``).
"""
import json
import os
from typing import Optional, Sequence, Tuple

HF_TOKENIZER_CONFIG = "tokenizer_config.json"


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

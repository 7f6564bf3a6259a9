"""A Hugging Face ``tokenizer.json``: its tokens in id order, its special tokens by role, where its words start.

Roles, and the fairseq symbol each becomes (``vocabulary_order``):

=========  ==============================  =============================================
symbol     role                            why fairseq needs it
=========  ==============================  =============================================
``<s>``    ``cls_token``, else ``bos_token``  ``masked_lm`` starts every sample with it
``</s>``   ``sep_token``, else ``eos_token``  every line of the corpus ends with it
``<mask>`` ``mask_token``                  what masked positions become
``<unk>``  ``unk_token``                   (optional: a byte-level BPE has none)
``<pad>``  ``pad_token``                   (optional)
=========  ==============================  =============================================

A role missing from the tokenizer leaves fairseq's symbol with no counterpart (the HF export gives
it no row). The tokenizer's pad token is fairseq's ``<pad>``, as ``import_hf`` maps RoBERTa's
(a WordPiece ``vocab.txt`` keeps ``[PAD]`` a token of its own instead, see
``wordpiece_dictionary``), so the pad token's own string in a text (matched as the HF tokenizer
matches it) becomes padding there. Each role is told by the first of:

1. ``tokenizer_config.json``, then ``special_tokens_map.json``, next to the file: what
   transformers' ``AutoTokenizer`` reads in a model directory (``prepare_corpus`` writes the roles
   it used into the data dir's, the export into its own);
2. the tokenizer.json itself: the first and last special token its post-processor puts around a
   single sequence (``TemplateProcessing``, ``BertProcessing``, ``RobertaProcessing``, also inside a
   ``Sequence``), its model's unknown token, its padding's pad token;
3. a special token named as BERT or RoBERTa name it (``[CLS]``/``<s>``, ``[SEP]``/``</s>``,
   ``[UNK]``/``<unk>``, ``[PAD]``/``<pad>``, ``[MASK]``/``<mask>``).

Word starts (``--mask-whole-words``): a WordPiece model, or a BPE with a
``continuing_subword_prefix``, continues a word with that prefix (``##``); a ``Metaspace``
pre-tokenizer starts every word with its replacement character (``▁``, as sentencepiece does).
Other tokenizers are refused there: a byte-level BPE marks a word start with ``Ġ`` except on a
line's first word, which a token alone cannot tell.
"""
import json
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from ..errors import TokendropError
from .fairseq_symbols import MASK_SYMBOL

ROLES = (  # (fairseq symbol, transformers' names for the role, in order of preference, BERT's and RoBERTa's token)
    ("<s>", ("cls_token", "bos_token"), ("[CLS]", "<s>")),
    ("</s>", ("sep_token", "eos_token"), ("[SEP]", "</s>")),
    (MASK_SYMBOL, ("mask_token",), ("[MASK]", "<mask>")),
    ("<unk>", ("unk_token",), ("[UNK]", "<unk>")),
    ("<pad>", ("pad_token",), ("[PAD]", "<pad>")),
)
REQUIRED = ("<s>", "</s>", MASK_SYMBOL)
CONFIG_FILES = ("tokenizer_config.json", "special_tokens_map.json")
POST_PROCESSOR_SYMBOLS = {"cls": "<s>", "sep": "</s>"}


@dataclass
class TokenizerJson:
    path: str
    tokenizer: object  # tokenizers.Tokenizer
    tokens: List[str]  # index = id
    roles: Dict[str, str]  # token -> fairseq symbol
    told: Dict[str, str]  # fairseq symbol -> where its token was found

    def role_token(self, symbol: str) -> Optional[str]:
        return next((t for t, s in self.roles.items() if s == symbol), None)


def tokenizers_library():
    try:
        import tokenizers
    except ImportError:
        raise TokendropError("a tokenizer.json or WordPiece vocab.txt needs the tokenizers library: pip install "
                             "tokenizers (it comes with the .[hf] extra)") from None
    return tokenizers


def _load_json(path: str):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _token_name(value) -> Optional[str]:
    """A special token as transformers' files write it: a string or an AddedToken's dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def _from_configs(path: str) -> Dict[str, tuple]:
    """{fairseq symbol: (token, file)} from the transformers files next to the tokenizer.json."""
    found = {}
    for name in CONFIG_FILES:
        config = _load_json(os.path.join(os.path.dirname(os.path.abspath(path)), name))
        if not isinstance(config, dict):
            continue
        for symbol, keys, _ in ROLES:
            token = next((_token_name(config.get(k)) for k in keys if _token_name(config.get(k))), None)
            if token and symbol not in found:
                found[symbol] = (token, name)
    return found


def _post_processor_tokens(processor) -> Dict[str, str]:
    """{``cls``/``sep``: token} of the special tokens a post-processor puts around one sequence."""
    kind = (processor or {}).get("type")
    if kind == "Sequence":
        found = {}
        for inner in processor.get("processors", []):
            found = {**_post_processor_tokens(inner), **found}
        return found
    if kind in ("BertProcessing", "RobertaProcessing"):
        return {role: processor[role][0] for role in ("cls", "sep") if processor.get(role)}
    if kind == "TemplateProcessing":
        single = processor.get("single", [])
        specials = processor.get("special_tokens", {})

        def token(piece):
            name = piece.get("SpecialToken", {}).get("id")
            tokens = specials.get(name, {}).get("tokens", [name])
            return tokens[0] if len(tokens) == 1 else None

        found = {}
        if single and "SpecialToken" in single[0]:
            found["cls"] = token(single[0])
        if single and "SpecialToken" in single[-1]:
            found["sep"] = token(single[-1])
        return {role: t for role, t in found.items() if t}
    return {}


def _from_tokenizer_json(saved: dict) -> Dict[str, str]:
    """{fairseq symbol: token} the tokenizer.json tells itself."""
    found = {POST_PROCESSOR_SYMBOLS[role]: t for role, t in _post_processor_tokens(saved.get("post_processor")).items()}
    model = saved.get("model") or {}
    if _token_name(model.get("unk_token")):
        found["<unk>"] = model["unk_token"]
    elif isinstance(model.get("unk_id"), int) and model.get("type") == "Unigram":
        found["<unk>"] = model["vocab"][model["unk_id"]][0]
    if _token_name((saved.get("padding") or {}).get("pad_token")):
        found["<pad>"] = saved["padding"]["pad_token"]
    return found


def read_tokenizer_json(path: str) -> TokenizerJson:
    """The tokenizer, its tokens and its roles; one line naming the file when it is no tokenizer.json,
    a role's token is not in its vocabulary, or a required role is missing."""
    tokenizers = tokenizers_library()
    try:
        tokenizer = tokenizers.Tokenizer.from_file(path)
    except Exception as err:  # tokenizers raises Exception itself
        raise TokendropError(f"{path}: not a tokenizer.json the tokenizers library reads ({err})") from None
    saved = _load_json(path)
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    tokens = [tokenizer.id_to_token(i) for i in range(size)]
    if None in tokens:
        raise TokendropError(f"{path}: the ids are not 0..{size - 1} (id {tokens.index(None)} has no token)")
    specials = {t.content for t in tokenizer.get_added_tokens_decoder().values() if t.special}
    configs, own = _from_configs(path), _from_tokenizer_json(saved or {})
    roles, told = {}, {}
    for symbol, keys, names in ROLES:
        if symbol in configs:
            token, where = configs[symbol][0], f"{'/'.join(keys)} in {configs[symbol][1]}"
        elif symbol in own:
            token, where = own[symbol], "the tokenizer.json"
        else:
            token = next((n for n in names if n in specials), None)
            where = "its name"
        if token is None:
            if symbol in REQUIRED:
                raise TokendropError(f"{path}: no {' or '.join(keys)} (fairseq's {symbol}): name it in a "
                                     f"tokenizer_config.json next to the file, as transformers writes it")
            continue
        if tokenizer.token_to_id(token) is None:
            raise TokendropError(f"{path}: the {keys[0]} {token!r} ({where}) is not in its vocabulary")
        if token in roles:
            raise TokendropError(f"{path}: {token!r} is the token of two roles (fairseq's {roles[token]} and "
                                 f"{symbol}); they need tokens of their own")
        roles[token], told[symbol] = symbol, f"{token} ({where})"
    return TokenizerJson(path, tokenizer, tokens, roles, told)


def special_tokens_config(vocabulary: TokenizerJson) -> dict:
    """The roles as ``tokenizer_config.json`` names them, for ``PreTrainedTokenizerFast``."""
    config = {"tokenizer_class": "PreTrainedTokenizerFast"}
    for symbol, keys, _ in ROLES:
        token = vocabulary.role_token(symbol)
        if token is not None:
            config.update({key: token for key in keys})
    return config


def word_start_rule(vocabulary: TokenizerJson) -> Callable[[str], bool]:
    """Whether a token starts a word (see the module doc); one line when the tokenizer does not say."""
    saved = _load_json(vocabulary.path) or {}
    model = saved.get("model") or {}
    prefix = model.get("continuing_subword_prefix")
    if model.get("type") in ("WordPiece", "BPE") and prefix:
        return lambda token: not token.startswith(prefix)

    def metaspace(step):
        if not isinstance(step, dict):
            return None
        if step.get("type") == "Metaspace":
            return step.get("replacement", "▁")
        return next(filter(None, map(metaspace, step.get("pretokenizers", []))), None)

    replacement = metaspace(saved.get("pre_tokenizer"))
    if replacement:
        return lambda token: token.startswith(replacement)
    raise TokendropError(f"{vocabulary.path}: cannot tell word starts from its tokens (model {model.get('type')}, "
                         f"pre-tokenizer {(saved.get('pre_tokenizer') or {}).get('type')}): whole-word masking "
                         "needs a WordPiece-style continuation prefix (##) or a Metaspace pre-tokenizer (▁)")

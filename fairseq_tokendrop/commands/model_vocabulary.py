"""Where a model's vocabulary lies beside its training data, for the commands that need it (export, inspect).

A data dir holds ``dict.txt`` and the tokenizer its ids come from: a sentencepiece model
(``spm.model`` from ``prepare_corpus``, ``sentencepiece.bpe.model`` in a fairseq export) or BERT's
WordPiece ``vocab.txt`` (``convert_premasked``, ``import_hf``), which a pre-masked dir's metadata pins
by its sha256.
"""
import os

from ..data.premasked_dataset import META_NAME, read_meta
from ..data.text_encoder import SPM_NAMES
from ..data.wordpiece_casing import lower_case_of
from ..data.wordpiece_dictionary import read_wordpiece_vocab, vocab_sha256
from ..errors import TokendropError
from ..interop.hf_export import WordPieceVocabulary


def find_data_files(data_dir, spm_model):
    dict_path = os.path.join(data_dir, "dict.txt")
    if not os.path.isfile(dict_path):
        raise TokendropError(f"no dict.txt in the data dir {data_dir} (give the training data dir with --data)")
    if spm_model:
        if not os.path.isfile(spm_model):
            raise TokendropError(f"--spm-model: no such file: {spm_model}")
        return dict_path, spm_model
    found = [os.path.join(data_dir, n) for n in SPM_NAMES if os.path.isfile(os.path.join(data_dir, n))]
    return dict_path, (found[0] if found else None)


def wordpiece_vocabulary(data_dir, vocab, lowercase, log):
    """The WordPiece vocab.txt the data's ids come from (--vocab, or vocab.txt in the data dir), or None;
    ``log`` reports the casing found (the calling command's)."""
    path = vocab or os.path.join(data_dir, "vocab.txt")
    if not os.path.isfile(path):
        if vocab:
            raise TokendropError(f"--vocab: no such file: {vocab}")
        if os.path.isfile(os.path.join(data_dir, META_NAME)):
            raise TokendropError(f"{data_dir} holds pre-masked data converted from a WordPiece vocab.txt ({META_NAME}) "
                              "and no vocab.txt: give that vocab.txt with --vocab")
        return None
    try:
        tokens = read_wordpiece_vocab(path)
    except TokendropError as err:
        raise TokendropError(f"--vocab: {err.message}") from None
    except OSError as err:
        raise TokendropError(f"--vocab: {err}") from None
    if os.path.isfile(os.path.join(data_dir, META_NAME)) and read_meta(data_dir)["vocab_sha256"] != vocab_sha256(path):
        raise TokendropError(f"{path}: not the vocab.txt {data_dir} was converted with (its {META_NAME} records "
                          "another sha256)")
    lower_case, told = lower_case_of(path, tokens, {"yes": True, "no": False, None: None}[lowercase])
    log(f"WordPiece vocabulary {path}, do_lower_case={lower_case} ({told})")
    return WordPieceVocabulary(path, lower_case)


def add_vocabulary_args(parser, spm_use: str, wordpiece_use: str) -> None:
    """--data, --spm-model, --vocab, --lowercase: the training data dir and the vocabulary its ids come from,
    found by ``find_data_files`` and ``wordpiece_vocabulary``; the uses say what the command does with them."""
    parser.add_argument("--data", metavar="DIR", help="the training data dir holding dict.txt "
                        "(default: the one recorded in the checkpoint)")
    parser.add_argument("--spm-model", metavar="PATH", help=f"sentencepiece model {spm_use} (default: "
                        "spm.model or sentencepiece.bpe.model in the data dir, if there is one)")
    parser.add_argument("--vocab", metavar="PATH", help="the WordPiece vocab.txt the training data's ids come "
                        f"from (default: vocab.txt in the data dir, if there is one): {wordpiece_use}")
    parser.add_argument("--lowercase", choices=("yes", "no"), help="the BERT tokenizer's do_lower_case "
                        "(default: tokenizer_config.json next to vocab.txt, else yes when vocab.txt has no "
                        "upper-case token)")

"""The Hugging Face export directory: a masked-LM model and the tokenizer its ids come from.

The vocabulary the model was trained on decides the HF model:

- sentencepiece pieces (``prepare_corpus``, or any data-bin that ``fairseq-preprocess`` made from
  sentencepiece output): ``RobertaForMaskedLM`` over the fairseq dictionary's ids with a
  ``tokenizer.json`` that gives them (``sentencepiece_tokenizer``), and for fairseq users and
  ``import_hf`` the ``dict.txt`` and ``sentencepiece.bpe.model`` as fairseq's hub names them;
- a WordPiece ``vocab.txt`` (``convert_premasked`` data, ``import_hf`` of a BERT, ``prepare_corpus
  --tokenizer vocab.txt``): ``BertForMaskedLM`` with vocab.txt's ids and BERT's own tokenizer files
  (``wordpiece_tokenizer``), the rows permuted back from the fairseq dictionary's order;
- a ``tokenizer.json`` (``prepare_corpus --tokenizer tokenizer.json``): ``BertForMaskedLM`` with the
  tokenizer's own ids, rows permuted back the same way, and that tokenizer.json with a
  ``tokenizer_config.json`` naming its special tokens (``PreTrainedTokenizerFast``). BERT, not
  RoBERTa: HF's RoBERTa counts positions from ``pad_token_id + 1``, which would tie the position
  table to wherever the tokenizer keeps its pad token; BERT counts them from 0, as fairseq's
  positions do past its own ``<pad>``. A tokenizer.json without a post-processor gets one that
  frames a text as the model was trained (its ``<s>`` and ``</s>`` tokens around it).

The directory is built under a temporary name next to its place and renamed there when complete.
"""
import json
import os
import shutil
from dataclasses import dataclass
from typing import Callable, List, Mapping, Sequence

import torch

from ..atomic_file import atomic_directory
from ..data.tokenizer_json import read_tokenizer_json, special_tokens_config
from ..data.vocabulary_order import FAIRSEQ_SYMBOLS, tokens_to_fairseq
from ..data.wordpiece_dictionary import read_wordpiece_vocab, wordpiece_to_fairseq
from ..errors import TokendropError
from . import sentencepiece_tokenizer, wordpiece_tokenizer
from .hf_weights import (fairseq_to_hf_bert, fairseq_to_hf_roberta, hf_bert_config,
                         hf_roberta_config)

HUB_SPM_NAME = "sentencepiece.bpe.model"  # the name fairseq's RobertaModel.from_pretrained looks for
# Every file an export may hold: a directory holding anything else is not replaced.
EXPORT_FILES = frozenset(("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                          "vocab.txt", "dict.txt", HUB_SPM_NAME))
NOT_CARRIED = "the token-importance scores (export_checkpoint --save-importance writes them)"


@dataclass
class SentencePieceVocabulary:
    spm_path: str


@dataclass
class WordPieceVocabulary:
    vocab_path: str
    lower_case: bool


@dataclass
class TokenizerJsonVocabulary:
    path: str


def check_replaceable(out_dir: str, flag: str, export_files=EXPORT_FILES) -> None:
    """An existing ``out_dir`` is replaced only when it holds nothing but an export's files."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise TokendropError(f"{flag} {out_dir}: exists and is not a directory")
    if os.path.isdir(out_dir):
        others = sorted(set(os.listdir(out_dir)) - export_files)
        if others:
            raise TokendropError(f"{flag} {out_dir}: exists and holds files an export does not write "
                                  f"({', '.join(others[:3])}); give a new or empty directory")


def _save_model(tmp: str, config: dict, tensors: Mapping[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    save_file(dict(tensors), os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2)


def _sentencepiece_export(tmp, state_dict, model_args, symbols, dict_path, vocabulary, log) -> None:
    vocab = sentencepiece_tokenizer.write_tokenizer_files(tmp, vocabulary.spm_path, symbols,
                                                          model_args["max_positions"])
    tensors = fairseq_to_hf_roberta(state_dict, model_args["encoder_layers"], unknown_rows=vocab.unknown_pieces)
    _save_model(tmp, hf_roberta_config(model_args, len(vocab.tokens), len(symbols)), tensors)
    shutil.copyfile(dict_path, os.path.join(tmp, "dict.txt"))
    shutil.copyfile(vocabulary.spm_path, os.path.join(tmp, HUB_SPM_NAME))
    log(f"RobertaForMaskedLM; tokenizer.json gives fairseq's ids 0..{len(symbols) - 1} (dict.txt, <mask> "
        f"last), then {vocab.unknown_pieces} sentencepiece piece(s) the dictionary lacks, which the model "
        "reads as <unk> and never predicts")
    if vocab.unreachable:
        log(f"{len(vocab.unreachable)} dictionary entr(ies) are no piece of {vocabulary.spm_path} "
            f"(e.g. {vocab.unreachable[0]!r}): as in fairseq, no text gives them")


def _check_matches(path, dictionary, symbols) -> None:
    """The tokenizer's dictionary must be the checkpoint's, entry for entry."""
    if list(dictionary.symbols) != list(symbols):
        differ = next((i for i, (a, b) in enumerate(zip(dictionary.symbols, symbols)) if a != b),
                      min(len(dictionary), len(symbols)))
        raise TokendropError(f"{path} does not match the checkpoint's vocabulary: it gives {len(dictionary)} "
                              f"dictionary entries, the checkpoint has {len(symbols)} embedding rows"
                              + (f", and entry {differ} differs" if len(dictionary) == len(symbols) else ""))


def _wordpiece_export(tmp, state_dict, model_args, symbols, vocabulary, log) -> None:
    path = vocabulary.vocab_path
    try:
        dictionary, id_map = wordpiece_to_fairseq(path)
        tokens = read_wordpiece_vocab(path)
    except TokendropError as err:
        raise TokendropError(f"--vocab: {err.message}") from None
    except OSError as err:
        raise TokendropError(f"--vocab: {err}") from None
    _check_matches(path, dictionary, symbols)
    wordpiece_tokenizer.write_tokenizer_files(tmp, path, tokens, vocabulary.lower_case, model_args["max_positions"])
    tensors = fairseq_to_hf_bert(state_dict, model_args["encoder_layers"], torch.from_numpy(id_map))
    pad = tokens.index(wordpiece_tokenizer.BERT_PAD) if wordpiece_tokenizer.BERT_PAD in tokens else None
    config = hf_bert_config(model_args, len(tokens), pad)
    _save_model(tmp, config, tensors)
    segments = model_args.get("num_segment")
    log(f"BertForMaskedLM with {path}'s ids and BERT's tokenizer (do_lower_case={vocabulary.lower_case}); "
        f"activation {model_args.get('activation_fn', 'gelu')}, LayerNorm eps "
        f"{config['layer_norm_eps']:g} as in the model; token types "
        + (f"= the model's {segments} segment embeddings" if segments else "zero (the model has no segments)"))
    log("not carried: a pooler and a next-sentence head (masked-LM pretraining has neither; "
        "BertForPreTraining would start them at random); the output bias of fairseq's <pad>, which "
        "BERT lacks ([PAD] is a token of its own)")


def _tokenizer_json_export(tmp, state_dict, model_args, symbols, vocabulary, log) -> None:
    from tokenizers import processors

    source = read_tokenizer_json(vocabulary.path)
    dictionary, id_map = tokens_to_fairseq(source.tokens, source.roles, vocabulary.path)
    _check_matches(vocabulary.path, dictionary, symbols)
    tokenizer = source.tokenizer
    if tokenizer.post_processor is None:
        cls, sep = source.role_token("<s>"), source.role_token("</s>")
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
            special_tokens=[(cls, tokenizer.token_to_id(cls)), (sep, tokenizer.token_to_id(sep))])
        log(f"{vocabulary.path} has no post-processor: the export's frames a text as the model was trained, "
            f"{cls} TEXT {sep}")
    tokenizer.save(os.path.join(tmp, "tokenizer.json"))
    config = dict(special_tokens_config(source), model_max_length=model_args["max_positions"])
    with open(os.path.join(tmp, "tokenizer_config.json"), "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2)
    pad = source.role_token("<pad>")
    config = hf_bert_config(model_args, len(source.tokens), None if pad is None else tokenizer.token_to_id(pad))
    _save_model(tmp, config, fairseq_to_hf_bert(state_dict, model_args["encoder_layers"], torch.from_numpy(id_map)))
    without = [s for s in FAIRSEQ_SYMBOLS if s not in source.roles.values()]
    log(f"BertForMaskedLM with the ids of {vocabulary.path} ({', '.join(source.told.values())})"
        + (f"; fairseq's {', '.join(without)} ha{'s' if len(without) == 1 else 've'} no token there, and no row"
           if without else ""))


def write_hf_export(out_dir: str, state_dict: Mapping[str, torch.Tensor], model_args: Mapping,
                    symbols: Sequence[str], dict_path: str, vocabulary, log: Callable[[str], None]) -> List[str]:
    """Build the export of a fairseq RoBERTa (``symbols``: its dictionary, id order, ``<mask>`` last)
    in a temporary directory and rename it to ``out_dir``. Returns the file names written."""
    check_replaceable(out_dir, "--hf-out")
    with atomic_directory(out_dir) as tmp:
        if isinstance(vocabulary, WordPieceVocabulary):
            _wordpiece_export(tmp, state_dict, model_args, symbols, vocabulary, log)
        elif isinstance(vocabulary, TokenizerJsonVocabulary):
            _tokenizer_json_export(tmp, state_dict, model_args, symbols, vocabulary, log)
        else:
            _sentencepiece_export(tmp, state_dict, model_args, symbols, dict_path, vocabulary, log)
        written = sorted(os.listdir(tmp))
    log(f"not carried: {NOT_CARRIED}")
    log(f"wrote {out_dir}: {', '.join(written)}")
    return written

"""Start token-dropping pretraining from a local Hugging Face BERT or RoBERTa directory.

Writes OUT/model.pt, a fairseq-train checkpoint of ``--arch tokendrop_roberta_base`` at update 0
with the HF weights, and OUT/dict.txt, its dictionary. Continue from it the fairseq way::

    python scripts/import_hf.py bert-base-uncased/ imported/
    fairseq-train data-bin --user-dir fairseq_tokendrop --task masked_lm_tokendrop \\
        --arch tokendrop_roberta_base <the dimension flags printed by this script> \\
        --restore-file imported/model.pt \\
        --reset-optimizer --reset-dataloader --reset-meters --reset-lr-scheduler ...

The data-bin must be binarized with OUT/dict.txt (``fairseq-preprocess --srcdict``) from text
tokenized by the model's own tokenizer. The dimension flags must match (the script prints them);
token importance starts from the ``--token-importance-*`` flags, not from the checkpoint.

What the conversion does (``fairseq_tokendrop/interop/hf_weights.py``):

- BERT (``model_type: bert``, vocab.txt): ``[CLS] [SEP] [UNK]`` land on fairseq's
  ``<s> </s> <unk>`` (ids 0, 2, 3), ``[MASK]`` on ``<mask>`` (last), the other wordpieces,
  ``[PAD]`` included, keep vocab.txt order (``fairseq_tokendrop/data/wordpiece_dictionary.py``:
  BERT's ``[PAD]`` is a token, fairseq's ``<pad>`` is padding); embedding rows and the MLM
  output bias are permuted to match. fairseq's ``<pad>`` has no BERT row: a zero embedding and
  an output bias of -1e4, so it is never predicted. BERT position i becomes fairseq row i+2 (fairseq
  counts positions from padding_idx+1); the token-type-0 embedding, which BERT adds to every
  single-segment token, is folded into the positions, or, with ``--keep-segments``, the
  token-type table becomes the model's segment embeddings (``--num-segment``, for data with
  segment ids). The pooler and the next-sentence head have no place in a masked-LM model and
  are dropped, with a note.
- RoBERTa (``model_type: roberta``, vocab.json or tokenizer.json): the same with the special
  tokens found by name (``<s> <pad> </s> <unk> <mask>``); positions keep HF's offset
  (pad_token_id + 1). Of an export_checkpoint ``--hf-out`` directory, the sentencepiece pieces
  past ``fairseq_dictionary_size`` (config.json) are dropped: they were fairseq's ``<unk>``.
- The files an export of the imported model makes its tokenizer from are copied to OUT: BERT's
  vocab.txt with its tokenizer_config.json (casing), or sentencepiece.bpe.model.
- ``layer_norm_eps`` becomes ``--layer-norm-eps`` (fairseq's own LayerNorms are fixed at 1e-5).
"""
import argparse
import json
import os
import shutil

import torch

import fairseq_tokendrop  # noqa: F401  (registers the plugin)

from fairseq_tokendrop.atomic_file import atomic_path
from fairseq_tokendrop.checkpoints.verification import refuse_damaged
from fairseq_tokendrop.commands.log import command_log
from fairseq_tokendrop.data.vocabulary_order import FAIRSEQ_SYMBOLS, tokens_to_fairseq
from fairseq_tokendrop.errors import TokendropError
from fairseq_tokendrop.interop.hf_export import HUB_SPM_NAME
from fairseq_tokendrop.interop.hf_import import add_segments_flag, bert_vocab, permutation, write_import
from fairseq_tokendrop.interop.sentencepiece_tokenizer import dictionary_symbol
from fairseq_tokendrop.data.wordpiece_casing import HF_TOKENIZER_CONFIG

log = command_log("import_hf")


def read_config(hf_dir):
    path = os.path.join(hf_dir, "config.json")
    if not os.path.isfile(path):
        raise TokendropError(f"no config.json in {hf_dir}")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_weights(hf_dir):
    """model.safetensors (single or sharded) or pytorch_model.bin, as saved by ``save_pretrained``."""
    from safetensors.torch import load_file

    single, index = os.path.join(hf_dir, "model.safetensors"), os.path.join(hf_dir, "model.safetensors.index.json")
    if os.path.isfile(single):
        return load_file(single)
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as handle:
            shards = sorted(set(json.load(handle)["weight_map"].values()))
        weights = {}
        for shard in shards:
            weights.update(load_file(os.path.join(hf_dir, shard)))
        return weights
    legacy = os.path.join(hf_dir, "pytorch_model.bin")
    if os.path.isfile(legacy):
        refuse_damaged(legacy)  # a torch zip carries a CRC-32 per tensor; safetensors carries none
        return torch.load(legacy, map_location="cpu", weights_only=True)
    raise TokendropError(f"no model.safetensors, model.safetensors.index.json or pytorch_model.bin in {hf_dir}")


def roberta_tokens_to_fairseq(tokens, source):
    """RoBERTa vocabulary tokens (index = HF id) as a fairseq dictionary, and ``id_map[hf_id] = fairseq_id``."""
    for token in tokens:
        if not token or any(c.isspace() for c in token):
            raise TokendropError(f"{source}: token {token!r} is empty or contains whitespace")
    missing = [t for t in FAIRSEQ_SYMBOLS if t not in tokens]
    if missing:
        raise TokendropError(f"{source}: special token(s) {', '.join(missing)} not found")
    return tokens_to_fairseq(tokens, {t: t for t in FAIRSEQ_SYMBOLS}, source)


def tokens_by_id(vocab, source):
    """``{token: id}`` -> the tokens in id order, which must be 0..n-1, each once."""
    tokens = [None] * len(vocab)
    for token, i in vocab.items():
        if not 0 <= i < len(vocab) or tokens[i] is not None:
            raise TokendropError(f"{source}: ids are not 0..{len(vocab) - 1}, each once (token {token!r})")
        tokens[i] = token
    return tokens


def read_roberta_tokens(hf_dir, config):
    """The vocabulary in HF id order, from vocab.json or tokenizer.json. Of an export of ours, only
    the fairseq dictionary's part (``fairseq_dictionary_size``; the sentencepiece pieces after it
    are <unk> to fairseq), its never-produced entries under their dictionary names."""
    vocab_json, tokenizer_json = (os.path.join(hf_dir, n) for n in ("vocab.json", "tokenizer.json"))
    if os.path.isfile(vocab_json):
        with open(vocab_json, encoding="utf-8") as handle:
            return tokens_by_id(json.load(handle), vocab_json)
    if not os.path.isfile(tokenizer_json):
        raise TokendropError(f"no vocab.json or tokenizer.json in {hf_dir} (RoBERTa's vocabulary)")
    with open(tokenizer_json, encoding="utf-8") as handle:
        saved = json.load(handle)
    vocab = saved["model"]["vocab"]
    if isinstance(vocab, list):  # Unigram: [token, score] in id order
        vocab = {token: i for i, (token, _) in enumerate(vocab)}
    for added in saved.get("added_tokens", []):
        vocab.setdefault(added["content"], added["id"])
    tokens = tokens_by_id(vocab, tokenizer_json)[:config.get("fairseq_dictionary_size", len(vocab))]
    return [dictionary_symbol(t) for t in tokens]


def read_vocab(hf_dir, config):
    if config["model_type"] == "bert":
        path = os.path.join(hf_dir, "vocab.txt")
        if not os.path.isfile(path):
            raise TokendropError(f"no vocab.txt in {hf_dir} (BERT's WordPiece vocabulary)")
        return bert_vocab(path)
    dictionary, id_map = roberta_tokens_to_fairseq(read_roberta_tokens(hf_dir, config), hf_dir)
    pad = config.get("pad_token_id", 1)
    if int(id_map[pad]) != dictionary.pad():
        raise TokendropError(f"config.json: pad_token_id {pad} is not <pad> in {hf_dir}'s vocabulary")
    return dictionary, permutation(dictionary, id_map)


def keep_tokenizer_sources(hf_dir, out_dir, model_type):
    """Copy what an export of the imported model will make its tokenizer from (export_checkpoint
    finds them in the data dir the checkpoint records, OUT): BERT's vocab.txt with its casing, or
    the sentencepiece model."""
    names = ("vocab.txt", HF_TOKENIZER_CONFIG) if model_type == "bert" else (HUB_SPM_NAME,)
    for name in names:
        if os.path.isfile(os.path.join(hf_dir, name)):
            with atomic_path(os.path.join(out_dir, name)) as tmp:
                shutil.copyfile(os.path.join(hf_dir, name), tmp)
            log(f"kept {out_dir}/{name} (for export_checkpoint --hf-out)")


def convert(hf_dir, out_dir, keep_segments=False):
    config = read_config(hf_dir)
    write_import(out_dir, config, lambda: (*read_vocab(hf_dir, config), read_weights(hf_dir)), log, keep_segments)
    keep_tokenizer_sources(hf_dir, out_dir, config["model_type"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("hf_dir", help="a local HF BertForMaskedLM/BertForPreTraining/RobertaForMaskedLM directory")
    parser.add_argument("out_dir", help="where model.pt and dict.txt go")
    add_segments_flag(parser)
    args = parser.parse_args(argv)
    if not os.path.isdir(args.hf_dir):
        raise TokendropError(f"no such directory: {args.hf_dir}")
    convert(args.hf_dir, args.out_dir, args.keep_segments)


if __name__ == "__main__":
    main()

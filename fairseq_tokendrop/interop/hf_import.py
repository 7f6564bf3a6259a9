"""What an import of Hugging Face-layout BERT/RoBERTa weights writes, for ``import_hf`` and ``import_tf`` alike.

OUT/model.pt is a fairseq-train checkpoint of ``--arch tokendrop_roberta_base`` at update 0
(``checkpoint_io.fresh_training_state``), OUT/dict.txt its dictionary, OUT/flags.txt the model
flags fairseq-train must be given again, and, with scores to carry (a TF ``TokenDropBertEncoder``),
OUT/importance.pt for ``--init-token-importance``. The weights go through ``hf_weights``.
"""
import os

import numpy as np
import torch

from ..atomic_file import atomic_path
from ..checkpoints.checkpoint_io import (atomic_torch_save, dimension_flags, fresh_training_state, restore_command,
                                         training_cfg, without_importance)
from ..data.wordpiece_dictionary import wordpiece_to_fairseq, write_dict_txt
from ..errors import TokendropError
from ..standalone import build_model
from .hf_weights import fairseq_model_args, hf_to_fairseq, importance_to_fairseq

ARCH = "tokendrop_roberta_base"


def permutation(dictionary, id_map):
    """``perm[fairseq_id] = hf_id`` from ``id_map[hf_id] = fairseq_id``, as ``hf_to_fairseq`` takes it."""
    perm = np.full(len(dictionary), -1, dtype=np.int64)  # -1: no HF row (<pad> under a BERT vocab.txt)
    perm[id_map] = np.arange(len(id_map))
    return torch.from_numpy(perm)


def bert_vocab(path):
    """A BERT vocab.txt as the fairseq dictionary and ``perm[fairseq_id] = vocab.txt id`` (-1: no row)."""
    dictionary, id_map = wordpiece_to_fairseq(path)
    return dictionary, permutation(dictionary, id_map)


def add_segments_flag(parser):
    """``--keep-segments``, which both import commands give to :func:`write_import`."""
    parser.add_argument("--keep-segments", action="store_true",
                        help="keep the token-type (segment) embeddings as the model's --num-segment table, for "
                             "data with segment ids (MLPerf); without it row 0 is folded into the positions, "
                             "exact for single-segment input, and the model stays stock RoBERTa")


def write_import(out_dir, config, load, log, keep_segments=False, importance=None):
    """OUT/model.pt and OUT/dict.txt (and OUT/importance.pt) from HF-layout BERT/RoBERTa weights.

    ``load()`` gives (dictionary, perm, HF state dict), called once the config passed; ``perm`` as
    ``hf_to_fairseq`` takes it. ``importance``: per-id scores in the HF vocabulary's order, written
    in dictionary order for ``--init-token-importance``. Prints the fairseq-train command to go on
    with, and writes its model flags to OUT/flags.txt for scripts.
    """
    model_args = fairseq_model_args(config)
    extra_flags = []
    if keep_segments:
        if config.get("type_vocab_size", 1) < 2:
            raise TokendropError(f"--keep-segments: the model has {config.get('type_vocab_size', 1)} token type, "
                                  "no segments to keep")
        model_args["num_segment"] = config["type_vocab_size"]
        extra_flags += ["--num-segment", str(config["type_vocab_size"])]
    log(f"{config['model_type']}: {model_args['encoder_layers']} layers, d={model_args['encoder_embed_dim']}; "
        "reading the vocabulary and weights")
    dictionary, perm, hf_state = load()
    state, notes = hf_to_fairseq(hf_state, config, perm, keep_segments)
    for note in notes:
        log(f"note: {note}")
    # Loading into the real model checks every name and shape, and adds fairseq's version buffers.
    model = build_model(ARCH, dictionary, **model_args)
    model.load_state_dict(state, strict=True)
    os.makedirs(out_dir, exist_ok=True)
    written = [f"{out_dir}/model.pt", f"{out_dir}/dict.txt"]
    if importance is not None:
        path = os.path.join(out_dir, "importance.pt")
        atomic_torch_save(importance_to_fairseq(importance, perm), path)
        extra_flags += ["--init-token-importance", os.path.abspath(path)]
        written.append(path)
    write_dict_txt(dictionary, os.path.join(out_dir, "dict.txt"))
    checkpoint = fresh_training_state(training_cfg(os.path.abspath(out_dir), ARCH, model_args, *extra_flags),
                                      without_importance(model.state_dict()), "MaskedLmTokenDropLoss")
    atomic_torch_save(checkpoint, os.path.join(out_dir, "model.pt"))
    flags = dimension_flags(model_args) + extra_flags
    with atomic_path(os.path.join(out_dir, "flags.txt")) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(" ".join(flags) + "\n")
    written.append(f"{out_dir}/flags.txt")
    log(f"{len(dictionary)} dictionary entries; wrote {', '.join(written)}. Train with:\n  "
        + restore_command(out_dir, ARCH, flags))

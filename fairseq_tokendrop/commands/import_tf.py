"""Start token-dropping pretraining from a TensorFlow BERT checkpoint, TF1 or TF2, without TensorFlow.

    fairseq-tokendrop-import-tf tf1_ckpt/model.ckpt-28252 imported/ --vocab vocab.txt \\
        --bert-config bert_config.json --keep-segments        # MLPerf's initial checkpoint
    fairseq-tokendrop-import-tf pretrain_run/ imported/ --vocab vocab.txt   # a Model Garden run's folder

Writes what ``import_hf`` writes, through the same code (``interop/hf_import.py``): OUT/model.pt
(``--arch tokendrop_roberta_base`` at update 0, no optimizer state), OUT/dict.txt and the
fairseq-train command to go on with; for a ``TokenDropBertEncoder`` checkpoint also
OUT/importance.pt, its token-importance scores in dictionary order for ``--init-token-importance``.

The checkpoint is a prefix (``model.ckpt-28252``, ``ckpt-3``), one of its files, or a folder with a
``checkpoint`` file; ``tokendrop_readers/tf_checkpoint.py`` reads it, checksums verified, and
``fairseq_tokendrop/interop/tf_bert.py`` tells its layout from the variable names (TF1
google-research/MLPerf names; Model Garden ``BertEncoder``; ``TokenDropBertEncoder``), refusing
any unknown or missing variable by name. A TF1 checkpoint needs its ``bert_config.json`` (heads,
activation); by default the one beside the checkpoint. ``vocab.txt`` likewise.

Carried: the encoder, the MLM head (its transform, LayerNorm and output bias; the decoder is tied
to the word embeddings), the token-type table (folded into the positions, or with
``--keep-segments`` kept as segment embeddings for data with segment ids, as MLPerf's), the
importance scores. Not carried: the pooler, the next-sentence head, the optimizer state and step.
TF's LayerNorm epsilon, 1e-12, becomes ``--layer-norm-eps 1e-12`` (fairseq's own is 1e-5).
"""
import argparse
import json
import os

import torch

from fairseq_tokendrop.commands.log import command_log
from fairseq_tokendrop.errors import TokendropError
from fairseq_tokendrop.interop.hf_import import add_segments_flag, bert_vocab, write_import
from fairseq_tokendrop.interop.tf_bert import read_tf_bert
from tokendrop_readers.tf_checkpoint import CheckpointError, checkpoint_prefix

log = command_log("import_tf")


def beside(prefix: str, given, name: str):
    """``given``, or ``name`` in the checkpoint's folder when it is there, or None."""
    if given:
        return given
    path = os.path.join(os.path.dirname(prefix), name)
    return path if os.path.isfile(path) else None


def read_bert_config(path):
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as e:
        raise TokendropError(f"{path}: cannot read it as a bert_config.json ({e})") from None


def convert(checkpoint, out_dir, vocab=None, bert_config=None, keep_segments=False):
    prefix = checkpoint_prefix(checkpoint)
    vocab = beside(prefix, vocab, "vocab.txt")
    if vocab is None:
        raise TokendropError(f"no vocab.txt beside {prefix}: give the checkpoint's WordPiece vocabulary "
                              "with --vocab")
    bert = read_tf_bert(prefix, read_bert_config(beside(prefix, bert_config, "bert_config.json")))
    log(f"{prefix}: a {bert.layout} checkpoint")
    for note in bert.notes:
        log(f"note: {note}")
    importance = None if bert.importance is None else torch.from_numpy(bert.importance)
    write_import(out_dir, bert.config, lambda: (*bert_vocab(vocab), bert.state_dict), log, keep_segments,
                 importance)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a TF checkpoint prefix (model.ckpt-28252), one of its files, or a folder "
                                           "with a 'checkpoint' file")
    parser.add_argument("out_dir", help="where model.pt, dict.txt (and importance.pt) go")
    parser.add_argument("--vocab", metavar="FILE", help="the WordPiece vocab.txt (default: the one beside the "
                                                        "checkpoint)")
    parser.add_argument("--bert-config", metavar="FILE",
                        help="google-research's bert_config.json, needed for a TF1 checkpoint (default: the one "
                             "beside the checkpoint)")
    add_segments_flag(parser)
    args = parser.parse_args(argv)
    try:
        convert(args.checkpoint, args.out_dir, args.vocab, args.bert_config, args.keep_segments)
    except CheckpointError as e:  # the reader's, raised without the plugin (tokendrop_readers)
        raise TokendropError(str(e)) from None


if __name__ == "__main__":
    main()

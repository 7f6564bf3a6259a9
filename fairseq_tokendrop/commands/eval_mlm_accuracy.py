"""MLPerf-style masked-LM accuracy of a fairseq checkpoint on a pre-masked eval set.

    accuracy = sum(w * [argmax logits == label]) / sum(w)   over the masked slots

(MLPerf Training BERT's stopping metric; the target is 0.720 on ``eval_10k``).
The eval set is a pre-masked data dir made by ``scripts/convert_premasked.py``;
it keeps exactly the weight-1 slots of the source file, so w = 1 on every slot
it holds. The model runs in eval mode over all tokens: a token-dropping model
drops nothing there, so this is the accuracy of the RoBERTa it hands over.

The checkpoint is read by fairseq's ``checkpoint_utils`` with torch's
``weights_only`` unpickler (the plugin allowlists the plain classes fairseq
checkpoints carry); a checkpoint whose embedding size differs from the data
dir's dictionary is refused before anything is built.

Example::

    python scripts/eval_mlm_accuracy.py checkpoints/checkpoint_best.pt data-bin/mlperf --split valid
"""
import argparse
import logging
import sys
import time

import torch
from fairseq import checkpoint_utils

import fairseq_tokendrop  # noqa: F401  (registers the plugin's model, task and criterion)
from fairseq_tokendrop.checkpoints.safe_loading import load_checkpoint
from fairseq_tokendrop.errors import TokendropError
from fairseq_tokendrop.data.premasked_dataset import is_premasked_dir, load_premasked_split, read_meta

EMBEDDING_KEY = "encoder.sentence_encoder.embed_tokens.weight"


def load_model(checkpoint: str, data_dir: str, device: str):
    """The checkpoint's model with its task pointed at ``data_dir``; refuses a vocabulary mismatch."""
    try:
        state = load_checkpoint(checkpoint, arg_overrides={"data": data_dir})
    except FileNotFoundError:
        raise TokendropError(f"{checkpoint}: no such checkpoint") from None
    embedding = state.get("model", {}).get(EMBEDDING_KEY)
    if embedding is None:
        raise TokendropError(f"{checkpoint}: no {EMBEDDING_KEY}: not a RoBERTa masked-LM checkpoint")
    dict_size = read_meta(data_dir)["dictionary_size"]
    if embedding.shape[0] != dict_size:
        raise TokendropError(f"{checkpoint}: embedding has {embedding.shape[0]} rows but {data_dir}/dict.txt gives "
                        f"{dict_size} symbols (with <mask>): the model was trained with another vocabulary")
    models, _cfg, task = checkpoint_utils.load_model_ensemble_and_task(
        [checkpoint], arg_overrides={"data": data_dir}, state=state)
    return models[0].to(device).eval(), task


@torch.no_grad()
def evaluate(model, src, tgt, pad: int, batch_size: int, device: str, progress_every: int = 0, seg=None):
    """(correct, masked slots, examples) of ``model`` on the (src, tgt[, seg]) datasets.

    ``seg`` (the segment ids, None for a v2 dir) goes to the model as ``segment_labels``;
    a model without segment embeddings ignores them.
    """
    correct = slots = 0
    start = time.time()
    for first in range(0, len(src), batch_size):
        rows = range(first, min(len(src), first + batch_size))
        tokens = torch.nn.utils.rnn.pad_sequence([src[i].long() for i in rows], batch_first=True,
                                                 padding_value=pad).to(device)
        targets = torch.nn.utils.rnn.pad_sequence([tgt[i].long() for i in rows], batch_first=True,
                                                  padding_value=pad).to(device)
        segments = None if seg is None else torch.nn.utils.rnn.pad_sequence(
            [seg[i].long() for i in rows], batch_first=True, padding_value=0).to(device)
        masked = targets.ne(pad)
        if masked.any():
            logits, _ = model(tokens, masked_tokens=masked, segment_labels=segments)
            correct += int((logits.argmax(-1) == targets[masked]).sum())
            slots += int(masked.sum())
        batch = first // batch_size + 1
        if progress_every and batch % progress_every == 0:
            print(f"eval_mlm_accuracy: {rows.stop:,}/{len(src):,} examples, accuracy so far "
                  f"{correct / max(slots, 1):.4f} ({time.time() - start:.0f}s)", file=sys.stderr, flush=True)
    return correct, slots, len(src)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a fairseq checkpoint (checkpoint_best.pt, ...)")
    parser.add_argument("data", help="a pre-masked data dir (scripts/convert_premasked.py)")
    parser.add_argument("--split", default="valid", help="split to evaluate (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="examples per forward (default: %(default)s)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--progress-every", type=int, default=20, help="report every N batches (0 = never)")
    args = parser.parse_args(argv)
    # Importing fairseq leaves the root logger at DEBUG; this script reports its own progress.
    logging.getLogger().setLevel(logging.WARNING)
    if args.batch_size < 1 or args.progress_every < 0:
        parser.error("--batch-size must be >= 1 and --progress-every >= 0")
    if not is_premasked_dir(args.data):
        raise TokendropError(f"{args.data}: not a pre-masked data dir (no premasked.json): "
                        "convert the eval set with scripts/convert_premasked.py")
    model, task = load_model(args.checkpoint, args.data, args.device)
    try:
        src, tgt, seg, _ = load_premasked_split(args.data, args.split)
    except FileNotFoundError as err:
        raise TokendropError(str(err)) from None
    longest = int(src.sizes.max()) if len(src) else 0
    if longest > model.max_positions():
        raise TokendropError(f"{args.data}: split '{args.split}' has {longest}-token examples, "
                        f"longer than the model's {model.max_positions()} positions")
    correct, slots, examples = evaluate(model, src, tgt, task.source_dictionary.pad(), args.batch_size,
                                        args.device, args.progress_every, seg)
    accuracy = correct / slots if slots else float("nan")
    print(f"masked_lm_accuracy {accuracy:.6f} ({correct} of {slots} masked slots correct)")
    print(f"examples {examples}")
    print(f"masked_slots {slots}")


if __name__ == "__main__":
    main()

"""Fine-tune a pretrained checkpoint on a GLUE task folder with stock fairseq and report the task's dev metric.

    fairseq-tokendrop-finetune-glue glue_data/RTE --checkpoint export/model.pt --out ft_rte

The folder is one of GLUE's nine as distributed (``train.tsv``, ``dev.tsv`` or MNLI's
``dev_matched.tsv``, each task's header and columns; ``tokendrop_readers/glue.py``),
the task told by the folder's name or ``--task``. The checkpoint is an export's
``model.pt`` (``export_checkpoint --fairseq-out``) or a raw checkpoint of the plugin
(``finetune/pretrained.py``). Steps:

1. encode both splits with the model's own tokenizer (its sentencepiece model, or its
   WordPiece vocab.txt) and binarize them with ``fairseq-preprocess`` against its
   dict.txt (``finetune/glue_bin.py``, into OUT/bin or a shared ``--bin-dir``);
2. ``fairseq-train --task sentence_prediction --arch roberta_base`` (stock, with the
   pretrained shape) from ``--finetune-from-model``, flags as fairseq's
   ``examples/roberta/README.glue.md``: Adam betas (0.9, 0.98), eps 1e-6, weight decay
   0.1, no clipping, warmup then linear (polynomial power 1) decay to 0 at the last
   update, dropout 0.1; CLS is ``<s>``; a pair is ``<s> A </s></s> B </s>`` for a
   sentencepiece model and BERT's ``<s> A </s> B </s>`` for a WordPiece one;
   ``--regression-target`` with scores / 5 for STS-B. Its log goes to OUT/train.log;
   flags after ``--`` are appended (``-- --fp16``);
3. predict the dev set with the last checkpoint (no choice of epoch on dev) and write
   OUT/dev_predictions.txt and OUT/metrics.json: ``metrics`` (CoLA Matthews; MRPC, QQP
   accuracy and F1; STS-B Pearson and Spearman; the rest accuracy), ``score`` (their
   mean, as GLUE's leaderboard counts), the majority-class accuracy, sizes, seconds.
   The same JSON goes to stdout.

One recipe for every task (``tokendrop_readers/glue_recipe.py``, Cramming's rule: a few epochs,
one set of hyperparameters, nothing tuned per task); ``examples/finetune_hf.py`` takes the same flags.
A rerun after a kill resumes from OUT/checkpoints/checkpoint_last.pt.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

from tokendrop_readers.glue import GlueError, glue_task, task_of_folder
from tokendrop_readers.glue_metrics import majority_accuracy, task_metrics
from tokendrop_readers.glue_recipe import add_recipe_args, check_recipe, recipe_of

from ..atomic_file import atomic_path
from ..checkpoints.checkpoint_io import PLUGIN_DIR
from ..data.text_encoder import find_text_encoder
from ..errors import TokendropError
from ..finetune.glue_bin import binarize, framing_length
from ..finetune.predict import dev_predictions
from ..finetune.pretrained import read_pretrained
from .log import command_log

log = command_log("finetune_glue")


def updates(train_examples: int, args) -> tuple:
    """(total updates, warmup updates): every batch full but the last of each epoch."""
    total = args.epochs * math.ceil(train_examples / args.batch_size)
    return total, round(args.warmup_ratio * total)


def train_command(bin_dir, save_dir, pretrained, task, bert, total, warmup, args, extra):
    classes = ["--regression-target", "--num-classes", "1", "--best-checkpoint-metric", "loss"] \
        if task.regression else ["--num-classes", str(len(task.labels)), "--best-checkpoint-metric", "accuracy",
                                 "--maximize-best-checkpoint-metric"]
    return [sys.executable, "-m", "fairseq_cli.train", bin_dir,
            *(["--user-dir", PLUGIN_DIR] if pretrained.needs_plugin else []),
            "--finetune-from-model", pretrained.path, *pretrained.arch_flags,
            "--task", "sentence_prediction", "--criterion", "sentence_prediction", *classes,
            "--init-token", "0", *([] if bert else ["--separator-token", "2"]),
            "--batch-size", str(args.batch_size), "--required-batch-size-multiple", "1",
            "--dropout", "0.1", "--attention-dropout", "0.1",
            "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--adam-eps", "1e-06",
            "--weight-decay", str(args.weight_decay), "--clip-norm", "0.0",
            "--lr-scheduler", "polynomial_decay", "--lr", str(args.lr), "--total-num-update", str(total),
            "--warmup-updates", str(warmup), "--max-update", str(total), "--max-epoch", str(args.epochs),
            "--seed", str(args.seed), "--find-unused-parameters",
            "--save-dir", save_dir, "--no-epoch-checkpoints",
            "--log-format", "json", "--log-interval", str(max(1, total // (10 * args.epochs))), "--no-progress-bar",
            *extra]


def run_logged(command, log_path) -> None:
    """Run ``command``, its output to ``log_path`` (appended: a rerun keeps the first run's log) and stderr."""
    with open(log_path, "a", encoding="utf-8") as handle:
        handle.write("# " + " ".join(command) + "\n")
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in process.stdout:
            handle.write(line)
            sys.stderr.write(line)
        if process.wait() != 0:
            raise TokendropError(f"fairseq-train failed (exit {process.returncode}); see {log_path}")


def write_json(path, value) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=1)
        handle.write("\n")


def finetune(args, extra) -> dict:
    started = time.time()
    task = glue_task(args.task) if args.task else task_of_folder(args.folder)
    pretrained = read_pretrained(args.checkpoint, args.tokenizer_dir, log)
    try:
        encoder = find_text_encoder(pretrained.tokenizer_dir)
    except TokendropError as err:
        raise TokendropError(f"{err.message} (--tokenizer-dir names the folder with the model's tokenizer: for a WordPiece "
                            "model's --fairseq-out export, its data dir or --hf-out export, which hold vocab.txt)")
    if len(encoder.dictionary) != pretrained.embedding_rows:
        raise TokendropError(f"{args.checkpoint} has {pretrained.embedding_rows} embedding rows and "
                            f"{encoder.description} gives {len(encoder.dictionary)} symbols: not the model's "
                            "dictionary (give --tokenizer-dir)")
    max_length = min(args.max_length, pretrained.max_positions)
    if max_length <= framing_length(task.sentence2 is not None, not encoder.bert):
        raise TokendropError(f"--max-length {max_length} leaves no room for text")
    os.makedirs(args.out, exist_ok=True)
    bin_dir = args.bin_dir or os.path.join(args.out, "bin")
    summary = binarize(task, args.folder, encoder, bin_dir, max_length, not encoder.bert, args.workers, log)
    binarized = time.time()
    total, warmup = updates(summary["train_examples"], args)
    save_dir = os.path.join(args.out, "checkpoints")
    command = train_command(bin_dir, save_dir, pretrained, task, encoder.bert, total, warmup, args, extra)
    log(f"{task.name}: {summary['train_examples']} train examples, {total} updates ({warmup} warmup), "
        f"stock fairseq-train, log in {args.out}/train.log")
    run_logged(command, os.path.join(args.out, "train.log"))
    trained = time.time()
    predictions = dev_predictions(os.path.join(save_dir, "checkpoint_last.pt"), bin_dir)
    gold = summary["dev_labels"]
    metrics = task_metrics(task, predictions, gold)
    with atomic_path(os.path.join(args.out, "dev_predictions.txt")) as tmp, open(tmp, "w", encoding="utf-8") as out:
        out.writelines(f"{p}\n" for p in predictions)
    result = {"task": task.name, "path": "fairseq", "checkpoint": os.path.abspath(args.checkpoint),
              "folder": os.path.abspath(args.folder), "metrics": {k: v for k, v in metrics.items() if k != "score"},
              "score": metrics["score"], "majority": None if task.regression else majority_accuracy(gold),
              "train_examples": summary["train_examples"], "dev_examples": len(gold),
              "recipe": recipe_of(args, max_length),
              "seconds": {"binarize": round(binarized - started, 1), "train": round(trained - binarized, 1),
                          "evaluate": round(time.time() - trained, 1)}}
    write_json(os.path.join(args.out, "metrics.json"), result)
    return result


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     usage="%(prog)s FOLDER --checkpoint PATH --out DIR [options] [-- fairseq-train flags]")
    parser.add_argument("folder", help="a GLUE task folder as distributed (train.tsv, dev.tsv / dev_matched.tsv)")
    parser.add_argument("--task", help="the GLUE task (default: the folder's name, e.g. RTE, SST-2, STS-B)")
    parser.add_argument("--checkpoint", required=True,
                        help="an export's model.pt (export_checkpoint --fairseq-out) or a raw plugin checkpoint")
    parser.add_argument("--tokenizer-dir", metavar="DIR",
                        help="the folder with the model's dict.txt and sentencepiece model, or its vocab.txt "
                             "(default: the checkpoint's folder if it holds dict.txt or vocab.txt, else the "
                             "data dir recorded in the checkpoint)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="where checkpoints/, train.log, dev_predictions.txt and metrics.json go")
    parser.add_argument("--bin-dir", metavar="DIR", help="the binarized task (default: OUT/bin); reused when made "
                        "from the same files and dictionary, e.g. by runs of several checkpoints")
    parser.add_argument("--workers", type=int, default=1, help="fairseq-preprocess workers (default: %(default)s)")
    add_recipe_args(parser)
    args = parser.parse_args(argv)
    check_recipe(parser, args)
    try:
        result = finetune(args, extra)
    except GlueError as err:  # the reader's, raised without the plugin (tokendrop_readers)
        raise TokendropError(str(err)) from None
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

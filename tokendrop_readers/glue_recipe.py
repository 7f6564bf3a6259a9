"""The one fine-tuning recipe both GLUE paths take: its flags, defaults and record.

Both ``fairseq-tokendrop-finetune-glue`` (stock fairseq) and ``examples/finetune_hf.py``
(transformers, without the plugin) read these flags, so a recipe means the same on either
path. The defaults follow Cramming's rules for GLUE (Geiping & Goldstein, ICML 2023: a few
epochs, one set of hyperparameters for every task) with RoBERTa's fine-tuning values (Liu et
al. 2019; fairseq's examples/roberta/README.glue.md): lr 2e-5, batch 32, 3 epochs, 6% warmup
then linear decay to 0, weight decay 0.1, 128 tokens.
"""
import argparse


def add_recipe_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("recipe (one for every task)")
    group.add_argument("--lr", type=float, default=2e-5, help="peak learning rate (default: %(default)s)")
    group.add_argument("--batch-size", type=int, default=32, help="sentences per update (default: %(default)s)")
    group.add_argument("--epochs", type=int, default=3, help="passes over train.tsv (default: %(default)s)")
    group.add_argument("--warmup-ratio", type=float, default=0.06,
                       help="share of the updates spent warming up (default: %(default)s)")
    group.add_argument("--weight-decay", type=float, default=0.1, help="(default: %(default)s)")
    group.add_argument("--max-length", type=int, default=128,
                       help="tokens per example, framing included; longer ones are cut, longest text first "
                            "(default: %(default)s, or the model's positions if fewer)")
    group.add_argument("--seed", type=int, default=1, help="(default: %(default)s)")


def check_recipe(parser: argparse.ArgumentParser, args) -> None:
    if args.epochs < 1 or args.batch_size < 1 or args.lr <= 0 or not 0 <= args.warmup_ratio < 1:
        parser.error("--epochs and --batch-size must be at least 1, --lr above 0, --warmup-ratio in [0, 1)")


def recipe_of(args, max_length: int) -> dict:
    """The recipe as metrics.json records it (``max_length``: the one used, after the model's limit)."""
    return {"lr": args.lr, "batch_size": args.batch_size, "epochs": args.epochs, "warmup_ratio": args.warmup_ratio,
            "weight_decay": args.weight_decay, "max_length": max_length, "seed": args.seed}

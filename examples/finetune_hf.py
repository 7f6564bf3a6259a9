#!/usr/bin/env python
"""Fine-tune a Hugging Face export on a GLUE task folder with transformers alone, and report the task's dev metric.

    python scripts/export_checkpoint.py checkpoints/checkpoint_best.pt --hf-out export_hf
    python examples/finetune_hf.py glue_data/RTE --model export_hf --out ft_rte

The folder is one of GLUE's nine as distributed (``train.tsv``, ``dev.tsv`` or MNLI's
``dev_matched.tsv``, with each task's header and columns), the task told by the folder's
name or ``--task``; it is read by ``tokendrop_readers.glue``, which comes with the plugin's
package and imports neither fairseq nor torch. The model is any ``--hf-out`` export (a
``RobertaForMaskedLM`` with its ``tokenizer.json``, or a ``BertForMaskedLM`` with its
``vocab.txt``) or any local BERT/RoBERTa directory: ``AutoTokenizer`` and
``AutoModelForSequenceClassification`` load it (a new classification head; STS-B as a
regression with one output), and this script imports neither fairseq nor the plugin.

The conventions of transformers' ``run_glue.py`` example: pairs as the tokenizer frames them,
cut to ``--max-length`` tokens longest text first, padded per batch (its
``--pad_to_max_length False``), AdamW with no decay of biases and LayerNorm weights,
linear warmup then linear decay to 0 (``get_linear_schedule_with_warmup``), mean
squared error for STS-B. The recipe's flags and defaults are those of ``fairseq-tokendrop-finetune-glue``,
the stock fairseq path (``tokendrop_readers/glue_recipe.py``), so that the two agree: lr 2e-5, batch 32, 3 epochs, 6% warmup,
weight decay 0.1, Adam betas (0.9, 0.98) and eps 1e-6 (RoBERTa's fine-tuning, fairseq's
README.glue.md), dropout 0.1, 128 tokens; one recipe for every task (Cramming's rule).

Prints one JSON line per epoch (train loss, dev metrics), then writes OUT/metrics.json
(``metrics``: CoLA Matthews; MRPC, QQP accuracy and F1; STS-B Pearson and Spearman; the rest
accuracy; ``score``: their mean; the majority-class accuracy; sizes; seconds), the dev
predictions (OUT/dev_predictions.txt) and, unless ``--no-save``, the fine-tuned model with
its tokenizer (OUT/model). Each file is written under a temporary name and renamed.
"""
import argparse
import json
import math
import os
import shutil
import sys
import time

import torch

from tokendrop_readers.glue import GlueError, glue_task, read_split, task_of_folder
from tokendrop_readers.glue_metrics import majority_accuracy, task_metrics
from tokendrop_readers.glue_recipe import add_recipe_args, check_recipe, recipe_of


class RecipeError(Exception):
    pass


def load_model(path, task):
    import transformers

    labels = {} if task.regression else {"id2label": dict(enumerate(task.labels)),
                                         "label2id": {label: i for i, label in enumerate(task.labels)}}
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model, info = transformers.AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1 if task.regression else len(task.labels), hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1, output_loading_info=True, **labels)
    # New: the classification head, and BERT's pooler, which masked-LM pretraining does not train.
    not_loaded = [k for k in info["missing_keys"] if not k.startswith(("classifier.", "bert.pooler."))]
    if not_loaded or info["mismatched_keys"]:
        raise RecipeError(f"{path}: encoder weights not loaded: {(not_loaded or info['mismatched_keys'])[:3]}")
    return tokenizer, model


def encode(tokenizer, examples, max_length, task):
    """Token ids of each example (no padding yet) and the targets."""
    first = [e.sentence1 for e in examples]
    second = [e.sentence2 for e in examples] if task.sentence2 is not None else None
    encoded = tokenizer(first, second, truncation=True, max_length=max_length)
    features = [{k: encoded[k][i] for k in encoded} for i in range(len(examples))]
    targets = torch.tensor([e.label for e in examples], dtype=torch.float) if task.regression else \
        torch.tensor([task.labels.index(e.label) for e in examples])
    return features, targets


def batches(tokenizer, features, targets, batch_size, generator=None):
    order = torch.randperm(len(features), generator=generator).tolist() if generator else range(len(features))
    order = list(order)
    for start in range(0, len(order), batch_size):
        chosen = order[start:start + batch_size]
        yield tokenizer.pad([features[i] for i in chosen], return_tensors="pt"), targets[chosen]


@torch.no_grad()
def predict(model, tokenizer, features, task, batch_size=64):
    model.eval()
    out = []
    for inputs, _ in batches(tokenizer, features, torch.zeros(len(features)), batch_size):
        logits = model(**inputs).logits
        out += logits[:, 0].tolist() if task.regression else [task.labels[i] for i in logits.argmax(-1).tolist()]
    return out


def optimizer_of(model, args):
    """AdamW; biases and LayerNorm weights without weight decay, as transformers' Trainer does."""
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98), eps=1e-6)


def write_atomic(path, write):
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        write(tmp)
        if os.path.isdir(tmp) and os.path.isdir(path):  # a directory cannot be renamed over another
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
        elif os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text):
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
    write_atomic(path, write)


def run(args):
    import transformers

    started = time.time()
    task = glue_task(args.task) if args.task else task_of_folder(args.folder)
    (train, skipped_train), (dev, skipped_dev) = (read_split(args.folder, task, s) for s in ("train", "dev"))
    for split, skipped in (("train", skipped_train), ("dev", skipped_dev)):
        if skipped:
            print(f"finetune_hf: {task.file_name(split)}: skipped {len(skipped)} row(s) without "
                  f"{task.fields[0]} fields, as fairseq's and transformers' GLUE readers do for QQP", file=sys.stderr)
    transformers.set_seed(args.seed)
    tokenizer, model = load_model(args.model, task)
    max_length = min(args.max_length, tokenizer.model_max_length)
    train_features, train_targets = encode(tokenizer, train, max_length, task)
    dev_features, _ = encode(tokenizer, dev, max_length, task)
    gold = [e.label for e in dev]

    total = args.epochs * math.ceil(len(train) / args.batch_size)
    optimizer = optimizer_of(model, args)
    schedule = transformers.get_linear_schedule_with_warmup(optimizer, round(args.warmup_ratio * total), total)
    loss_fn = torch.nn.MSELoss() if task.regression else torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(args.seed)
    prepared = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        loss_sum = 0.0
        for inputs, target in batches(tokenizer, train_features, train_targets, args.batch_size, generator):
            logits = model(**inputs).logits
            loss = loss_fn(logits[:, 0], target) if task.regression else loss_fn(logits, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(target)
        predictions = predict(model, tokenizer, dev_features, task)
        print(json.dumps({"epoch": epoch, "train_loss": loss_sum / len(train),
                          "dev": task_metrics(task, predictions, gold)}), flush=True)
    trained = time.time()

    os.makedirs(args.out, exist_ok=True)
    if not args.no_save:
        def save(tmp):
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        write_atomic(os.path.join(args.out, "model"), save)
    metrics = task_metrics(task, predictions, gold)
    write_text(os.path.join(args.out, "dev_predictions.txt"), "".join(f"{p}\n" for p in predictions))
    result = {"task": task.name, "path": "hf", "checkpoint": os.path.abspath(args.model),
              "folder": os.path.abspath(args.folder), "metrics": {k: v for k, v in metrics.items() if k != "score"},
              "score": metrics["score"], "majority": None if task.regression else majority_accuracy(gold),
              "train_examples": len(train), "dev_examples": len(dev),
              "recipe": recipe_of(args, max_length),
              "seconds": {"prepare": round(prepared - started, 1), "train": round(trained - prepared, 1)}}
    write_text(os.path.join(args.out, "metrics.json"), json.dumps(result, indent=1) + "\n")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="a GLUE task folder as distributed (train.tsv, dev.tsv / dev_matched.tsv)")
    parser.add_argument("--task", help="the GLUE task (default: the folder's name, e.g. RTE, SST-2, STS-B)")
    parser.add_argument("--model", required=True, help="an --hf-out export, or any local BERT/RoBERTa directory")
    parser.add_argument("--out", required=True, help="where metrics.json, dev_predictions.txt and model/ go")
    parser.add_argument("--no-save", action="store_true", help="do not save the fine-tuned model")
    add_recipe_args(parser)
    args = parser.parse_args(argv)
    check_recipe(parser, args)
    try:
        result = run(args)
    except (GlueError, RecipeError) as err:
        sys.exit(f"finetune_hf: error: {err}")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

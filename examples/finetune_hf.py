#!/usr/bin/env python
"""Fine-tune the Hugging Face export on a TSV classification task: transformers + a plain torch loop.

    python scripts/export_checkpoint.py checkpoints/checkpoint_best.pt --hf-out export_hf
    python examples/finetune_hf.py --model export_hf --train rte/train.tsv --dev rte/dev.tsv --out rte_hf

TSV rows: ``text<TAB>label`` or ``text_a<TAB>text_b<TAB>label`` (no header). Labels are strings,
numbered in sorted order (saved as the config's ``id2label``).

Token ids are fairseq dictionary ids, as in the export: sentencepiece pieces
(``sentencepiece.bpe.model``) looked up in ``dict.txt`` (after fairseq's ``<s> <pad> </s> <unk>``,
``<mask>`` last; unknown pieces -> ``<unk>``), framed as RoBERTa does (fairseq's hub ``encode``):
``<s> a </s>`` or ``<s> a </s> </s> b </s>``.

Defaults follow the RTE row of fairseq's examples/roberta/README.glue.md: lr 2e-5, batch 16,
6% linear warmup then linear decay, AdamW betas (0.9, 0.98), eps 1e-6, weight decay 0.1, 10 epochs.
Prints one JSON line per epoch (train loss, dev accuracy) and saves the model, with dict.txt and
the sentencepiece model, to --out (written under a temporary name, renamed when complete).
"""
import argparse
import json
import os
import shutil
import sys

import sentencepiece
import torch


FAIRSEQ_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
BOS, PAD, EOS, UNK = range(4)


class RecipeError(Exception):
    pass


class FairseqIds:
    """Text -> the export's token ids (sentencepiece + fairseq's dict.txt)."""

    def __init__(self, model_dir):
        spm_path, dict_path = (os.path.join(model_dir, n) for n in ("sentencepiece.bpe.model", "dict.txt"))
        for path in (spm_path, dict_path):
            if not os.path.isfile(path):
                raise RecipeError(f"{path} not found: export with scripts/export_checkpoint.py --hf-out")
        self.sp = sentencepiece.SentencePieceProcessor(model_file=spm_path)
        symbols = list(FAIRSEQ_SPECIALS)
        with open(dict_path, encoding="utf-8") as handle:
            symbols += [line.rstrip("\n").rsplit(" ", 1)[0] for line in handle if line.strip()]
        if "<mask>" not in symbols:  # fairseq's masked_lm appends it after dict.txt
            symbols.append("<mask>")
        self.index = {s: i for i, s in enumerate(symbols)}

    def encode(self, *texts):
        ids = [BOS]
        for i, text in enumerate(texts):
            ids += ([EOS] if i else []) + [self.index.get(p, UNK) for p in self.sp.encode(text, out_type=str)] + [EOS]
        return ids


def read_tsv(path):
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) not in (2, 3) or not fields[-1]:
                raise RecipeError(f"{path}: line {number}: expected text<TAB>label or text_a<TAB>text_b<TAB>label")
            rows.append((fields[:-1], fields[-1]))
    if not rows:
        raise RecipeError(f"{path}: no rows")
    return rows


def batches(examples, batch_size, generator=None):
    order = torch.randperm(len(examples), generator=generator) if generator is not None else range(len(examples))
    order = list(order)
    for start in range(0, len(order), batch_size):
        chunk = [examples[i] for i in order[start:start + batch_size]]
        length = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), length), PAD)
        for row, (tokens, _) in enumerate(chunk):
            ids[row, :len(tokens)] = torch.tensor(tokens)
        yield ids, ids.ne(PAD).long(), torch.tensor([label for _, label in chunk])


def accuracy(model, examples, batch_size):
    model.eval()
    correct = 0
    with torch.no_grad():
        for ids, mask, labels in batches(examples, batch_size):
            correct += (model(input_ids=ids, attention_mask=mask).logits.argmax(-1) == labels).sum().item()
    return correct / len(examples)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the --hf-out dir of scripts/export_checkpoint.py")
    parser.add_argument("--train", required=True, help="training TSV")
    parser.add_argument("--dev", required=True, help="dev TSV (accuracy after every epoch)")
    parser.add_argument("--out", required=True, help="where the fine-tuned model goes")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--warmup", type=float, default=0.06, help="share of the updates spent warming up")
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        run(args)
    except RecipeError as e:
        sys.exit(f"finetune_hf: error: {e}")


def run(args):
    import transformers
    torch.manual_seed(args.seed)
    vocab = FairseqIds(args.model)
    train_rows, dev_rows = read_tsv(args.train), read_tsv(args.dev)
    labels = sorted({label for _, label in train_rows})
    unknown = sorted({label for _, label in dev_rows} - set(labels))
    if unknown:
        raise RecipeError(f"{args.dev}: label(s) {unknown} never occur in {args.train}")
    config = transformers.AutoConfig.from_pretrained(args.model)
    max_len = config.max_position_embeddings - config.pad_token_id - 1

    def examples(rows):
        return [(vocab.encode(*texts)[:max_len], labels.index(label)) for texts, label in rows]

    train, dev = examples(train_rows), examples(dev_rows)
    model, info = transformers.RobertaForSequenceClassification.from_pretrained(
        args.model, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}, output_loading_info=True)
    not_loaded = [k for k in info["missing_keys"] if not k.startswith("classifier.")]
    if not_loaded or info["mismatched_keys"]:
        raise RecipeError(f"{args.model}: encoder weights not loaded: {not_loaded or info['mismatched_keys']}")

    steps = args.epochs * ((len(train) + args.batch_size - 1) // args.batch_size)
    warmup = max(1, int(args.warmup * steps))
    decay = [p for n, p in model.named_parameters() if not n.endswith("bias") and "LayerNorm" not in n]
    rest = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup))))
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(1, args.epochs + 1):
        model.train()
        total, count = 0.0, 0
        for ids, mask, target in batches(train, args.batch_size, generator):
            loss = torch.nn.functional.cross_entropy(model(input_ids=ids, attention_mask=mask).logits, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total, count = total + loss.item() * len(target), count + len(target)
        print(json.dumps({"epoch": epoch, "train_loss": total / count,
                          "dev_accuracy": accuracy(model, dev, args.batch_size)}), flush=True)

    tmp = f"{args.out.rstrip(os.sep)}.tmp-{os.getpid()}"
    model.save_pretrained(tmp)
    for name in ("dict.txt", "sentencepiece.bpe.model"):
        shutil.copyfile(os.path.join(args.model, name), os.path.join(tmp, name))
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.replace(tmp, args.out)
    print(f"finetune_hf: saved {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

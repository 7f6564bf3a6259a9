"""A GLUE task folder -> the data-bin fairseq's ``sentence_prediction`` task reads.

The layout is the one fairseq's ``examples/roberta/preprocess_GLUE_tasks.sh``
writes: ``input0/`` (and ``input1/`` for a pair task) binarized by
``fairseq-preprocess --only-source --srcdict`` against the model's dictionary,
``label/`` binarized against a label dictionary, or for STS-B raw scores
divided by 5 in ``label/{train,valid}.label`` (read with ``--regression-target``).
The dev split is fairseq's ``valid``.

Differences from that script: text is split by the model's own tokenizer
(``data/text_encoder.py``) instead of GPT-2's BPE; the label dictionary lists
the task's labels in the order of ``tokendrop_readers.glue`` (class k is
``task.labels[k]``), not by frequency; and each example is cut to
``max_length`` tokens, framing included, longest text first (the
``longest_first`` truncation of transformers' tokenizers), so that no example
exceeds the model's positions.

The folder is built under a temporary name and renamed when complete; a stamp
of what it was made from lets a second fine-tune of the same dictionary and
task reuse it.
"""
import hashlib
import json
import os
from typing import Callable, List, Optional

from ..atomic_file import atomic_directory
from ..data.text_encoder import TextEncoder
from ..data.wordpiece_dictionary import write_dict_txt
from ..errors import TokendropError
from tokendrop_readers.glue import GlueTask, read_split

STAMP = "prepared.json"
FAIRSEQ_SPLIT = {"train": "train", "dev": "valid"}
STSB_SCALE = 5.0  # fairseq's script maps STS-B's 0-5 onto 0-1


def truncate_longest_first(first: List[str], second: Optional[List[str]], budget: int):
    """Drop tokens from the end of the longer text until both fit ``budget`` together."""
    first, second = list(first), (list(second) if second is not None else None)
    while len(first) + (len(second) if second is not None else 0) > budget:
        if second is not None and len(second) >= len(first):
            second.pop()
        else:
            first.pop()
    return first, second


def framing_length(pair: bool, separator: bool) -> int:
    """Tokens the task adds: ``<s> A </s>``; pairs ``<s> A </s> </s> B </s>`` (RoBERTa) or
    ``<s> A </s> B </s>`` (BERT, no separator token)."""
    return 2 + (1 + separator if pair else 0)


def stamp_of(task: GlueTask, folder: str, encoder: TextEncoder, max_length: int, separator: bool) -> dict:
    digest = hashlib.sha256()
    for split in ("train", "dev"):
        with open(os.path.join(folder, task.file_name(split)), "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    digest.update("\n".join(encoder.dictionary.symbols).encode("utf-8"))
    return {"task": task.name, "data": digest.hexdigest(), "tokenizer": encoder.description,
            "max_length": max_length, "separator": separator}


def binarize(task: GlueTask, folder: str, encoder: TextEncoder, bin_dir: str, max_length: int, separator: bool,
             workers: int, log: Callable[[str], None]) -> dict:
    """Build ``bin_dir`` (or reuse it when its stamp matches); returns the examples' gold dev labels and
    counts: ``{"dev_labels": [...], "train_examples": n, "skipped": {...}}``."""
    stamp = stamp_of(task, folder, encoder, max_length, separator)
    stamp_path = os.path.join(bin_dir, STAMP)
    if os.path.exists(bin_dir) and not os.path.isfile(stamp_path):
        raise TokendropError(f"{bin_dir}: exists and holds no {STAMP}: not a data-bin this command made; give a new "
                        "directory")
    if os.path.isfile(stamp_path):
        with open(stamp_path, encoding="utf-8") as handle:
            previous = json.load(handle)
        if previous["stamp"] == stamp:
            log(f"reusing {bin_dir} (binarized from the same files and dictionary)")
            return previous["summary"]
    summary = {"skipped": {}, "truncated": {}}
    with atomic_directory(bin_dir) as tmp:
        os.makedirs(os.path.join(tmp, "text"))
        for name in ("input0", "input1", "label") if task.sentence2 is not None else ("input0", "label"):
            os.makedirs(os.path.join(tmp, name))
        write_dict_txt(encoder.dictionary, os.path.join(tmp, "text", "dict.txt"))
        if not task.regression:
            with open(os.path.join(tmp, "text", "labels.txt"), "w", encoding="utf-8") as handle:
                handle.writelines(f"{label} 1\n" for label in task.labels)
        for split in ("train", "dev"):
            examples, skipped = read_split(folder, task, split)
            if skipped:
                summary["skipped"][split] = len(skipped)
                log(f"{task.file_name(split)}: skipped {len(skipped)} row(s) without {task.fields[0]} fields "
                    f"(lines {', '.join(map(str, skipped[:5]))}{', ...' if len(skipped) > 5 else ''}), "
                    "as fairseq's and transformers' GLUE readers do for QQP")
            summary["truncated"][split] = write_split(tmp, FAIRSEQ_SPLIT[split], task, examples, encoder,
                                                      max_length - framing_length(task.sentence2 is not None,
                                                                                  separator))
            summary[f"{split}_examples"] = len(examples)
            if split == "dev":
                summary["dev_labels"] = [e.label for e in examples]
            log(f"{task.file_name(split)}: {len(examples)} examples encoded with {encoder.description}"
                f" ({summary['truncated'][split]} cut to {max_length} tokens)")
        run_preprocess(tmp, task, workers)
        with open(os.path.join(tmp, STAMP), "w", encoding="utf-8") as handle:
            json.dump({"stamp": stamp, "summary": summary}, handle)
    return summary


def write_split(tmp: str, split: str, task: GlueTask, examples, encoder: TextEncoder, budget: int) -> int:
    """Text files of symbols (one example a line) and labels; returns how many examples were cut."""
    first = encoder.symbols([e.sentence1 for e in examples])
    second = encoder.symbols([e.sentence2 for e in examples]) if task.sentence2 is not None else [None] * len(first)
    lines, truncated = {"input0": [], "input1": []}, 0
    for a, b in zip(first, second):
        cut_a, cut_b = truncate_longest_first(a, b, budget)
        truncated += (cut_a, cut_b) != (a, b)
        lines["input0"].append(" ".join(cut_a) + "\n")
        if cut_b is not None:
            lines["input1"].append(" ".join(cut_b) + "\n")
    for name, written in lines.items():
        if written:
            with open(os.path.join(tmp, "text", f"{split}.{name}"), "w", encoding="utf-8") as handle:
                handle.writelines(written)
    label_dir = "label" if task.regression else "text"
    with open(os.path.join(tmp, label_dir, f"{split}.label"), "w", encoding="utf-8") as handle:
        if task.regression:
            handle.writelines(f"{e.label / STSB_SCALE!r}\n" for e in examples)
        else:
            handle.writelines(f"{e.label}\n" for e in examples)
    return truncated


def run_preprocess(tmp: str, task: GlueTask, workers: int) -> None:
    """Stock ``fairseq-preprocess`` (its ``main``, in this process) for each input and the labels."""
    from fairseq import options
    from fairseq_cli import preprocess

    text = os.path.join(tmp, "text")
    jobs = [("input0", "dict.txt")] + ([("input1", "dict.txt")] if task.sentence2 is not None else [])
    jobs += [] if task.regression else [("label", "labels.txt")]
    for name, dictionary in jobs:
        args = options.get_preprocessing_parser().parse_args([
            "--only-source", "--srcdict", os.path.join(text, dictionary), "--workers", str(workers),
            "--trainpref", os.path.join(text, f"train.{name}"), "--validpref", os.path.join(text, f"valid.{name}"),
            "--destdir", os.path.join(tmp, name)])
        before = list(preprocess.logger.handlers)
        try:
            preprocess.main(args)
        finally:  # main adds a log file handler of its destdir on every call
            for handler in [h for h in preprocess.logger.handlers if h not in before]:
                handler.close()
                preprocess.logger.removeHandler(handler)

"""Turn raw text into a fairseq data-bin for (token-dropping) RoBERTa pretraining.

Inputs (``data/corpus_files.py``): text files as MLPerf's Wikipedia parts (UTF-8, one sentence
per line, a blank line between documents), JSON lines (``.jsonl``/``.json``, ``--text-field``) and
Parquet shards (``.parquet``, its ``--text-field`` column, read a row group at a time), text and
JSON lines also ``.gz`` or ``.zst``. One record is one document, its lines (split at line breaks;
no sentence splitter) its items. The end of an input file also ends a document.

Two paths, each a chain of steps skipped on a re-run when they already finished with the same
inputs and settings (a stamp in DESTDIR/.prepare_corpus/ records what each was run on).

With a sentencepiece model trained here (or given by ``--spm-model``):

1. ``spm``: train a sentencepiece unigram (or BPE) model on a sample of the
   training lines (``--spm-input-sentence-size``, drawn by sentencepiece while
   the corpus streams past), or copy the model given by ``--spm-model``.
2. ``encode-train``, ``encode-valid``: write each split as space-separated
   pieces, one line per non-blank input line, one blank line between
   documents, to DESTDIR/encoded/{train,valid}.txt.
3. ``binarize``: ``python -m fairseq_cli.preprocess --only-source``, which
   builds dict.txt from the training pieces (by frequency) and writes
   {train,valid}.{bin,idx}.

With the tokenizer users already have (``--tokenizer``: a Hugging Face tokenizer.json, a WordPiece
vocab.txt or a sentencepiece model; ``data/corpus_tokenizer.py``), dict.txt is the tokenizer's
vocabulary in its own order, special tokens on fairseq's symbols (``data/vocabulary_order.py``),
so the data, the model and the HF export (``export_checkpoint --hf-out``) agree id for id:

1. ``tokenizer``: dict.txt and the tokenizer's files (vocab.txt, tokenizer.json or spm.model, with
   a tokenizer_config.json of its casing or special tokens), staged in DESTDIR/.prepare_corpus/stage;
2. ``encode-train``, ``encode-valid``: each split in fairseq ids, written straight into fairseq's
   mmap indexed dataset (staged), laid out as fairseq-preprocess lays out text;
3. ``publish``: the staged files linked into DESTDIR, dict.txt last. A refused or killed run leaves
   no data-bin file in DESTDIR; the stage lets the next run resume.

Either way several worker processes encode chunks of lines, in order (``data/corpus_encoding.py``),
and the log reports lines, documents, tokens and tokens/s. Every output is written under a
temporary name and renamed when complete, so a killed run leaves no half-written file under a
final name; run it again to finish. Nothing holds a whole corpus in memory.

Document boundaries survive binarization: fairseq stores each line as one item
ending in ``</s>``, and a blank line becomes an item holding only ``</s>``,
which ``TokenBlockDataset`` reads as a document separator. Runs of blank lines
are written as one, since only the separator itself carries information.

Packing is not fixed here; it is chosen at training time with fairseq's
``--sample-break-mode``:

* RoBERTa style (Liu et al.; seed 000, Hou et al.): ``none``, fixed blocks of
  ``--tokens-per-sample`` tokens that run across document boundaries;
* BERT style: ``complete_doc``, blocks of whole lines that never cross a
  document boundary; ``complete`` keeps lines whole but lets blocks cross
  documents (what the ScTD command uses).

The last lines printed name the flags of each packing and of whole-word masking with the data
dir's tokenizer (``data/whole_words.py``).

Example::

    python scripts/prepare_corpus.py --train wiki/part-*.txt --valid wiki/eval.txt \\
        --destdir data-bin/wiki --vocab-size 32000 --workers 16 --packing roberta
    python scripts/prepare_corpus.py --train fineweb/*.parquet --valid fineweb_valid.parquet \\
        --tokenizer vocab.txt --destdir data-bin/fineweb --workers 16 --packing roberta
"""

import argparse
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import time

import sentencepiece

from fairseq_tokendrop.atomic_file import atomic_directory, atomic_path
from fairseq_tokendrop.commands.log import command_log
from fairseq_tokendrop.data.corpus_encoding import (SEPARATOR, document_items, encoded_lines, init_sentencepiece_worker,
                                                    init_tokenizer_worker, sentencepiece_pieces, tokenizer_ids)
from fairseq_tokendrop.data.corpus_files import check_inputs, read_lines
from fairseq_tokendrop.data.corpus_tokenizer import load_corpus_tokenizer
from fairseq_tokendrop.data.indexed_ids import IndexedIdsWriter
from fairseq_tokendrop.data.text_encoder import load_dictionary
from fairseq_tokendrop.data.wordpiece_dictionary import write_dict_txt
from fairseq_tokendrop.errors import TokendropError

STAMP_VERSION = 1
SPM_MODEL = "spm.model"
SPM_VOCAB = "spm.vocab"
BINARIZED = ("dict.txt", "train.bin", "train.idx", "valid.bin", "valid.idx")
PACKING_HINTS = {
    "roberta": "--sample-break-mode none  (blocks of --tokens-per-sample tokens that cross documents)",
    "bert": "--sample-break-mode complete_doc  (whole sentences, one document per block)",
}


log = command_log("prepare_corpus")


class Progress:
    """Report to stderr, every ``every`` lines: the lines, and with ``counts`` (``document_items``'
    counts) the documents and tokens encoded and the tokens per second."""

    def __init__(self, label, every, counts=None):
        self.label, self.every, self.counts = label, every, counts
        self.count, self.next_report, self.start = 0, every, time.time()

    def add(self, n=1):
        self.count += n
        if self.count >= self.next_report:
            self.next_report += self.every
            self.report()

    def report(self, final=False):
        elapsed = max(time.time() - self.start, 1e-9)
        state = "done" if final else "..."
        if self.counts is None:
            rate = f"{self.count / elapsed:,.0f} lines/s"
        else:
            tokens = self.counts["pieces"]
            rate = f"{self.counts['documents']:,} documents, {tokens:,} tokens, {tokens / elapsed:,.0f} tokens/s"
        log(f"{self.label}: {self.count:,} lines, {rate}, {elapsed:.1f}s {state}")


def check_destdir(destdir):
    try:
        os.makedirs(os.path.join(destdir, ".prepare_corpus"), exist_ok=True)
        probe = os.path.join(destdir, ".prepare_corpus", f"write-probe.{os.getpid()}")
        with open(probe, "w") as handle:
            handle.write("ok")
        os.remove(probe)
    except OSError as err:
        raise TokendropError(f"output dir is not writable: {destdir} ({err.strerror or err})")


def fingerprint(paths):
    """Identify input files by path, size and modification time (no full read on re-runs)."""
    stats = [os.stat(p) for p in paths]
    return [[os.path.abspath(p), s.st_size, s.st_mtime_ns] for p, s in zip(paths, stats)]


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path, data):
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)


def remove_if_exists(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def run_step(destdir, name, key, outputs, action):
    """Run ``action`` unless the stamp of ``name`` says it already ran with ``key``.

    The stamp is written last, after every output has been renamed into place,
    so a stamp that matches means the outputs are complete. Returns the
    step's summary, from the stamp when the step is skipped.
    """
    stamp = os.path.join(destdir, ".prepare_corpus", f"{name}.json")
    key = dict(key, step=name, version=STAMP_VERSION)
    try:
        with open(stamp, encoding="utf-8") as handle:
            previous = json.load(handle)
    except (OSError, ValueError):
        previous = {}
    if previous.get("key") == key and all(os.path.exists(p) for p in outputs):
        log(f"{name}: already done, skipped")
        return previous["summary"]
    remove_if_exists(stamp)
    start = time.time()
    log(f"{name}: running")
    summary = action()
    write_json_atomic(stamp, {"key": key, "summary": summary, "seconds": round(time.time() - start, 2)})
    log(f"{name}: done in {time.time() - start:.1f}s {json.dumps(summary)}")
    return summary


def train_spm(args, destdir):
    prefix = os.path.join(destdir, ".prepare_corpus", "spm-tmp")
    progress = Progress("spm: reading training lines", args.progress_every)
    read_error = []

    def sentences():
        # An exception raised in here would reach us wrapped in an opaque
        # RuntimeError from sentencepiece's C++ code; keep it and stop instead.
        try:
            yield from (" ".join(line.split()) for line in read_lines(args.train, args.text_field, progress) if line)
        except TokendropError as err:
            read_error.append(err)

    sentencepiece.set_random_generator_seed(args.seed)
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=sentences(),
            model_prefix=prefix,
            model_type=args.model_type,
            vocab_size=args.vocab_size,
            character_coverage=args.character_coverage,
            # Characters outside the vocabulary become byte pieces, not <unk>,
            # so every line decodes back to its text.
            byte_fallback=True,
            input_sentence_size=args.spm_input_sentence_size,
            shuffle_input_sentence=True,
            num_threads=args.workers,
        )
    except RuntimeError as err:
        read_error.append(TokendropError(f"sentencepiece training on {', '.join(args.train)} failed: {err}"))
    if read_error:
        for suffix in (".model", ".vocab"):
            remove_if_exists(prefix + suffix)
        raise read_error[0]
    progress.report(final=True)
    os.replace(prefix + ".vocab", os.path.join(destdir, SPM_VOCAB))
    os.replace(prefix + ".model", os.path.join(destdir, SPM_MODEL))
    return {"lines_read": progress.count}


def copy_spm(source, destdir):
    try:
        sentencepiece.SentencePieceProcessor(model_file=source)
    except (OSError, RuntimeError) as err:
        raise TokendropError(f"--spm-model is not a readable sentencepiece model: {source} ({err})")
    with atomic_path(os.path.join(destdir, SPM_MODEL)) as tmp:
        shutil.copyfile(source, tmp)
    remove_if_exists(os.path.join(destdir, SPM_VOCAB))
    return {"copied_from": os.path.abspath(source)}


def new_counts():
    return {"lines": 0, "documents": 0, "pieces": 0, "longest_line_pieces": 0, "dropped_lines": 0}


def encode_split(split, paths, destdir, args):
    """The split as sentencepiece pieces, one line per line, a blank line between documents."""
    out_path = os.path.join(destdir, "encoded", f"{split}.txt")
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    counts = new_counts()
    progress = Progress(f"encode-{split}", args.progress_every, counts)
    encoded = encoded_lines(read_lines(paths, args.text_field), args.workers, init_sentencepiece_worker,
                            (os.path.join(destdir, SPM_MODEL),), sentencepiece_pieces)
    with atomic_path(out_path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as out:
            for item in document_items(encoded, counts, lambda pieces: pieces.count(" ") + 1):
                out.write("\n" if item is SEPARATOR else item + "\n")
                progress.add(item is not SEPARATOR)
        progress.report(final=True)
    return counts


def binarize(destdir, workers):
    tmp_dir = os.path.join(destdir, ".prepare_corpus", "binarize-tmp")
    remove_if_exists(tmp_dir)
    command = [
        sys.executable, "-m", "fairseq_cli.preprocess",
        "--only-source",
        "--trainpref", os.path.join(destdir, "encoded", "train.txt"),
        "--validpref", os.path.join(destdir, "encoded", "valid.txt"),
        "--destdir", tmp_dir,
        "--dataset-impl", "mmap",
        "--workers", str(workers),
    ]  # fmt: skip
    try:
        # fairseq's own log lines go to our stderr as its progress report.
        result = subprocess.run(command, stdout=2)
        if result.returncode != 0:
            raise TokendropError(f"fairseq-preprocess failed with exit code {result.returncode} "
                                 f"(command: {' '.join(command)})")
        for name in sorted(os.listdir(tmp_dir)):
            os.replace(os.path.join(tmp_dir, name), os.path.join(destdir, name))
    finally:
        remove_if_exists(tmp_dir)
    with open(os.path.join(destdir, "dict.txt"), encoding="utf-8") as handle:
        return {"dict_entries": sum(1 for _ in handle)}


def stage_dir(destdir):
    """Where the --tokenizer path keeps its outputs until the publish step links them into DESTDIR."""
    return os.path.join(destdir, ".prepare_corpus", "stage")


def stage_tokenizer(tokenizer, destdir):
    """dict.txt (the tokenizer's vocabulary in its order) and the files that tell the tokenizer, staged."""
    with atomic_directory(os.path.join(stage_dir(destdir), "tokenizer")) as tmp:
        dict_path = os.path.join(tmp, "dict.txt")
        write_dict_txt(tokenizer.dictionary, dict_path)
        # What masked_lm will load must be this dictionary, entry for entry.
        loaded = load_dictionary(dict_path).symbols
        if loaded != tokenizer.dictionary.symbols:
            bad = next(b for a, b in itertools.zip_longest(loaded, tokenizer.dictionary.symbols) if a != b)
            raise TokendropError(f"--tokenizer {tokenizer.path}: entry {bad!r} does not come back from fairseq's "
                                 "dict.txt as itself")
        files = tokenizer.write_files(tmp)
    return {"kind": tokenizer.kind, "dict_entries": len(tokenizer.dictionary) - 1, "files": ["dict.txt"] + files}


def binarize_split(split, paths, destdir, tokenizer, args):
    """The split in fairseq ids, as fairseq-preprocess lays text out, into the stage's SPLIT.{bin,idx}."""
    import numpy as np
    from fairseq.data import indexed_dataset

    prefix = os.path.join(stage_dir(destdir), split)
    counts = new_counts()
    progress = Progress(f"encode-{split}", args.progress_every, counts)
    eos = tokenizer.dictionary.eos()
    encoded = encoded_lines(read_lines(paths, args.text_field), args.workers, init_tokenizer_worker,
                            (*tokenizer.worker_args, eos), tokenizer_ids)
    separator = np.array([eos], dtype=np.int32)
    with atomic_path(prefix + ".bin") as bin_tmp, atomic_path(prefix + ".idx") as idx_tmp:
        writer = IndexedIdsWriter(bin_tmp, indexed_dataset.best_fitting_int_dtype(len(tokenizer.dictionary)))
        for item in document_items(encoded, counts, lambda ids: len(ids) - 1):  # </s> is no token of the text
            writer.add(separator if item is SEPARATOR else item)
            progress.add(item is not SEPARATOR)
        writer.finalize(idx_tmp)
        progress.report(final=True)
    return counts


def publish(destdir, names):
    """Link the staged files into DESTDIR (a copy where the file system has no hard links), dict.txt last:
    a data-bin appears only when every other file of it is in place."""
    for name in sorted(names, key=lambda n: n == "dict.txt"):
        staged = os.path.join(stage_dir(destdir), name)
        with atomic_path(os.path.join(destdir, os.path.basename(name))) as tmp:
            try:
                os.link(staged, tmp)
            except OSError:
                shutil.copyfile(staged, tmp)
    return {"published": sorted(os.path.basename(n) for n in names)}


def prepare_with_tokenizer(args, tokenizer, destdir):
    """The --tokenizer path: stage the dictionary, encode each split into ids, publish. Returns the
    longest line's token count."""
    log(f"tokenizer: {tokenizer.description}")
    tokenizer_key = {"kind": tokenizer.kind, "sha256": file_sha256(tokenizer.path), "lower_case": tokenizer.lower_case,
                     "config": tokenizer.config}
    staged = run_step(destdir, "tokenizer", tokenizer_key, [os.path.join(stage_dir(destdir), "tokenizer")],
                      lambda: stage_tokenizer(tokenizer, destdir))
    encode_keys, longest, names = {}, 0, [os.path.join("tokenizer", n) for n in staged["files"]]
    for split, paths in (("train", args.train), ("valid", args.valid)):
        encode_keys[split] = {"tokenizer": tokenizer_key, "inputs": fingerprint(paths), "text_field": args.text_field}
        outputs = [os.path.join(stage_dir(destdir), f"{split}.{ext}") for ext in ("bin", "idx")]
        summary = run_step(destdir, f"encode-{split}", encode_keys[split], outputs,
                           lambda split=split, paths=paths: binarize_split(split, paths, destdir, tokenizer, args))
        longest = max(longest, summary["longest_line_pieces"])
        names += [f"{split}.bin", f"{split}.idx"]
    run_step(destdir, "publish", {"encoded": encode_keys},
             [os.path.join(destdir, os.path.basename(n)) for n in names], lambda: publish(destdir, names))
    return longest


def whole_word_flags(destdir, tokenizer):
    """The fairseq-train flags of whole-word masking with this data dir's tokenizer, or why there are none."""
    if tokenizer is None or tokenizer.kind == "sentencepiece":
        return f"--mask-whole-words --bpe sentencepiece --sentencepiece-model {os.path.join(destdir, SPM_MODEL)}"
    if tokenizer.kind == "wordpiece":
        return f"--mask-whole-words --bpe bert --bpe-vocab-file {os.path.join(destdir, 'vocab.txt')}"
    from fairseq_tokendrop.data.tokenizer_json import read_tokenizer_json, word_start_rule

    try:
        word_start_rule(read_tokenizer_json(tokenizer.path))
    except TokendropError as err:
        return f"not available ({err.message})"
    return f"--mask-whole-words --bpe tokenizer_json --tokenizer-json {os.path.join(destdir, 'tokenizer.json')}"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Raw text (text files with one sentence per line and a blank line between documents, JSON "
        "lines or Parquet with one document per record) -> a sentencepiece model trained here, or the tokenizer you "
        "bring (--tokenizer) -> fairseq data-bin (dict.txt, {train,valid}.{bin,idx}, the tokenizer) for masked-LM "
        "pretraining.",
        epilog="Packing is chosen when training, with fairseq's --sample-break-mode: RoBERTa style = none "
        "(fixed --tokens-per-sample blocks crossing documents), BERT style = complete_doc (documents kept "
        "apart); complete keeps sentences whole but lets blocks cross documents. The data-bin keeps "
        "document boundaries, so it serves all three. Re-running skips finished steps.",
    )
    parser.add_argument("--train", nargs="+", required=True, metavar="FILE",
                        help="training files: .txt, .jsonl/.json (also .gz, .zst), .parquet")
    parser.add_argument("--valid", nargs="+", required=True, metavar="FILE", help="validation files, as --train")
    parser.add_argument("--destdir", required=True, help="output data-bin directory (created if missing)")
    parser.add_argument("--text-field", default="text",
                        help="the JSON field or Parquet column holding a document's text (default: %(default)s)")
    parser.add_argument("--tokenizer", metavar="PATH",
                        help="encode with this tokenizer instead of training one: a Hugging Face tokenizer.json, a "
                        "WordPiece vocab.txt or a sentencepiece model (told by content); dict.txt keeps its order")
    parser.add_argument("--lowercase", action=argparse.BooleanOptionalAction,
                        help="--tokenizer vocab.txt: lower-case as BERT's do_lower_case (default: "
                        "tokenizer_config.json next to vocab.txt, else whether vocab.txt has upper-case tokens)")
    parser.add_argument(
        "--vocab-size", type=int, default=32000, help="sentencepiece vocabulary size (default: %(default)s)"
    )
    parser.add_argument(
        "--model-type",
        choices=("unigram", "bpe"),
        default="unigram",
        help="sentencepiece model type (default: %(default)s)",
    )
    parser.add_argument(
        "--spm-model", metavar="PATH", help="use this sentencepiece model instead of training one (copied to DESTDIR)"
    )
    parser.add_argument(
        "--spm-input-sentence-size",
        type=int,
        default=1_000_000,
        help="most training lines sentencepiece keeps, a uniform sample of the corpus; 0 = all (default: %(default)s)",
    )
    parser.add_argument(
        "--character-coverage",
        type=float,
        default=0.9999,
        help="share of characters the spm vocabulary covers (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes for encoding and binarizing (default: %(default)s, the CPU count)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of sentencepiece's sampling (default: %(default)s)")
    parser.add_argument(
        "--progress-every", type=int, default=200_000, help="report progress every N lines (default: %(default)s)"
    )
    parser.add_argument(
        "--packing", choices=sorted(PACKING_HINTS), help="print the fairseq-train flags of this packing at the end"
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.tokenizer and args.spm_model:
        parser.error("give --tokenizer or --spm-model, not both (--tokenizer takes a sentencepiece model too)")
    if args.lowercase is not None and not args.tokenizer:
        parser.error("--lowercase/--no-lowercase go with --tokenizer vocab.txt")
    if args.spm_model is None and args.vocab_size < 8:
        parser.error("--vocab-size is too small")
    if args.spm_input_sentence_size < 0 or args.progress_every < 1:
        parser.error("--spm-input-sentence-size must be >= 0 and --progress-every >= 1")
    return args


def prepare(args):
    check_inputs("train", args.train, args.text_field)
    check_inputs("valid", args.valid, args.text_field)
    if args.spm_model is not None and not os.path.isfile(args.spm_model):
        raise TokendropError(f"--spm-model file not found: {args.spm_model}")
    tokenizer = load_corpus_tokenizer(args.tokenizer, args.lowercase) if args.tokenizer else None
    destdir = args.destdir
    check_destdir(destdir)
    start = time.time()
    if tokenizer is not None:
        longest = prepare_with_tokenizer(args, tokenizer, destdir)
    else:
        longest = prepare_with_sentencepiece(args, destdir)

    log(f"data-bin ready in {destdir} ({time.time() - start:.1f}s)")
    for mode in [args.packing] if args.packing else sorted(PACKING_HINTS):
        print(f"{mode} packing: train with {PACKING_HINTS[mode]}")
    print(f"whole-word masking: {whole_word_flags(destdir, tokenizer)}")
    if args.packing != "roberta":
        # complete/complete_doc never split a line: a block holding one line
        # needs room for its pieces plus </s> and the <s> fairseq prepends.
        print(
            f"note: the longest line is {longest + 2} tokens with <s> and </s>. With complete_doc or complete, "
            "lines longer than --tokens-per-sample are skipped in training and stop validation unless "
            "--skip-invalid-size-inputs-valid-test is given"
        )


def prepare_with_sentencepiece(args, destdir):
    """Train (or copy) the sentencepiece model, encode each split into pieces, fairseq-preprocess. Returns
    the longest line's piece count."""
    if args.spm_model is None:
        spm_key = {
            "train": fingerprint(args.train),
            "vocab_size": args.vocab_size,
            "model_type": args.model_type,
            "input_sentence_size": args.spm_input_sentence_size,
            "character_coverage": args.character_coverage,
            "seed": args.seed,
            "text_field": args.text_field,
        }
        run_step(destdir, "spm", spm_key, [os.path.join(destdir, SPM_MODEL)], lambda: train_spm(args, destdir))
    else:
        spm_key = {"spm_model": fingerprint([args.spm_model])}
        run_step(destdir, "spm", spm_key, [os.path.join(destdir, SPM_MODEL)], lambda: copy_spm(args.spm_model, destdir))

    # Later steps depend on the model's bytes, not on how it was made.
    model_hash = file_sha256(os.path.join(destdir, SPM_MODEL))
    encode_keys, longest = {}, 0
    for split, paths in (("train", args.train), ("valid", args.valid)):
        encode_keys[split] = {"spm_sha256": model_hash, "inputs": fingerprint(paths), "text_field": args.text_field}
        summary = run_step(
            destdir,
            f"encode-{split}",
            encode_keys[split],
            [os.path.join(destdir, "encoded", f"{split}.txt")],
            lambda split=split, paths=paths: encode_split(split, paths, destdir, args),
        )
        longest = max(longest, summary["longest_line_pieces"])
    run_step(
        destdir,
        "binarize",
        {"encoded": encode_keys},
        [os.path.join(destdir, name) for name in BINARIZED],
        lambda: binarize(destdir, args.workers),
    )
    return longest


def main(argv=None):
    args = parse_args(argv)
    try:
        prepare(args)
    except OSError as err:  # e.g. the disk filling up in the middle of a step
        raise TokendropError(str(err)) from None


if __name__ == "__main__":
    main()

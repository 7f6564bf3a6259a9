"""Turn raw text into a fairseq data-bin for (token-dropping) RoBERTa pretraining.

Input layout (MLPerf Wikipedia, fairseq's ``complete_doc``): UTF-8 text, one
sentence per line, a blank line between documents. The end of an input file
also ends a document.

Steps, each skipped on a re-run when it already finished with the same inputs
and settings (a stamp in DESTDIR/.prepare_corpus/ records what it was run on):

1. ``spm``: train a sentencepiece unigram (or BPE) model on a sample of the
   training lines (``--spm-input-sentence-size``, drawn by sentencepiece while
   the corpus streams past), or copy the model given by ``--spm-model``.
2. ``encode-train``, ``encode-valid``: write each split as space-separated
   pieces, one line per non-blank input line, one blank line between
   documents, to DESTDIR/encoded/{train,valid}.txt. Several worker processes
   encode chunks of lines; the order of lines is kept.
3. ``binarize``: ``python -m fairseq_cli.preprocess --only-source``, which
   builds dict.txt from the training pieces and writes {train,valid}.{bin,idx}.

Every output is written under a temporary name and renamed when complete, so a
killed run leaves no half-written file under a final name; run it again to
finish. Nothing holds a whole corpus in memory.

Document boundaries survive binarization: fairseq stores each line as one item
ending in ``</s>``, and a blank line becomes an item holding only ``</s>``,
which ``TokenBlockDataset`` reads as a document separator. Runs of blank lines
are written as one, since only the separator itself carries information.

Packing is not fixed here; it is chosen at training time with fairseq's
``--sample-break-mode``:

* RoBERTa style (Liu et al.; seed 000, Hou et al.): ``none``, fixed blocks of
  ``--tokens-per-sample`` tokens that run across document boundaries;
* BERT style: ``complete_doc``, blocks of whole sentences that never cross a
  document boundary; ``complete`` keeps sentences whole but lets blocks cross
  documents (what the ScTD command uses).

Example::

    python scripts/prepare_corpus.py --train wiki/part-*.txt --valid wiki/eval.txt \\
        --destdir data-bin/wiki --vocab-size 32000 --workers 16 --packing roberta
"""

import argparse
import collections
import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time

import sentencepiece

from fairseq_tokendrop.atomic_file import atomic_path
from fairseq_tokendrop.commands.log import command_log
from fairseq_tokendrop.errors import TokendropError

STAMP_VERSION = 1
CHUNK_LINES = 2000
SPM_MODEL = "spm.model"
SPM_VOCAB = "spm.vocab"
BINARIZED = ("dict.txt", "train.bin", "train.idx", "valid.bin", "valid.idx")
PACKING_HINTS = {
    "roberta": "--sample-break-mode none  (blocks of --tokens-per-sample tokens that cross documents)",
    "bert": "--sample-break-mode complete_doc  (whole sentences, one document per block)",
}


log = command_log("prepare_corpus")


class Progress:
    """Report a running line count and rate to stderr every ``every`` lines."""

    def __init__(self, label, every):
        self.label, self.every = label, every
        self.count, self.next_report, self.start = 0, every, time.time()

    def add(self, n=1):
        self.count += n
        if self.count >= self.next_report:
            self.next_report += self.every
            self.report()

    def report(self, final=False):
        elapsed = max(time.time() - self.start, 1e-9)
        state = "done" if final else "..."
        log(f"{self.label}: {self.count:,} lines, {self.count / elapsed:,.0f} lines/s, {elapsed:.1f}s {state}")


def read_lines(paths, progress=None):
    """Yield whitespace-normalized lines of every file; '' marks a document boundary.

    Bytes are decoded line by line so that a bad byte is reported with its line
    number. Whitespace is collapsed the way fairseq's tokenizer splits lines,
    so an encoded line never holds anything that fairseq would split further.
    """
    for path in paths:
        try:
            with open(path, "rb") as handle:
                for lineno, raw in enumerate(handle, start=1):
                    if progress is not None:
                        progress.add()
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError as err:
                        raise TokendropError(f"{path}: line {lineno} is not valid UTF-8 ({err.reason} at byte "
                                             f"{err.start} of the line)")
                    if lineno == 1 and line.startswith("\ufeff"):  # byte-order mark
                        line = line[1:]
                    yield " ".join(line.split())
        except OSError as err:
            raise TokendropError(f"cannot read {path}: {err.strerror or err}")
        yield ""


def check_inputs(split, paths):
    """Fail with the file's name unless every file can be read and the split has text."""
    for path in paths:
        if not os.path.exists(path):
            raise TokendropError(f"--{split} file not found: {path}")
        if not os.path.isfile(path):
            raise TokendropError(f"--{split} path is not a regular file: {path}")
    # Stops at the first line with text, so this costs nothing on a real corpus.
    if not any(read_lines(paths)):
        raise TokendropError(f"--{split} corpus is empty (no non-blank line) in: {', '.join(paths)}")


def check_destdir(destdir):
    try:
        os.makedirs(os.path.join(destdir, ".prepare_corpus"), exist_ok=True)
        os.makedirs(os.path.join(destdir, "encoded"), exist_ok=True)
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
            yield from filter(None, read_lines(args.train, progress))
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


_worker_spm = None


def _init_worker(model_path):
    global _worker_spm
    _worker_spm = sentencepiece.SentencePieceProcessor(model_file=model_path)


def encode_chunk(lines):
    """Encode a list of lines; '' stays '', a line with no pieces becomes None."""
    texts = [line for line in lines if line]
    pieces = iter(_worker_spm.encode(texts, out_type=str, num_threads=1))
    return [(" ".join(next(pieces)) or None) if line else "" for line in lines]


def chunked(lines, size):
    chunk = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def encoded_lines(lines, model_path, workers):
    """Yield encode_chunk results in input order.

    Pool.imap would read ahead without limit and pull a whole corpus into its
    task queue; here at most two chunks per worker are in flight.
    """
    chunks = chunked(lines, CHUNK_LINES)
    if workers == 1:
        _init_worker(model_path)
        for chunk in chunks:
            yield from encode_chunk(chunk)
        return
    with multiprocessing.Pool(workers, initializer=_init_worker, initargs=(model_path,)) as pool:
        pending = collections.deque()
        for chunk in chunks:
            pending.append(pool.apply_async(encode_chunk, (chunk,)))
            if len(pending) >= 2 * workers:
                yield from pending.popleft().get()
        while pending:
            yield from pending.popleft().get()


def encode_split(split, paths, destdir, args):
    out_path = os.path.join(destdir, "encoded", f"{split}.txt")
    progress = Progress(f"encode-{split}", args.progress_every)
    counts = {"lines": 0, "documents": 0, "pieces": 0, "longest_line_pieces": 0, "dropped_lines": 0}
    with atomic_path(out_path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as out:
            # The separator goes in only when the next document starts: leading,
            # trailing and repeated blank lines would add nothing but empty items.
            new_document = True
            for encoded in encoded_lines(read_lines(paths, progress), os.path.join(destdir, SPM_MODEL), args.workers):
                if encoded is None:  # text that normalizes to nothing, e.g. only control characters
                    counts["dropped_lines"] += 1
                elif encoded == "":
                    new_document = True
                else:
                    if new_document:
                        out.write("\n" if counts["documents"] else "")
                        counts["documents"] += 1
                        new_document = False
                    out.write(encoded + "\n")
                    n_pieces = encoded.count(" ") + 1
                    counts["lines"] += 1
                    counts["pieces"] += n_pieces
                    counts["longest_line_pieces"] = max(counts["longest_line_pieces"], n_pieces)
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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Raw text (one sentence per line, blank line between documents) -> sentencepiece "
        "model -> fairseq data-bin (dict.txt, {train,valid}.{bin,idx}, spm.model) for masked-LM pretraining.",
        epilog="Packing is chosen when training, with fairseq's --sample-break-mode: RoBERTa style = none "
        "(fixed --tokens-per-sample blocks crossing documents), BERT style = complete_doc (documents kept "
        "apart); complete keeps sentences whole but lets blocks cross documents. The data-bin keeps "
        "document boundaries, so it serves all three. Re-running skips finished steps.",
    )
    parser.add_argument("--train", nargs="+", required=True, metavar="FILE", help="training text file(s)")
    parser.add_argument("--valid", nargs="+", required=True, metavar="FILE", help="validation text file(s)")
    parser.add_argument("--destdir", required=True, help="output data-bin directory (created if missing)")
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
    if args.spm_model is None and args.vocab_size < 8:
        parser.error("--vocab-size is too small")
    if args.spm_input_sentence_size < 0 or args.progress_every < 1:
        parser.error("--spm-input-sentence-size must be >= 0 and --progress-every >= 1")
    return args


def prepare(args):
    check_inputs("train", args.train)
    check_inputs("valid", args.valid)
    if args.spm_model is not None and not os.path.isfile(args.spm_model):
        raise TokendropError(f"--spm-model file not found: {args.spm_model}")
    destdir = args.destdir
    check_destdir(destdir)
    start = time.time()

    if args.spm_model is None:
        spm_key = {
            "train": fingerprint(args.train),
            "vocab_size": args.vocab_size,
            "model_type": args.model_type,
            "input_sentence_size": args.spm_input_sentence_size,
            "character_coverage": args.character_coverage,
            "seed": args.seed,
        }
        run_step(destdir, "spm", spm_key, [os.path.join(destdir, SPM_MODEL)], lambda: train_spm(args, destdir))
    else:
        spm_key = {"spm_model": fingerprint([args.spm_model])}
        run_step(destdir, "spm", spm_key, [os.path.join(destdir, SPM_MODEL)], lambda: copy_spm(args.spm_model, destdir))

    # Later steps depend on the model's bytes, not on how it was made.
    model_hash = file_sha256(os.path.join(destdir, SPM_MODEL))
    encode_keys, longest = {}, 0
    for split, paths in (("train", args.train), ("valid", args.valid)):
        encode_keys[split] = {"spm_sha256": model_hash, "inputs": fingerprint(paths)}
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

    log(f"data-bin ready in {destdir} ({time.time() - start:.1f}s)")
    for mode in [args.packing] if args.packing else sorted(PACKING_HINTS):
        print(f"{mode} packing: train with {PACKING_HINTS[mode]}")
    if args.packing != "roberta":
        # complete/complete_doc never split a line: a block holding one line
        # needs room for its pieces plus </s> and the <s> fairseq prepends.
        print(
            f"note: the longest line is {longest + 2} tokens with <s> and </s>. With complete_doc or complete, "
            "lines longer than --tokens-per-sample are skipped in training and stop validation unless "
            "--skip-invalid-size-inputs-valid-test is given"
        )


def main(argv=None):
    args = parse_args(argv)
    try:
        prepare(args)
    except OSError as err:  # e.g. the disk filling up in the middle of a step
        raise TokendropError(str(err)) from None


if __name__ == "__main__":
    main()

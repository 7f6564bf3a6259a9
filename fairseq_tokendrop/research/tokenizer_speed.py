"""Tokens per second of prepare_corpus with the ``tokenizers`` library against sentencepiece, on the embedded corpus.

The corpus: the Python standard library's docstrings (``make_stdlib_corpus``, made into ``--corpus-dir``
when it holds no train.txt), train.txt read ``--repeat`` times over (the same file named again), valid.txt
once. Three tokenizers of ``--vocab-size`` entries are trained on train.txt: a WordPiece vocab.txt and a
BPE tokenizer.json (NFKC, Metaspace) by ``tokenizers``, a unigram model (byte fallback, as prepare_corpus
trains it) by sentencepiece. Then ``prepare_corpus`` runs in this process with ``--workers`` processes,
into a fresh data-bin each time, along four paths:

- ``sentencepiece``: ``--spm-model``, today's path: pieces written as text, then fairseq-preprocess;
- ``sentencepiece-ids``: ``--tokenizer spm.model``: sentencepiece, ids written straight into the data-bin;
- ``wordpiece``: ``--tokenizer vocab.txt``: ``tokenizers`` as BertTokenizerFast builds it;
- ``tokenizer.json``: ``--tokenizer tokenizer.json``: ``tokenizers``, the BPE.

The paths take turns ``--rounds`` times, so that other load on a shared machine slows each alike; every
step of a run times itself (its stamp's seconds). Printed per path, the median over the rounds: the
tokens of both splits, the encode steps' seconds and tokens/s (reading the files, tokenizing, writing
the encoding), and the whole run's (with the dictionary and, for ``sentencepiece``, fairseq-preprocess)::

    python scripts/tokenizer_speed.py --workers 2 --repeat 10 --rounds 3 --json speed.json
"""
import argparse
import contextlib
import json
import os
import shutil
import statistics
import tempfile

from ..atomic_file import atomic_path
from ..commands import prepare_corpus
from ..errors import TokendropError
from . import make_stdlib_corpus
from .host import device_name, start

PATHS = ("sentencepiece", "sentencepiece-ids", "wordpiece", "tokenizer.json")
ENCODE_STEPS = ("encode-train", "encode-valid")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus-dir", help="where the embedded corpus is, or is made (default: a temporary dir)")
    p.add_argument("--repeat", type=int, default=10, help="read train.txt this many times over (default: %(default)s)")
    p.add_argument("--vocab-size", type=int, default=8000, help="entries of each tokenizer (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="prepare_corpus --workers (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="turns of the four paths (default: %(default)s)")
    p.add_argument("--threads", type=int, help="torch CPU threads of this process (default: torch's)")
    p.add_argument("--json", metavar="OUT", help="write the results here as JSON")
    args = p.parse_args(argv)
    if min(args.repeat, args.workers, args.rounds) < 1 or args.vocab_size < 300:
        p.error("--repeat, --workers and --rounds must be >= 1, --vocab-size >= 300")
    return args


def corpus_lines(path):
    with open(path, encoding="utf-8") as handle:
        return [" ".join(line.split()) for line in handle if line.strip()]


def train_tokenizers(corpus_dir, out, vocab_size, workers):
    """{path: the --tokenizer/--spm-model file} of the three tokenizers trained on train.txt."""
    import sentencepiece
    from tokenizers import BertWordPieceTokenizer, Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    lines = corpus_lines(os.path.join(corpus_dir, "train.txt"))
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=os.path.join(out, "spm"),
                                             vocab_size=vocab_size, byte_fallback=True, character_coverage=0.9999,
                                             num_threads=workers, minloglevel=2)
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(lines, vocab_size=vocab_size, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]",
                                                                               "[MASK]"])
    wordpiece.save_model(out)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.normalizer, bpe.pre_tokenizer = normalizers.NFKC(), pre_tokenizers.Metaspace()
    bpe.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials))
    bpe.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    bpe.save(os.path.join(out, "tokenizer.json"))
    spm = os.path.join(out, "spm.model")
    return {"sentencepiece": ["--spm-model", spm], "sentencepiece-ids": ["--tokenizer", spm],
            "wordpiece": ["--tokenizer", os.path.join(out, "vocab.txt")],
            "tokenizer.json": ["--tokenizer", os.path.join(out, "tokenizer.json")]}


def step_summaries(destdir):
    summaries = {}
    for name in os.listdir(os.path.join(destdir, ".prepare_corpus")):
        if name.endswith(".json"):
            with open(os.path.join(destdir, ".prepare_corpus", name), encoding="utf-8") as handle:
                summaries[name[:-len(".json")]] = json.load(handle)
    return summaries


def run_path(corpus_dir, flags, destdir, args):
    """One prepare_corpus run: (tokens, encode seconds, whole seconds)."""
    train = [os.path.join(corpus_dir, "train.txt")] * args.repeat
    argv = ["--train", *train, "--valid", os.path.join(corpus_dir, "valid.txt"), "--destdir", destdir,
            "--workers", str(args.workers), "--progress-every", str(10 ** 9), *flags]
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):  # stdout is this tool's table
        prepare_corpus.prepare(prepare_corpus.parse_args(argv))
    steps = step_summaries(destdir)
    tokens = sum(steps[name]["summary"]["pieces"] for name in ENCODE_STEPS)
    encode = sum(steps[name]["seconds"] for name in ENCODE_STEPS)
    return tokens, encode, sum(step["seconds"] for step in steps.values())


def table(results):
    rows = ["path                 tokens   encode s  encode tokens/s   whole s  whole tokens/s"]
    for path, r in results.items():
        rows.append(f"{path:<17} {r['tokens']:>10,} {r['encode_s']:>10.2f} {r['encode_tokens_per_s']:>16,.0f} "
                    f"{r['whole_s']:>9.2f} {r['whole_tokens_per_s']:>15,.0f}")
    return "\n".join(rows)


def main(argv=None):
    command, args = start(parse_args, argv)
    load = [os.getloadavg()[0]]
    work = tempfile.mkdtemp(prefix="tokenizer_speed-")
    try:
        corpus_dir = args.corpus_dir or os.path.join(work, "corpus")
        if not os.path.isfile(os.path.join(corpus_dir, "train.txt")):
            make_stdlib_corpus.main(["--out-dir", corpus_dir])
        flags = train_tokenizers(corpus_dir, work, args.vocab_size, args.workers)
        timings = {path: [] for path in PATHS}
        for round_ in range(args.rounds):
            for path in PATHS:
                destdir = os.path.join(work, f"{path}-{round_}")
                timings[path].append(run_path(corpus_dir, flags[path], destdir, args))
                shutil.rmtree(destdir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load.append(os.getloadavg()[0])
    results = {}
    for path, runs in timings.items():
        tokens = {run[0] for run in runs}
        if len(tokens) != 1:
            raise TokendropError(f"{path}: the rounds encoded different token counts {sorted(tokens)}")
        encode, whole = statistics.median(r[1] for r in runs), statistics.median(r[2] for r in runs)
        results[path] = dict(tokens=runs[0][0], encode_s=encode, whole_s=whole, encode_tokens_per_s=runs[0][0] / encode,
                             whole_tokens_per_s=runs[0][0] / whole, rounds=[list(r) for r in runs])
    print(f"{args.workers} workers, {args.rounds} rounds (medians), train.txt x{args.repeat}, "
          f"vocabularies of {args.vocab_size}; {device_name('cpu')}, {os.cpu_count()} CPUs, load average "
          f"{load[0]:.1f} before, {load[1]:.1f} after")
    print(table(results))
    if args.json:
        with atomic_path(args.json) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            json.dump({"command": command, "workers": args.workers, "rounds": args.rounds, "repeat": args.repeat,
                       "vocab_size": args.vocab_size, "cpus": os.cpu_count(), "load_average": load,
                       "results": results}, handle, indent=1)


if __name__ == "__main__":
    main()

"""Convert pre-masked BERT shards into a pre-masked data dir for ``--task masked_lm_tokendrop``.

Inputs: the shards as their producers write them, and the WordPiece
``vocab.txt`` their ids come from. The layout of each file is told by the file
itself, never by its name (``tokendrop_readers/premasked_files.py``):
TFRecords of the MLPerf TF reference and TF Model Garden (v1 or v2 feature
names, plain or GZIP), and HDF5 files with fixed-length rows (MLPerf PyTorch
reference, NVIDIA fixed length, NVIDIA DeepLearningExamples,
academic-budget-bert/BiGS), NVIDIA's variable-length rows, or NVIDIA's packed
rows (each packed sequence becomes an example of its own). TFRecords are read
without TensorFlow (the ``tfrecord`` package), HDF5 with h5py; each file
streams, so a shard is never held in memory whole.

Output (see ``fairseq_tokendrop/data/premasked_dataset.py``): DESTDIR/dict.txt
(the vocabulary in fairseq's order: [CLS] [SEP] [UNK] [MASK] become
``<s> </s> <unk> <mask>``; [PAD] is a token of its own, so a random [PAD] in a
masked slot stays a token), SPLIT.src/SPLIT.tgt indexed datasets that keep the
file's masks exactly, premasked.json, and a copy of vocab.txt (export_checkpoint
``--hf-out`` makes BERT's tokenizer from it). Training on DESTDIR uses those
masks; nothing is masked again. ``segment_ids`` are kept as SPLIT.seg (the
model reads them with ``--num-segment 2``); ``next_sentence_labels`` are read,
checked and dropped (no next-sentence objective).

Each input file is converted by its own worker process into a part under a
temporary dir in DESTDIR; the parts are joined in input order and moved into
place only when every file converted cleanly, so a failed or killed run leaves
no half-written split. Any bad record stops the run with one line naming the
file, the record and the field; so does an input with no examples, so a split
is replaced only by one that holds data. A refused conversion into a new
DESTDIR leaves no directory behind.

Example::

    python scripts/convert_premasked.py --vocab vocab.txt --destdir data-bin/mlperf \\
        --split train --workers 16 tfrecords/part-*
    python scripts/convert_premasked.py --vocab vocab.txt --destdir data-bin/mlperf \\
        --split valid tfrecords/eval_10k
"""
import argparse
import logging
import glob
import multiprocessing
import os
import shutil
import time

from fairseq_tokendrop.atomic_file import atomic_path
from fairseq_tokendrop.errors import TokendropError
from fairseq_tokendrop.data.premasked_dataset import META_NAME, PartWriter, merge_parts, publish_split, read_meta
from tokendrop_readers.premasked_files import read_premasked
from tokendrop_readers.premasked_records import RecordError
from fairseq_tokendrop.data.wordpiece_dictionary import vocab_sha256, wordpiece_to_fairseq, write_dict_txt
from fairseq_tokendrop.commands.log import command_log

TMP_PREFIX = ".convert-"


log = command_log("convert_premasked")


_worker = {}


def _init_worker(vocab_path: str, progress_every: int) -> None:
    dictionary, id_map = wordpiece_to_fairseq(vocab_path)
    _worker.update(id_map=id_map, vocab_size=len(dictionary), pad=dictionary.pad(), progress_every=progress_every)


def convert_file(job):
    """Binarize one input file into the part at ``prefix``; returns its layout and counts."""
    path, prefix = job
    id_map = _worker["id_map"]
    layout, told, examples = read_premasked(path, len(id_map))
    log(f"{path}: layout {layout} ({told})")
    writer = PartWriter(prefix, _worker["vocab_size"], _worker["pad"])
    counts = dict(examples=0, masked=0, nonzero_segment=0, longest=0, layout=layout)
    for example in examples:
        writer.add(id_map[example.input_ids], example.positions, id_map[example.labels], example.segment_ids)
        counts["examples"] += 1
        counts["masked"] += len(example.positions)
        counts["nonzero_segment"] += bool(example.segment_ids.any())
        counts["longest"] = max(counts["longest"], len(example.input_ids))
        if counts["examples"] % _worker["progress_every"] == 0:
            log(f"{path}: {counts['examples']:,} examples")
    writer.finalize()
    return counts


def _remove_stale_tmp_dirs(destdir: str, split: str) -> None:
    """Temporary dirs of killed runs of this split (their pid is gone)."""
    for path in glob.glob(os.path.join(destdir, f"{TMP_PREFIX}{split}-*")):
        try:
            os.kill(int(path.rsplit("-", 1)[1]), 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            pass  # alive, someone else's


def convert(inputs, vocab_path, destdir, split, workers, progress_every):
    try:
        dictionary, _ = wordpiece_to_fairseq(vocab_path)
    except TokendropError as err:
        raise TokendropError(f"--vocab: {err.message}") from None
    for path in inputs:
        if not os.path.isfile(path):
            raise TokendropError(f"{path}: no such input file")
    sha = vocab_sha256(vocab_path)
    if os.path.exists(os.path.join(destdir, META_NAME)) and read_meta(destdir)["vocab_sha256"] != sha:
        raise TokendropError(f"{destdir}: already holds data converted with another vocab.txt")
    new_dir = not os.path.isdir(destdir)
    os.makedirs(destdir, exist_ok=True)
    _remove_stale_tmp_dirs(destdir, split)
    tmp_dir = os.path.join(destdir, f"{TMP_PREFIX}{split}-{os.getpid()}")
    os.makedirs(tmp_dir)
    try:
        totals = _convert_parts(inputs, vocab_path, tmp_dir, split, workers, progress_every, len(dictionary))
        # written only with a split to publish: a refused conversion into a new dir leaves nothing
        write_dict_txt(dictionary, os.path.join(destdir, "dict.txt"))
        with atomic_path(os.path.join(destdir, "vocab.txt")) as tmp:
            shutil.copyfile(vocab_path, tmp)
        entry = dict(sources=[os.path.abspath(p) for p in inputs], layouts=totals.pop("layouts"), **totals)
        publish_split(destdir, split, os.path.join(tmp_dir, split), entry, sha, len(dictionary))
    except RecordError as err:
        raise TokendropError(str(err)) from None
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if new_dir and not os.path.exists(os.path.join(destdir, META_NAME)):
            try:  # empty unless another conversion into it is under way: then it stays
                os.rmdir(destdir)
            except OSError:
                pass
    print(f"{split}: {entry['examples']:,} examples, {entry['masked_slots']:,} masked slots, longest "
          f"{entry['longest']} tokens, from {len(inputs)} file(s) -> {destdir}")


def _convert_parts(inputs, vocab_path, tmp_dir, split, workers, progress_every, vocab_size):
    """Convert every input into a part under ``tmp_dir`` and join the parts into ``tmp_dir/split``;
    returns the split's metadata entry (less its sources). Refuses an input with no examples."""
    jobs = [(path, os.path.join(tmp_dir, f"part{i:05d}")) for i, path in enumerate(inputs)]
    workers = max(1, min(workers, len(jobs)))
    start = time.time()
    totals = dict(examples=0, masked=0, nonzero_segment=0, longest=0)
    layouts = []

    def collect(results):
        for done, ((path, _), counts) in enumerate(zip(jobs, results), 1):
            if not counts["examples"]:
                raise TokendropError(f"{path}: no examples: nothing converted, split '{split}' "
                                     "left as it was")
            for key in ("examples", "masked", "nonzero_segment"):
                totals[key] += counts[key]
            totals["longest"] = max(totals["longest"], counts["longest"])
            layouts.append(counts["layout"])
            log(f"[{done}/{len(jobs)}] {path} ({counts['layout']}): {counts['examples']:,} examples, "
                f"{counts['masked']:,} masked slots ({time.time() - start:.0f}s)")

    if workers == 1:
        _init_worker(vocab_path, progress_every)
        collect(map(convert_file, jobs))
    else:
        with multiprocessing.Pool(workers, _init_worker, (vocab_path, progress_every)) as pool:
            collect(pool.imap(convert_file, jobs))
    if totals["nonzero_segment"]:
        log(f"{totals['nonzero_segment']:,} of {totals['examples']:,} examples have a second segment: "
            "kept; train with --num-segment 2 to use them (without it the model ignores them)")
    merge_parts([prefix for _, prefix in jobs], os.path.join(tmp_dir, split), vocab_size)
    return dict(layouts=layouts, examples=totals["examples"], masked_slots=totals["masked"],
                longest=totals["longest"], nonzero_segment_examples=totals["nonzero_segment"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="TFRecord or HDF5 files (layout told by each file), converted in this order")
    parser.add_argument("--vocab", required=True, help="the WordPiece vocab.txt the shards' ids refer to")
    parser.add_argument("--destdir", required=True, help="the pre-masked data dir to write (or add a split to)")
    parser.add_argument("--split", default="train", help="split name: train, valid, ... (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(),
                        help="processes, one input file each at a time (default: all cores)")
    parser.add_argument("--progress-every", type=int, default=100_000,
                        help="report progress every N examples of a file (default: %(default)s)")
    args = parser.parse_args(argv)
    # Importing fairseq leaves the root logger at DEBUG; this script reports its own progress.
    logging.getLogger().setLevel(logging.WARNING)
    if args.workers < 1 or args.progress_every < 1:
        parser.error("--workers and --progress-every must be >= 1")
    if not args.split or os.sep in args.split or args.split.startswith("."):
        parser.error(f"--split: not a plain name: {args.split!r}")
    convert(args.inputs, args.vocab, args.destdir, args.split, args.workers, args.progress_every)


if __name__ == "__main__":
    main()

"""Pre-masked data on disk, and the fairseq dataset that serves it without re-masking.

A pre-masked data dir holds, next to fairseq's ``dict.txt``:

- ``SPLIT.src.{bin,idx}``: fairseq mmap indexed dataset of the inputs, in
  fairseq ids, padding removed, the file's own masking kept exactly
  ([MASK], random and unchanged tokens);
- ``SPLIT.tgt.{bin,idx}``: the targets, ``<pad>`` everywhere except the masked
  positions, which hold the labels. This is the target ``masked_lm``'s
  ``MaskTokensDataset`` makes, so criteria that take ``target != pad`` as the
  masked positions read the file's masks;
- ``SPLIT.seg.{bin,idx}``: the segment (token type) of every input token, 0
  or 1, read by models with ``--num-segment 2`` (absent in v2 dirs: all 0);
- ``premasked.json``: marks the dir, records per split the sources and the
  layout detected in each, counts, the vocab.txt hash and the byte size of
  each file above.

The file names differ from fairseq-preprocess's ``SPLIT.bin`` on purpose: stock
``masked_lm`` pointed here fails with "Dataset not found" instead of masking
the masked data a second time. A split is complete only once its entry in
``premasked.json`` matches its files; data files are replaced first and the
JSON last, so a killed converter leaves a split that refuses to load.
"""
import fcntl
import json
import os
from contextlib import contextmanager

import numpy as np
import torch
from fairseq import utils
from fairseq.data import BaseWrapperDataset, RightPadDataset, SortDataset, data_utils, indexed_dataset

from ..atomic_file import atomic_path
from ..errors import TokendropError
from .indexed_files import check_indexed_files

META_NAME = "premasked.json"
FORMAT = "fairseq_tokendrop.premasked"
# 2: [PAD] became a dictionary entry of its own (in v1 an in-sequence [PAD] was stored as <pad>, i.e. padding)
# 3: the segment ids are kept (SPLIT.seg); v2 dirs still load, as all segment 0
VERSION = 3
READABLE_VERSIONS = (2, 3)
STREAMS = ("src", "tgt", "seg")


def is_premasked_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, META_NAME))


def stream_files(prefix: str, stream: str):
    """(data, index) paths of one stream of the split or part at ``prefix``."""
    return f"{prefix}.{stream}.bin", f"{prefix}.{stream}.idx"


def read_meta(data_dir: str) -> dict:
    with open(os.path.join(data_dir, META_NAME), encoding="utf-8") as handle:
        meta = json.load(handle)
    if meta.get("format") != FORMAT:
        raise TokendropError(f"{data_dir}/{META_NAME}: not a {FORMAT} file")
    if meta.get("version") not in READABLE_VERSIONS:
        raise TokendropError(f"{data_dir}/{META_NAME}: written by another version of the converter (v{meta.get('version')}, "
                        f"this one reads v{'/v'.join(map(str, READABLE_VERSIONS))}): convert the data again")
    return meta


class PartWriter:
    """Binarizes examples (already in fairseq ids) into one src/tgt/seg triple at ``prefix``."""

    def __init__(self, prefix: str, vocab_size: int, pad: int):
        self.prefix, self.pad = prefix, pad
        dtype = indexed_dataset.best_fitting_int_dtype(vocab_size)
        self.builders = {s: indexed_dataset.MMapIndexedDatasetBuilder(f"{prefix}.{s}.bin", dtype=dtype)
                         for s in STREAMS}

    def add(self, input_ids: np.ndarray, positions: np.ndarray, labels: np.ndarray, segments: np.ndarray) -> None:
        target = np.full_like(input_ids, self.pad)
        target[positions] = labels
        self.builders["src"].add_item(torch.from_numpy(input_ids))
        self.builders["tgt"].add_item(torch.from_numpy(target))
        self.builders["seg"].add_item(torch.from_numpy(segments))

    def finalize(self) -> None:
        for stream, builder in self.builders.items():
            builder.finalize(f"{self.prefix}.{stream}.idx")


def merge_parts(parts, out_prefix: str, vocab_size: int) -> None:
    """Concatenate binarized parts, in order, into ``out_prefix`` (fairseq's own merge)."""
    dtype = indexed_dataset.best_fitting_int_dtype(vocab_size)
    for stream in STREAMS:
        data, index = stream_files(out_prefix, stream)
        builder = indexed_dataset.MMapIndexedDatasetBuilder(data, dtype=dtype)
        for part in parts:
            builder.merge_file_(f"{part}.{stream}")
        builder.finalize(index)


@contextmanager
def _meta_lock(data_dir: str):
    """Serialise read-modify-write of premasked.json when two splits convert at once."""
    with open(os.path.join(data_dir, f".{META_NAME}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def publish_split(data_dir: str, split: str, tmp_prefix: str, entry: dict, vocab_sha256: str,
                  dictionary_size: int) -> None:
    """Move a finished split from ``tmp_prefix`` into place, then record it in premasked.json."""
    final = {}
    for stream in STREAMS:
        for tmp, dst in zip(stream_files(tmp_prefix, stream), stream_files(os.path.join(data_dir, split), stream)):
            final[os.path.basename(dst)] = os.path.getsize(tmp)
            os.replace(tmp, dst)
    with _meta_lock(data_dir):
        path = os.path.join(data_dir, META_NAME)
        meta = read_meta(data_dir) if os.path.exists(path) else {
            "format": FORMAT, "version": VERSION, "vocab_sha256": vocab_sha256,
            "dictionary_size": dictionary_size, "splits": {}}
        if meta["vocab_sha256"] != vocab_sha256:
            raise TokendropError(f"{path}: this dir was converted with another vocab.txt")
        meta["version"] = VERSION  # a v2 dir's other splits still read, without segments
        meta["splits"][split] = {**entry, "files": final}
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            json.dump(meta, handle, indent=1)


def load_premasked_split(data_dir: str, split: str):
    """The (src, tgt, seg) indexed datasets of a complete split (seg None in a v2 dir), and its metadata entry."""
    meta = read_meta(data_dir)
    entry = meta["splits"].get(split)
    if entry is None:
        raise FileNotFoundError(f"pre-masked split '{split}' not found in {data_dir} "
                                f"(has: {', '.join(sorted(meta['splits'])) or 'none'})")
    for name, size in entry["files"].items():
        path = os.path.join(data_dir, name)
        if not os.path.exists(path) or os.path.getsize(path) != size:
            raise TokendropError(f"{path}: does not match {META_NAME} (an interrupted conversion?): "
                            f"convert split '{split}' again")
    for stream in STREAMS:  # the inputs and targets hold dictionary ids; the segments 0 and 1
        if f"{split}.{stream}.bin" in entry["files"]:
            check_indexed_files(os.path.join(data_dir, f"{split}.{stream}"),
                                meta["dictionary_size"] if stream != "seg" else None)
    src, tgt, seg = (data_utils.load_indexed_dataset(os.path.join(data_dir, f"{split}.{s}"), None,
                                                     dataset_impl="mmap")
                     if f"{split}.{s}.bin" in entry["files"] else None for s in STREAMS)
    if len(src) != entry["examples"] or any(d is not None and not np.array_equal(src.sizes, d.sizes)
                                            for d in (tgt, seg)):
        raise TokendropError(f"{data_dir}: split '{split}' is inconsistent with {META_NAME}: convert it again")
    return src, tgt, seg, entry


def epoch_data_dir(task, epoch: int) -> str:
    """The data dir ``masked_lm`` reads for ``epoch`` (``--data`` may name several, one per epoch)."""
    paths = utils.split_paths(task.cfg.data)
    return paths[(epoch - 1) % len(paths)]


def second_segment_examples(data_dir: str, split: str) -> int:
    """How many examples of a converted split have a second segment (0 in a v2 dir, which has no SPLIT.seg)."""
    entry = read_meta(data_dir)["splits"].get(split, {})
    return entry.get("nonzero_segment_examples", 0) if f"{split}.seg.bin" in entry.get("files", {}) else 0


def premasked_task_dataset(task, split: str, data_dir: str):
    """What ``masked_lm``'s ``load_dataset`` sets, built on the file's masks instead of new ones.

    The sample dict comes from ``masked_lm``'s own builder (``_regular_dataset``),
    so batches have the shape stock ``masked_lm`` gives; the order is the same
    seeded shuffle, then by length.
    """
    check_task_dictionary(task, data_dir)
    src, tgt, seg, _ = load_premasked_split(data_dir, split)
    longest = int(src.sizes.max()) if len(src) else 0
    if longest > task.cfg.tokens_per_sample:
        raise TokendropError(f"--tokens-per-sample {task.cfg.tokens_per_sample} is shorter than the longest example "
                        f"({longest} tokens) of pre-masked split '{split}' in {data_dir}")
    pad = task.source_dictionary.pad()
    dataset = task._regular_dataset(src, RightPadDataset(tgt, pad_idx=pad))
    if seg is not None:
        dataset = SegmentLabelsDataset(dataset, seg)
    with data_utils.numpy_seed(task.cfg.seed):
        shuffle = np.random.permutation(len(src))
    return SortDataset(dataset, sort_order=[shuffle, src.sizes])


class SegmentLabelsDataset(BaseWrapperDataset):
    """Adds ``net_input.segment_labels`` ``[B, T]`` (0-padded like ``src_tokens``) to the batches of ``dataset``.

    Every batch carries them; a model without ``--num-segment`` ignores them.
    """

    def __init__(self, dataset, segments):
        super().__init__(dataset)
        self.segments = RightPadDataset(segments, pad_idx=0)

    def __getitem__(self, index):
        return {**self.dataset[index], "segment_labels": self.segments[index]}

    def collater(self, samples):
        batch = self.dataset.collater(samples)  # masked_lm's collater reads only its own keys
        if batch:
            batch["net_input"]["segment_labels"] = self.segments.collater([s["segment_labels"] for s in samples])
        return batch


def check_task_dictionary(task, data_dir: str) -> None:
    """The converter mapped [MASK] to the last id; the task must have put ``<mask>`` there, in a dict of that size."""
    size = read_meta(data_dir)["dictionary_size"]
    if len(task.source_dictionary) != size or task.mask_idx != size - 1:
        raise TokendropError(f"{data_dir}/dict.txt: {len(task.source_dictionary)} entries with <mask> at "
                        f"{task.mask_idx}, but the data was converted for {size} with <mask> last: "
                        "was dict.txt edited?")

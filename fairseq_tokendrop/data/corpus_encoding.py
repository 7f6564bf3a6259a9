"""A corpus' lines encoded by worker processes, in input order, and laid out as fairseq's items.

Lines come from ``corpus_files.read_lines`` (``''`` where a document ends). Worker processes encode
chunks of lines; at most two chunks per worker are in flight (``Pool.imap`` would read ahead
without limit and pull a whole corpus into its task queue). Two encoders, each a worker
initializer and a chunk function:

- ``sentencepiece_pieces``: a line's sentencepiece pieces as text, whitespace collapsed first the
  way fairseq's tokenizer splits lines (``prepare_corpus``' own path, which ``fairseq-preprocess``
  binarizes);
- ``tokenizer_ids``: a line as it is, encoded by a ``--tokenizer`` (``corpus_tokenizer``), as
  fairseq ids (int32) with ``</s>`` appended, ready for the indexed dataset.

Either gives, per line, ``''`` for a document end, ``None`` for a line that encodes to nothing,
else the encoding. ``document_items`` lays them out as fairseq-preprocess does for text: one item
per line (``</s>`` appended when binarized), a separator item between documents (only ``</s>``,
which ``TokenBlockDataset`` reads as a document boundary), none before the first or after the
last, and runs of document ends as one.
"""
import collections
import multiprocessing
import os
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

CHUNK_LINES = 2000
SEPARATOR = None  # the item between two documents, in document_items' output

_worker = {}


def init_sentencepiece_worker(model_path: str) -> None:
    import sentencepiece

    _worker["spm"] = sentencepiece.SentencePieceProcessor(model_file=model_path)


def sentencepiece_pieces(lines: Sequence[str]) -> list:
    texts = [" ".join(line.split()) for line in lines if line]
    pieces = iter(_worker["spm"].encode(texts, out_type=str, num_threads=1))
    return [(" ".join(next(pieces)) or None) if line else "" for line in lines]


def init_tokenizer_worker(kind: str, path: str, lower_case, id_map: np.ndarray, eos: int) -> None:
    from .corpus_tokenizer import tokenizer_id_encoder

    # The workers are the parallelism: each encodes on one thread, as sentencepiece_pieces does.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    # One id past the tokenizer's stands for the </s> that ends every line.
    _worker.update(encode=tokenizer_id_encoder(kind, path, lower_case),
                   id_map=np.append(id_map, eos).astype(np.int32))


class PackedLines:
    """A chunk's encodings as two arrays, so that a chunk crosses from a worker in one piece and not one per
    line: every line's fairseq ids with ``</s>`` appended, one after another, and per line their count (0 for
    a line that encodes to nothing, -1 for a document end). Iterates as one result per line (``''``,
    ``None``, or a view of the ids)."""

    def __init__(self, ids: np.ndarray, counts: np.ndarray):
        self.ids, self.counts = ids, counts

    def __iter__(self):
        offset = 0
        for n in self.counts.tolist():
            if n < 0:
                yield ""
            elif n == 0:
                yield None
            else:
                yield self.ids[offset:offset + n]
                offset += n


def tokenizer_ids(lines: Sequence[str]) -> PackedLines:
    encoded = iter(_worker["encode"]([line for line in lines if line]))
    id_map = _worker["id_map"]
    eos = len(id_map) - 1
    counts, flat = [], []
    for line in lines:
        ids = next(encoded) if line else None
        counts.append(-1 if not line else len(ids) + 1 if len(ids) else 0)
        if line and len(ids):
            flat += ids
            flat.append(eos)
    return PackedLines(id_map[np.array(flat, dtype=np.int64)], np.array(counts, dtype=np.int64))


def _chunked(lines: Iterable[str], size: int) -> Iterator[list]:
    chunk = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def encoded_lines(lines: Iterable[str], workers: int, init: Callable, initargs: tuple, encode: Callable) -> Iterator:
    """``encode``'s result for every line (``encode`` takes a chunk of lines and returns an iterable of
    per-line results), in input order, from ``workers`` processes (``init(*initargs)`` once in each; in
    this process when ``workers`` is 1)."""
    chunks = _chunked(lines, CHUNK_LINES)
    if workers == 1:
        init(*initargs)
        for chunk in chunks:
            yield from encode(chunk)
        return
    with multiprocessing.Pool(workers, initializer=init, initargs=initargs) as pool:
        pending = collections.deque()
        for chunk in chunks:
            pending.append(pool.apply_async(encode, (chunk,)))
            if len(pending) >= 2 * workers:
                yield from pending.popleft().get()
        while pending:
            yield from pending.popleft().get()


def document_items(encoded: Iterable, counts: dict, size: Callable) -> Iterator:
    """Each line's encoding, and ``SEPARATOR`` between documents (see the module doc). ``counts``
    (``lines``, ``documents``, ``pieces``, ``longest_line_pieces``, ``dropped_lines``) grow as items
    go out; ``size(encoding)`` is its number of tokens."""
    new_document = True
    for item in encoded:
        if item is None:  # text that normalizes to nothing, e.g. only control characters
            counts["dropped_lines"] += 1
        elif isinstance(item, str) and not item:
            new_document = True
        else:
            if new_document:
                if counts["documents"]:
                    yield SEPARATOR
                counts["documents"] += 1
                new_document = False
            n = size(item)
            counts["lines"] += 1
            counts["pieces"] += n
            counts["longest_line_pieces"] = max(counts["longest_line_pieces"], n)
            yield item

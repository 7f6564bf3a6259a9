"""fairseq's mmap indexed dataset (``SPLIT.bin`` + ``SPLIT.idx``, what fairseq-preprocess writes) from id arrays, in bulk.

fairseq's ``MMapIndexedDatasetBuilder`` converts and writes every item on its own, through a torch
tensor (about 10 µs an item, as long as encoding a line with sentencepiece); this writer keeps the
items of a batch and writes them in one piece. The files are the builder's byte for byte: the items'
ids one after another in ``dtype``, then fairseq's own index writer (``MMapIndexedDataset.Index``)
with their sizes.
"""
import numpy as np
from fairseq.data.indexed_dataset import MMapIndexedDataset

FLUSH_IDS = 1 << 20


class IndexedIdsWriter:
    def __init__(self, data_path: str, dtype):
        self.handle, self.dtype = open(data_path, "wb"), dtype
        self.sizes, self.pending, self.pending_ids = [], [], 0

    def add(self, ids: np.ndarray) -> None:
        self.pending.append(ids)
        self.sizes.append(len(ids))
        self.pending_ids += len(ids)
        if self.pending_ids >= FLUSH_IDS:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.handle.write(np.concatenate(self.pending).astype(self.dtype).tobytes(order="C"))
        self.pending, self.pending_ids = [], 0

    def finalize(self, index_path: str) -> None:
        self._flush()
        self.handle.close()
        with MMapIndexedDataset.Index.writer(index_path, self.dtype) as index:
            index.write(self.sizes)

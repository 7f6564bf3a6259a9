"""data/indexed_ids.py writes the files fairseq's own MMapIndexedDatasetBuilder writes, byte for byte."""
import numpy as np
import pytest
import torch
from fairseq.data import indexed_dataset

import fairseq_tokendrop.data.indexed_ids as indexed_ids


@pytest.mark.parametrize("vocab_size", [300, 70000])  # uint16 and int32 data
def test_the_files_are_fairseqs_builders(tmp_path, monkeypatch, vocab_size):
    monkeypatch.setattr(indexed_ids, "FLUSH_IDS", 50)  # several flushes
    rng = np.random.default_rng(0)
    items = [rng.integers(0, vocab_size, rng.integers(1, 30)).astype(np.int32) for _ in range(40)]
    dtype = indexed_dataset.best_fitting_int_dtype(vocab_size)
    builder = indexed_dataset.MMapIndexedDatasetBuilder(str(tmp_path / "fairseq.bin"), dtype=dtype)
    writer = indexed_ids.IndexedIdsWriter(str(tmp_path / "ours.bin"), dtype)
    for ids in items:
        builder.add_item(torch.from_numpy(ids))
        writer.add(ids)
    builder.finalize(str(tmp_path / "fairseq.idx"))
    writer.finalize(str(tmp_path / "ours.idx"))
    for ext in ("bin", "idx"):
        assert (tmp_path / f"ours.{ext}").read_bytes() == (tmp_path / f"fairseq.{ext}").read_bytes()
    read = indexed_dataset.MMapIndexedDataset(str(tmp_path / "ours"))
    assert [read[i].tolist() for i in range(len(read))] == [ids.tolist() for ids in items]

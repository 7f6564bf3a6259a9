"""fairseq's mmap indexed files (``PREFIX.idx`` and ``PREFIX.bin``), checked before the first update.

fairseq's reader trusts both files. A ``.bin`` cut short fails at the first example past its end
("ValueError: offset must be non-negative ..."), an empty split fails to map its empty ``.bin``
and then again in the reader's destructor (an AttributeError on ``_bin_buffer_mmap``), and an id
the dictionary lacks surfaces mid-epoch (``MaskTokensDataset``'s "Dataset contains mask_idx", or
an embedding index error). Here each is refused in one line naming the file, when the split loads.

What a check reads, so that it stays cheap on large data: the ``.idx`` in full (its header, then
4 + 8 bytes per example, the sizes and offsets that fairseq's own reader reads in full at the same
load), the ``.bin`` only for its ids, and only ``SCAN_BYTES`` of it: all of a ``.bin`` up to that
size, and ``WINDOWS`` evenly spaced windows of a larger one. So the time is linear in the number
of examples (as fairseq's load is) and bounded in the size of the ``.bin``: about 0.03 s for
256 MiB of ids in the page cache, one disk read of 256 MiB when cold. A dictionary of another
vocabulary puts out-of-range ids everywhere and is caught at any size; a lone stray id in a
``.bin`` above ``SCAN_BYTES`` may be missed (fairseq's own error then remains).

The layout (fairseq ``indexed_dataset.MMapIndexedDataset.Index``): a 9-byte magic, a u64 version
(1), a u8 dtype code, a u64 example count N, then N int32 sizes and N int64 byte offsets into the
``.bin``, which holds the examples' ids back to back. The legacy formats (``--dataset-impl
cached``/``lazy``/``raw``) are left to fairseq.
"""
import itertools
import os
import struct
from typing import Optional, Tuple

import numpy as np
from fairseq.data.indexed_dataset import MMapIndexedDataset, _code_to_dtype

from ..errors import TokendropError

HEADER = struct.Struct("<9sQBQ")  # magic, version, dtype code, number of examples
MAGIC = MMapIndexedDataset.Index._HDR_MAGIC
LEGACY_MAGIC = b"TNTIDX\x00\x00"  # fairseq's IndexedDataset (--dataset-impl cached/lazy): not checked here
SCAN_BYTES = 256 * 2**20
WINDOWS = 256
CHUNK = 2**20  # examples whose offsets are checked at once (bounded memory on a long .idx)


def check_indexed_files(prefix: str, id_limit: Optional[int]) -> int:
    """Refuse ``PREFIX.idx``/``PREFIX.bin`` unless they hold at least one token, agree with each
    other, and (``id_limit`` given) hold only ids in ``[0, id_limit)``. Returns the number of examples
    (0 for a legacy-format pair, which is not checked)."""
    index, data = prefix + ".idx", prefix + ".bin"
    for path, other in ((index, data), (data, index)):
        if not os.path.isfile(path):
            raise TokendropError(f"{path}: missing, though {other} is there")
    with open(index, "rb") as handle:
        head = handle.read(HEADER.size)
    if head.startswith(LEGACY_MAGIC):
        return 0
    if len(head) < HEADER.size or not head.startswith(MAGIC):
        raise TokendropError(f"{index}: not a fairseq index file (fairseq-preprocess writes them)")
    _, version, code, count = HEADER.unpack(head)
    if version != 1 or code not in _code_to_dtype:
        raise TokendropError(f"{index}: an index of another version ({version}) or dtype code ({code})")
    if count == 0:
        raise TokendropError(f"{index}: the split has no examples")
    dtype = np.dtype(_code_to_dtype[code])
    size = os.path.getsize(index)
    if size < HEADER.size + 12 * count:
        raise TokendropError(f"{index}: {size:,} bytes, too short for the {count:,} examples its header counts "
                             "(a truncated file)")
    total = _data_bytes(index, count, dtype.itemsize)
    found = os.path.getsize(data)
    if found != total:
        raise TokendropError(f"{data}: {found:,} bytes, but {index} describes {count:,} examples of "
                             f"{total // dtype.itemsize:,} tokens ({total:,} bytes): a truncated file, or the two "
                             "are not from one run of fairseq-preprocess")
    if total == 0:
        raise TokendropError(f"{index}: the split's {count:,} examples hold no tokens")
    if id_limit is not None:
        smallest, largest = id_range(np.memmap(data, dtype, "r"))
        if smallest < 0 or largest >= id_limit:
            bad = smallest if smallest < 0 else largest
            raise TokendropError(f"{data}: holds token id {bad}, but the dictionary has {id_limit} entries "
                                 f"(ids 0-{id_limit - 1}): the data was binarized with another dict.txt")
    return count


def _data_bytes(index: str, count: int, itemsize: int) -> int:
    """The ``.bin`` size that the sizes and offsets of ``index`` describe; refuses offsets that do not
    follow from the sizes (each example starts where the one before it ends)."""
    sizes = np.memmap(index, np.int32, "r", HEADER.size, (count,))
    offsets = np.memmap(index, np.int64, "r", HEADER.size + 4 * count, (count,))
    end = 0
    for start in range(0, count, CHUNK):
        chunk = sizes[start:start + CHUNK].astype(np.int64) * itemsize
        expected = end + np.cumsum(chunk) - chunk
        wrong = np.flatnonzero((chunk < 0) | (offsets[start:start + CHUNK] != expected))
        if wrong.size:
            raise TokendropError(f"{index}: example {start + int(wrong[0]):,}: its size or offset does not follow "
                                 "from the examples before it (a damaged file)")
        end = int(expected[-1] + chunk[-1])
    return end


def id_range(ids: np.ndarray) -> Tuple[int, int]:
    """(smallest, largest) of ``ids`` if it is at most ``SCAN_BYTES``, else of ``WINDOWS`` evenly
    spaced windows of ``SCAN_BYTES`` in all, the first and the last element included."""
    if ids.nbytes <= SCAN_BYTES:
        return int(ids.min()), int(ids.max())
    width = SCAN_BYTES // WINDOWS // ids.itemsize
    starts = np.linspace(0, ids.size - width, WINDOWS).astype(np.int64)
    windows = [ids[s:s + width] for s in starts]
    return min(int(w.min()) for w in windows), max(int(w.max()) for w in windows)


def check_data_bin_split(data_dir: str, split: str, combine: bool, id_limit: int) -> None:
    """The files fairseq's ``load_indexed_dataset`` reads for ``split`` of a fairseq-preprocess data-bin:
    ``split``, and with ``combine`` also ``split1``, ``split2``, ... up to the first missing one. A
    split with neither file is left to fairseq ("Dataset not found", or another format)."""
    for k in itertools.count():
        prefix = os.path.join(data_dir, split + (str(k) if k else ""))
        if not (os.path.exists(prefix + ".idx") or os.path.exists(prefix + ".bin")):
            return
        check_indexed_files(prefix, id_limit)
        if not combine:
            return

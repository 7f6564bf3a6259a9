"""LevelDB's table format ("SSTable"), as TensorFlow writes the ``.index`` file of a checkpoint.

TensorFlow keeps a copy of LevelDB's table code (``tensorflow/core/lib/io/
table_builder.cc``, ``block_builder.cc``, ``format.cc``); the layout is
LevelDB's ``doc/table_format.md``:

- the file ends with a 48-byte footer: two block handles (each a varint64
  offset and a varint64 size: the metaindex block, then the index block),
  zero padding to 40 bytes, and the magic number 0xdb4775248b80fb57 as 8
  little-endian bytes;
- each block is followed by a 5-byte trailer: a compression type (0 = none,
  which is what TensorFlow's checkpoint writer asks for) and the masked
  CRC-32C of the block and that type byte;
- a block is a run of entries ``varint32 shared | varint32 unshared |
  varint32 value length | key bytes after the shared prefix | value``, then
  its restart offsets (uint32 each) and their count (uint32);
- the index block maps a separator key to the handle of each data block,
  whose entries hold the table's keys and values in key order.
"""
from typing import Iterator, List, Tuple

from .crc32c import masked_crc32c
from .protobuf_wire import WireError, read_varint

FOOTER = 48
MAGIC = 0xDB4775248B80FB57
TRAILER = 5
NO_COMPRESSION = 0


class TableError(ValueError):
    """A table that cannot be read; the message says where in the file."""


def _handle(data: bytes, pos: int) -> Tuple[int, int, int]:
    """(offset, size, position after) of the block handle at ``pos``."""
    offset, pos = read_varint(data, pos)
    size, pos = read_varint(data, pos)
    return offset, size, pos


def _block(data: bytes, offset: int, size: int) -> bytes:
    """The block's contents, its checksum verified."""
    end = offset + size
    if end + TRAILER > len(data):
        raise TableError(f"the block at byte {offset} runs past the end of the file ({len(data)} bytes): truncated")
    stored = int.from_bytes(data[end + 1:end + TRAILER], "little")
    if masked_crc32c(data[offset:end + 1]) != stored:
        raise TableError(f"the block at byte {offset} fails its CRC-32C check: the file is damaged")
    if data[end] != NO_COMPRESSION:
        raise TableError(f"the block at byte {offset} is compressed (type {data[end]}); TensorFlow writes "
                         "checkpoint indexes uncompressed")
    return data[offset:end]


def _entries(block: bytes, offset: int) -> Iterator[Tuple[bytes, bytes]]:
    if len(block) < 4:
        raise TableError(f"the block at byte {offset} is too short to hold its restart count")
    restarts = int.from_bytes(block[-4:], "little")
    limit = len(block) - 4 - 4 * restarts
    if limit < 0:
        raise TableError(f"the block at byte {offset} claims {restarts} restarts, more than it can hold")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = read_varint(block, pos)
        unshared, pos = read_varint(block, pos)
        length, pos = read_varint(block, pos)
        if shared > len(key) or pos + unshared + length > limit:
            raise TableError(f"an entry of the block at byte {offset} runs past the block")
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + length]
        pos += length


def read_table(data: bytes) -> List[Tuple[bytes, bytes]]:
    """Every (key, value) of the table held in ``data``, in key order."""
    if len(data) < FOOTER:
        raise TableError(f"{len(data)} bytes, shorter than a table's {FOOTER}-byte footer")
    footer = data[-FOOTER:]
    if int.from_bytes(footer[-8:], "little") != MAGIC:
        raise TableError("no table magic number at the end: not a TensorFlow checkpoint index")
    try:
        _meta_offset, _meta_size, pos = _handle(footer, 0)
        index_offset, index_size, _ = _handle(footer, pos)
        out = []
        for _separator, handle in _entries(_block(data, index_offset, index_size), index_offset):
            offset, size, _ = _handle(handle, 0)
            out.extend(_entries(_block(data, offset, size), offset))
    except WireError as e:
        raise TableError(f"a malformed varint ({e})") from None
    return out

"""TensorFlow checkpoints (TF1 name-based and TF2 object-based alike) read with numpy alone.

A checkpoint is a prefix such as ``model.ckpt-28252`` or ``ckpt-3`` naming a
"tensor bundle" (``tensorflow/core/util/tensor_bundle/tensor_bundle.cc``,
``tensorflow/core/protobuf/tensor_bundle.proto``):

- ``PREFIX.index``: a LevelDB table (``sstable.py``) from each tensor's name to
  a ``BundleEntryProto`` (1 dtype, 2 shape, 3 shard_id, 4 offset, 5 size,
  6 crc32c, 7 slices); the empty key holds the ``BundleHeaderProto``
  (1 num_shards, 2 endianness: 0 little, 1 big);
- ``PREFIX.data-SSSSS-of-NNNNN``: the tensors' bytes, each at its entry's
  offset in shard ``shard_id``, in the header's byte order; ``crc32c`` is the
  masked CRC-32C of those bytes. A string tensor is stored as the varint64
  length of each element, the masked CRC-32C of those lengths, then the
  elements' bytes; both checksums (``WriteStringTensor``) run over each length
  as a 4-byte little-endian integer, not over its varint.

A folder is read through its ``checkpoint`` file, as ``tf.train.latest_checkpoint``
does: its ``model_checkpoint_path`` line, relative to the folder or absolute; an
absolute path that no longer exists (a checkpoint copied from another machine) is
looked up by its base name in the folder.

TF2 checkpoints name tensors by object path (``encoder/layer_with_weights-4/
_attention_layer/_query_dense/kernel/.ATTRIBUTES/VARIABLE_VALUE``) and store the
object graph as the string tensor ``_CHECKPOINTABLE_OBJECT_GRAPH``, a
``TrackableObjectGraph`` whose nodes list, per variable, its checkpoint key and
the variable's own name (``full_name``: ``transformer/layer_0/self_attention/
query/kernel``); :meth:`TFCheckpoint.variable_names` reads that map.

Every tensor's checksum is verified as it is read (``crc32c.py``: about a
second per 100 MB). Partitioned variables, stored as slices, are refused.
"""
import codecs
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Tuple, Union

import numpy as np

from .crc32c import masked_crc32c
from .protobuf_wire import WireError, grouped, read_varint
from .sstable import TableError, read_table

# tensorflow/core/framework/types.proto DataType -> numpy dtype (7 is DT_STRING, read as bytes)
DTYPES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string", 9: "int64",
          10: "bool", 17: "uint16", 19: "float16", 22: "uint32", 23: "uint64"}
STRING = "string"
BIG_ENDIAN = 1
OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"
STATE_FILE = "checkpoint"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read; the message is one line naming the file."""


@dataclass(frozen=True)
class TensorEntry:
    """Where a tensor lies and what it is, from its BundleEntryProto."""
    name: str
    dtype: str
    shape: Tuple[int, ...]
    shard: int
    offset: int
    size: int
    masked_crc32c: int


def _shape(proto: bytes, name: str, index: str) -> Tuple[int, ...]:
    fields = grouped(proto)
    if fields.get(3, [0])[0]:
        raise CheckpointError(f"{index}: tensor {name} has a shape of unknown rank")
    dims = []
    for dim in fields.get(2, []):
        size = grouped(dim).get(1, [0])[0]
        if size >= 1 << 63:  # a negative int64 (-1: unknown) in two's complement
            raise CheckpointError(f"{index}: tensor {name} has a dimension of unknown size")
        dims.append(size)
    return tuple(dims)


def _entry(name: str, proto: bytes, index: str) -> TensorEntry:
    fields = grouped(proto)
    if fields.get(7):
        raise CheckpointError(f"{index}: tensor {name} is stored as {len(fields[7])} slices (a partitioned "
                              "variable), which this reader does not join")
    code = fields.get(1, [0])[0]
    if code not in DTYPES:
        raise CheckpointError(f"{index}: tensor {name} has TensorFlow dtype {code}, which this reader does not "
                              f"read (it reads {', '.join(sorted(set(DTYPES.values())))})")
    return TensorEntry(name=name, dtype=DTYPES[code], shape=_shape(fields.get(2, [b""])[0], name, index),
                       shard=fields.get(3, [0])[0], offset=fields.get(4, [0])[0], size=fields.get(5, [0])[0],
                       masked_crc32c=fields.get(6, [0])[0])


def _state_file_prefix(folder: str) -> str:
    state = os.path.join(folder, STATE_FILE)
    if not os.path.isfile(state):
        raise CheckpointError(f"{folder}: no '{STATE_FILE}' file in this folder; give the checkpoint prefix "
                              "instead (e.g. model.ckpt-28252, the name before .index)")
    with open(state, encoding="utf-8") as handle:
        match = re.search(r'^model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"\s*$', handle.read(), re.M)
    if not match:
        raise CheckpointError(f"{state}: no model_checkpoint_path line")
    path = codecs.escape_decode(match.group(1).encode("utf-8"))[0].decode("utf-8")  # text-format escapes
    if not os.path.isabs(path):
        return os.path.join(folder, path)
    if os.path.isfile(path + ".index"):
        return path
    return os.path.join(folder, os.path.basename(path))


def checkpoint_prefix(path: str) -> str:
    """The prefix named by ``path``: a prefix, its ``.index`` or ``.data-*`` file, or a folder."""
    if os.path.isdir(path):
        path = _state_file_prefix(path)
    path = re.sub(r"\.(index|data-\d{5}-of-\d{5})$", "", path)
    if not os.path.isfile(path + ".index"):
        raise CheckpointError(f"{path}.index: no such file (a TensorFlow checkpoint is PREFIX.index plus "
                              "PREFIX.data-* files; give PREFIX or the folder holding its 'checkpoint' file)")
    return path


class TFCheckpoint:
    """The tensors of one checkpoint: their entries on opening, their values on :meth:`read`."""

    def __init__(self, path: str):
        self.prefix = checkpoint_prefix(path)
        self.index = self.prefix + ".index"
        with open(self.index, "rb") as handle:
            data = handle.read()
        try:
            table = read_table(data)
            header = grouped(dict(table).get(b"", b""))
            self.num_shards = header.get(1, [1])[0]
            if header.get(2, [0])[0] == BIG_ENDIAN:
                raise CheckpointError(f"{self.index}: written big-endian; this reader reads little-endian bundles")
            # Keys starting with a 0 byte hold the slices of partitioned variables (checkpoint::EncodeTensorNameSlice).
            self.entries: Dict[str, TensorEntry] = {}
            for key, value in table:
                if key and key[0] != 0:
                    name = key.decode("utf-8")
                    self.entries[name] = _entry(name, value, self.index)
        except (TableError, WireError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{self.index}: {e}") from None
        self._shard_sizes: Dict[int, int] = {}

    def shard_path(self, shard: int) -> str:
        return f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}"

    def _raw(self, entry: TensorEntry) -> bytes:
        path = self.shard_path(entry.shard)
        try:
            with open(path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                if entry.offset + entry.size > handle.tell():
                    raise CheckpointError(f"{path}: tensor {entry.name} runs past the end of the file "
                                          f"({entry.offset + entry.size} > {handle.tell()} bytes): truncated")
                handle.seek(entry.offset)
                return handle.read(entry.size)
        except FileNotFoundError:
            raise CheckpointError(f"{path}: no such file (a data file of checkpoint {self.prefix})") from None

    def read(self, name: str) -> Union[np.ndarray, List[bytes]]:
        """The tensor's value: a numpy array, or a list of bytes (a string tensor, flattened)."""
        entry = self.entries.get(name)
        if entry is None:
            raise CheckpointError(f"{self.index}: no tensor named {name}")
        raw = self._raw(entry)
        count = int(np.prod(entry.shape, dtype=np.int64))
        if entry.dtype == STRING:
            return self._strings(entry, raw, count)
        self._verify(entry, raw)
        dtype = np.dtype(entry.dtype).newbyteorder("<")
        if len(raw) != count * dtype.itemsize:
            raise CheckpointError(f"{self.shard_path(entry.shard)}: tensor {name} holds {len(raw)} bytes, not the "
                                  f"{count * dtype.itemsize} of {entry.dtype} {list(entry.shape)}")
        return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(entry.shape)

    def _verify(self, entry: TensorEntry, checksummed: bytes) -> None:
        if masked_crc32c(checksummed) != entry.masked_crc32c:
            raise CheckpointError(f"{self.shard_path(entry.shard)}: tensor {entry.name} fails its CRC-32C check: "
                                  "the file is damaged")

    def _strings(self, entry: TensorEntry, raw: bytes, count: int) -> List[bytes]:
        path = self.shard_path(entry.shard)
        try:
            lengths, pos = [], 0
            for _ in range(count):
                length, pos = read_varint(raw, pos)
                lengths.append(length)
        except WireError:
            raise CheckpointError(f"{path}: string tensor {entry.name} has malformed lengths") from None
        as_uint32 = b"".join(length.to_bytes(4, "little") for length in lengths)
        self._verify(entry, as_uint32 + raw[pos:])
        pos += 4  # the lengths' own checksum, covered by the tensor's
        if pos + sum(lengths) != len(raw):
            raise CheckpointError(f"{path}: string tensor {entry.name} holds {len(raw)} bytes, not the "
                                  f"{pos + sum(lengths)} its lengths give")
        values = []
        for length in lengths:
            values.append(raw[pos:pos + length])
            pos += length
        return values

    def variable_names(self) -> Dict[str, str]:
        """checkpoint key -> the variable's own name (``full_name``) from a TF2 object graph; {} for TF1."""
        if OBJECT_GRAPH not in self.entries:
            return {}
        graph = self.read(OBJECT_GRAPH)[0]
        names = {}
        try:
            for node in grouped(graph).get(1, []):  # TrackableObjectGraph.nodes
                for attribute in grouped(node).get(2, []):  # TrackableObject.attributes: SerializedTensor
                    fields = grouped(attribute)
                    key = fields.get(3, [b""])[0].decode("utf-8")
                    names[key] = fields.get(2, [b""])[0].decode("utf-8")
        except (WireError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{self.index}: the object graph {OBJECT_GRAPH} is malformed ({e})") from None
        return names

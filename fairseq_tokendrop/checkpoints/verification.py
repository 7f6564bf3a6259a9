"""A checkpoint is read whole and as written, or refused in one line naming the file and the tensor.

``torch.save`` writes a zip archive, one record per tensor storage plus one for the
pickle (the keys, the configuration, the state dict's metadata), and by default it
stores every record's CRC-32 in the archive (``torch.serialization.get_crc32_options``);
``torch.load`` checks none of them (torch builds its zip reader without CRC checks, pytorch
issue 126952), so a flipped byte in a weight, an importance score or an optimizer moment
loads silently. That CRC-32 is the digest the plugin checks:
every checkpoint torch writes already carries it (fairseq-train's, the plugin's
commands', stock fairseq's), it adds no key (stock ``--arch roberta_base`` and stock
fairseq load the files strictly, as before) and it costs the save nothing that torch
does not already spend. A CRC-32 detects every error burst of up to 32 bits, so any
flipped byte, always; a cryptographic digest would add protection against deliberate
tampering, which a checksum stored beside the data could not give anyway. What it
costs per load is measured in docs/guarantees.md.

Which tensor a damaged record holds: records are named by storage key (``data/17``);
the tensor is found by content, as the tensor of the loaded state whose storage has
the damaged record's CRC-32.

Checked here: the archive is whole (a file cut short has lost its zip directory, which
comes last), every record matches its CRC-32, and the importance scores are finite.
Not checked: a file in torch's legacy (pre-1.6, non-zip) format, and one written with
``set_crc32_options(False)`` (every CRC-32 is then 0): they carry no digest.
"""
import mmap
import os
import struct
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, List, Optional, Tuple

import torch

from ..errors import TokendropError
from .saved_scores import refuse_non_finite
from .scores_in_state_dict import scores_in

ZIP_LOCAL_HEADER = b"PK\x03\x04"
LOCAL_HEADER_SIZE = 30  # the fixed part; the record's name and extra field follow
PARALLEL_FROM = 64 * 2**20  # bytes: below this, starting threads costs more than they save


def damage(path: str) -> Optional[str]:
    """Why ``path`` is not a whole checkpoint as torch wrote it, in a few words naming the tensor; None if it is.

    Reads the whole file once (the CRC-32 of every record); a damaged record is then
    traced to its tensor by loading the state.
    """
    problem, bad = unmatched_records(path)
    if problem is not None or not bad:
        return problem
    return "; ".join(f"{held_by(path, record, actual)} does not match its CRC-32" for record, actual in bad)


def unmatched_records(path: str) -> Tuple[Optional[str], List[Tuple[zipfile.ZipInfo, int]]]:
    """(why the archive is not whole, or None; each record whose bytes do not match its CRC-32, with
    the CRC-32 they have now)."""
    size = os.path.getsize(path)
    if size == 0:
        return "it is empty (0 bytes): a write that never finished", []
    with open(path, "rb") as f:
        if f.read(4) != ZIP_LOCAL_HEADER:
            return None, []  # torch's legacy format: no digest to check (torch.load still reads it)
        try:
            archive = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, ValueError, EOFError, struct.error) as e:
            return (f"it is cut short or damaged ({size} bytes; no valid zip directory at its end: {e}): "
                    "a write that never finished, or damage"), []
        with archive, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            records = archive.infolist()
            if records and all(r.CRC == 0 for r in records):
                return None, []  # written with torch.serialization.set_crc32_options(False): no digest
            try:
                crcs = record_crcs(data, records)
            except ValueError as e:
                return f"its zip archive is damaged ({e})", []
    return None, [(record, actual) for record, actual in zip(records, crcs) if actual != record.CRC]


def record_crcs(data: mmap.mmap, records: List[zipfile.ZipInfo]) -> List[int]:
    """The CRC-32 of each record's bytes as they are now (zlib releases the GIL: a big file's records
    in parallel)."""
    spans = [record_span(data, r) for r in records]

    def crc(span):
        return zlib.crc32(memoryview(data)[span[0]:span[1]])

    if len(data) < PARALLEL_FROM:
        return [crc(span) for span in spans]
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        return list(pool.map(crc, spans))


def record_span(data: mmap.mmap, record: zipfile.ZipInfo) -> Tuple[int, int]:
    """Where a stored (uncompressed, as torch writes them) record's bytes lie in the file."""
    start = record.header_offset
    header = data[start:start + LOCAL_HEADER_SIZE]
    if len(header) < LOCAL_HEADER_SIZE or header[:4] != ZIP_LOCAL_HEADER:
        raise ValueError(f"no local header for {record.filename}")
    if record.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{record.filename} is compressed, which torch never writes")
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    first = start + LOCAL_HEADER_SIZE + name_length + extra_length
    if first + record.compress_size > len(data):
        raise ValueError(f"{record.filename} runs past the end of the file")
    return first, first + record.compress_size


def held_by(path: str, record: zipfile.ZipInfo, actual_crc: int) -> str:
    """The tensor(s) a damaged record holds, named by their place in the checkpoint."""
    inside = record.filename.split("/", 1)[-1]
    if inside == "data.pkl":
        return f"record {record.filename} (the pickle: keys, configuration and metadata)"
    if not inside.startswith("data/"):
        return f"record {record.filename}"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        state = None
    names = [name for name, tensor in tensors_in(state) if storage_crc(tensor) == actual_crc]
    return " and ".join(names[:3]) if names else f"record {record.filename}"


def tensors_in(obj, name: str = "") -> Iterator[Tuple[str, torch.Tensor]]:
    """Every tensor in a loaded checkpoint with its place (``model['encoder...weight']``), the scores in
    the state dict's metadata included."""
    if torch.is_tensor(obj):
        yield name, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from tensors_in(value, f"{name}[{key!r}]" if name else str(key))
        metadata = getattr(obj, "_metadata", None)
        if metadata:
            yield from tensors_in(dict(metadata), f"{name}._metadata")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from tensors_in(value, f"{name}[{i}]")


def storage_crc(tensor: torch.Tensor) -> int:
    storage = tensor.untyped_storage()
    return zlib.crc32(torch.empty(0, dtype=torch.uint8).set_(storage).numpy())


def refuse_damaged(path: str) -> None:
    """TokendropError naming ``path`` (and a damaged tensor) unless it is whole and matches its CRC-32s."""
    problem = damage(path)
    if problem is not None:
        raise TokendropError(f"refused {path}: {problem}")


def refuse_non_finite_scores(path: str, state: dict) -> None:
    """TokendropError naming ``path`` if the checkpoint ``state`` loaded from it has a non-finite score."""
    problem = non_finite_scores(path, state)
    if problem is not None:
        raise TokendropError(f"refused {path}: {problem}")


def non_finite_scores(path: str, state: Optional[dict] = None) -> Optional[str]:
    """Why the importance scores a checkpoint carries are unusable, or None (also when it carries none)."""
    if state is None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:
            return None  # not readable as a plain state: torch.load says why where it is loaded
    model = state.get("model") if isinstance(state, dict) else None
    for prefix, scores in scores_in(model):
        try:
            refuse_non_finite(scores, f"model._metadata[{prefix!r}] (the importance scores)")
        except TokendropError as e:
            return e.message
    return None

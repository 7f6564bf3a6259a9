"""The protocol buffers wire format, read field by field, for the few TensorFlow messages read here.

Each field is ``key = (field_number << 3) | wire_type`` as a varint, then a
varint (type 0), 8 little-endian bytes (type 1), a varint length and that many
bytes (type 2), or 4 little-endian bytes (type 5); see
https://protobuf.dev/programming-guides/encoding/. Unknown fields are skipped
by their wire type, as protobuf parsers do, so newer writers stay readable.
"""
from typing import Dict, Iterator, List, Tuple, Union

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    """Bytes that are not a well-formed protobuf message."""


def read_varint(data: bytes, pos: int) -> Tuple[int, int]:
    """(value, position after it) of the base-128 varint at ``pos``."""
    value = shift = 0
    while True:
        if pos >= len(data):
            raise WireError("a varint runs past the end of the message")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise WireError("a varint is longer than 10 bytes")


def fields(data: bytes) -> Iterator[Tuple[int, Union[int, bytes]]]:
    """(field number, value) of each field: int for varint and fixed types, bytes for length-delimited."""
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            value, pos = read_varint(data, pos)
        elif wire_type in (FIXED64, FIXED32):
            width = 8 if wire_type == FIXED64 else 4
            if pos + width > len(data):
                raise WireError(f"field {number} runs past the end of the message")
            value, pos = int.from_bytes(data[pos:pos + width], "little"), pos + width
        elif wire_type == LENGTH_DELIMITED:
            length, pos = read_varint(data, pos)
            if pos + length > len(data):
                raise WireError(f"field {number} runs past the end of the message")
            value, pos = data[pos:pos + length], pos + length
        else:
            raise WireError(f"field {number} has wire type {wire_type}, which no TensorFlow message here uses")
        yield number, value


def grouped(data: bytes) -> Dict[int, List[Union[int, bytes]]]:
    """field number -> every value it has, in order (a repeated field has several)."""
    out: Dict[int, List[Union[int, bytes]]] = {}
    for number, value in fields(data):
        out.setdefault(number, []).append(value)
    return out

"""CRC-32C (Castagnoli), and TensorFlow's masked form of it, with numpy alone.

TensorFlow checksums TFRecord frames, table blocks and checkpoint tensors with
CRC-32C (reflected polynomial 0x82F63B78, initial and final value 0xFFFFFFFF;
RFC 3720 appendix B.4) and stores it "masked":
``((crc >> 15 | crc << 17) + 0xA282EAD8) mod 2**32``
(``tensorflow/core/lib/hash/crc32c.h``). zlib has only the other CRC-32.

A byte-at-a-time table loop in Python runs about a megabyte per second, too
slow for a BERT-large checkpoint. The CRC register update is linear over
GF(2), which gives a vectorised form: cut the data into K rows of n bytes, run
the table loop down all rows at once from a zero register, four bytes a step
("slicing by 4", here as two 65536-entry tables; n/4 numpy steps over K-long
arrays), then chain the rows:
``crc(row_1..row_k) = Z_n(crc(row_1..row_k-1)) ^ crc_0(row_k)``, where ``Z_n``
is the linear map of feeding n zero bytes, applied through four 256-entry
tables. With n and K near sqrt(size), 100 MB take about a second.
"""
import functools
import math

import numpy as np

POLYNOMIAL = 0x82F63B78
MASK_DELTA = 0xA282EAD8
MIN_ROW = 16  # bytes, a multiple of 4


def _byte_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(POLYNOMIAL), table >> 1).astype(np.uint32)
    return table


def _word_tables():
    """Two tables that feed 4 bytes at once: register' = LOW[x & 0xFFFF] ^ HIGH[x >> 16], x = register ^ word."""
    by_distance = [TABLE]  # by_distance[k][b]: byte b followed by k zero bytes
    for _ in range(3):
        last = by_distance[-1]
        by_distance.append(((last >> 8) ^ TABLE[last & 0xFF]).astype(np.uint32))
    v = np.arange(65536)
    low = by_distance[3][v & 0xFF] ^ by_distance[2][v >> 8]
    high = by_distance[1][v & 0xFF] ^ by_distance[0][v >> 8]
    return low.astype(np.uint32), high.astype(np.uint32)


TABLE = _byte_table()
TABLE_LIST = TABLE.tolist()
LOW, HIGH = _word_tables()


def _feed(register: int, data: bytes) -> int:
    """The register after ``data``, one byte at a time (no initial or final inversion)."""
    for byte in data:
        register = TABLE_LIST[(register ^ byte) & 0xFF] ^ (register >> 8)
    return register


@functools.lru_cache(maxsize=64)
def _zeros_tables(n: int):
    """Four byte tables of the linear map 'feed n zero bytes': Z(x) = T0[x0] ^ T1[x1] ^ T2[x2] ^ T3[x3]."""
    images = (np.uint32(1) << np.arange(32, dtype=np.uint32)).astype(np.uint32)  # the 32 unit registers
    for _ in range(n):
        images = TABLE[images & 0xFF] ^ (images >> 8)
    values = np.arange(256)
    tables = []
    for byte in range(4):
        table = np.zeros(256, dtype=np.uint32)
        for bit in range(8):
            table ^= np.where(values >> bit & 1, images[8 * byte + bit], 0).astype(np.uint32)
        tables.append(table.tolist())
    return tables


def crc32c(data) -> int:
    """CRC-32C of ``data`` (bytes, or a contiguous numpy array's bytes)."""
    raw = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) \
        else np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    n = max(MIN_ROW, math.isqrt(raw.size) // 4 * 4)
    rows = raw.size // n
    register = 0xFFFFFFFF
    if rows:
        words = raw[:rows * n].view("<u4").reshape(rows, n // 4)
        row_crcs = np.zeros(rows, dtype=np.uint32)
        for j in range(n // 4):
            x = row_crcs ^ words[:, j]
            row_crcs = LOW[x & 0xFFFF] ^ HIGH[x >> 16]
        t0, t1, t2, t3 = _zeros_tables(n)
        for row_crc in row_crcs.tolist():
            register = (t0[register & 0xFF] ^ t1[(register >> 8) & 0xFF] ^ t2[(register >> 16) & 0xFF]
                        ^ t3[register >> 24] ^ row_crc)
    register = _feed(register, raw[rows * n:].tobytes())
    return register ^ 0xFFFFFFFF


def masked_crc32c(data) -> int:
    """TensorFlow's stored form of the CRC-32C of ``data``."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF

"""Placement: which daemon holds a path's metadata and which holds a chunk.

The hash is FNV-1a 64 over bytes, written out here (never Python's hash(),
which is salted per process) so the C client computes the same owner byte
for byte; tests/vectors/distribution.json pins the results.

- metadata owner of a path  = fnv1a64(utf8(path)) mod n_hosts
- chunk owner of chunk k of a file = fnv1a64(utf8(data_key) + b"\\0" + le64(k)) mod n_hosts

``data_key`` is the file's data key from its stat record (fixed when the
file is created, unchanged by rename, so renaming moves no data). Host
index i means the i-th host of the hosts file ordered by ascending id.
"""
from __future__ import annotations

from typing import Iterator

FNV64_OFFSET = 0xCBF29CE484222325
FNV64_PRIME = 0x100000001B3
_MASK64 = 0xFFFFFFFFFFFFFFFF


def fnv1a64(data: bytes, h: int = FNV64_OFFSET) -> int:
    """FNV-1a, 64 bit; pass ``h`` to continue hashing after a prefix."""
    for byte in data:
        h = ((h ^ byte) * FNV64_PRIME) & _MASK64
    return h


def metadata_hash(path: str) -> int:
    return fnv1a64(path.encode("utf-8"))


def chunk_hash(data_key: str, index: int) -> int:
    if not 0 <= index < 2**64:
        raise ValueError(f"chunk index out of range: {index}")
    return fnv1a64(b"\x00" + index.to_bytes(8, "little"), fnv1a64(data_key.encode("utf-8")))


def metadata_owner(path: str, n_hosts: int) -> int:
    """Index (into the id-ordered host list) of the daemon owning path's metadata."""
    _check_n(n_hosts)
    return metadata_hash(path) % n_hosts


def chunk_owner(data_key: str, index: int, n_hosts: int) -> int:
    """Index of the daemon storing chunk ``index`` of the file with ``data_key``."""
    _check_n(n_hosts)
    return chunk_hash(data_key, index) % n_hosts


def _check_n(n_hosts: int) -> None:
    if n_hosts < 1:
        raise ValueError("a cluster needs at least one host")


def chunk_ranges(offset: int, count: int, chunk_size: int) -> Iterator[tuple[int, int, int]]:
    """Split the byte range [offset, offset+count) into (index, offset_in_chunk, length)."""
    if offset < 0 or count < 0 or chunk_size <= 0:
        raise ValueError("offset and count must be >= 0 and chunk_size > 0")
    end = offset + count
    pos = offset
    while pos < end:
        index, off = divmod(pos, chunk_size)
        length = min(chunk_size - off, end - pos)
        yield index, off, length
        pos += length

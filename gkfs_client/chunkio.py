"""Turning a byte range of a file into write_chunks / read_chunks requests.

A range is split at chunk boundaries, each piece goes to its chunk owner,
and all pieces for one daemon travel in as few requests as the protocol's
limits allow (normally one). Data frames are memoryview slices of the
caller's buffer: nothing is copied on the way to libzmq.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from gkfs_client import distribution, protocol
from gkfs_client.rpc import Call

# Payload per request: the daemon's frame limit minus room for the header.
MAX_PAYLOAD = protocol.DEFAULT_MAX_FRAME_SIZE - 64 * protocol.KiB


@dataclass
class _Batch:
    target: int
    chunks: list[list[int]] = field(default_factory=list)
    pieces: list[int] = field(default_factory=list)  # positions in the range's piece list
    payload: int = 0


def _batches(data_key: str, offset: int, count: int, chunk_size: int, n_hosts: int
             ) -> tuple[list[tuple[int, int, int]], list[_Batch]]:
    pieces = list(distribution.chunk_ranges(offset, count, chunk_size))
    open_batch: dict[int, _Batch] = {}
    batches: list[_Batch] = []
    for pos, (index, off, length) in enumerate(pieces):
        # (one daemon owns everything: no hash, which is a byte loop in Python)
        target = distribution.chunk_owner(data_key, index, n_hosts) if n_hosts != 1 else 0
        b = open_batch.get(target)
        if b is None or len(b.chunks) >= protocol.MAX_CHUNKS_PER_REQUEST or b.payload + length > MAX_PAYLOAD:
            b = _Batch(target)
            open_batch[target] = b
            batches.append(b)
        b.chunks.append([index, off, length])
        b.pieces.append(pos)
        b.payload += length
    return pieces, batches


def _with_cap(args: dict, cap: str) -> dict:
    if cap:
        args["cap"] = cap
    return args


def write_calls(data_key: str, data: memoryview, offset: int, chunk_size: int, n_hosts: int,
                cap: str = "") -> list[Call]:
    """write_chunks requests for ``data`` placed at file ``offset`` (``cap``:
    the file's data capability from open, docs/protocol.md 1)."""
    pieces, batches = _batches(data_key, offset, len(data), chunk_size, n_hosts)
    # Where each piece starts inside ``data``.
    starts = []
    pos = 0
    for _, _, length in pieces:
        starts.append(pos)
        pos += length
    calls = []
    for b in batches:
        frames = [data[starts[p]:starts[p] + pieces[p][2]] for p in b.pieces]
        calls.append(Call(b.target, "write_chunks",
                          _with_cap({"data_key": data_key, "chunk_size": chunk_size, "chunks": b.chunks}, cap),
                          frames))
    return calls


@dataclass
class ReadPlan:
    calls: list[Call]
    batches: list[_Batch]
    n_pieces: int

    def assemble(self, replies: Sequence[Any]) -> bytes:
        """Join the reply frames in file order (one copy, into the result)."""
        parts: list[Any] = [b""] * self.n_pieces
        for b, reply in zip(self.batches, replies):
            for pos, frame in zip(b.pieces, reply.data):
                parts[pos] = frame
        return b"".join(parts)


def read_plan(data_key: str, offset: int, count: int, file_size: int | None, chunk_size: int,
              n_hosts: int, cap: str = "", size_path: str | None = None) -> ReadPlan:
    """read_chunks requests for [offset, offset+count); the caller clamps to EOF.

    ``file_size`` is sent along so daemons fill holes with zeros up to it:
    a sparse region then reads as zeros and only EOF gives a short read.
    ``size_path`` instead (file_size None): the daemon reads the size of
    that file (by ``data_key``) itself, before the chunks, and clips to it;
    only for a request to the file's metadata owner (docs/protocol.md).
    """
    pieces, batches = _batches(data_key, offset, count, chunk_size, n_hosts)
    size_arg = {"file_size": file_size} if size_path is None else {"size_path": size_path}
    calls = [Call(b.target, "read_chunks", _with_cap({"data_key": data_key, "chunk_size": chunk_size,
                                                      "chunks": b.chunks, **size_arg}, cap))
             for b in batches]
    return ReadPlan(calls, batches, len(pieces))

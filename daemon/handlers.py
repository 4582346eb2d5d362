"""One handler per op: (state, request) -> (result map, data frames).

Handlers raise OSError(errno, message) for failures; the server turns that
into an error reply. Arguments were type-checked by protocol.decode_request.
"""
from __future__ import annotations

import contextvars
import errno
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from threading import Lock
from typing import Any, Callable

from gkfs_client import protocol, security
from gkfs_client.config import DaemonConfig

from .chunkstore import ChunkStore
from .holds import HoldTable
from .locks import LockTable
from .metadata import MetadataStore


@dataclass
class DaemonState:
    config: DaemonConfig
    rootdir: Path
    host_id: int
    meta: MetadataStore
    chunks: ChunkStore
    address: str = ""
    started: float = field(default_factory=time.monotonic)
    ops: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    inflight: int = 0
    lock: Lock = field(default_factory=Lock)
    # Secret for data capabilities (None: security off, no capabilities).
    cap_secret: bytes | None = None
    locks: LockTable = field(default_factory=LockTable)
    holds: HoldTable = field(default_factory=HoldTable)

    def count(self, op: str, ok: bool) -> None:
        with self.lock:
            self.ops[op] = self.ops.get(op, 0) + 1
            if not ok:
                self.errors += 1


Result = tuple[dict[str, Any], list[Any]]

# Who the current request comes from, as the transport authenticated it
# (server.handle sets it; never taken from a request field).
CALLER: contextvars.ContextVar[security.Identity] = contextvars.ContextVar("gkfs_caller")


def caller() -> security.Identity:
    return CALLER.get()


def _check_chunk_size(state: DaemonState, args: dict[str, Any]) -> None:
    cs = args.get("chunk_size")
    if cs is not None and cs != state.config.chunk_size:
        raise OSError(errno.EINVAL,
                      f"client chunk size {cs} differs from the cluster's chunk size {state.config.chunk_size}")


def _chunks(state: DaemonState, op: str, args: dict[str, Any]) -> list[list[int]]:
    _check_chunk_size(state, args)
    chunks = args["chunks"]
    try:
        protocol.validate_chunks(op, chunks, state.config.chunk_size)
    except protocol.ProtocolError as exc:
        raise OSError(exc.errno, exc.message) from None
    return chunks


def op_ping(state: DaemonState, args: dict, data: list) -> Result:
    _check_chunk_size(state, args)
    res = {"protocol": protocol.PROTOCOL_VERSION, "chunk_size": state.config.chunk_size,
           "id": state.host_id, "address": state.address}
    if state.cap_secret is not None:  # security off: no pid for whoever asks
        res["pid"] = os.getpid()
    return res, []


def op_status(state: DaemonState, args: dict, data: list) -> Result:
    fs = os.statvfs(state.rootdir)
    with state.lock:
        ops = dict(state.ops)
        errors = state.errors
        inflight = state.inflight
    res = {
        "id": state.host_id, "address": state.address, "mount": state.config.mount, "protocol": protocol.PROTOCOL_VERSION,
        "chunk_size": state.config.chunk_size, "uptime_s": time.monotonic() - state.started,
        "files": state.meta.count(), "bytes_stored": state.chunks.bytes_stored(),
        "free_bytes": fs.f_bavail * fs.f_frsize, "total_bytes": fs.f_blocks * fs.f_frsize,
        "workers": state.config.workers, "inflight": inflight, "locks": state.locks.count(),
        "open_files": state.holds.count(), "orphans": state.meta.orphan_count(), "ops": ops, "errors": errors,
    }
    if state.cap_secret is not None:
        # Only an authenticated peer (CURVE) learns where the daemon runs and
        # keeps its data; with security off anybody could ask.
        res.update(pid=os.getpid(), hostname=socket.gethostname(), rootdir=str(state.rootdir))
    return res, []


def op_statfs(state: DaemonState, args: dict, data: list) -> Result:
    fs = os.statvfs(state.rootdir)
    return {"total_bytes": fs.f_blocks * fs.f_frsize, "free_bytes": fs.f_bfree * fs.f_frsize,
            "avail_bytes": fs.f_bavail * fs.f_frsize, "files": state.meta.count(),
            "name_max": protocol.MAX_NAME_BYTES, "chunk_size": state.config.chunk_size}, []


def _hold(state: DaemonState, args: dict, peer: bytes):
    """(holds, owner, connection) when the request registers an open."""
    owner = args.get("hold")
    return (state.holds, owner, peer) if owner else None


def op_create(state: DaemonState, args: dict, data: list, peer: bytes = b"") -> Result:
    who = caller()
    rec, created = state.meta.create(args["path"], args["mode"], bool(args.get("exclusive")), who.uid, who.gid,
                                     _hold(state, args, peer))
    return {"stat": rec, "created": created, "reclaim": state.meta.reclaimable(state.holds)}, []


def op_stat(state: DaemonState, args: dict, data: list, peer: bytes = b"") -> Result:
    hold = _hold(state, args, peer)
    if hold:
        return {"stat": state.meta.stat_hold(args["path"], hold)}, []
    return {"stat": state.meta.stat(args["path"], args.get("data_key"))}, []


def op_remove(state: DaemonState, args: dict, data: list) -> Result:
    rec, held = state.meta.remove(args["path"], args.get("rmdir"), args.get("data_key"), state.holds)
    return {"stat": rec, "held": held, "reclaim": state.meta.reclaimable(state.holds)}, []


def op_release(state: DaemonState, args: dict, data: list) -> Result:
    state.holds.release(args["data_key"], args["owner"])
    return {"reclaim": state.meta.reclaimable(state.holds)}, []


def op_update_size(state: DaemonState, args: dict, data: list) -> Result:
    offset, size = state.meta.update_size(args["path"], args["offset"], args["count"], bool(args.get("append")),
                                          args.get("data_key"))
    return {"offset": offset, "size": size}, []


def op_truncate(state: DaemonState, args: dict, data: list) -> Result:
    return {"stat": state.meta.truncate(args["path"], args["size"], args.get("data_key"))}, []


def op_get_dirents(state: DaemonState, args: dict, data: list) -> Result:
    limit = args.get("limit") or protocol.DEFAULT_DIRENTS_LIMIT
    if limit > protocol.MAX_DIRENTS_LIMIT:
        raise OSError(errno.EINVAL, f"limit {limit} above {protocol.MAX_DIRENTS_LIMIT}")
    entries, more = state.meta.dirents(args["path"], args.get("start_after") or "", limit)
    return {"entries": entries, "more": more}, []


def op_write_chunks(state: DaemonState, args: dict, data: list) -> Result:
    chunks = _chunks(state, "write_chunks", args)
    key = args["data_key"]
    written = 0
    for (index, offset, _length), frame in zip(chunks, data):
        # frame.buffer is the zmq message's own memory: no copy before pwrite.
        buf = frame.buffer if hasattr(frame, "buffer") else frame
        written += state.chunks.write(key, index, offset, buf)
    return {"written": written}, []


def op_read_chunks(state: DaemonState, args: dict, data: list) -> Result:
    chunks = _chunks(state, "read_chunks", args)
    cs = state.config.chunk_size
    total = sum(length for _i, _o, length in chunks)
    if total > state.config.max_frame_size:
        raise OSError(errno.EMSGSIZE, f"read of {total} bytes exceeds max_frame_size {state.config.max_frame_size}")
    file_size = args.get("file_size")
    key = args["data_key"]
    frames, lengths = [], []
    for index, offset, length in chunks:
        pad_to = None
        if file_size is not None:
            pad_to = min(length, max(0, file_size - (index * cs + offset)))
        buf = state.chunks.read(key, index, offset, length, pad_to)
        frames.append(buf)
        lengths.append(len(buf))
    return {"lengths": lengths}, frames


def op_remove_chunks(state: DaemonState, args: dict, data: list) -> Result:
    return {"removed": state.chunks.remove(args["data_key"])}, []


def op_truncate_chunks(state: DaemonState, args: dict, data: list) -> Result:
    _check_chunk_size(state, args)
    removed, truncated = state.chunks.truncate(args["data_key"], args["size"])
    return {"removed": removed, "truncated": truncated}, []


def op_fsync(state: DaemonState, args: dict, data: list) -> Result:
    state.chunks.fsync(args.get("data_key"))
    state.meta.sync()
    return {}, []


def op_rename(state: DaemonState, args: dict, data: list) -> Result:
    rec, replaced, held = state.meta.rename(args["old"], args["new"], state.holds)
    return {"stat": rec, "replaced": replaced, "replaced_held": held,
            "reclaim": state.meta.reclaimable(state.holds)}, []


def op_insert(state: DaemonState, args: dict, data: list) -> Result:
    replaced, held = state.meta.insert(args["path"], args["record"], bool(args.get("replace")), state.holds)
    return {"replaced": replaced, "replaced_held": held}, []


def op_symlink(state: DaemonState, args: dict, data: list) -> Result:
    target = args["target"]
    if not target or "\x00" in target:
        raise OSError(errno.EINVAL, "symlink target must be non-empty and contain no NUL")
    if len(target.encode("utf-8")) > protocol.MAX_PATH_BYTES:
        raise OSError(errno.ENAMETOOLONG, f"symlink target longer than {protocol.MAX_PATH_BYTES} bytes")
    who = caller()
    return {"stat": state.meta.symlink(args["path"], target, who.uid, who.gid)}, []


def op_readlink(state: DaemonState, args: dict, data: list) -> Result:
    rec = state.meta.stat(args["path"])
    if "target" not in rec:
        raise OSError(errno.EINVAL, f"not a symbolic link: {args['path']}")
    return {"target": rec["target"]}, []


def op_utimens(state: DaemonState, args: dict, data: list) -> Result:
    return {"stat": state.meta.utimens(args["path"], args.get("atime_ns"), args.get("mtime_ns"))}, []


def op_setattr(state: DaemonState, args: dict, data: list) -> Result:
    return {"stat": state.meta.setattr(args["path"], args.get("mode"), args.get("uid"), args.get("gid"))}, []


def op_lock(state: DaemonState, args: dict, data: list, peer: bytes = b"") -> Result:
    owner = args["owner"]
    if not owner:
        raise OSError(errno.EINVAL, "lock owner must be a non-empty string")
    granted, conflict = state.locks.set(args["data_key"], owner, args["space"], args["type"], args["start"],
                                        args["len"], args.get("pid") or 0, peer, bool(args.get("test")))
    return {"granted": granted, "conflict": conflict}, []


def op_unlock_owner(state: DaemonState, args: dict, data: list) -> Result:
    return {"released": state.locks.release_owner(args["owner"], args.get("data_key"))}, []


HANDLERS: dict[str, Callable[[DaemonState, dict, list], Result]] = {
    name: globals()[f"op_{name}"] for name in protocol.OPS
}

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

from . import access, dircache
from .chunkstore import ChunkStore
from .fences import FenceTable
from .holds import HoldTable
from .locks import LockTable
from .memory import IdleTrim
from .metadata import MetadataStore, _validated_record
from .peer import INLINE, NeedsWorker


@dataclass
class DaemonState:
    config: DaemonConfig
    rootdir: Path
    host_id: int
    meta: MetadataStore
    chunks: ChunkStore
    address: str = ""
    cluster: str = ""
    members: int = 0
    started: float = field(default_factory=time.monotonic)
    ops: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    inflight: int = 0
    lock: Lock = field(default_factory=Lock)
    # Secret for data capabilities (None: security off: no capabilities and
    # no permission checks, every request runs as the daemon's owner).
    cap_secret: bytes | None = None
    locks: LockTable = field(default_factory=LockTable)
    holds: HoldTable = field(default_factory=HoldTable)
    fences: FenceTable = field(default_factory=FenceTable)
    # Parent directory records from their owners (daemon.peer.Peers).
    peers: Any = None
    # Gives the heap back to the OS once data stops moving (daemon.memory).
    memory: IdleTrim = field(default_factory=IdleTrim)
    # The local stream's listener (daemon.local_listener), None when the
    # member serves ZeroMQ alone (status shows which).
    local: Any = None

    @property
    def secure(self) -> bool:
        return self.cap_secret is not None

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


# -- permission helpers (no-ops with security off) ---------------------------

def _parent_of(path: str) -> str:
    return protocol.parent_and_name(path)[0] if path != "/" else "/"


# _dirs_above of the parents of the paths seen last: most requests are in
# the same few directories. Bounded; cleared when full.
_DIRS_ABOVE: dict[str, list[str]] = {}
_DIRS_ABOVE_MAX = 4096


def _dirs_above(path: str) -> list[str]:
    """Every directory path resolution passes through: "/", "/a", ... the
    parent (a new list: callers may change it)."""
    if path == "/":
        return ["/"]
    parent = protocol.parent_and_name(path)[0]
    dirs = _DIRS_ABOVE.get(parent)
    if dirs is None:
        names = parent.strip("/").split("/") if parent != "/" else []
        dirs = ["/"] + ["/" + "/".join(names[:i]) for i in range(1, len(names) + 1)]
        if len(_DIRS_ABOVE) >= _DIRS_ABOVE_MAX:
            _DIRS_ABOVE.clear()
        _DIRS_ABOVE[parent] = dirs
    return dirs[:]


def _parent(state: DaemonState, path: str, want: int) -> dict | None:
    """The parent directory's record after checking the caller may ``want``
    it and may search (x) every directory above it, as POSIX path
    resolution does. All those records come in one parallel round of peer
    lookups; root (uid 0, which passes every search check, like the
    kernel's CAP_DAC_READ_SEARCH) needs only the parent's."""
    if not state.secure:
        return None
    return _walk(state, path, _dirs_above(path), want)


def _walk(state: DaemonState, path: str, dirs: list[str], want: int, last_exact: bool = False,
          recs: list[dict | None] | None = None) -> dict:
    """Check search on each of ``dirs`` and ``want`` on the last one; with
    ``last_exact`` the last is ``path`` itself (ENOENT/ENOTDIR for it).
    ``recs``: the records of ``dirs`` already read (_local_walk)."""
    who = caller()
    if who.uid == 0:
        dirs = dirs[-1:]
        if recs is not None:
            recs = recs[-1:]
    if recs is None:
        recs = state.peers.records(dirs)
    for i, (d, rec) in enumerate(zip(dirs, recs)):
        last = i == len(dirs) - 1
        if last and last_exact:
            return access.require_dir(who, rec, want, d)
        if rec is None or rec["mode"] & 0o170000 != 0o040000:
            # No record can exist below a missing parent, a file or a symlink:
            # ENOENT, as without the check; the client works out ENOTDIR or
            # follows the link (the daemon never resolves links).
            raise OSError(errno.ENOENT, f"no such file or directory: {path}")
        access.require_dir(who, rec, want if last else access.X, d)
    return recs[-1]


def _local_walk(state: DaemonState, path: str) -> tuple[list[str], list[dict | None]] | None:
    """In a cluster of one daemon (security on), where every record is this
    daemon's: the directories above ``path`` and their records followed by
    ``path``'s own, all from one read transaction; None elsewhere."""
    if not (state.secure and state.members == 1 and state.peers is not None and state.peers.host_id == 0):
        return None
    dirs = _dirs_above(path)
    return dirs, state.meta.get_many(dirs + [path])


def _reachable(state: DaemonState, path: str) -> None:
    """Search permission on every directory above ``path`` (none for "/")."""
    if state.secure and path != "/":
        _parent(state, path, access.X)


def _is_dir(rec: dict | None) -> bool:
    return rec is not None and rec["mode"] & 0o170000 == 0o040000


def _forgets(state: DaemonState, paths: list[str], *recs: dict | None) -> list[str]:
    """``paths`` when changing these records must be followed by
    forget_elsewhere (other daemons may cache a directory's record:
    daemon.dircache), else []. Called inside the change's transaction,
    before anything changed: the receiving thread never waits on the
    network, so there the request goes to a worker (NeedsWorker; the
    transaction is aborted). The caller must then call _forget_elsewhere
    whatever happens (try/finally)."""
    if state.peers is None or state.members <= 1 or not any(_is_dir(r) for r in recs):
        return []
    if INLINE.get():
        raise NeedsWorker("forget")
    state.peers.changing(paths)
    return paths


def _forget_elsewhere(state: DaemonState, paths: list[str], below: bool) -> None:
    """After the commit (or a failure after _forgets), before the reply:
    every other daemon drops ``paths``."""
    if paths:
        state.peers.forget_elsewhere(paths, below, dircache.now())


def _with_cap(state: DaemonState, rec: dict | None, extra: str = "") -> dict | None:
    """A record as sent to the caller: with its data capability."""
    if not state.secure or not rec or "data_key" not in rec:
        return rec
    who = caller()
    out = dict(rec)
    out["cap"] = access.make_cap(state.cap_secret, rec["data_key"], access.rights_for(who, rec, extra), who)
    return out


def _reclaim(state: DaemonState) -> dict:
    """Chunks of unlinked-while-open files nobody holds any more: the keys,
    and (security on) the capabilities to remove them."""
    keys = state.meta.reclaimable(state.holds)
    out: dict[str, Any] = {"reclaim": keys}
    if state.secure and keys:
        out["reclaim_caps"] = [access.make_cap(state.cap_secret, k, "d", caller()) for k in keys]
    return out


def _need_cap(state: DaemonState, args: dict, need: str) -> None:
    if state.secure:
        access.require_cap(state.cap_secret, args["data_key"], args.get("cap"), caller(), need)


def _writable(state: DaemonState, args: dict, path: str):
    """Check for update_size/truncate: write permission now, or a write
    capability from when the file was opened (like an open fd)."""
    if not state.secure:
        return None
    who = caller()
    key = args.get("data_key")
    if key is None:  # the client names the open file by path only: its current record's key
        key = (state.meta.get(path) or {}).get("data_key")
    if not (isinstance(key, str) and access.check_cap(state.cap_secret, key, args.get("cap"), who, "w")):
        _reachable(state, path)  # by name, not as an open file

    def check(rec: dict) -> None:
        if access.check_cap(state.cap_secret, rec["data_key"], args.get("cap"), who, "w"):
            return
        access.require(who, rec, access.W, path)
    return check


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
           "id": state.host_id, "address": state.address, "cluster": state.cluster, "members": state.members}
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
        "cluster": state.cluster, "members": state.members,
        "chunk_size": state.config.chunk_size, "uptime_s": time.monotonic() - state.started,
        "files": state.meta.count(), "bytes_stored": state.chunks.bytes_stored(),
        "free_bytes": fs.f_bavail * fs.f_frsize, "total_bytes": fs.f_blocks * fs.f_frsize,
        "workers": state.config.workers, "inflight": inflight, "locks": state.locks.count(),
        "open_files": state.holds.count(), "orphans": state.meta.orphan_count(), "ops": ops, "errors": errors,
        "local_stream": state.local is not None,
        "local_connections": len(state.local.conns) if state.local is not None else 0,
    }
    if state.cap_secret is not None and caller().uid in (0, os.geteuid()):
        # Only the cluster's owner (or root) learns where the daemon runs and
        # keeps its data: not another user with an issued key, nor anybody
        # at all with security off.
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
    path, mode = args["path"], args["mode"]
    gid = who.gid
    valid_type = not mode >> 16 and mode & 0o170000 in (0, 0o100000, 0o040000)
    if state.secure and valid_type and path != "/":  # else meta.create answers EINVAL/EEXIST
        local = _local_walk(state, path)
        existing = state.meta.get(path) if local is None else local[1][-1]
        if existing is not None and args.get("exclusive"):
            raise OSError(errno.EEXIST, f"file exists: {path}")
        want = access.X if existing is not None else access.W | access.X
        if local is not None:
            parent = _walk(state, path, local[0], want, recs=local[1][:-1])
        else:
            parent = _parent(state, path, want)
        if existing is None:
            if parent["mode"] & 0o2000:  # set-group-ID directory: group (and, for a directory, the bit) inherited
                gid = parent["gid"]
                if mode & 0o170000 == 0o040000:
                    mode |= 0o2000
            if who.uid != 0 and mode & 0o2000 and not who.in_group(gid) and mode & 0o170000 != 0o040000:
                mode &= ~0o2000
    rec, created = state.meta.create(path, mode, bool(args.get("exclusive")), who.uid, gid,
                                     _hold(state, args, peer))
    return {"stat": _with_cap(state, rec, "rw" if created else ""), "created": created}, []


def op_stat(state: DaemonState, args: dict, data: list, peer: bytes = b"") -> Result:
    hold = _hold(state, args, peer)
    path = args["path"]
    if path != "/" and not hold and args.get("data_key") is None:
        local = _local_walk(state, path)
        if local is not None:  # one daemon: the walk and the record in one read
            _walk(state, path, local[0], access.X, recs=local[1][:-1])
            rec = local[1][-1]
            if rec is None:
                raise OSError(errno.ENOENT, f"no such file or directory: {path}")
            return {"stat": _with_cap(state, rec)}, []
    if path != "/" and (hold or args.get("data_key") is None):
        _parent(state, path, access.X)  # an fstat by data_key may name an unlinked file
    if hold:
        return {"stat": _with_cap(state, state.meta.stat_hold(path, hold))}, []
    return {"stat": _with_cap(state, state.meta.stat(path, args.get("data_key")))}, []


def op_remove(state: DaemonState, args: dict, data: list) -> Result:
    path = args["path"]
    check = None
    forget = []
    if state.secure:
        parent = _parent(state, path, access.W | access.X)
        who = caller()

        def check(rec: dict) -> None:
            access.check_sticky(who, parent, rec, path)
            forget[:] = _forgets(state, [path], rec)
    try:
        rec, held = state.meta.remove(path, args.get("rmdir"), args.get("data_key"), state.holds, check)
    finally:
        _forget_elsewhere(state, forget, True)
    return {"stat": _with_cap(state, rec, "d"), "held": held, **_reclaim(state)}, []


def op_release(state: DaemonState, args: dict, data: list) -> Result:
    state.holds.release(args["data_key"], args["owner"])
    # only a client that waits for this reply may be handed orphans to reclaim
    return (_reclaim(state) if args.get("reclaim") else {"reclaim": []}), []


def op_update_size(state: DaemonState, args: dict, data: list) -> Result:
    protocol.check_file_size("write end", args["offset"] + args["count"])
    offset, size = state.meta.update_size(args["path"], args["offset"], args["count"], bool(args.get("append")),
                                          args.get("data_key"), _writable(state, args, args["path"]))
    return {"offset": offset, "size": size}, []


def op_truncate(state: DaemonState, args: dict, data: list) -> Result:
    protocol.check_file_size("size", args["size"])
    rec = state.meta.truncate(args["path"], args["size"], args.get("data_key"), _writable(state, args, args["path"]))
    return {"stat": _with_cap(state, rec)}, []


def op_get_dirents(state: DaemonState, args: dict, data: list) -> Result:
    limit = args.get("limit") or protocol.DEFAULT_DIRENTS_LIMIT
    if limit > protocol.MAX_DIRENTS_LIMIT:
        raise OSError(errno.EINVAL, f"limit {limit} above {protocol.MAX_DIRENTS_LIMIT}")
    stats = bool(args.get("stats"))
    if state.secure:
        path = args["path"]
        dirs = _dirs_above(path) + [path] if path != "/" else ["/"]
        rec = _walk(state, path, dirs, access.R, last_exact=True)
        # The records tell no more than a stat of each entry would, which
        # needs search (x) on the directory too: without it, names only.
        stats = stats and access.may(caller(), rec, access.X)
    records: list | None = [] if stats else None
    entries, more = state.meta.dirents(args["path"], args.get("start_after") or "", limit,
                                       records, state.config.max_frame_size // 4)
    if records is None:
        return {"entries": entries, "more": more}, []
    return {"entries": entries, "more": more, "stats": records}, []


# A data request the receiving thread may serve itself (server.Server._data_here:
# when no other request waits): a 1 MiB pwrite or pread into or out of the
# page cache takes ~0.1-0.3 ms, about what the hand-off to a worker and back
# costs. Larger ones go to the workers.
INLINE_DATA_MAX = 1 << 20


def _inline_data(nbytes: int) -> None:
    if nbytes > INLINE_DATA_MAX and INLINE.get():
        raise NeedsWorker("data")


def op_write_chunks(state: DaemonState, args: dict, data: list) -> Result:
    chunks = _chunks(state, "write_chunks", args)
    _inline_data(sum(length for _i, _o, length in chunks))
    _need_cap(state, args, "w")
    key = args["data_key"]
    size_path = args.get("size_path")
    # Whether the caller may change the size, before any chunk is written:
    # a check that needs another daemon (NeedsWorker) hands the request to a
    # worker with nothing done yet.
    size_check = None
    if size_path is not None:
        if args.get("size_count") is None or args.get("size_offset") is None:
            raise OSError(errno.EINVAL, "size_path needs size_offset and size_count")
        size_check = _writable(state, args, size_path)
    written = 0
    for (index, offset, _length), frame in zip(chunks, data):
        # frame.buffer is the zmq message's own memory: no copy before pwrite.
        buf = frame.buffer if hasattr(frame, "buffer") else frame
        written += state.chunks.write(key, index, offset, buf)
    state.memory.note(written)  # once done: the trim waits for a pause after it
    if size_path is None:
        return {"written": written}, []
    # The write's size update, folded in (docs/performance.md): applied only
    # once the chunks are written, exactly as a separate update_size after
    # them, so the reply (the client's acknowledgement) still means "data and
    # size are both in place" and a failed write never extends the size.
    _offset, size = state.meta.update_size(size_path, args["size_offset"], args["size_count"], False, key,
                                           size_check)
    return {"written": written, "size": size}, []


def op_read_chunks(state: DaemonState, args: dict, data: list) -> Result:
    chunks = _chunks(state, "read_chunks", args)
    file_size = args.get("file_size")
    if file_size is not None:
        protocol.check_file_size("file_size", file_size)
    _need_cap(state, args, "r")
    cs = state.config.chunk_size
    total = sum(length for _i, _o, length in chunks)
    if total > state.config.max_frame_size:
        raise OSError(errno.EMSGSIZE, f"read of {total} bytes exceeds max_frame_size {state.config.max_frame_size}")
    _inline_data(total)
    key = args["data_key"]
    size_path = args.get("size_path")
    if size_path is not None:
        # The read's size lookup, folded in (docs/protocol.md read_chunks):
        # the open file's record (by its data key, like an fstat), read
        # BEFORE any chunk. A write stores its data before its size, so a
        # size read first never covers bytes this read could miss: the
        # frames below hold only written bytes (or zeros of holes), never
        # the zeros of a write that is still on its way.
        if file_size is not None:
            raise OSError(errno.EINVAL, "read_chunks: size_path and file_size exclude each other")
        file_size = state.meta.stat(size_path, key).get("size", 0)
    frames, lengths = [], []
    for index, offset, length in chunks:
        pad_to = None
        if file_size is not None:
            pad_to = min(length, max(0, file_size - (index * cs + offset)))
        buf = state.chunks.read(key, index, offset, length, pad_to)
        frames.append(buf)
        lengths.append(len(buf))
    state.memory.note(total)  # once done: the trim waits for a pause after it
    if size_path is not None:
        return {"lengths": lengths, "size": file_size}, frames
    return {"lengths": lengths}, frames


def _chunks_here(state: DaemonState, data_key: str) -> None:
    """The receiving thread (INLINE) answers a chunk removal or truncation
    itself only when this daemon holds no chunk of the file (the common
    case of a small or empty file: one stat); file system work on chunk
    files goes to a worker."""
    if INLINE.get() and state.chunks.has_chunks(data_key):
        raise NeedsWorker(data_key)


def op_remove_chunks(state: DaemonState, args: dict, data: list) -> Result:
    _need_cap(state, args, "wd")
    _chunks_here(state, args["data_key"])
    return {"removed": state.chunks.remove(args["data_key"])}, []


def op_truncate_chunks(state: DaemonState, args: dict, data: list) -> Result:
    _check_chunk_size(state, args)
    protocol.check_file_size("size", args["size"])
    _need_cap(state, args, "w")
    _chunks_here(state, args["data_key"])
    removed, truncated = state.chunks.truncate(args["data_key"], args["size"])
    return {"removed": removed, "truncated": truncated}, []


def op_fsync(state: DaemonState, args: dict, data: list) -> Result:
    if args.get("data_key") is not None:
        _need_cap(state, args, "rwd")
    state.chunks.fsync(args.get("data_key"))
    state.meta.sync()
    return {}, []


def _is_admin() -> bool:
    return caller().uid in (0, os.geteuid())


def _require_admin(op: str) -> None:
    """Maintenance ops (fsck) are for the cluster's owner (or root) only."""
    if not _is_admin():
        raise OSError(errno.EPERM, f"{op} is for the cluster's owner only")


def op_scan_chunks(state: DaemonState, args: dict, data: list) -> Result:
    _require_admin("scan_chunks")
    limit = args.get("limit") or 256
    if limit > 4096:
        raise OSError(errno.EINVAL, "scan_chunks limit above 4096")
    start = args.get("start_after") or ""
    dirs, more = state.chunks.scan(start, limit, 65536)
    # Files unlinked while open keep their data: fsck must not call it orphaned.
    held = state.meta.orphan_keys() if not start else []
    return {"dirs": dirs, "more": more, "held_keys": held}, []


def op_remove_chunk_dir(state: DaemonState, args: dict, data: list) -> Result:
    _require_admin("remove_chunk_dir")
    return {"removed": state.chunks.remove_dir(args["name"])}, []


def op_rename(state: DaemonState, args: dict, data: list) -> Result:
    old, new = args["old"], args["new"]
    check = None
    forget = []
    if state.secure and old != new:
        who = caller()
        old_parent = _parent(state, old, access.W | access.X)
        new_parent = old_parent if _parent_of(old) == _parent_of(new) else _parent(state, new, access.W | access.X)

        def check(rec: dict, dst: dict | None) -> None:
            access.check_sticky(who, old_parent, rec, old)
            access.check_sticky(who, new_parent, dst, new)
            if rec["mode"] & 0o170000 == 0o040000 and _parent_of(old) != _parent_of(new):
                access.require(who, rec, access.W, old)  # its ".." changes
            forget[:] = _forgets(state, [old, new], rec, dst)
    try:
        rec, replaced, held = state.meta.rename(old, new, state.holds, check)
    finally:
        _forget_elsewhere(state, forget, True)
    return {"stat": _with_cap(state, rec), "replaced": _with_cap(state, replaced, "d"), "replaced_held": held,
            **_reclaim(state)}, []


def op_insert(state: DaemonState, args: dict, data: list) -> Result:
    path, record = args["path"], args["record"]
    check = None
    forget = []
    _validated_record(record)  # a malformed record is EINVAL whatever else is wrong
    if state.secure and not (args.get("from") is None and _is_admin()):
        # The record must be one that exists (the source of a cross-daemon
        # rename, named by "from"), never one the client made up: a made-up
        # record could claim another user's data_key or uid. The cluster's
        # owner (gkfs-ctl fsck --repair moving a misplaced record) may.
        src = args.get("from")
        if src is None:
            raise OSError(errno.EINVAL, "insert needs 'from' (the path the record is moved from)")
        real = state.peers.record(src)
        if real is None or real.get("data_key") != record.get("data_key"):
            raise OSError(errno.ENOENT, f"insert: {src} does not hold that record (any more)")
        _parent(state, src, access.W | access.X)
        record = real
        parent = _parent(state, path, access.W | access.X)
        who = caller()

        def check(dst: dict | None) -> None:
            access.check_sticky(who, parent, dst, path)
            forget[:] = _forgets(state, [path], dst)
    elif state.secure:  # the owner's own insert (fsck): no checks, but a directory it replaces is forgotten
        def check(dst: dict | None) -> None:
            forget[:] = _forgets(state, [path], dst)
    try:
        replaced, held = state.meta.insert(path, record, bool(args.get("replace")), state.holds, check)
    finally:
        _forget_elsewhere(state, forget, True)
    return {"replaced": _with_cap(state, replaced, "d"), "replaced_held": held}, []


def op_symlink(state: DaemonState, args: dict, data: list) -> Result:
    target = args["target"]
    if not target or "\x00" in target:
        raise OSError(errno.EINVAL, "symlink target must be non-empty and contain no NUL")
    if len(target.encode("utf-8")) > protocol.MAX_PATH_BYTES:
        raise OSError(errno.ENAMETOOLONG, f"symlink target longer than {protocol.MAX_PATH_BYTES} bytes")
    who = caller()
    _parent(state, args["path"], access.W | access.X)
    return {"stat": state.meta.symlink(args["path"], target, who.uid, who.gid)}, []


def op_readlink(state: DaemonState, args: dict, data: list) -> Result:
    _reachable(state, args["path"])
    rec = state.meta.stat(args["path"])
    if "target" not in rec:
        raise OSError(errno.EINVAL, f"not a symbolic link: {args['path']}")
    return {"target": rec["target"]}, []


def op_utimens(state: DaemonState, args: dict, data: list) -> Result:
    path = args["path"]
    atime, mtime = args.get("atime_ns"), args.get("mtime_ns")
    now = bool(args.get("now"))
    if now:
        atime = mtime = time.time_ns()
    check = None
    _reachable(state, path)
    if state.secure:
        who = caller()

        def check(rec: dict) -> None:
            # Setting both to "now" needs write permission or ownership;
            # any other time, ownership (as utimensat(2)).
            if access.is_owner(who, rec):
                return
            if now:
                access.require(who, rec, access.W, path)
            else:
                raise OSError(errno.EPERM, f"only the owner may set explicit times: {path}")
    return {"stat": _with_cap(state, state.meta.utimens(path, atime, mtime, check))}, []


def op_setattr(state: DaemonState, args: dict, data: list) -> Result:
    path = args["path"]
    policy = None
    forget = []
    _reachable(state, path)
    if state.secure:
        who = caller()

        def policy(rec, mode, uid, gid):
            mode, uid, gid = access.setattr_policy(who, rec, mode, uid, gid, path)
            if (mode is not None and mode != rec["mode"] & 0o7777 or uid is not None and uid != rec["uid"]
                    or gid is not None and gid != rec["gid"]):
                forget[:] = _forgets(state, [path], rec)
            elif state.peers is not None and state.peers.is_changing(path):
                # No change, e.g. the client's repeat of a chmod whose first
                # copy still waits for the other daemons: not acknowledged
                # before it (waited for after this transaction).
                if INLINE.get():
                    raise NeedsWorker(path)
                settle.append(path)
            return mode, uid, gid
    settle: list[str] = []
    try:
        rec = state.meta.setattr(path, args.get("mode"), args.get("uid"), args.get("gid"), policy)
    finally:
        _forget_elsewhere(state, forget, False)
    if settle:
        state.peers.settled(path)
    return {"stat": _with_cap(state, rec)}, []


def op_lock(state: DaemonState, args: dict, data: list, peer: bytes = b"") -> Result:
    _need_cap(state, args, "rwd")  # only who could open the file may lock it
    owner = args["owner"]
    if not owner:
        raise OSError(errno.EINVAL, "lock owner must be a non-empty string")
    granted, conflict = state.locks.set(args["data_key"], owner, args["space"], args["type"], args["start"],
                                        args["len"], args.get("pid") or 0, peer, bool(args.get("test")))
    return {"granted": granted, "conflict": conflict}, []


def op_fence(state: DaemonState, args: dict, data: list, peer: bytes = b"") -> Result:
    if not args["owner"]:
        raise OSError(errno.EINVAL, "fence owner must be a non-empty string")
    state.fences.set(args["owner"], args["tree"], args["list"], peer, args["on"])
    return {}, []


def op_unlock_owner(state: DaemonState, args: dict, data: list) -> Result:
    return {"released": state.locks.release_owner(args["owner"], args.get("data_key"))}, []


HANDLERS: dict[str, Callable[[DaemonState, dict, list], Result]] = {
    name: globals()[f"op_{name}"] for name in protocol.OPS
}

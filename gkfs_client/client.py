"""The Python client: POSIX-like file calls on a gkfs cluster.

Layering (as in GekkoFS: gkfs_<op> -> forward_<rpc>): the methods here hold
the POSIX semantics (descriptors, offsets, flags, errno); placement comes
from ``distribution``; ``chunkio`` and ``dirlist`` build the multi-daemon
requests; ``rpc`` sends them all at once and matches replies; ``transport``
owns the sockets. Errors are OSError with the errno a kernel would give.

Paths are paths inside gkfs ("/dir/file"); relative paths are taken from
``Client.cwd``. Not POSIX here (documented limits): an unlinked file's data
goes at once even if a descriptor is open, a descriptor follows its path
(a file renamed while open is then ENOENT), and symlinks are followed only
in the last path component. The first stat of an entry right after a
readdir of its directory comes from the readdir's records (statcache.py):
another client's change is seen at most the TTL (1 s) later.
"""
from __future__ import annotations

import errno
import functools
import os
import stat as _stat
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

from gkfs_client import chunkio, dirlist, distribution, hostsfile, protocol, security, statcache
from gkfs_client.dirlist import DirEntry
from gkfs_client.protocol import _plainly_canonical  # the common case of normalize_path, no walk
from gkfs_client.local_transport import LocalFirstTransport
from gkfs_client.rpc import DEFAULT_TIMEOUT_S, Call, Rpc
from gkfs_client.transport import ZmqTransport

ENV_TIMEOUT = "LIBGKFS_RPC_TIMEOUT"
ENV_LOCAL_STREAM = "LIBGKFS_LOCAL_STREAM"
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
MAX_SYMLINK_HOPS = 40  # Linux's MAXSYMLINKS
FIRST_FD = 3  # look like a kernel descriptor table: 0-2 are taken


@dataclass
class _OpenFile:
    path: str
    flags: int
    data_key: str
    is_dir: bool
    pos: int = 0
    # The data capability the metadata owner gave at open (docs/protocol.md 1):
    # what lets this descriptor read/write the chunks, like a kernel fd's mode.
    cap: str = ""

    @property
    def readable(self) -> bool:
        return (self.flags & os.O_ACCMODE) in (os.O_RDONLY, os.O_RDWR)

    @property
    def writable(self) -> bool:
        return (self.flags & os.O_ACCMODE) in (os.O_WRONLY, os.O_RDWR)


def _err(code: int, what: str) -> OSError:
    return OSError(code, f"{os.strerror(code)}: {what}")


def _reply_err(reply: protocol.Reply, what: str) -> OSError:
    """A failed reply as OSError: the errno's text and the path, plus the
    daemon's own message for EIO (it names the member that did not answer,
    which the errno alone does not)."""
    if reply.status == errno.EIO and reply.message:
        return OSError(errno.EIO, f"{os.strerror(errno.EIO)}: {what}: {reply.message}")
    return _err(reply.status, what)


def _timeout_from_env() -> float:
    raw = os.environ.get(ENV_TIMEOUT)
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        # OSError(EINVAL) like every other bad input, so gkfs-ctl reports it in one line.
        raise OSError(errno.EINVAL, f"{ENV_TIMEOUT} must be a number of seconds > 0, got {raw!r}")
    return value


def _local_stream_from_env() -> bool:
    raw = os.environ.get(ENV_LOCAL_STREAM, "").strip().lower()
    if raw in ("", "on"):
        return True
    if raw == "off":
        return False
    raise OSError(errno.EINVAL, f"{ENV_LOCAL_STREAM} must be 'on' or 'off', got {raw!r}")


def _current_umask() -> int:
    # The only portable way to read the umask is to set it and put it back.
    old = os.umask(0)
    os.umask(old)
    return old


# The owner of a path, remembered: a file's create, stats, writes and
# remove each ask for it, and the hash is a Python loop per byte (~1 us).
_metadata_owner = functools.lru_cache(maxsize=8192)(distribution.metadata_owner)


@functools.lru_cache(maxsize=4096)
def _ino(key: str, path: str) -> int:
    # A stable inode number: from the data key (kept by rename) when there is one.
    # (data keys are opaque: hash them rather than parse them). Cached: the
    # hash is a pure function, and a byte loop in Python costs microseconds.
    return (distribution.fnv1a64(key.encode()) if key else distribution.metadata_hash(path)) >> 1


# The fields os.stat_result takes after its 10 visible ones, in the order it
# takes them as one sequence (CPython's: float times, _ns times, blksize,
# blocks, rdev). One tuple of all of them builds a result without the dict
# of keywords (~0.8 us a stat); checked here, so another layout falls back
# to the dict form.
_STAT_EXTRA = ("st_atime", "st_mtime", "st_ctime", "st_atime_ns", "st_mtime_ns", "st_ctime_ns",
               "st_blksize", "st_blocks", "st_rdev")


def _stat_by_sequence() -> bool:
    try:
        probe = os.stat_result(tuple(range(os.stat_result.n_fields)))
        return (os.stat_result.n_sequence_fields == 10
                and [getattr(probe, f) for f in _STAT_EXTRA] == list(range(10, 10 + len(_STAT_EXTRA)))
                and os.stat_result.n_fields == 10 + len(_STAT_EXTRA))
    except (TypeError, AttributeError):
        return False


_STAT_BY_SEQUENCE = _stat_by_sequence()


def stat_result(record: dict[str, Any], chunk_size: int, path: str) -> os.stat_result:
    """A protocol stat record as an os.stat_result (float and _ns times)."""
    get = record.get
    key = get("data_key") or ""
    size = get("size", 0)
    at, mt, ct = get("atime_ns", 0), get("mtime_ns", 0), get("ctime_ns", 0)
    head = (record["mode"], _ino(key, "" if key else path), 0, get("nlink", 1), get("uid", 0), get("gid", 0), size,
            at // 1_000_000_000, mt // 1_000_000_000, ct // 1_000_000_000)
    if _STAT_BY_SEQUENCE:
        return os.stat_result((*head, at / 1e9, mt / 1e9, ct / 1e9, at, mt, ct, chunk_size, (size + 511) // 512,
                               None))
    return os.stat_result(
        head,
        {"st_atime": at / 1e9, "st_mtime": mt / 1e9, "st_ctime": ct / 1e9,
         "st_atime_ns": at, "st_mtime_ns": mt, "st_ctime_ns": ct,
         "st_blksize": chunk_size, "st_blocks": (size + 511) // 512})


class Client:
    """A connection to every daemon of one gkfs cluster.

    ``hosts_file``: --hosts-file style override; else $LIBGKFS_HOSTS_FILE,
    else the default location (hostsfile.resolve_hosts_file). A missing file
    raises hostsfile.HostsFileMissing before any socket is opened.
    ``timeout``: seconds to wait for any daemon (else $LIBGKFS_RPC_TIMEOUT,
    else 10). ``chunk_size``: checked against the cluster's (EINVAL if it
    differs); by default taken from the daemons. The constructor pings
    every daemon once (all together), so an unreachable cluster fails here.
    ``stat_cache_ttl`` (seconds; 0 = off) and ``stat_cache_entries``: the
    readdir stat cache (statcache.py; defaults from $LIBGKFS_STAT_CACHE_TTL_MS,
    $LIBGKFS_STAT_CACHE_ENTRIES, else 1 s and 4096).
    ``local_stream``: talk to members on this host over their local stream
    (docs/protocol.md 1.1) rather than TCP (default: on, unless
    $LIBGKFS_LOCAL_STREAM is ``off``).
    """

    def __init__(self, hosts_file: str | os.PathLike | None = None, *, timeout: float | None = None,
                 chunk_size: int | None = None, umask: int | None = None,
                 dirents_page: int = dirlist.DEFAULT_PAGE, handshake: bool = True,
                 stat_cache_ttl: float | None = None, stat_cache_entries: int | None = None,
                 local_stream: bool | None = None):
        self.hosts_path = hostsfile.resolve_hosts_file(hosts_file)
        self.membership = hostsfile.read_membership(self.hosts_path)
        if handshake and not self.membership.listed():
            hostsfile.read_hosts(self.hosts_path)  # raises the clear "no member running" error
        self._key = security.client_credentials(self.hosts_path)
        self.record = self.membership.record
        # Placement uses the cluster's fixed member count and slot = member id,
        # never the members listed now (docs/protocol.md section 5).
        self.n = self.record.members
        self.timeout = _timeout_from_env() if timeout is None else float(timeout)
        self.local_stream = _local_stream_from_env() if local_stream is None else bool(local_stream)
        self.umask = _current_umask() if umask is None else umask
        self.dirents_page = dirents_page
        # readdir's stat records, for the stats that follow (statcache.py)
        self.stat_cache = statcache.StatCache(stat_cache_ttl, stat_cache_entries,
                                              self._owner if self.n > 1 else None)
        self.cwd = "/"
        self._lock = threading.RLock()  # zmq sockets are not thread-safe
        self._fds: dict[int, _OpenFile] = {}
        self._next_fd = FIRST_FD
        if chunk_size and chunk_size != self.record.chunk_size:
            raise _err(errno.EINVAL, f"client chunk size {chunk_size} differs from the cluster's chunk size "
                                     f"{self.record.chunk_size} ({self.hosts_path})")
        self.chunk_size = self.record.chunk_size
        self._connect()
        # handshake=False is for `gkfs-ctl status`, which must work (and
        # report) when some daemon is down.
        if handshake:
            try:
                self._handshake()
            except BaseException:
                self._rpc.close()  # no sockets left behind by a refused client
                raise

    @property
    def hosts(self) -> list[hostsfile.Host | None]:
        """One entry per member slot: the registered Host, or None."""
        return list(self.membership.slots)

    @property
    def addresses(self) -> list[str]:
        return list(self._rpc.addresses)

    def member_name(self, target: int) -> str:
        addr = self._rpc.addresses[target] if target < len(self._rpc.addresses) else ""
        return f"member {target} ({addr})" if addr else f"member {target}"

    # ------------------------------------------------------------ plumbing

    def _connect(self) -> None:
        self._pid = os.getpid()
        addresses = [h.address if h else "" for h in self.membership.slots]
        # A forked child gets a transport of its own; the parent's local
        # streams were already closed in it (local_transport's fork handler).
        # Only a client that acts as the owner over ZeroMQ as well: the
        # daemon runs local-stream requests as its owner.
        if self.local_stream and security.is_owner_key(self.hosts_path, self._key):
            transport = LocalFirstTransport(addresses, self.record.uuid, key=self._key)
        else:
            transport = ZmqTransport(addresses, key=self._key)
        self._rpc = Rpc(transport, timeout_s=self.timeout, resolve=self._resolve, names=self.member_name)

    def _resolve(self, target: int) -> str:
        """A member's address now (a restarted member registers a new one)."""
        h = hostsfile.read_member(self.hosts_path, target)
        return h.address if h else ""

    def _handshake(self) -> None:
        """Every registered member must be of this cluster, in its own slot,
        with the cluster's chunk size; a member that is down is not an error
        here (the calls that need it fail with EIO)."""
        targets = [i for i, h in enumerate(self.membership.slots) if h is not None]
        args = {"chunk_size": self.chunk_size}
        with self._lock:
            replies = self._rpc.call_each([Call(i, "ping", args) for i in targets])
        for i, r in zip(targets, replies):
            if isinstance(r, OSError):
                continue
            if r.status == errno.EINVAL:
                raise _err(errno.EINVAL, f"{self.member_name(i)}: {r.message}")
            if r.status:
                continue
            cid, mid = r.result.get("cluster"), r.result.get("id")
            if cid != self.record.uuid or mid != i:
                raise _err(errno.EIO, f"{self.member_name(i)} answers as member {mid} of cluster {cid}, "
                                      f"not member {i} of cluster {self.record.uuid} ({self.hosts_path})")

    def _many(self, calls, check: bool = True):
        with self._lock:
            if os.getpid() != self._pid:
                # Forked child: the parent's sockets are not ours to use.
                self._connect()
            try:
                if len(calls) == 1:
                    c = calls[0]
                    return [self._rpc.call(c.target, c.op, c.args, c.data, check=check)]
                return self._rpc.call_many(calls, check=check)
            finally:
                if self.stat_cache.enabled:
                    self.stat_cache.changed(calls)  # our own changes: seen at once

    def _one(self, target: int, op: str, args: dict[str, Any], data=(), check: bool = True) -> protocol.Reply:
        with self._lock:
            if os.getpid() != self._pid:
                self._connect()
            if op not in statcache.CHANGES:  # stat, read_chunks...: nothing for the stat cache to forget
                return self._rpc.call(target, op, args, data, check=check)
            try:
                return self._rpc.call(target, op, args, data, check=check)
            finally:
                if self.stat_cache.enabled:
                    self.stat_cache.changed_by(op, args)  # our own changes: seen at once

    def _owner(self, path: str) -> int:
        # one member: no hash to compute
        return _metadata_owner(path, self.n) if self.n != 1 else 0

    def _norm(self, path: str | os.PathLike) -> str:
        try:
            return protocol.normalize_path(os.fspath(path), self.cwd)
        except protocol.ProtocolError as exc:
            raise OSError(exc.errno, exc.message) from None

    def _norm_dir(self, path: str | os.PathLike) -> tuple[str, bool]:
        """(canonical path, whether its spelling requires a directory: "f/")."""
        if type(path) is str and _plainly_canonical(path):
            return path, False  # the common case: no walk
        return self._norm(path), protocol.names_directory(os.fspath(path))

    def abspath(self, path: str | os.PathLike) -> str:
        """The canonical gkfs path (relative to cwd, '.' and '..' resolved)."""
        return self._norm(path)

    def disconnect(self) -> None:
        """Close the sockets (descriptors still open are forgotten)."""
        with self._lock:
            self._rpc.close()
            self._fds.clear()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()

    # ------------------------------------------------------------ metadata

    def _record(self, path: str, follow: bool = True, must_dir: bool = False,
                rec: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """(final path, stat record), following symlinks in the last component.

        ``must_dir`` (the caller's path was spelled "f/"): the link is
        followed and anything but a directory is ENOTDIR, as in the kernel.
        ``rec``: the record of ``path`` already asked for (the first hop).
        """
        follow = follow or must_dir
        for _ in range(MAX_SYMLINK_HOPS):
            if rec is None:
                rec = self._stat_or_missing(path)
            if not (follow and _stat.S_ISLNK(rec["mode"])):
                if must_dir and not _stat.S_ISDIR(rec["mode"]):
                    raise _err(errno.ENOTDIR, path)
                return path, rec
            path = self._link_target(path, rec["target"])
            rec = None
        raise _err(errno.ELOOP, path)

    def _stat_or_missing(self, path: str) -> dict[str, Any]:
        try:
            return self._one(self._owner(path), "stat", {"path": path}).result["stat"]
        except FileNotFoundError:
            raise self._missing(path) from None

    def _missing(self, path: str) -> OSError:
        """The error for a path whose record is missing: ENOTDIR when some
        ancestor is not a directory ("file/x"), else ENOENT.  Daemons store
        whole paths and never walk components, so the ancestors are asked
        here, all at once, and only on this error path."""
        ancestors = []
        p = path
        while p != "/":
            p, _ = protocol.parent_and_name(p)
            if p != "/":
                ancestors.append(p)
        ancestors.reverse()  # shallowest first: the kernel's walk order
        replies = self._many([Call(self._owner(a), "stat", {"path": a}) for a in ancestors], check=False)
        for a, r in zip(ancestors, replies):
            if r.status == errno.ENOENT:
                break
            if r.status:
                return _err(r.status, a)
            mode = r.result["stat"]["mode"]
            if _stat.S_ISLNK(mode):
                break  # intermediate symlinks are not followed (module docstring)
            if not _stat.S_ISDIR(mode):
                return _err(errno.ENOTDIR, f"{path} ({a} is not a directory)")
        return _err(errno.ENOENT, path)

    def _link_target(self, link: str, target: str) -> str:
        parent, _ = protocol.parent_and_name(link)
        try:
            return protocol.normalize_path(target, parent)
        except protocol.ProtocolError as exc:
            raise OSError(exc.errno, f"symlink {link} -> {target}: {exc.message}") from None

    def stat(self, path, *, follow_symlinks: bool = True) -> os.stat_result:
        p, must_dir = self._norm_dir(path)
        follow = follow_symlinks or must_dir
        rec = self.stat_cache.take(p)   # right after a readdir: no RPC
        if rec is not None and not (follow and _stat.S_ISLNK(rec["mode"])):
            if must_dir and not _stat.S_ISDIR(rec["mode"]):
                raise _err(errno.ENOTDIR, p)
            return stat_result(rec, self.chunk_size, p)
        rec = self._stat_or_missing(p)
        if must_dir or (follow and _stat.S_ISLNK(rec["mode"])):
            p, rec = self._record(p, follow, must_dir, rec)
        return stat_result(rec, self.chunk_size, p)

    def _norm_dir_follow(self, path, follow: bool) -> tuple[str, bool, bool]:
        p, must_dir = self._norm_dir(path)
        return p, follow, must_dir

    def lstat(self, path) -> os.stat_result:
        return self.stat(path, follow_symlinks=False)

    def stat_record(self, path, *, follow_symlinks: bool = True) -> dict[str, Any]:
        """The daemon's raw stat record (data_key included), for tools and tests."""
        return self._record(*self._norm_dir_follow(path, follow_symlinks))[1]

    def exists(self, path) -> bool:
        try:
            self.stat(path)
        except FileNotFoundError:
            return False
        return True

    def _create(self, path: str, mode: int, exclusive: bool) -> tuple[dict[str, Any], bool]:
        """Create ``path`` after checking its parent, in one round trip.

        The parent stat and the create go out together; if the parent turns
        out missing or not a directory, the new record is removed again (a
        concurrent reader may glimpse it for that instant: cheaper than a
        second round trip on every create).
        """
        if path == "/":
            raise _err(errno.EEXIST, path)
        parent, _ = protocol.parent_and_name(path)
        # No uid/gid arguments: the daemon makes the new record its caller's
        # (the connection's key, or its own user with security off) and
        # ignores them (docs/protocol.md 1), so two system calls and two
        # fields per create are saved.
        create = {"path": path, "mode": mode, "exclusive": exclusive}
        if self._key is not None:
            # Security on: the daemon itself looks up the parent (its
            # permission check) and creates nothing below a missing parent or
            # a non-directory (ENOENT): one RPC. Only that ENOENT costs a
            # second look, to tell ENOENT from ENOTDIR as the kernel does.
            cr = self._one(self._owner(path), "create", create, check=False)
            if cr.status == errno.ENOENT:
                pst = self._one(self._owner(parent), "stat", {"path": parent}, check=False)
                if pst.status == errno.ENOENT:
                    raise self._missing(parent)
                if pst.status:
                    raise _reply_err(pst, parent)
                if not _stat.S_ISDIR(pst.result["stat"]["mode"]):
                    raise _err(errno.ENOTDIR, parent)
            if cr.status:
                raise _reply_err(cr, path)
            return cr.result["stat"], bool(cr.result.get("created"))
        calls = [Call(self._owner(parent), "stat", {"path": parent}),
                 Call(self._owner(path), "create", create)]
        pst, cr = self._many(calls, check=False)
        parent_err = None
        if pst.status == errno.ENOENT:
            parent_err = self._missing(parent)
        elif pst.status:
            parent_err = _err(pst.status, parent)
        elif not _stat.S_ISDIR(pst.result["stat"]["mode"]):
            parent_err = _err(errno.ENOTDIR, parent)
        if parent_err:
            if cr.status == 0 and cr.result.get("created"):
                key = cr.result["stat"].get("data_key")
                self._many([Call(self._owner(path), "remove",
                                 {"path": path, **({"data_key": key} if key else {})})], check=False)
            raise parent_err
        if cr.status:
            raise _reply_err(cr, path)
        return cr.result["stat"], bool(cr.result.get("created"))

    def mkdir(self, path, mode: int = 0o777) -> None:
        self._create(self._norm(path), _stat.S_IFDIR | (mode & 0o7777 & ~self.umask), exclusive=True)

    def makedirs(self, path, mode: int = 0o777, exist_ok: bool = False) -> None:
        p = self._norm(path)
        parts = p.strip("/").split("/") if p != "/" else []
        for i in range(1, len(parts) + 1):
            sub = "/" + "/".join(parts[:i])
            try:
                self.mkdir(sub, mode)
            except FileExistsError:
                if i == len(parts) and not exist_ok:
                    raise
                if not _stat.S_ISDIR(self.stat(sub).st_mode):
                    raise _err(errno.ENOTDIR, sub) from None

    def _any_children(self, path: str) -> bool:
        replies = self._many([Call(i, "get_dirents", {"path": path, "limit": 1}) for i in range(self.n)])
        return any(r.result.get("entries") for r in replies)

    def rmdir(self, path) -> None:
        p = self._norm(path)
        if p == "/":
            raise _err(errno.EBUSY, p)
        # Type check and emptiness check in one round trip.
        calls = [Call(self._owner(p), "stat", {"path": p})]
        calls += [Call(i, "get_dirents", {"path": p, "limit": 1}) for i in range(self.n)]
        st, *dirents = self._many(calls, check=False)
        if st.status:
            raise self._missing(p) if st.status == errno.ENOENT else _err(st.status, p)
        if not _stat.S_ISDIR(st.result["stat"]["mode"]):
            raise _err(errno.ENOTDIR, p)
        for r in dirents:
            if r.status:
                raise _err(r.status, p)
            if r.result.get("entries"):
                raise _err(errno.ENOTEMPTY, p)
        self._one(self._owner(p), "remove", {"path": p, "rmdir": True})

    def unlink(self, path) -> None:
        p, must_dir = self._norm_dir(path)
        if must_dir:
            # "f/" names a directory, which unlink never removes: the
            # kernel's error, and nothing is removed.
            _, rec = self._record(p, must_dir=True)
            raise _err(errno.EISDIR, p)
        try:
            res = self._one(self._owner(p), "remove", {"path": p, "rmdir": False}).result
        except FileNotFoundError:
            raise self._missing(p) from None
        self._reclaim(res)
        if not res.get("held"):  # open somewhere (a preloaded process): its daemon keeps it
            self._drop_data(res["stat"])

    remove = unlink

    def _reclaim(self, result: dict[str, Any]) -> None:
        """Chunks of files unlinked while open whose last holder is gone
        (docs/protocol.md 4.6): the reply that names them removes them."""
        caps = result.get("reclaim_caps") or []
        for j, key in enumerate(result.get("reclaim") or []):
            args = {"data_key": key, **({"cap": caps[j]} if j < len(caps) else {})}
            self._many([Call(i, "remove_chunks", args) for i in range(self.n)])

    def _drop_data(self, rec: dict[str, Any] | None) -> None:
        # An empty file has no chunks to drop (truncate_chunks removed them
        # when it shrank), so skip the broadcast: at worst chunks of a write
        # whose update_size never happened stay orphaned, using space but
        # never visible, as their data key dies with the record.
        if rec and _stat.S_ISREG(rec["mode"]) and rec.get("data_key") and rec.get("size", 0) > 0:
            args = {"data_key": rec["data_key"], **({"cap": rec["cap"]} if rec.get("cap") else {})}
            self._many([Call(i, "remove_chunks", args) for i in range(self.n)])

    def scandir(self, path=".") -> Iterator[DirEntry]:
        """Entries of a directory, sorted by name (UTF-8 bytes), all daemons merged."""
        p, rec = self._record(self._norm(path))
        if not _stat.S_ISDIR(rec["mode"]):
            raise _err(errno.ENOTDIR, p)
        return dirlist.merged_entries(self._many, p, self.n, self.dirents_page,
                                      self.stat_cache if self.stat_cache.enabled else None)

    def readdir(self, path=".") -> list[DirEntry]:
        return list(self.scandir(path))

    def listdir(self, path=".") -> list[str]:
        return [e.name for e in self.scandir(path)]

    def truncate(self, path, length: int) -> None:
        p, rec = self._record(*self._norm_dir_follow(path, True))
        self._truncate(p, rec, length)

    def _truncate(self, path: str, rec: dict[str, Any], length: int, cap: str = "") -> None:
        if length < 0:
            raise _err(errno.EINVAL, path)
        if length > protocol.MAX_FILE_SIZE:
            raise _err(errno.EFBIG, f"{path}: size {length}")
        if _stat.S_ISDIR(rec["mode"]):
            raise _err(errno.EISDIR, path)
        # Size first, then the chunks: a reader never sees a size covering
        # chunk bytes that are about to disappear.
        key = rec.get("data_key")
        cap = cap or rec.get("cap", "")
        rec = self._one(self._owner(path), "truncate",
                        {"path": path, "size": length, **({"cap": cap} if cap else {})}).result["stat"]
        if rec.get("data_key") != key:  # replaced meanwhile: the reply's capability is for the new file
            cap = rec.get("cap", "")
        self._many([Call(i, "truncate_chunks", {"data_key": rec["data_key"], "chunk_size": self.chunk_size,
                                                "size": length, **({"cap": cap} if cap else {})})
                    for i in range(self.n)])

    def rename(self, old, new) -> None:
        o, n = self._norm(old), self._norm(new)
        if o == "/" or n == "/":
            raise _err(errno.EBUSY, "/")
        if n.startswith(o + "/"):
            raise _err(errno.EINVAL, f"{o} -> {n}: new path inside the old one")
        new_parent, _ = protocol.parent_and_name(n)
        # Everything the checks need, in one round trip.
        calls = [Call(self._owner(o), "stat", {"path": o}),
                 Call(self._owner(n), "stat", {"path": n}),
                 Call(self._owner(new_parent), "stat", {"path": new_parent})]
        calls += [Call(i, "get_dirents", {"path": o, "limit": 1}) for i in range(self.n)]
        calls += [Call(i, "get_dirents", {"path": n, "limit": 1}) for i in range(self.n)]
        replies = self._many(calls, check=False)
        so, sn, sp = replies[:3]
        old_children = any(r.result.get("entries") for r in replies[3:3 + self.n])
        new_children = any(r.result.get("entries") for r in replies[3 + self.n:])
        if so.status:
            raise _err(so.status, o)
        if sp.status:
            raise _err(sp.status, new_parent)
        if not _stat.S_ISDIR(sp.result["stat"]["mode"]):
            raise _err(errno.ENOTDIR, new_parent)
        if o == n:
            return
        rec = so.result["stat"]
        if sn.status == 0:
            target_is_dir = _stat.S_ISDIR(sn.result["stat"]["mode"])
            if _stat.S_ISDIR(rec["mode"]) and not target_is_dir:
                raise _err(errno.ENOTDIR, n)
            if not _stat.S_ISDIR(rec["mode"]) and target_is_dir:
                raise _err(errno.EISDIR, n)
            if target_is_dir and new_children:
                raise _err(errno.ENOTEMPTY, n)
        if _stat.S_ISDIR(rec["mode"]) and old_children:
            # Children's metadata lives with their own paths' owners: every
            # record of the tree moves, behind fences (docs/protocol.md 4.8).
            self._move_tree(o, n, new_exists=sn.status == 0)
            return
        if self._owner(o) == self._owner(n):
            res = self._one(self._owner(o), "rename", {"old": o, "new": n}).result
        else:
            res = self._one(self._owner(n), "insert", {"path": n, "record": rec, "replace": True,
                                                       "from": o}).result
            args = {"path": o}
            if rec.get("data_key"):
                args["data_key"] = rec["data_key"]
            self._reclaim(self._one(self._owner(o), "remove", args).result)
        self._reclaim(res)
        replaced = res.get("replaced")
        if replaced and not res.get("replaced_held") and replaced.get("data_key") != rec.get("data_key"):
            self._drop_data(replaced)

    def _move_tree(self, o: str, n: str, new_exists: bool) -> None:
        """Rename of a directory with entries (docs/protocol.md 4.8): both
        trees are fenced on every daemon (daemon 0 first, which orders
        competing renames), every record is inserted at its new path, then
        every old one removed (deepest first); other clients' requests on
        those paths wait meanwhile, so they see the old tree or the new one,
        never both or neither. No file data moves."""
        token = "m" + os.urandom(8).hex()
        fence = {"owner": token, "on": True, "tree": [o, n],
                 "list": [protocol.parent_and_name(o)[0], protocol.parent_and_name(n)[0]]}
        tag = {"fence": token}
        self._one(0, "fence", fence)
        try:
            if self.n > 1:
                self._many([Call(i, "fence", fence) for i in range(1, self.n)])
            top = self._one(self._owner(o), "stat", {"path": o, **tag}).result["stat"]
            if not _stat.S_ISDIR(top["mode"]):
                raise _err(errno.ENOTDIR, o)
            if new_exists and self._fenced_names(n, tag, limit=1):
                raise _err(errno.ENOTEMPTY, n)
            moved: list[tuple[str, dict[str, Any], int]] = [("", top, 0)]   # (relative path, record, depth)
            todo = [("", 0)]
            while todo:
                rel, depth = todo.pop()
                names = self._fenced_names(o + rel, tag)
                for name in names:
                    p = f"{o}{rel}/{name}"
                    child, crec = f"{rel}/{name}", self._one(self._owner(p), "stat", {"path": p, **tag}).result["stat"]
                    moved.append((child, crec, depth + 1))
                    if _stat.S_ISDIR(crec["mode"]):
                        todo.append((child, depth + 1))
            # One request at a time: with security on each of them makes its
            # daemon look records up on other daemons (permission checks), and
            # a burst of those can occupy every worker of every daemon.
            done: list[tuple[str, dict[str, Any]]] = []
            try:
                for rel, rec, _d in moved:
                    self._one(self._owner(n + rel), "insert",
                              {"path": n + rel, "record": rec, "replace": rel == "" and new_exists,
                               "from": o + rel, **tag})
                    done.append((rel, rec))
            except OSError:
                # take back what was inserted (children first); the old tree is whole
                for rel, rec in reversed(done):
                    if rel or not new_exists:
                        self._many([Call(self._owner(n + rel), "remove",
                                         {"path": n + rel, "data_key": rec["data_key"], **tag})], check=False)
                raise
            for depth in sorted({d for _r, _c, d in moved}, reverse=True):   # children before parents
                for rel, rec, d in moved:
                    if d == depth:
                        self._reclaim(self._one(self._owner(o + rel), "remove",
                                                {"path": o + rel, "data_key": rec["data_key"], **tag}).result)
        finally:
            self._many([Call(i, "fence", dict(fence, on=False)) for i in range(self.n)], check=False)

    def _fenced_names(self, path: str, tag: dict[str, str], limit: int = 0) -> list[str]:
        """Children of ``path`` from every daemon (requests carrying the
        fence token); with ``limit``, stops at the first page."""
        names: list[str] = []
        for i in range(self.n):
            after = ""
            while True:
                r = self._one(i, "get_dirents", {"path": path, "start_after": after,
                                                  "limit": limit or self.dirents_page, **tag}).result
                names += [e[0] for e in r["entries"]]
                if limit or not r["more"] or not r["entries"]:
                    break
                after = r["entries"][-1][0]
        return sorted(names, key=lambda x: x.encode())

    def symlink(self, target: str, linkpath) -> None:
        p = self._norm(linkpath)
        parent, _ = protocol.parent_and_name(p)
        _, prec = self._record(parent)
        if not _stat.S_ISDIR(prec["mode"]):
            raise _err(errno.ENOTDIR, parent)
        self._one(self._owner(p), "symlink", {"path": p, "target": target,
                                              "uid": os.getuid(), "gid": os.getgid()})

    def readlink(self, path) -> str:
        p = self._norm(path)
        return self._one(self._owner(p), "readlink", {"path": p}).result["target"]

    def utime(self, path, times: tuple[float, float] | None = None, *,
              ns: tuple[int, int] | None = None) -> None:
        p, _ = self._record(*self._norm_dir_follow(path, True))
        if ns is None and times is None:
            # "now": the daemon's clock; allowed to whoever may write the file
            self._one(self._owner(p), "utimens", {"path": p, "now": True})
            return
        if ns is None:
            ns = (int(times[0] * 1e9), int(times[1] * 1e9))
        self._one(self._owner(p), "utimens", {"path": p, "atime_ns": ns[0], "mtime_ns": ns[1]})

    def chmod(self, path, mode: int, *, follow_symlinks: bool = True) -> None:
        p, rec = self._record(*self._norm_dir_follow(path, follow_symlinks))
        if _stat.S_ISLNK(rec["mode"]):
            raise _err(errno.EOPNOTSUPP, p)  # as Linux: a link's own mode is fixed
        self._one(self._owner(p), "setattr", {"path": p, "mode": mode & 0o7777})

    def chown(self, path, uid: int, gid: int, *, follow_symlinks: bool = True) -> None:
        """uid/gid -1: unchanged (os.chown's convention)."""
        p, _ = self._record(*self._norm_dir_follow(path, follow_symlinks))
        args: dict[str, Any] = {"path": p}
        if uid != -1:
            args["uid"] = uid
        if gid != -1:
            args["gid"] = gid
        self._one(self._owner(p), "setattr", args)

    def statfs(self) -> dict[str, int]:
        """Totals over all daemons."""
        replies = self._many([Call(i, "statfs") for i in range(self.n)])
        out: dict[str, int] = {}
        for r in replies:
            for k in ("total_bytes", "free_bytes", "avail_bytes", "files"):
                out[k] = out.get(k, 0) + r.result.get(k, 0)
        out["chunk_size"] = self.chunk_size
        out["name_max"] = replies[0].result.get("name_max", protocol.MAX_NAME_BYTES)
        return out

    # ------------------------------------------------------------ descriptors

    def open(self, path, flags: int = os.O_RDONLY, mode: int = 0o666) -> int:
        p, must_dir = self._norm_dir(path)
        acc = flags & os.O_ACCMODE
        if acc not in (os.O_RDONLY, os.O_WRONLY, os.O_RDWR):
            raise _err(errno.EINVAL, p)
        if must_dir:
            if flags & os.O_CREAT:
                raise _err(errno.EISDIR, p)  # "name/" can only be a directory
            flags |= _O_DIRECTORY
        created = False
        for _ in range(MAX_SYMLINK_HOPS):
            if flags & os.O_CREAT:
                rec, created = self._create(p, _stat.S_IFREG | (mode & 0o7777 & ~self.umask),
                                            exclusive=bool(flags & os.O_EXCL))
            else:
                rec = self._stat_or_missing(p)
            if not _stat.S_ISLNK(rec["mode"]):
                break
            if flags & _O_NOFOLLOW:
                raise _err(errno.ELOOP, p)
            p = self._link_target(p, rec["target"])
        else:
            raise _err(errno.ELOOP, p)
        is_dir = _stat.S_ISDIR(rec["mode"])
        if is_dir and (acc != os.O_RDONLY or flags & (os.O_TRUNC | os.O_CREAT)):
            raise _err(errno.EISDIR, p)
        if not is_dir and flags & _O_DIRECTORY:
            raise _err(errno.ENOTDIR, p)
        if flags & os.O_TRUNC and acc != os.O_RDONLY and not created and rec.get("size", 0) > 0:
            self._truncate(p, rec, 0)
        with self._lock:
            fd = self._next_fd
            self._next_fd += 1
            self._fds[fd] = _OpenFile(p, flags, rec.get("data_key", ""), is_dir, cap=rec.get("cap", ""))
        return fd

    def creat(self, path, mode: int = 0o666) -> int:
        return self.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)

    def _file(self, fd: int) -> _OpenFile:
        f = self._fds.get(fd)
        if f is None:
            raise _err(errno.EBADF, f"descriptor {fd}")
        return f

    def close(self, fd: int) -> None:
        with self._lock:
            if self._fds.pop(fd, None) is None:
                raise _err(errno.EBADF, f"descriptor {fd}")

    def fstat(self, fd: int) -> os.stat_result:
        f = self._file(fd)
        p, rec = self._record(f.path, follow=False)   # never from the stat cache
        return stat_result(rec, self.chunk_size, p)

    def ftruncate(self, fd: int, length: int) -> None:
        f = self._file(fd)
        if not f.writable:
            raise _err(errno.EINVAL, f"descriptor {fd} is not open for writing")
        self._truncate(f.path, self.stat_record(f.path, follow_symlinks=False), length, f.cap)

    def fsync(self, fd: int) -> None:
        """Every daemon fsyncs this file's chunks and flushes its metadata."""
        f = self._file(fd)
        args = {"data_key": f.data_key, **({"cap": f.cap} if f.cap else {})} if f.data_key else {}
        self._many([Call(i, "fsync", args) for i in range(self.n)])

    fdatasync = fsync

    def lseek(self, fd: int, offset: int, whence: int = os.SEEK_SET) -> int:
        f = self._file(fd)
        if whence == os.SEEK_SET:
            base = 0
        elif whence == os.SEEK_CUR:
            base = f.pos
        elif whence == os.SEEK_END:
            base = self.stat_record(f.path, follow_symlinks=False).get("size", 0)
        else:
            raise _err(errno.EINVAL, f"whence {whence}")
        if not 0 <= base + offset <= protocol.MAX_FILE_SIZE:
            raise _err(errno.EINVAL, f"seek to {base + offset}")
        f.pos = base + offset
        return f.pos

    def write(self, fd: int, data) -> int:
        f = self._file(fd)
        if not f.writable:
            raise _err(errno.EBADF, f"descriptor {fd} is not open for writing")
        if f.flags & os.O_APPEND:
            n = self._append(f, data)
        else:
            n = self._pwrite(f, data, f.pos)
            f.pos += n
        return n

    def pwrite(self, fd: int, data, offset: int) -> int:
        f = self._file(fd)
        if not f.writable:
            raise _err(errno.EBADF, f"descriptor {fd} is not open for writing")
        if offset < 0:
            raise _err(errno.EINVAL, f"offset {offset}")
        return self._pwrite(f, data, offset)

    def _pwrite(self, f: _OpenFile, data, offset: int) -> int:
        view = memoryview(data).cast("B")
        if not view.nbytes:
            return 0
        if f.is_dir:
            raise _err(errno.EISDIR, f.path)
        if offset + view.nbytes > protocol.MAX_FILE_SIZE:
            raise _err(errno.EFBIG, f"{f.path}: write end {offset + view.nbytes}")
        # Data first, size second: a failed write never leaves a size that
        # covers bytes no daemon holds, and a write is acknowledged only
        # once both are done (docs/protocol.md, update_size). When the whole
        # write goes to the file's metadata owner (always with one daemon),
        # the size update rides in the same request and the daemon applies
        # it after the chunks: one RPC (docs/performance.md).
        calls = chunkio.write_calls(f.data_key, view, offset, self.chunk_size, self.n, f.cap)
        owner = self._owner(f.path)
        if len(calls) == 1 and calls[0].target == owner:
            calls[0].args.update(size_path=f.path, size_offset=offset, size_count=view.nbytes)
            self._many(calls)
            return view.nbytes
        self._many(calls)
        self._one(owner, "update_size", {"path": f.path, "offset": offset, "count": view.nbytes,
                                         **({"cap": f.cap} if f.cap else {})})
        return view.nbytes

    def _append(self, f: _OpenFile, data) -> int:
        view = memoryview(data).cast("B")
        if not view.nbytes:
            return 0
        # The metadata owner hands out the offset atomically, so concurrent
        # appenders (other clients too) get disjoint ranges.
        res = self._one(self._owner(f.path), "update_size",
                        {"path": f.path, "offset": 0, "count": view.nbytes, "append": True,
                         **({"cap": f.cap} if f.cap else {})}).result
        self._many(chunkio.write_calls(f.data_key, view, res["offset"], self.chunk_size, self.n, f.cap))
        f.pos = res["offset"] + view.nbytes
        return view.nbytes

    def read(self, fd: int, count: int) -> bytes:
        f = self._file(fd)
        data = self._pread(f, count, f.pos)
        f.pos += len(data)
        return data

    def pread(self, fd: int, count: int, offset: int) -> bytes:
        f = self._file(fd)
        if offset < 0:
            raise _err(errno.EINVAL, f"offset {offset}")
        return self._pread(f, count, offset)

    def _pread(self, f: _OpenFile, count: int, offset: int) -> bytes:
        if not f.readable:
            raise _err(errno.EBADF, f"descriptor of {f.path} is not open for reading")
        if f.is_dir:
            raise _err(errno.EISDIR, f.path)
        if count < 0:
            raise _err(errno.EINVAL, f"count {count}")
        if offset > protocol.MAX_FILE_SIZE:
            raise _err(errno.EINVAL, f"{f.path}: offset {offset}")
        owner = self._owner(f.path)
        if count:
            data = self._pread_sized(f, count, offset, owner)
            if data is not None:
                return data
        # The size decides where EOF is; daemons then zero-fill holes below it.
        # By the open file's data key, as fstat: the daemon answers from the
        # record itself (no parent lookup: the file is already open).
        size = self._one(owner, "stat", {"path": f.path, "data_key": f.data_key}).result["stat"]["size"]
        count = min(count, size - offset)
        if count <= 0:
            return b""
        plan = chunkio.read_plan(f.data_key, offset, count, size, self.chunk_size, self.n, f.cap)
        return plan.assemble(self._many(plan.calls))

    def _pread_sized(self, f: _OpenFile, count: int, offset: int, owner: int) -> bytes | None:
        """The read in one RPC when every chunk it touches lives on the
        file's metadata owner (always with one daemon) and fits one request:
        read_chunks with ``size_path``, so that daemon looks the size up
        itself, before it reads the chunks, and clips the frames to it
        (docs/protocol.md read_chunks). None: not possible here, or the
        daemon did not do it (an older one ignores size_path): the caller
        takes the stat + read_chunks path."""
        count = min(count, protocol.MAX_FILE_SIZE + 1 - offset)  # no chunk past the largest file
        if self.n != 1:
            # cheap refusal first (usually at the first chunk), before a plan
            if count > chunkio.MAX_PAYLOAD:
                return None
            for index, _off, _len in distribution.chunk_ranges(offset, count, self.chunk_size):
                if distribution.chunk_owner(f.data_key, index, self.n) != owner:
                    return None
        calls = chunkio.read_plan(f.data_key, offset, count, None, self.chunk_size, self.n, f.cap,
                                  size_path=f.path).calls
        if len(calls) != 1 or calls[0].target != owner:
            return None
        args = calls[0].args
        reply = self._one(owner, "read_chunks", args)
        size = reply.result.get("size")
        if type(size) is not int or size < 0:
            return None
        frames = reply.data
        chunks = args["chunks"]
        cs = self.chunk_size
        # each frame exactly its chunk range clipped at that size: never a
        # gap or a shifted byte from a daemon that got it wrong
        if len(frames) != len(chunks) or any(
                len(fr) != max(0, min(length, size - (index * cs + off)))
                for fr, (index, off, length) in zip(frames, chunks)):
            raise _err(errno.EIO, f"{f.path}: {self.member_name(owner)} sent frames of "
                                  f"{[len(fr) for fr in frames][:8]} bytes for a read at {offset} of a "
                                  f"file of {size} bytes")
        return bytes(frames[0]) if len(frames) == 1 else b"".join(frames)

    # ------------------------------------------------------------ convenience

    def write_file(self, path, data, mode: int = 0o666) -> None:
        fd = self.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
        try:
            self.pwrite(fd, data, 0)
        finally:
            self.close(fd)

    def read_file(self, path) -> bytes:
        fd = self.open(path, os.O_RDONLY)
        try:
            out = []
            while chunk := self.read(fd, 64 * protocol.MiB):
                out.append(chunk)
            return b"".join(out)
        finally:
            self.close(fd)

    def status(self, timeout: float | None = None) -> list[dict[str, Any] | OSError]:
        """Each daemon's status map (plus ``rtt_s``, the measured round trip),
        or the OSError saying it did not answer."""
        with self._lock:
            if os.getpid() != self._pid:
                self._connect()
            pings = self._rpc.call_each([Call(i, "ping") for i in range(self.n)], timeout_s=timeout)
            rtts = list(self._rpc.last_rtts)
            up = [i for i, r in enumerate(pings) if not isinstance(r, OSError)]
            replies: list[Any] = list(pings)
            for i, r in zip(up, self._rpc.call_each([Call(i, "status") for i in up], timeout_s=timeout)):
                replies[i] = r
        out: list[dict[str, Any] | OSError] = []
        for addr, r, rtt in zip(self.addresses, replies, rtts):
            if isinstance(r, OSError):
                out.append(r)
            elif r.status:
                out.append(OSError(r.status, f"{addr}: {r.message}"))
            else:
                out.append({**r.result, "rtt_s": rtt})
        return out

    def op_totals(self) -> dict[str, int]:
        """Every daemon's op counters summed (how many requests of each op the
        cluster served); a member that does not answer raises its OSError,
        since a partial sum would under-count."""
        total: dict[str, int] = {}
        for st in self.status():
            if isinstance(st, OSError):
                raise st
            for k, v in st["ops"].items():
                total[k] = total.get(k, 0) + v
        return total

"""Metadata of the paths this daemon owns, in LMDB.

Key layout: ``blake2b-128(parent path) || name`` (UTF-8). A plain path key
would break LMDB's 511-byte key limit for paths up to 4096 bytes; keying by
(parent digest, name) stays under 16 + 255 bytes and keeps a directory's
children contiguous and sorted by name bytes, so a readdir page is one
cursor range scan with no descendants to skip. The root "/" is stored under
the digest of "" with an empty name. Values are msgpack'd stat records
(docs/protocol.md 4.1).

Every mutation is one LMDB write transaction, so update_size (append) and
rename are atomic; with ``sync`` each commit reaches the disk before the
reply is sent.
"""
from __future__ import annotations

import errno
import hashlib
import os
import stat as st
import threading
import time
from pathlib import Path
from typing import Any

import lmdb
import msgpack

from gkfs_client import protocol

DIGEST = 16
# The root belongs to the daemon's owner (the cluster's owner); others may
# create in it only after the owner opens it (chmod 1777 /, or mkdir + chown).
ROOT_MODE = st.S_IFDIR | 0o755


def _err(code: int, msg: str) -> OSError:
    return OSError(code, msg)


def _digest(path: str) -> bytes:
    return hashlib.blake2b(path.encode("utf-8"), digest_size=DIGEST).digest()


# Digests of the directories whose entries were looked up last: every
# request hashes its path's parent (and a permission check every directory
# above it), mostly the same few. Bounded; cleared when full.
_DIR_DIGESTS: dict[str, bytes] = {}
_DIR_DIGESTS_MAX = 4096


def _dir_digest(path: str) -> bytes:
    d = _DIR_DIGESTS.get(path)
    if d is None:
        d = _digest(path)
        if len(_DIR_DIGESTS) >= _DIR_DIGESTS_MAX:
            _DIR_DIGESTS.clear()
        _DIR_DIGESTS[path] = d
    return d


def key_of(path: str) -> bytes:
    """The LMDB key of ``path``'s record: its parent's digest + its name
    (parent_and_name and _dir_digest spelled out: three of these per
    request, two function calls each cost more than the work)."""
    if path == "/":
        return _dir_digest("")
    head, _, name = path.rpartition("/")
    parent = head or "/"
    d = _DIR_DIGESTS.get(parent)
    if d is None:
        d = _dir_digest(parent)
    return d + name.encode("utf-8")


def dir_prefix(path: str) -> bytes:
    return _digest(path)


def _now() -> int:
    return time.time_ns()


_PACKERS = threading.local()


def _pack(rec: dict[str, Any]) -> bytes:
    """msgpack.packb(rec, use_bin_type=True), with this thread's packer
    (packb builds a new one per call, about half the cost)."""
    try:
        packer = _PACKERS.packer
    except AttributeError:
        packer = _PACKERS.packer = msgpack.Packer(use_bin_type=True)
    return packer.pack(rec)


_unpackb = msgpack.unpackb


def _unpack(raw: bytes) -> dict[str, Any]:
    return _unpackb(raw, raw=False)


def new_record(mode: int, uid: int, gid: int, *, size: int = 0, target: str | None = None) -> dict[str, Any]:
    now = _now()
    rec = {
        "mode": mode, "size": size, "nlink": 2 if st.S_ISDIR(mode) else 1, "uid": uid, "gid": gid,
        "atime_ns": now, "mtime_ns": now, "ctime_ns": now,
        # 16 random bytes: unique per file, so a new file at a renamed-away
        # path never shares chunk names with the old one.
        "data_key": os.urandom(16).hex(),
    }
    if target is not None:
        rec["target"] = target
    return rec


def root_record() -> dict[str, Any]:
    return {"mode": ROOT_MODE, "size": 0, "nlink": 2, "uid": os.geteuid(), "gid": os.getegid(),
            "atime_ns": 0, "mtime_ns": 0, "ctime_ns": 0, "data_key": "root"}


class MetadataStore:
    def __init__(self, directory: Path, *, sync: bool = True, map_size: int = 1 << 36):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        # map_size is address space, not disk: 64 GiB of metadata at most.
        self.env = lmdb.open(str(directory), map_size=map_size, subdir=True, sync=sync, metasync=sync,
                             max_readers=256, readahead=False, max_dbs=2)
        # Files removed while open somewhere (holds.py), by data key; the
        # named database is itself one record of the main one.
        self.orphans = self.env.open_db(b"orphans")
        with self.env.begin() as txn:
            self._n_orphans = txn.stat(self.orphans)["entries"]
        self._write_lock = threading.Lock()
        self._root = root_record()  # "/" until it has a record of its own (the owner's ids: fixed)

    def _write(self) -> "_WriteTxn":
        """``with self._write() as txn``: one write transaction, committed
        when the block ends normally, aborted when it raises. LMDB allows
        one write transaction at a time and py-lmdb refuses a second one
        from another thread instead of waiting: serialised here."""
        return _WriteTxn(self)

    def _store_error(self, exc: Exception) -> OSError:
        if isinstance(exc, lmdb.MapFullError):
            return _err(errno.ENOSPC, "metadata store full (LMDB map size reached)")
        # LMDB reports a failed write of its pages as EIO whatever the
        # cause; a file system without room is ENOSPC for the caller.
        if self._disk_full():
            return _err(errno.ENOSPC, f"no space left for metadata in {self.directory}")
        return _err(errno.EIO, f"metadata store: {exc}")

    def _disk_full(self) -> bool:
        try:
            fs = os.statvfs(self.directory)
        except OSError:
            return False
        # A commit writes whole pages, and LMDB may need a few of them.
        return fs.f_bavail * fs.f_frsize < 1024 * 1024 or fs.f_favail == 0

    def close(self) -> None:
        self.env.close()

    def sync(self) -> None:
        self.env.sync(True)

    def count(self) -> int:
        return max(0, self.env.stat()["entries"] - 1)   # minus the orphans database's own record

    def orphan_keys(self, limit: int = 65536) -> list[str]:
        """Data keys of open-unlinked files (their chunks are not orphans)."""
        keys = []
        with self.env.begin() as txn:
            for key, _raw in txn.cursor(db=self.orphans):
                keys.append(key.decode("utf-8"))
                if len(keys) >= limit:
                    break
        return keys

    def orphan_count(self) -> int:
        return self._n_orphans

    # -- reads ------------------------------------------------------------
    def get(self, path: str) -> dict[str, Any] | None:
        with self.env.begin() as txn:
            raw = txn.get(key_of(path))
        if raw is None:
            return dict(self._root) if path == "/" else None
        return _unpack(raw)

    def get_many(self, paths: list[str]) -> list[dict[str, Any] | None]:
        """get() of each path, all read in one transaction."""
        with self.env.begin() as txn:
            get = txn.get
            raws = [get(key_of(p)) for p in paths]
        return [_unpackb(raw, raw=False) if raw is not None else dict(self._root) if p == "/" else None
                for p, raw in zip(paths, raws)]

    def stat(self, path: str, data_key: str | None = None) -> dict[str, Any]:
        """With ``data_key`` (an open file's): the record at ``path`` if it
        still has that key, else the orphan of that key, else ENOENT."""
        if data_key is not None:
            with self.env.begin() as txn:
                rec, _where = self._open_record(txn, path, data_key)
            return rec
        rec = self.get(path)
        if rec is None:
            raise _err(errno.ENOENT, f"no such file or directory: {path}")
        return rec

    def stat_hold(self, path: str, hold) -> dict[str, Any]:
        """stat that registers an open of a regular file (atomically with
        respect to remove: both run under the write lock)."""
        with self._write_lock:
            rec = self.stat(path)
            _take(hold, rec)
            return rec

    def _open_record(self, txn, path: str, data_key: str) -> tuple[dict[str, Any], Any]:
        raw = txn.get(key_of(path))
        if raw is not None:
            rec = _unpack(raw)
            if rec.get("data_key") == data_key:
                return rec, path
        raw = txn.get(data_key.encode("utf-8"), db=self.orphans)
        if raw is not None:
            return _unpack(raw), None
        raise _err(errno.ENOENT, f"no such file or directory: {path} (data key {data_key})")

    def _store_open(self, txn, where, rec: dict[str, Any]) -> None:
        if where is None:
            txn.put(rec["data_key"].encode("utf-8"), _pack(rec), db=self.orphans)
        else:
            self._put(txn, where, rec)

    def _orphan_if_held(self, txn, rec: dict[str, Any] | None, holds) -> bool:
        """A regular file about to lose its name while open: keep its record
        as an orphan (nlink 0) so its data stays."""
        if rec is None or holds is None or not st.S_ISREG(rec["mode"]) or not holds.held(rec["data_key"]):
            return False
        orphan = dict(rec, nlink=0, ctime_ns=_now())
        txn.put(rec["data_key"].encode("utf-8"), _pack(orphan), db=self.orphans)
        self._n_orphans += 1
        return True

    def reclaimable(self, holds) -> list[str]:
        """Orphans nobody holds any more (closed, or the holder died): their
        records go; the caller's client removes their chunks."""
        if not self._n_orphans:
            return []
        keys = []
        with self._write() as txn:
            cur = txn.cursor(db=self.orphans)
            for key, _raw in cur:
                if not holds.held(key.decode("utf-8")):
                    keys.append(key)
            for key in keys:
                txn.delete(key, db=self.orphans)
            self._n_orphans -= len(keys)
        return [k.decode("utf-8") for k in keys]

    def dirents(self, path: str, start_after: str, limit: int,
                records: list | None = None, budget: int = 0) -> tuple[list[list[Any]], bool]:
        """A page of ``path``'s children held here.  With ``records`` (a
        list), each entry's stat record is appended to it as a row
        (protocol.DIRENT_STAT_FIELDS), and the page ends early (``more``)
        once the names and records passed ``budget`` bytes, so it always
        fits a frame."""
        prefix = dir_prefix(path)
        used = 0
        start = prefix + start_after.encode("utf-8") + (b"\x00" if start_after else b"")
        entries: list[list[Any]] = []
        more = False
        with self.env.begin() as txn:
            cur = txn.cursor()
            if not cur.set_range(start):
                return entries, False
            for key, raw in cur:
                if not key.startswith(prefix):
                    break
                name = key[len(prefix):]
                if not name:  # the root's own record lives at digest("")+"": never its own child
                    continue
                if len(entries) == limit:
                    more = True
                    break
                if records is not None and entries and used > budget:
                    more = True
                    break
                rec = _unpack(raw)
                entries.append([name.decode("utf-8"), rec["mode"], rec["size"]])
                if records is not None:
                    records.append([rec["mode"], rec["size"], rec.get("nlink", 1), rec.get("uid", 0),
                                    rec.get("gid", 0), rec.get("atime_ns", 0), rec.get("mtime_ns", 0),
                                    rec.get("ctime_ns", 0), rec.get("data_key", "")])
                    used += len(name) + 128   # the entry and its row, over-estimated
        return entries, more

    # -- writes -----------------------------------------------------------
    def _put(self, txn, path: str, rec: dict[str, Any]) -> None:
        txn.put(key_of(path), _pack(rec))

    def _get(self, txn, path: str) -> dict[str, Any] | None:
        raw = txn.get(key_of(path))
        return None if raw is None else _unpack(raw)

    @staticmethod
    def _has_children(txn, path: str) -> bool:
        """Whether this daemon holds any entry of directory ``path`` (others
        may too: the client asks every daemon; this check only keeps a
        daemon from orphaning the entries it holds itself)."""
        prefix = dir_prefix(path)
        cur = txn.cursor()
        return cur.set_range(prefix) and cur.key().startswith(prefix)

    def create(self, path: str, mode: int, exclusive: bool, uid: int, gid: int,
               hold=None) -> tuple[dict[str, Any], bool]:
        if mode >> 16:
            raise _err(errno.EINVAL, f"mode {mode:o} has bits beyond st_mode")
        ftype = st.S_IFMT(mode)
        if ftype == 0:
            mode |= st.S_IFREG
        elif ftype not in (st.S_IFREG, st.S_IFDIR):
            raise _err(errno.EINVAL, f"create makes files and directories only (mode {mode:o}); use symlink")
        if path == "/":
            raise _err(errno.EEXIST, "/ exists")
        with self._write() as txn:
            old = self._get(txn, path)
            if old is not None:
                if exclusive:
                    raise _err(errno.EEXIST, f"file exists: {path}")
                _take(hold, old)
                return old, False
            rec = new_record(mode, uid, gid)
            self._put(txn, path, rec)
            _take(hold, rec)
            return rec, True

    def symlink(self, path: str, target: str, uid: int, gid: int) -> dict[str, Any]:
        if path == "/":
            raise _err(errno.EEXIST, "/ exists")
        with self._write() as txn:
            if self._get(txn, path) is not None:
                raise _err(errno.EEXIST, f"file exists: {path}")
            rec = new_record(st.S_IFLNK | 0o777, uid, gid, size=len(target.encode("utf-8")), target=target)
            self._put(txn, path, rec)
            return rec

    def remove(self, path: str, rmdir: bool | None, data_key: str | None,
               holds=None, check=None) -> tuple[dict[str, Any], bool]:
        if path == "/":
            raise _err(errno.EBUSY, "cannot remove /")
        with self._write() as txn:
            rec = self._get(txn, path)
            if rec is None:
                raise _err(errno.ENOENT, f"no such file or directory: {path}")
            is_dir = st.S_ISDIR(rec["mode"])
            if rmdir is True and not is_dir:
                raise _err(errno.ENOTDIR, f"not a directory: {path}")
            if rmdir is False and is_dir:
                raise _err(errno.EISDIR, f"is a directory: {path}")
            if data_key is not None and rec.get("data_key") != data_key:
                raise _err(errno.ENOENT, f"{path} was replaced meanwhile (data key differs)")
            if check is not None:
                check(rec)
            if is_dir and self._has_children(txn, path):
                raise _err(errno.ENOTEMPTY, f"directory not empty: {path}")
            # with data_key this is a cross-daemon rename's second step: the
            # file lives on under its new name, nothing to keep here
            held = data_key is None and self._orphan_if_held(txn, rec, holds)
            txn.delete(key_of(path))
            return rec, held

    def _any_record(self, txn, path: str) -> dict[str, Any]:
        """The record of ``path`` for an in-place attribute change; "/" has an
        implicit record until its first change stores one."""
        rec = self._get(txn, path)
        if rec is None:
            if path != "/":
                raise _err(errno.ENOENT, f"no such file or directory: {path}")
            rec = root_record()
        return rec

    def _file_record(self, txn, path: str) -> dict[str, Any]:
        rec = self._get(txn, path)
        if rec is None:
            if path == "/":
                raise _err(errno.EISDIR, "is a directory: /")
            raise _err(errno.ENOENT, f"no such file or directory: {path}")
        if st.S_ISDIR(rec["mode"]):
            raise _err(errno.EISDIR, f"is a directory: {path}")
        return rec

    def update_size(self, path: str, offset: int, count: int, append: bool,
                    data_key: str | None = None, check=None) -> tuple[int, int]:
        with self._write() as txn:
            rec, where = self._file_or_open(txn, path, data_key)
            if check is not None:
                check(rec)
            if append:
                offset = rec["size"]
                rec["size"] = offset + count
            else:
                rec["size"] = max(rec["size"], offset + count)
            if count:
                rec["mtime_ns"] = rec["ctime_ns"] = _now()
            self._store_open(txn, where, rec)
            return offset, rec["size"]

    def truncate(self, path: str, size: int, data_key: str | None = None, check=None) -> dict[str, Any]:
        with self._write() as txn:
            rec, where = self._file_or_open(txn, path, data_key)
            if check is not None:
                check(rec)
            rec["size"] = size
            rec["mtime_ns"] = rec["ctime_ns"] = _now()
            self._store_open(txn, where, rec)
            return rec

    def _file_or_open(self, txn, path: str, data_key: str | None):
        if data_key is None:
            return self._file_record(txn, path), path
        rec, where = self._open_record(txn, path, data_key)
        if st.S_ISDIR(rec["mode"]):
            raise _err(errno.EISDIR, f"is a directory: {path}")
        return rec, where

    def utimens(self, path: str, atime_ns: int | None, mtime_ns: int | None, check=None) -> dict[str, Any]:
        with self._write() as txn:
            rec = self._any_record(txn, path)
            if check is not None:
                check(rec)
            if atime_ns is not None:
                rec["atime_ns"] = atime_ns
            if mtime_ns is not None:
                rec["mtime_ns"] = mtime_ns
            rec["ctime_ns"] = _now()
            self._put(txn, path, rec)
            return rec

    def setattr(self, path: str, mode: int | None, uid: int | None, gid: int | None,
                policy=None) -> dict[str, Any]:
        """chmod/chown in place: one write txn, so a concurrent update_size
        is never lost and a directory's children stay where they are."""
        if mode is not None and mode & ~0o7777:
            raise _err(errno.EINVAL, f"setattr mode {mode:#o} has bits outside 0o7777")
        for name, v in (("uid", uid), ("gid", gid)):
            if v is not None and v > 0xFFFFFFFE:
                raise _err(errno.EINVAL, f"setattr {name} {v} out of range")
        with self._write() as txn:
            rec = self._any_record(txn, path)
            if policy is not None:  # permission rules, atomic with the change
                mode, uid, gid = policy(rec, mode, uid, gid)
            if mode is not None:
                rec["mode"] = st.S_IFMT(rec["mode"]) | mode
            if uid is not None:
                rec["uid"] = uid
            if gid is not None:
                rec["gid"] = gid
            rec["ctime_ns"] = _now()
            self._put(txn, path, rec)
            return rec

    @staticmethod
    def _check_replace(src: dict[str, Any], dst: dict[str, Any] | None, new: str) -> None:
        if dst is None:
            return
        if st.S_ISDIR(dst["mode"]) and not st.S_ISDIR(src["mode"]):
            raise _err(errno.EISDIR, f"cannot replace directory {new} with a non-directory")
        if st.S_ISDIR(src["mode"]) and not st.S_ISDIR(dst["mode"]):
            raise _err(errno.ENOTDIR, f"cannot replace non-directory {new} with a directory")

    def rename(self, old: str, new: str, holds=None,
               check=None) -> tuple[dict[str, Any], dict[str, Any] | None, bool]:
        if old == "/" or new == "/":
            raise _err(errno.EBUSY, "cannot rename /")
        if new.startswith(old + "/"):
            raise _err(errno.EINVAL, f"cannot move {old} inside itself ({new})")
        with self._write() as txn:
            rec = self._get(txn, old)
            if rec is None:
                raise _err(errno.ENOENT, f"no such file or directory: {old}")
            if check is not None:
                check(rec, self._get(txn, new))
            if old == new:
                return rec, None, False
            dst = self._get(txn, new)
            self._check_replace(rec, dst, new)
            if st.S_ISDIR(rec["mode"]) and self._has_children(txn, old):
                raise _err(errno.EXDEV, f"cannot rename directory {old} with entries (copy and remove it)")
            if dst is not None and st.S_ISDIR(dst["mode"]) and self._has_children(txn, new):
                raise _err(errno.ENOTEMPTY, f"directory not empty: {new}")
            held = dst is not None and dst.get("data_key") != rec.get("data_key") and \
                self._orphan_if_held(txn, dst, holds)
            rec["ctime_ns"] = _now()
            txn.delete(key_of(old))
            self._put(txn, new, rec)
            return rec, dst, held

    def insert(self, path: str, record: dict[str, Any], replace: bool,
               holds=None, check=None) -> tuple[dict[str, Any] | None, bool]:
        if path == "/":
            raise _err(errno.EBUSY, "cannot replace /")
        rec = _validated_record(record)
        with self._write() as txn:
            dst = self._get(txn, path)
            if dst is not None and not replace:
                raise _err(errno.EEXIST, f"file exists: {path}")
            if check is not None:
                check(dst)
            self._check_replace(rec, dst, path)
            if dst is not None and st.S_ISDIR(dst["mode"]) and self._has_children(txn, path):
                raise _err(errno.ENOTEMPTY, f"directory not empty: {path}")
            held = dst is not None and dst.get("data_key") != rec.get("data_key") and \
                self._orphan_if_held(txn, dst, holds)
            rec["ctime_ns"] = _now()
            self._put(txn, path, rec)
            return dst, held


class _WriteTxn:
    """MetadataStore._write's context manager (a class: a generator-based
    one costs more than the LMDB transaction it wraps)."""

    __slots__ = ("store", "txn")

    def __init__(self, store: MetadataStore):
        self.store = store
        self.txn = None

    def __enter__(self) -> Any:
        store = self.store
        store._write_lock.acquire()
        try:
            self.txn = store.env.begin(write=True)
        except lmdb.Error as exc:
            store._write_lock.release()
            raise store._store_error(exc) from None
        except BaseException:
            store._write_lock.release()
            raise
        return self.txn

    def __exit__(self, exc_type, exc, tb) -> bool:
        store, txn = self.store, self.txn
        self.txn = None
        try:
            if exc_type is None:
                txn.commit()
            else:
                txn.abort()
        except lmdb.Error as err:
            raise store._store_error(err) from None
        finally:
            store._write_lock.release()
        if exc_type is not None and issubclass(exc_type, lmdb.Error):
            raise store._store_error(exc) from None
        return False


def _take(hold, rec: dict[str, Any] | None) -> None:
    """Registers an open (hold = (holds, owner, connection)) of a regular file."""
    if hold is not None and rec is not None and st.S_ISREG(rec["mode"]):
        holds, owner, conn = hold
        holds.take(rec["data_key"], owner, conn)


_RECORD_UINTS = ("mode", "size", "nlink", "uid", "gid", "atime_ns", "mtime_ns", "ctime_ns")
# "cap": the data capability a stat reply carries (ignored, never stored).
_RECORD_KEYS = frozenset(_RECORD_UINTS) | {"data_key", "target", "cap"}


def _validated_record(record: dict[str, Any]) -> dict[str, Any]:
    """A record sent by a client (insert) must be one create/symlink could
    have made: the same limits, the same errnos."""
    unknown = [k for k in record if k not in _RECORD_KEYS]
    if unknown:
        raise _err(errno.EINVAL, f"record has unknown field(s) {protocol._short(unknown)}")
    rec: dict[str, Any] = {}
    for k in _RECORD_UINTS:
        v = record.get(k)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**64:
            raise _err(errno.EINVAL, f"record field '{k}' must be an unsigned integer")
        rec[k] = v
    if rec["mode"] >= 1 << 16:
        raise _err(errno.EINVAL, f"record 'mode' {rec['mode']:#o} has bits above the 16 of st_mode")
    if st.S_IFMT(rec["mode"]) not in (st.S_IFREG, st.S_IFDIR, st.S_IFLNK):
        raise _err(errno.EINVAL, "record 'mode' has an unknown file type")
    for k in ("uid", "gid"):
        if rec[k] > 0xFFFFFFFE:
            raise _err(errno.EINVAL, f"record '{k}' {rec[k]} above 4294967294")
    if rec["size"] > protocol.MAX_FILE_SIZE:
        raise _err(errno.EFBIG, f"record 'size' past the largest file size ({protocol.MAX_FILE_SIZE})")
    key = record.get("data_key")
    if not isinstance(key, str) or not key or "\x00" in key or len(key.encode("utf-8", "replace")) > protocol.MAX_PATH_BYTES:
        raise _err(errno.EINVAL, f"record 'data_key' must be a non-empty string of at most "
                                 f"{protocol.MAX_PATH_BYTES} bytes without NUL")
    rec["data_key"] = key
    if st.S_ISLNK(rec["mode"]):
        target = record.get("target")
        if not isinstance(target, str) or not target or "\x00" in target:
            raise _err(errno.EINVAL, "symlink record needs a non-empty 'target' without NUL")
        if len(target.encode("utf-8", "replace")) > protocol.MAX_PATH_BYTES:
            raise _err(errno.ENAMETOOLONG, f"symlink target longer than {protocol.MAX_PATH_BYTES} bytes")
        rec["target"] = target
    return rec

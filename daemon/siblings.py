"""Records of the other members of this node's daemon, read from their LMDB.

A node's daemon runs P member processes (node.py), each owning a slice of
the namespace in its own LMDB. A permission check needs the records of the
directories above a path, which live on another member (N-1)/N of the time
(daemon.peer). When that member is a sibling (a member process of the same
node daemon, on this host), this reads the record from the sibling's LMDB
directly instead of sending it a peer lookup: exactly what the sibling would
do to answer (Server._answer_peer: meta.get on its committed state), without
the round trip and without any of the sibling's CPU. LMDB is made for
readers in other processes (MVCC snapshots, a reader slot each in the
environment's lock file); nothing here ever writes a sibling's store.

Only a sibling known to be alive is read: its root dir's identity names the
same cluster and its id, and its hosts-file entry names this host and a
live pid. Anything else (a sibling that died, restarted elsewhere, or has
no identity yet) answers MISS and the caller sends the peer lookup as
before, so a member that is down still fails the check with EIO.

The supervisor passes its members' root dirs in $GKFS_NODE_ROOTDIRS.
"""
from __future__ import annotations

import json
import os
import select
import socket
import threading
from pathlib import Path
from typing import Any

import lmdb

from gkfs_client import hostsfile

from .metadata import _unpack, key_of, root_record

ENV_NODE_ROOTDIRS = "GKFS_NODE_ROOTDIRS"
MISS = object()


class _Sibling:
    def __init__(self, rootdir: Path, pid: int, env: lmdb.Environment):
        self.rootdir = rootdir
        self.pid = pid
        self.env = env
        # A pidfd names this very process: a pid reused after the sibling
        # exited is never taken for it. Its /proc stat file stays open and
        # is read again in place, so a check is two system calls (one poll,
        # one pread) instead of kill(0) plus an open, read and close.
        self._fd = self._poll = self._stat_fd = None
        # Worker threads check siblings at the same time, and a poll object
        # refuses a second concurrent poll() (RuntimeError); close() from a
        # refresh must not free the fds under a check either (a reused fd
        # number would be polled and read as if it were the sibling's).
        self._lock = threading.Lock()
        try:
            self._fd = os.pidfd_open(pid)
            self._poll = select.poll()
            self._poll.register(self._fd, select.POLLIN)
        except (AttributeError, OSError):
            self._fd = self._poll = None
        if self._fd is not None:
            try:
                self._stat_fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                self._stat_fd = None

    def alive(self) -> bool:
        # The pidfd turns readable only once every thread has exited; the
        # process is a zombie (/proc state Z) a little earlier, and dead for
        # the rest of gkfs (hostsfile.pid_alive) from then on: both count.
        with self._lock:
            if self._poll is None:
                return hostsfile.pid_alive(self.pid)
            if self._poll.poll(0):
                return False
            if self._stat_fd is None:
                return hostsfile.pid_alive(self.pid)
            try:
                # The pidfd (not readable) pins this process, so the stat file
                # opened after it is the sibling's own.
                stat = os.pread(self._stat_fd, 512, 0)
            except OSError:
                return False  # reaped meanwhile
        return stat.rpartition(b")")[2].split(None, 1)[0] not in (b"Z", b"X")

    def close(self) -> None:
        with self._lock:
            for fd in (self._stat_fd, self._fd):
                if fd is not None:
                    os.close(fd)
            self._fd = self._poll = self._stat_fd = None


class SiblingRecords:
    def __init__(self, rootdirs: list[Path], own_rootdir: Path, cluster: str, hosts_path: Path):
        self.rootdirs = [Path(r) for r in rootdirs if Path(r).resolve() != Path(own_rootdir).resolve()]
        self.cluster = cluster
        self.hosts_path = hosts_path
        self.hostname = socket.gethostname()
        self._by_id: dict[int, _Sibling] = {}
        self._ids: dict[Path, int] = {}  # root dir -> member id (its identity)
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, own_rootdir: Path, cluster: str, hosts_path: Path) -> "SiblingRecords | None":
        value = os.environ.get(ENV_NODE_ROOTDIRS, "")
        dirs = [d for d in value.split(os.pathsep) if d]
        return cls([Path(d) for d in dirs], own_rootdir, cluster, hosts_path) if len(dirs) > 1 else None

    def get(self, member: int, path: str) -> Any:
        """The record of ``path`` held by sibling ``member`` (None: no such
        path), or MISS when that member is not a live sibling."""
        sib = self._by_id.get(member)
        if sib is None or not sib.alive():
            sib = self._refresh(member)
            if sib is None:
                return MISS
        try:
            with sib.env.begin() as txn:
                raw = txn.get(key_of(path))
        except lmdb.Error:
            return MISS
        if raw is None:
            return root_record() if path == "/" else None
        return _unpack(raw)

    def _refresh(self, member: int) -> _Sibling | None:
        with self._lock:
            old = self._by_id.pop(member, None)
            if old is not None:
                old.close()
            rootdir = old.rootdir if old else self._rootdir_of(member)
            if rootdir is None:
                return None
            try:
                entry = hostsfile.read_member(self.hosts_path, member)
            except (OSError, hostsfile.HostsFileError):
                return None
            if entry is None or entry.hostname != self.hostname or not hostsfile.pid_alive(entry.pid):
                return None
            if self._identity(rootdir) != member:  # the root dir changed hands meanwhile
                self._ids.pop(rootdir, None)
                return None
            env = old.env if old else _open_reader(rootdir / "metadata")
            if env is None:
                return None
            sib = _Sibling(rootdir, entry.pid, env)
            if not sib.alive():
                sib.close()
                return None
            self._by_id[member] = sib
            return sib

    def _rootdir_of(self, member: int) -> Path | None:
        for d in self.rootdirs:
            if d not in self._ids:
                mid = self._identity(d)
                if mid is not None:
                    self._ids[d] = mid
            if self._ids.get(d) == member:
                return d
        return None

    def _identity(self, rootdir: Path) -> int | None:
        try:
            ident = json.loads((rootdir / "daemon.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(ident, dict) or ident.get("cluster") != self.cluster or not isinstance(ident.get("id"), int):
            return None
        return ident["id"]


def _open_reader(directory: Path) -> lmdb.Environment | None:
    if not (directory / "data.mdb").exists():
        return None
    try:
        # Same map size and reader table as the writer (MetadataStore).
        return lmdb.open(str(directory), readonly=True, lock=True, subdir=True, map_size=1 << 36,
                         max_readers=256, readahead=False, max_dbs=2, create=False)
    except lmdb.Error:
        return None

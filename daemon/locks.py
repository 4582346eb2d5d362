"""Advisory file locks held by the daemon (docs/protocol.md 4.5).

In memory only: a lock lives as long as the connection that took it (the
client's ZeroMQ socket, identified by its ROUTER identity), so a client that
dies or is cut off cannot hold one for ever: the broker probes the
connections that hold locks (server.py) and drops the locks of every one
that is gone.  A daemon restart drops every lock (clients holding one are
not told: documented).

Two lock spaces, as in Linux: ``posix`` (fcntl record locks, process- and
OFD-owned alike, which conflict with each other) and ``flock`` (whole-file,
OFD-owned); a lock never conflicts with one of the same owner.  Ranges are
half-open ``[start, end)``, ``end`` = INF for "to end of file and beyond".
"""
from __future__ import annotations

import errno
import threading
from dataclasses import dataclass

F_RDLCK, F_WRLCK, F_UNLCK = 0, 1, 2
INF = 2**64
SPACES = ("posix", "flock")


@dataclass
class Lock:
    owner: str
    space: str
    type: int
    start: int
    end: int
    pid: int
    conn: bytes

    def as_conflict(self) -> dict:
        return {"type": self.type, "start": self.start,
                "len": 0 if self.end == INF else self.end - self.start,
                "pid": self.pid, "owner": self.owner}


class LockTable:
    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._by_key: dict[str, list[Lock]] = {}

    def set(self, key: str, owner: str, space: str, ltype: int, start: int, length: int,
            pid: int, conn: bytes, test: bool) -> tuple[bool, dict | None]:
        """Take, change or release (F_UNLCK) ``owner``'s lock on a range, or
        only look for a conflict (``test``). Returns (granted, conflict):
        nothing changes when a conflict is returned."""
        if space not in SPACES:
            raise OSError(errno.EINVAL, f"lock space must be one of {SPACES}")
        if ltype not in (F_RDLCK, F_WRLCK, F_UNLCK):
            raise OSError(errno.EINVAL, f"lock type {ltype} is not F_RDLCK, F_WRLCK or F_UNLCK")
        end = INF if length == 0 else start + length
        if end > INF:
            raise OSError(errno.EOVERFLOW, "lock range beyond 2^64")
        with self._mutex:
            held = self._by_key.get(key, [])
            if ltype != F_UNLCK:
                for lk in held:
                    if (lk.space == space and lk.owner != owner and lk.start < end and start < lk.end
                            and (lk.type == F_WRLCK or ltype == F_WRLCK)):
                        return False, lk.as_conflict()
            if test:
                return True, None
            kept: list[Lock] = []
            for lk in held:
                if lk.space != space or lk.owner != owner or lk.end <= start or end <= lk.start:
                    kept.append(lk)
                    continue
                # the owner's own lock overlapping the range: keep what lies outside
                if lk.start < start:
                    kept.append(Lock(lk.owner, space, lk.type, lk.start, start, lk.pid, lk.conn))
                if end < lk.end:
                    kept.append(Lock(lk.owner, space, lk.type, end, lk.end, lk.pid, lk.conn))
            if ltype != F_UNLCK:
                kept.append(Lock(owner, space, ltype, start, end, pid, conn))
            if kept:
                self._by_key[key] = kept
            else:
                self._by_key.pop(key, None)
            return True, None

    def release_owner(self, owner: str, key: str | None) -> int:
        """Every lock of ``owner`` (on ``key`` only when given): close()."""
        with self._mutex:
            return self._drop(lambda k, lk: lk.owner == owner and (key is None or k == key))

    def connections(self) -> list[bytes]:
        with self._mutex:
            return list({lk.conn for locks in self._by_key.values() for lk in locks})

    def drop_connection(self, conn: bytes) -> int:
        """The client behind ``conn`` is gone: its locks go with it."""
        with self._mutex:
            return self._drop(lambda k, lk: lk.conn == conn)

    def count(self) -> int:
        with self._mutex:
            return sum(len(v) for v in self._by_key.values())

    def _drop(self, match) -> int:
        n = 0
        for key in list(self._by_key):
            locks = self._by_key[key]
            kept = [lk for lk in locks if not match(key, lk)]
            n += len(locks) - len(kept)
            if kept:
                self._by_key[key] = kept
            else:
                del self._by_key[key]
        return n

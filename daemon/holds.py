"""Open files registered with their metadata owner (docs/protocol.md 4.6).

A client opening a regular file asks its metadata owner to note the open
(a *hold*, by an owner id: the preload uses one per process). A file
removed (unlink, or replaced by rename) while held keeps its record as an
*orphan* (metadata.py) and its chunks, until its last hold is released
(close) or dropped: a hold goes with the connection that took it, like a
lock (the broker probes them), so a dead process holds nothing for ever.

In memory only: after a daemon restart no file is held, and the orphans
left are reclaimed by the next remove or release on that daemon.
"""
from __future__ import annotations

import threading
from collections import Counter


class HoldTable:
    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._holds: dict[str, Counter[str]] = {}       # data_key -> owner -> opens
        self._conns: dict[str, set[bytes]] = {}          # owner -> connections it used
        self._total: Counter[str] = Counter()             # owner -> opens, all keys

    def take(self, key: str, owner: str, conn: bytes) -> None:
        with self._mutex:
            self._holds.setdefault(key, Counter())[owner] += 1
            self._conns.setdefault(owner, set()).add(conn)
            self._total[owner] += 1

    def release(self, key: str, owner: str) -> None:
        with self._mutex:
            held = self._holds.get(key)
            if held is None or held[owner] <= 0:
                return
            held[owner] -= 1
            self._total[owner] -= 1
            if held[owner] == 0:
                del held[owner]
            if self._total[owner] <= 0:      # nothing open any more: forget its connections
                del self._total[owner]
                self._conns.pop(owner, None)
            if not held:
                del self._holds[key]

    def held(self, key: str) -> bool:
        with self._mutex:
            return key in self._holds

    def count(self) -> int:
        with self._mutex:
            return sum(sum(c.values()) for c in self._holds.values())

    def connections(self) -> list[bytes]:
        with self._mutex:
            return list({c for conns in self._conns.values() for c in conns})

    def drop_connection(self, conn: bytes) -> int:
        """``conn`` closed: owners left with no live connection lose their
        holds. Returns the number of holds dropped."""
        with self._mutex:
            dead = []
            for owner, conns in self._conns.items():
                conns.discard(conn)
                if not conns:
                    dead.append(owner)
            n = 0
            for owner in dead:
                del self._conns[owner]
                self._total.pop(owner, None)
                for key in list(self._holds):
                    n += self._holds[key].pop(owner, 0)
                    if not self._holds[key]:
                        del self._holds[key]
            return n

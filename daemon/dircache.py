"""Other daemons' directory records, remembered for permission checks.

Every request below a directory held by another daemon needs that
directory's record (search permission on each ancestor, write permission on
the parent: daemon.peer). Asking its owner each time costs a round trip and
sends the request from the receiving thread to a worker (peer.NeedsWorker).
This cache keeps the records of directories (only directories, only ones
that exist: a missing path is asked every time) fetched from other daemons,
and is never wrong about permissions:

- Exact invalidation. The owner of a directory record that changes mode,
  uid or gid, or stops existing (setattr, rmdir, rename, insert replacing
  it, the steps of a tree move), tells every other daemon to forget the path
  (and, when it goes away, everything cached below it) and waits for their
  acknowledgements BEFORE it replies to its client (peer.Peers.forget_elsewhere).
- Generation. A lookup that was sent before a forget arrived may come back
  with the old record after it: ``generation()`` is read before the lookup
  is sent and ``store`` keeps nothing if a forget came in between.
- Lease (TTL backstop). An entry is used for at most TTL_S after its lookup
  was SENT (so it never outlives the owner's state by more than TTL_S). A
  daemon that does not acknowledge a forget within FORGET_WAIT_S (> TTL_S)
  cannot hold the old record any longer when the owner replies: the owner's
  wait itself outlasts every lease it could have. So a silent or cut peer
  makes the change wait (at most FORGET_WAIT_S), never the permission check
  wrong. Time is CLOCK_BOOTTIME (it counts a suspended machine's sleep too).

Bounded: MAX_ENTRIES paths, least recently used dropped first.
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Any

TTL_S = 3.0
FORGET_WAIT_S = TTL_S + 0.5  # > TTL_S: a peer silent this long holds no older lease
MAX_ENTRIES = 16384
S_IFMT, S_IFDIR = 0o170000, 0o040000


def now() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class DirCache:
    def __init__(self, max_entries: int = MAX_ENTRIES, ttl_s: float = TTL_S):
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        # path -> (record, expires at)
        self._entries: collections.OrderedDict[str, tuple[dict[str, Any], float]] = collections.OrderedDict()
        self._gen = 0

    def __len__(self) -> int:
        return len(self._entries)

    def generation(self) -> int:
        return self._gen

    def get(self, path: str, at: float) -> dict[str, Any] | None:
        """The cached record of ``path`` (None: not cached or expired)."""
        with self._lock:
            hit = self._entries.get(path)
            if hit is None:
                return None
            if at >= hit[1]:
                del self._entries[path]
                return None
            self._entries.move_to_end(path)
            return hit[0]

    def store(self, path: str, rec: dict[str, Any] | None, gen: int, sent_at: float) -> None:
        """Remember ``rec`` (of a lookup sent at ``sent_at`` when the
        generation was ``gen``): only an existing directory, only if no
        forget came in since the lookup was sent."""
        if rec is None or rec.get("mode", 0) & S_IFMT != S_IFDIR:
            return
        with self._lock:
            if gen != self._gen:
                return
            self._entries[path] = (rec, sent_at + self.ttl_s)
            self._entries.move_to_end(path)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget(self, paths: list[str], below: bool) -> int:
        """Drop ``paths`` (and with ``below`` every cached path under them);
        lookups in flight store nothing. Returns how many entries went."""
        with self._lock:
            self._gen += 1
            gone = 0
            for p in paths:
                if self._entries.pop(p, None) is not None:
                    gone += 1
            if below and self._entries:
                prefixes = tuple("/" if p == "/" else p + "/" for p in paths)
                under = [k for k in self._entries if k.startswith(prefixes)]
                for k in under:
                    del self._entries[k]
                gone += len(under)
            return gone

    def clear(self) -> None:
        with self._lock:
            self._gen += 1
            self._entries.clear()

"""The readdir stat cache: a `stat` right after `readdir` costs no RPC.

A readdir asks every daemon for its entries' stat records along with the
names (get_dirents ``stats``); the records are kept here, grouped by
directory, for a short time (``ttl_s``), and a stat of one of those paths
is answered from them. Rules (docs/performance.md, "The readdir stat
cache"):

* Bounded: at most ``max_entries`` records in all. Records that do not fit
  after the expired ones went are not kept (their stats are RPCs), so the
  first entries of a huge directory are the ones kept.
* One-shot: an entry answers one stat and is gone, so a program that stats
  a path twice asks the daemon the second time.
* Own changes at once: every request of this client that changes a path
  drops that path, its parent, and, for ops that may act on a directory
  (rename, insert, setattr, remove of a directory), everything below it,
  after the reply arrived; a readdir page that was in flight meanwhile is
  not cached (``generation``).
* Other clients' changes: seen at most ``ttl_s`` after the readdir reply
  that carried the record.

Thread-safe (one short lock; never held across an RPC).
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Iterable

from gkfs_client.protocol import DIRENT_STAT_FIELDS

ENV_TTL_MS = "LIBGKFS_STAT_CACHE_TTL_MS"
ENV_ENTRIES = "LIBGKFS_STAT_CACHE_ENTRIES"
DEFAULT_TTL_MS = 1000
DEFAULT_ENTRIES = 4096

# Ops that change the record at their path arguments.
CHANGES = frozenset({"create", "remove", "update_size", "truncate", "rename", "insert", "symlink",
                     "utimens", "setattr", "write_chunks"})
# Ops that may act on a directory, and so on what lies below it (a chmod of
# a directory changes who may stat its entries; a new name has nothing below
# it, whatever a listing of an older directory of that name said).
_TREE = {"rename", "insert", "setattr", "remove", "create", "symlink"}
_PATH_ARGS = ("path", "old", "new", "from", "size_path")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise OSError(22, f"{name} must be an integer >= 0, got {raw!r}")
    return value


def _split(path: str) -> tuple[str, str]:
    i = path.rfind("/")
    return (path[:i] or "/"), path[i + 1:]


class StatCache:
    def __init__(self, ttl_s: float | None = None, max_entries: int | None = None, owner=None):
        # owner(path) -> the member that owns path's record (None: one member):
        # a record is only used when it came from that member (a record a
        # member holds for a path it does not own, left by an older placement,
        # is listed, but a stat of the path goes to its owner, who may not
        # have it).
        self._owner = owner
        self.ttl_s = _env_int(ENV_TTL_MS, DEFAULT_TTL_MS) / 1000 if ttl_s is None else float(ttl_s)
        self.max_entries = _env_int(ENV_ENTRIES, DEFAULT_ENTRIES) if max_entries is None else int(max_entries)
        # directory -> {name: (expiry, record row as get_dirents sends it, member)}
        self._dirs: dict[str, dict[str, tuple[float, list, int]]] = {}
        self._count = 0
        self.generation = 0
        self.hits = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0 and self.max_entries > 0

    def __len__(self) -> int:
        return self._count

    def take(self, path: str) -> dict[str, Any] | None:
        """The record of ``path`` if cached and fresh; it leaves the cache."""
        if not self._count:
            return None
        with self._lock:
            return self._take(path)

    def _take(self, path: str) -> dict[str, Any] | None:
        parent, name = _split(path)
        names = self._dirs.get(parent)
        if not names:
            return None
        hit = names.pop(name, None)
        if hit is None:
            return None
        self._count -= 1
        if not names:
            del self._dirs[parent]
        if hit[0] < time.monotonic():
            return None
        if self._owner is not None and self._owner(path) != hit[2]:
            return None
        self.hits += 1
        return dict(zip(DIRENT_STAT_FIELDS, hit[1]))

    def fill(self, directory: str, names: Iterable[str], records: list, generation: int, member: int = 0) -> None:
        """Keep one readdir page's records (if no change of ours happened
        since the page was asked for, and if they fit)."""
        names = list(names)
        if not records or len(names) != len(records):
            return
        with self._lock:
            if generation == self.generation:
                self._fill(directory, names, records, member)

    def _fill(self, directory: str, names: list[str], records: list, member: int) -> None:
        if self._count + len(names) > self.max_entries:
            self._expire()
        room = self.max_entries - self._count
        if room <= 0:
            return
        expiry = time.monotonic() + self.ttl_s
        slot = self._dirs.setdefault(directory, {})
        before = len(slot)
        for name, row in zip(names[:room], records[:room]):
            if isinstance(row, list) and len(row) >= len(DIRENT_STAT_FIELDS):
                slot[name] = (expiry, row, member)
        self._count += len(slot) - before
        if not slot:
            del self._dirs[directory]

    def _expire(self) -> None:
        now = time.monotonic()
        for d in list(self._dirs):
            names = self._dirs[d]
            stale = [n for n, (exp, _r, _m) in names.items() if exp < now]
            for n in stale:
                del names[n]
            self._count -= len(stale)
            if not names:
                del self._dirs[d]

    def changed(self, calls) -> None:
        """After the replies of ``calls`` came back (or failed): forget what
        they may have changed."""
        for c in calls:
            self.changed_by(c.op, c.args)

    def changed_by(self, op: str, args: dict | None) -> None:
        """One request's op and arguments: ``changed`` for a single call,
        without building a Call for it (the client's one-request path)."""
        if op not in CHANGES:
            return
        with self._lock:
            self.generation += 1
            if not self._count:
                return
            args = args or {}
            for key in _PATH_ARGS:
                p = args.get(key)
                if isinstance(p, str):
                    self._forget(p, tree=op in _TREE and not (op == "remove" and args.get("rmdir") is False))

    def _forget(self, path: str, tree: bool) -> None:
        parent, name = _split(path)
        for d, n in ((parent, name), _split(parent) if parent != "/" else ("", "")):
            names = self._dirs.get(d)
            if names and names.pop(n, None) is not None:
                self._count -= 1
                if not names:
                    del self._dirs[d]
        if tree:
            below = path.rstrip("/") + "/"
            for d in [d for d in self._dirs if d == path or d.startswith(below)]:
                self._count -= len(self._dirs.pop(d))

    def clear(self) -> None:
        with self._lock:
            self._dirs.clear()
            self._count = 0
            self.generation += 1

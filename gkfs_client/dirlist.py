"""readdir over all daemons: page every daemon, merge the sorted streams.

Each daemon returns the children of a directory whose metadata it owns, in
ascending UTF-8 byte order, a page at a time. Because a name's metadata
lives on exactly one daemon the streams are disjoint, so a k-way merge gives
the whole directory sorted with no duplicates. Memory stays at one page per
daemon whatever the directory size (GekkoFS sizes one buffer for the whole
directory and fails with ENOBUFS on big ones). Pages of all daemons that
ran dry are fetched together, in one round trip.
"""
from __future__ import annotations

import stat as _stat
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from gkfs_client.rpc import Call

DEFAULT_PAGE = 1024


@dataclass(frozen=True)
class DirEntry:
    name: str
    mode: int
    size: int

    def is_dir(self) -> bool:
        return _stat.S_ISDIR(self.mode)

    def is_file(self) -> bool:
        return _stat.S_ISREG(self.mode)

    def is_symlink(self) -> bool:
        return _stat.S_ISLNK(self.mode)


def _key(name: str) -> bytes:
    return name.encode("utf-8")


def merged_entries(call_many: Callable[[Sequence[Call]], list], path: str, n_hosts: int,
                   page: int = DEFAULT_PAGE, cache=None) -> Iterator[DirEntry]:
    """Yield the directory's entries in byte order, fetching pages lazily.
    With ``cache`` (a statcache.StatCache), the pages carry each entry's
    stat record too, which go into the cache."""
    extra = {"stats": True} if cache is not None else {}
    buffers: list[list[list]] = [[] for _ in range(n_hosts)]
    more = [True] * n_hosts
    last = [""] * n_hosts
    while True:
        dry = [i for i in range(n_hosts) if not buffers[i] and more[i]]
        if dry:
            generation = cache.generation if cache is not None else 0
            replies = call_many([Call(i, "get_dirents", {"path": path, "start_after": last[i], "limit": page,
                                                         **extra}) for i in dry])
            for i, reply in zip(dry, replies):
                entries = reply.result.get("entries", [])
                if cache is not None and "stats" in reply.result:
                    cache.fill(path, (e[0] for e in entries), reply.result["stats"], generation, i)
                # A daemon that says "more" but returns nothing would loop forever.
                more[i] = bool(reply.result.get("more")) and bool(entries)
                buffers[i] = list(reversed(entries))  # pop() from the end is O(1)
                if entries:
                    last[i] = entries[-1][0]
        heads = [i for i in range(n_hosts) if buffers[i]]
        if not heads:
            return
        i = min(heads, key=lambda j: _key(buffers[j][-1][0]))
        name, mode, size = buffers[i].pop()
        yield DirEntry(name, mode, size)

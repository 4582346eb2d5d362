"""Fences of directory renames in progress (docs/protocol.md 4.8).

A client renaming a directory with entries moves every descendant's record
(keys and owners come from full paths). While it does, it fences the two
trees on every daemon: any request of another client naming a path in
either tree (``tree``), or listing either parent (``list``), is answered
EAGAIN, and clients ask again until the fence goes. So no observer sees a
state with both names or neither. Requests carrying the fence's token
(``fence`` argument) pass. A fence is bound to the connection that set it
(the broker's probe drops it when that connection closes).
"""
from __future__ import annotations

import errno
import threading
from dataclasses import dataclass

# size_path: the size lookup / update folded into read_chunks / write_chunks,
# fenced as the separate stat / update_size it replaces.
PATH_ARGS = ("path", "old", "new", "size_path")


@dataclass(frozen=True)
class Fence:
    owner: str
    tree: tuple[str, ...]
    lists: tuple[str, ...]
    conn: bytes


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


class FenceTable:
    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._fences: dict[str, Fence] = {}
        self.active = False      # read without the lock: a fast "no fences" check

    def set(self, owner: str, tree: list[str], lists: list[str], conn: bytes, on: bool) -> None:
        with self._mutex:
            if not on:
                self._fences.pop(owner, None)
            else:
                for f in self._fences.values():
                    if f.owner != owner and any(_under(a, b) or _under(b, a) for a in tree for b in f.tree):
                        raise OSError(errno.EAGAIN, f"another rename is moving {f.tree[0]}: retry")
                self._fences[owner] = Fence(owner, tuple(tree), tuple(lists), conn)
            self.active = bool(self._fences)

    def check(self, op: str, args: dict) -> None:
        """EAGAIN when the request touches a fenced tree (and is not the
        fence owner's own)."""
        if not self.active or op == "fence":
            return
        token = args.get("fence")
        with self._mutex:
            for f in self._fences.values():
                if f.owner == token:
                    continue
                for k in PATH_ARGS:
                    p = args.get(k)
                    if not isinstance(p, str):
                        continue
                    if any(_under(p, t) for t in f.tree) or (op == "get_dirents" and p in f.lists):
                        raise OSError(errno.EAGAIN, f"a rename is moving {f.tree[0]} to {f.tree[1]}: retry")

    def connections(self) -> list[bytes]:
        with self._mutex:
            return list({f.conn for f in self._fences.values()})

    def drop_connection(self, conn: bytes) -> int:
        with self._mutex:
            dead = [o for o, f in self._fences.items() if f.conn == conn]
            for o in dead:
                del self._fences[o]
            self.active = bool(self._fences)
            return len(dead)

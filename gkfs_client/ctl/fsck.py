"""`gkfs-ctl fsck [--repair] [PATH]`: check a cluster's metadata against its data.

Finds, with every member up:

* entries without a record: a member lists a name whose record is not on
  the path's metadata owner (left by an earlier placement or a crash in a
  cross-member rename); --repair moves the record to its owner (or drops
  the stray copy when the owner has one);
* sizes beyond the data: a file whose size ends past its last stored byte
  (a write whose size update landed but whose data did not); --repair sets
  the size to the end of the data (what lies beyond reads as zeros anyway);
* orphan chunks: chunk dirs no record refers to (a remove interrupted
  before its data went; the data of files unlinked while still open is
  not orphaned); --repair deletes them.

Exit status: 0 clean (or everything repaired), 1 problems left, 2 no cluster.
"""
from __future__ import annotations

import hashlib
import stat as _stat
import sys
from dataclasses import dataclass

from gkfs_client import distribution
from gkfs_client.ctl._common import EXIT_FAIL, EXIT_OK, cluster_command, error, open_client
from gkfs_client.rpc import Call


def register(subparsers) -> None:
    p = subparsers.add_parser("fsck", help="check (and --repair) orphan chunks, entries without records, "
                              "sizes beyond the data",
                              description=__doc__.split("\n\n", 1)[1], formatter_class=_raw())
    p.add_argument("--repair", action="store_true", help="fix what is found (default: report only)")
    p.set_defaults(func=run)


def _raw():
    import argparse
    return argparse.RawDescriptionHelpFormatter


@dataclass
class Problem:
    kind: str  # "no-record", "stray-record", "size-beyond-data", "orphan-chunks"
    member: int
    what: str
    detail: str
    fix: tuple = ()

    def line(self) -> str:
        return f"{self.kind}: {self.what} (member {self.member}): {self.detail}"


def _join(d: str, name: str) -> str:
    return f"/{name}" if d == "/" else f"{d}/{name}"


def _dirents(c, member: int, path: str):
    start = ""
    while True:
        r = c._one(member, "get_dirents", {"path": path, "start_after": start, "limit": 1024}).result
        yield from r["entries"]
        if not r["more"] or not r["entries"]:
            return
        start = r["entries"][-1][0]


def _chunk_dirs(c, member: int, held: set[str]) -> dict[str, list[list[int]]]:
    out: dict[str, list[list[int]]] = {}
    start = ""
    while True:
        r = c._one(member, "scan_chunks", {"start_after": start, "limit": 256}).result
        held.update(r.get("held_keys") or ())
        for name, chunks in r["dirs"]:
            out[name] = chunks
        if not r["more"] or not r["dirs"]:
            return out
        start = r["dirs"][-1][0]


def check(c) -> tuple[list[Problem], int]:
    """(problems, entries checked)."""
    n, cs = c.n, c.chunk_size
    problems: list[Problem] = []
    files: dict[str, dict] = {}  # path -> record, regular files on their owner
    stack, seen = ["/"], 0
    while stack:
        d = stack.pop()
        for member in range(n):
            for name, mode, _size in _dirents(c, member, d):
                seen += 1
                path = _join(d, name)
                owner = distribution.metadata_owner(path, n)
                if member != owner:
                    held = c._one(member, "stat", {"path": path}).result["stat"]
                    at_owner = c._many([Call(owner, "stat", {"path": path})], check=False)[0]
                    if at_owner.status == 0:
                        problems.append(Problem("stray-record", member, path,
                                                f"a second record; its owner is member {owner}",
                                                ("drop", member, path, held)))
                    else:
                        problems.append(Problem("no-record", member, path,
                                                f"listed here, no record on its owner member {owner}",
                                                ("move", member, owner, path, held)))
                    continue
                if _stat.S_ISDIR(mode):
                    stack.append(path)
                elif _stat.S_ISREG(mode):
                    files[path] = c._one(owner, "stat", {"path": path}).result["stat"]
    held: set[str] = set()  # data keys of files unlinked while open
    chunk_dirs = [_chunk_dirs(c, m, held) for m in range(n)]
    by_hash = {hashlib.sha256(r["data_key"].encode()).hexdigest(): p for p, r in files.items()}
    by_hash.update({hashlib.sha256(k.encode()).hexdigest(): "(open, unlinked)" for k in held})
    for member, dirs in enumerate(chunk_dirs):
        for name, chunks in dirs.items():
            if name not in by_hash:
                size = sum(s for _i, s in chunks)
                problems.append(Problem("orphan-chunks", member, f"chunks/{name}",
                                        f"{len(chunks)} chunk file(s), {size} bytes, no file refers to them",
                                        ("remove", member, name)))
    for path, rec in files.items():
        h = hashlib.sha256(rec["data_key"].encode()).hexdigest()
        end = max((i * cs + s for dirs in chunk_dirs for i, s in dirs.get(h, []) if s), default=0)
        if rec["size"] > end:
            owner = distribution.metadata_owner(path, n)
            problems.append(Problem("size-beyond-data", owner, path,
                                    f"size {rec['size']} but the data ends at {end}", ("size", path, end)))
    return problems, seen


def repair(c, p: Problem) -> None:
    kind = p.fix[0]
    if kind == "remove":
        _, member, name = p.fix
        c._one(member, "remove_chunk_dir", {"name": name})
    elif kind == "drop":
        _, member, path, held = p.fix
        c._one(member, "remove", {"path": path, "data_key": held["data_key"]})
    elif kind == "move":
        _, member, owner, path, held = p.fix
        c._one(owner, "insert", {"path": path, "record": held, "replace": False})
        c._one(member, "remove", {"path": path, "data_key": held["data_key"]})
    elif kind == "size":
        _, path, end = p.fix
        c.truncate(path, end)


@cluster_command
def run(args) -> int:
    with open_client(args) as c:
        down = [i for i, r in enumerate(c.status()) if isinstance(r, OSError)]
        if down:
            error("fsck", f"every member must be up to check the cluster; down: "
                          f"{', '.join(str(i) for i in down)} (see gkfs-ctl status)")
            return EXIT_FAIL
        problems, seen = check(c)
        left = 0
        for p in problems:
            print(p.line())
            if args.repair:
                try:
                    repair(c, p)
                    print("  repaired")
                except OSError as exc:
                    left += 1
                    error("fsck", f"could not repair {p.what}: {exc.strerror or exc}")
            else:
                left += 1
        print(f"fsck: {seen} entries, {len(problems)} problem(s)"
              + (f", {len(problems) - left} repaired" if args.repair else ""), file=sys.stderr)
    return EXIT_FAIL if left else EXIT_OK

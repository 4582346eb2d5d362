"""`gkfs-ctl stat PATH`: a gkfs file's metadata, and where it lives."""
from __future__ import annotations

import json
import stat as _stat
import sys
import time

from gkfs_client import distribution
from gkfs_client.ctl._common import EXIT_OK, cluster_command, open_client


def register(subparsers) -> None:
    p = subparsers.add_parser("stat", help="show a path's metadata and placement")
    p.add_argument("path", help="path inside gkfs")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _when(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns / 1e9)) + f".{ns % 10**9:09d}"


@cluster_command
def run(args) -> int:
    with open_client(args) as c:
        path = c.abspath(args.path)
        rec = c.stat_record(path, follow_symlinks=False)
        owner = distribution.metadata_owner(path, c.n)
        info = {"path": path, **rec, "metadata_owner": c.addresses[owner]}
        if _stat.S_ISREG(rec["mode"]) and rec.get("size"):
            n_chunks = (rec["size"] + c.chunk_size - 1) // c.chunk_size
            holders = sorted({distribution.chunk_owner(rec["data_key"], k, c.n) for k in range(min(n_chunks, 4096))})
            info.update(chunk_size=c.chunk_size, chunks=n_chunks, chunk_daemons=[c.addresses[i] for i in holders])
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    mode = rec["mode"]
    lines = [f"  File: {path}" + (f" -> {rec['target']}" if "target" in rec else ""),
             f"  Size: {rec.get('size', 0):<12} Type: {_type(mode)}",
             f"  Mode: ({_stat.S_IMODE(mode):04o}/{_stat.filemode(mode)})  Uid: {rec.get('uid')}  Gid: {rec.get('gid')}",
             f"Access: {_when(rec.get('atime_ns', 0))}",
             f"Modify: {_when(rec.get('mtime_ns', 0))}",
             f"Change: {_when(rec.get('ctime_ns', 0))}",
             f"  Meta: {info['metadata_owner']}"]
    if rec.get("data_key"):
        lines.append(f"   Key: {rec['data_key']}")
    if "chunks" in info:
        lines.append(f"Chunks: {info['chunks']} x {info['chunk_size']} B on {', '.join(info['chunk_daemons'])}")
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


def _type(mode: int) -> str:
    if _stat.S_ISDIR(mode):
        return "directory"
    if _stat.S_ISLNK(mode):
        return "symbolic link"
    return "regular file" if _stat.S_ISREG(mode) else "other"

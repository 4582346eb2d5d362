"""`gkfs-ctl ls [-l] PATH`: list a gkfs directory (all daemons merged)."""
from __future__ import annotations

import stat as _stat
import sys
import time

from gkfs_client.ctl._common import EXIT_FAIL, EXIT_OK, cluster_command, error, open_client


def register(subparsers) -> None:
    p = subparsers.add_parser("ls", help="list a directory in gkfs")
    p.add_argument("-l", dest="long", action="store_true", help="long listing: mode, size, mtime")
    p.add_argument("path", nargs="?", default="/", help="path inside gkfs (default /)")
    p.set_defaults(func=run)


def format_long(mode: int, size: int, mtime: float, name: str, target: str | None = None) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(mtime))
    line = f"{_stat.filemode(mode)} {size:>12} {when} {name}"
    return line + (f" -> {target}" if target is not None else "")


@cluster_command
def run(args) -> int:
    with open_client(args) as c:
        st = c.stat(args.path)
        if not _stat.S_ISDIR(st.st_mode):
            # Like ls(1): a file argument lists the file itself.
            entries = [(args.path, st.st_mode, st.st_size)]
        else:
            entries = [(e.name, e.mode, e.size) for e in c.scandir(args.path)]
        out = sys.stdout
        base = args.path.rstrip("/") if _stat.S_ISDIR(st.st_mode) else None
        failed = 0
        for name, mode, size in entries:
            if not args.long:
                out.write(name + "\n")
                continue
            full = f"{base}/{name}" if base is not None else name
            try:
                est = c.lstat(full)
                target = c.readlink(full) if _stat.S_ISLNK(est.st_mode) else None
            except OSError as exc:
                # Listed by a daemon but its record cannot be read (missing,
                # or its member is down): say so, like ls(1), and go on.
                failed += 1
                error("ls", f"cannot access '{full}': {exc.strerror or exc}")
                out.write(f"?????????? {'?':>12} {'?':>16} {name}\n")
                continue
            out.write(format_long(est.st_mode, est.st_size, est.st_mtime, name, target) + "\n")
    return EXIT_FAIL if failed else EXIT_OK

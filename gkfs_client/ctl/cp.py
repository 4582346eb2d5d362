"""`gkfs-ctl cp-in SRC DST` / `cp-out SRC DST`: stage data in and out of gkfs.

Like `cp -r`: a directory is copied recursively, and when DST is an existing
directory SRC lands inside it under its own name. Regular files, directories
and symlinks are copied; mode and mtime are kept. Each file is checked after
the copy (its size on the other side must match; --verify also compares a
SHA-256 read back from the destination). A rich progress bar shows bytes.
"""
from __future__ import annotations

import hashlib
import os
import stat as _stat
from dataclasses import dataclass

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from gkfs_client.ctl._common import EXIT_FAIL, EXIT_OK, cluster_command, err_console, error, open_client

BLOCK = 8 << 20  # 16 chunks of the default size: every daemon gets work per request


def register(subparsers) -> None:
    for name, direction in (("cp-in", "stage in: copy from the local file system into gkfs"),
                            ("cp-out", "stage out: copy from gkfs to the local file system")):
        p = subparsers.add_parser(name, help=f"{direction} (recursive for directories)")
        p.add_argument("src")
        p.add_argument("dst")
        p.add_argument("--verify", action="store_true", help="read every copied file back and compare SHA-256")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        p.set_defaults(func=run_in if name == "cp-in" else run_out)


@dataclass
class Item:
    kind: str  # "dir", "file", "link"
    src: str
    dst: str
    size: int = 0
    mode: int = 0o644
    mtime_ns: int = 0
    target: str = ""


class LocalFS:
    """The local side, with the same few calls as GkfsFS below."""

    sep_join = staticmethod(os.path.join)

    def lstat(self, p):
        return os.lstat(p)

    def listdir(self, p):
        return sorted(os.listdir(p))

    def readlink(self, p):
        return os.readlink(p)

    def is_dir(self, p):
        return os.path.isdir(p)

    def mkdir(self, p, mode):
        # Like cp -r: the destination's parent must exist; an existing
        # directory is merged into, anything else there is an error.
        try:
            os.mkdir(p, 0o700 | _stat.S_IMODE(mode))
        except FileExistsError:
            if not os.path.isdir(p):
                raise

    def symlink(self, target, p):
        os.symlink(target, p)

    def open_read(self, p):
        return open(p, "rb", buffering=0)

    def open_write(self, p, mode):
        return open(p, "wb", buffering=0)

    def set_times(self, p, mode, mtime_ns):
        os.chmod(p, _stat.S_IMODE(mode))
        os.utime(p, ns=(mtime_ns, mtime_ns))

    def size(self, p):
        return os.stat(p).st_size


class GkfsFile:
    def __init__(self, client, fd):
        self.c, self.fd = client, fd

    def readinto(self, buf) -> int:
        data = self.c.read(self.fd, len(buf))
        buf[: len(data)] = data
        return len(data)

    def write(self, view) -> int:
        return self.c.write(self.fd, view)

    def close(self):
        self.c.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class GkfsFS:
    def __init__(self, client):
        self.c = client

    @staticmethod
    def sep_join(a, b):
        return a.rstrip("/") + "/" + b

    def lstat(self, p):
        return self.c.lstat(p)

    def listdir(self, p):
        return self.c.listdir(p)

    def readlink(self, p):
        return self.c.readlink(p)

    def is_dir(self, p):
        try:
            return _stat.S_ISDIR(self.c.stat(p).st_mode)
        except FileNotFoundError:
            return False

    def mkdir(self, p, mode):
        try:
            self.c.mkdir(p, 0o700 | _stat.S_IMODE(mode))
        except FileExistsError:
            if not self.is_dir(p):
                raise

    def symlink(self, target, p):
        self.c.symlink(target, p)

    def open_read(self, p):
        return GkfsFile(self.c, self.c.open(p, os.O_RDONLY))

    def open_write(self, p, mode):
        return GkfsFile(self.c, self.c.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _stat.S_IMODE(mode)))

    def set_times(self, p, mode, mtime_ns):
        # gkfs keeps the mode given at create; only the times are set here.
        self.c.utime(p, ns=(mtime_ns, mtime_ns))

    def size(self, p):
        return self.c.stat(p).st_size


def plan(src_fs, dst_fs, src: str, dst: str) -> list[Item]:
    """Everything to copy, parents before children; raises OSError on bad input."""
    st = src_fs.lstat(src)  # FileNotFoundError for a missing SRC
    if dst_fs.is_dir(dst):
        name = os.path.basename(src.rstrip("/")) or "root"
        dst = dst_fs.sep_join(dst, name)
    items: list[Item] = []

    def walk(s: str, d: str, st) -> None:
        if _stat.S_ISDIR(st.st_mode):
            items.append(Item("dir", s, d, mode=st.st_mode, mtime_ns=st.st_mtime_ns))
            for name in src_fs.listdir(s):
                child = src_fs.sep_join(s, name)
                walk(child, dst_fs.sep_join(d, name), src_fs.lstat(child))
        elif _stat.S_ISLNK(st.st_mode):
            items.append(Item("link", s, d, target=src_fs.readlink(s)))
        elif _stat.S_ISREG(st.st_mode):
            items.append(Item("file", s, d, size=st.st_size, mode=st.st_mode, mtime_ns=st.st_mtime_ns))
        else:
            err_console.print(f"skipping {s}: not a regular file, directory or symlink", markup=False)

    walk(src, dst, st)
    return items


def _sha256(fs, p) -> str:
    h = hashlib.sha256()
    buf = bytearray(BLOCK)
    with fs.open_read(p) as f:
        while n := f.readinto(buf):
            h.update(memoryview(buf)[:n])
    return h.hexdigest()


def copy(src_fs, dst_fs, src: str, dst: str, *, verify: bool = False, quiet: bool = False) -> tuple[int, int, list[str]]:
    """Copy; return (files copied, bytes copied, problems found by the checks)."""
    items = plan(src_fs, dst_fs, src, dst)
    total = sum(i.size for i in items)
    problems: list[str] = []
    files = done = 0
    buf = bytearray(BLOCK)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=err_console, disable=quiet, transient=False) as progress:
        task = progress.add_task("copying", total=total or 1)
        for it in items:
            if it.kind == "dir":
                dst_fs.mkdir(it.dst, it.mode)
            elif it.kind == "link":
                dst_fs.symlink(it.target, it.dst)
            else:
                progress.update(task, description=os.path.basename(it.src)[:30])
                copied = 0
                with src_fs.open_read(it.src) as fin, dst_fs.open_write(it.dst, it.mode) as fout:
                    view = memoryview(buf)
                    while n := fin.readinto(buf):
                        written = 0
                        while written < n:
                            written += fout.write(view[written:n])
                        copied += n
                        progress.advance(task, n)
                dst_fs.set_times(it.dst, it.mode, it.mtime_ns)
                files += 1
                done += copied
                got = dst_fs.size(it.dst)
                if got != copied or copied != it.size:
                    problems.append(f"{it.dst}: size {got}, source had {it.size} (copied {copied})")
                elif verify and _sha256(src_fs, it.src) != _sha256(dst_fs, it.dst):
                    problems.append(f"{it.dst}: content differs from {it.src}")
        # Directory times last: creating children changed them.
        for it in reversed(items):
            if it.kind == "dir":
                dst_fs.set_times(it.dst, it.mode, it.mtime_ns)
    return files, done, problems


def _run(args, to_gkfs: bool) -> int:
    with open_client(args) as c:
        local, remote = LocalFS(), GkfsFS(c)
        src_fs, dst_fs = (local, remote) if to_gkfs else (remote, local)
        files, nbytes, problems = copy(src_fs, dst_fs, args.src, args.dst, verify=args.verify, quiet=args.quiet)
    for p in problems:
        error(args.command, p)
    if not args.quiet:
        err_console.print(f"{files} file(s), {nbytes} bytes copied" + (", verified" if args.verify else ""),
                          markup=False)
    return EXIT_FAIL if problems else EXIT_OK


@cluster_command
def run_in(args) -> int:
    return _run(args, to_gkfs=True)


@cluster_command
def run_out(args) -> int:
    return _run(args, to_gkfs=False)

"""Chunk directories of large files in block groups of their own.

Where a file's chunk files get their inodes decides what creating them
costs. ext4 without a journal (this VM's root file system, and a common
choice for scratch space) skips every inode freed in the last minute or
more when it allocates one, checking them one at a time: in a block group
where many files were just deleted (a busy /tmp, the daemon's own removed
chunks) an ``openat(O_CREAT)`` of a chunk file costs 0.1-0.6 ms of CPU,
twice per 1 MiB written, against ~10 us in a group with free inodes nobody
just released. ext4 puts a file's inode in its directory's group and a new
directory in its parent's group, unless the parent is marked as the top of
directory hierarchies (the ``T`` attribute, ``FS_TOPDIR_FL``, as for home
directories): then each new subdirectory goes to a group of its own, chosen
among those with the most free inodes and blocks.

Choosing that group costs a scan of the group table (~0.15-0.3 ms of CPU
per ``mkdir`` here against ~60 us for one beside its parent), once per file
and daemon. So a small file's chunk directory is made beside ``chunks/`` as
before, and only a file whose first chunk here is written whole or is not
its chunk 0 (a large file: many chunk files to come) gets a spread one:
made in
``<rootdir>/spread/`` (marked ``T``) and renamed into place with
``renameat2(RENAME_NOREPLACE)``, which never replaces a directory another
request made first. A rename keeps the inode and so the group. The
directory is empty when it is renamed, like one just made with mkdir, so
nothing changes for readers, removal or fsck; kill -9 between the mkdir
and the rename leaves an empty directory in ``spread/``, removed at the
next start. On a file system without RENAME_NOREPLACE or the ``T``
attribute the directory is made beside ``chunks/``.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import itertools
import logging
import os
import shutil
import struct
from pathlib import Path

log = logging.getLogger("gkfs_daemon.spread")

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_TOPDIR_FL = 0x00020000


def _renameat2():
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2  # glibc >= 2.28
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _renameat2()


def rename_noreplace(src: bytes, dst: bytes) -> None:
    """rename(2) that fails with EEXIST instead of replacing ``dst``."""
    if _RENAMEAT2(_AT_FDCWD, src, _AT_FDCWD, dst, _RENAME_NOREPLACE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), dst.decode(errors="replace"))


def mark_topdir(d: str | bytes | Path) -> bool:
    """Mark ``d`` as the top of directory hierarchies, so the file system
    places each new subdirectory of it in a block group of its own (False:
    the file system has no such attribute)."""
    try:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        flags = bytearray(8)
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags)
        (value,) = struct.unpack("=q", flags)
        if not value & _FS_TOPDIR_FL:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, struct.pack("=q", value | _FS_TOPDIR_FL))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class SpreadDirs:
    """Makes directories in block groups of their own (``make``)."""

    def __init__(self, spread_dir: Path):
        self._dir = os.fsencode(spread_dir)
        # Names unique across worker threads, and not the same in every
        # daemon: ext4 picks the group from a hash of the name, and a
        # directory made as "0" by each new daemon would land in the same
        # group as the last one's, among the inodes its removal just freed.
        self._prefix = os.urandom(6).hex().encode()
        self._serial = itertools.count()
        self.enabled = _RENAMEAT2 is not None
        self.made = 0  # (tests)
        if self.enabled:
            shutil.rmtree(spread_dir, ignore_errors=True)  # what a killed daemon left
            try:
                os.mkdir(spread_dir, 0o700)
            except OSError as exc:
                self._disable(exc)
                return
            if not mark_topdir(spread_dir):
                self._disable("no top-directory attribute")

    def make(self, path: bytes) -> bool:
        """Make the empty directory ``path`` in a block group of its own:
        True; False: not possible here (the caller makes it). FileExistsError:
        ``path`` exists."""
        if not self.enabled:
            return False
        tmp = b"%s/%s.%d" % (self._dir, self._prefix, next(self._serial))
        try:
            os.mkdir(tmp, 0o700)
        except OSError as exc:  # (a full disk: the caller's own mkdir reports it)
            log.debug("spread directory: %s", exc)
            return False
        try:
            rename_noreplace(tmp, path)
        except OSError as exc:
            os.rmdir(tmp)
            if exc.errno in (errno.EEXIST, errno.ENOENT):
                raise
            if exc.errno in (errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.EPERM):  # no RENAME_NOREPLACE
                self._disable(exc)
            return False
        self.made += 1
        return True

    def _disable(self, why: object) -> None:
        if self.enabled:
            self.enabled = False
            log.info("chunk directories are made beside chunks/ (no spread ones here: %s)", why)

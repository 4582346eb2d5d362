"""File data as chunk files under <rootdir>/chunks/.

Chunk k of data key K is ``chunks/<sha256(K) hex>/<k>``: a fixed-length
hash name, so no two keys can share a directory (GekkoFS maps '/' to ':'
and '/a:b' collides with '/a/b') and no key, whatever it contains, can
produce a name outside chunks/. Chunk files are sparse: unwritten ranges
read as zeros.
"""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

from .spread import SpreadDirs

_WRONLY_CREAT = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC


def _dir_name(data_key: str) -> str:
    """The name of a file's chunk directory under chunks/."""
    return hashlib.sha256(data_key.encode("utf-8")).hexdigest()


class ChunkStore:
    def __init__(self, rootdir: Path, chunk_size: int, spread: bool = True):
        self.base = rootdir / "chunks"
        self.base.mkdir(parents=True, exist_ok=True)
        self._base = os.fsencode(self.base)
        self.chunk_size = chunk_size
        # a large file's chunk directory in a block group of its own (daemon.spread)
        self.spread = SpreadDirs(rootdir / "spread") if spread else None

    def key_dir(self, data_key: str) -> Path:
        return self.base / _dir_name(data_key)

    def chunk_path(self, data_key: str, index: int) -> Path:
        return self.key_dir(data_key) / str(index)

    # -- data -------------------------------------------------------------
    def write(self, data_key: str, index: int, offset: int, buf: Any) -> int:
        """pwrite ``buf`` (any buffer, e.g. a zmq frame's memoryview) as is."""
        view = memoryview(buf).cast("B")
        # A large file: a whole chunk or one past the first (daemon.spread)
        large = index > 0 or (offset == 0 and len(view) == self.chunk_size)
        fd = self._open_for_write(data_key, index, large)
        try:
            done = 0
            while done < len(view):  # pwrite may write less than asked
                n = os.pwrite(fd, view[done:], offset + done)
                if n == 0:
                    raise OSError(errno.EIO, f"pwrite wrote nothing to chunk {index} of {data_key!r}")
                done += n
            return done
        finally:
            os.close(fd)

    def _open_for_write(self, data_key: str, index: int, large: bool) -> int:
        """The chunk file's descriptor, created if need be, and with it the
        file's chunk directory: for a large file in a block group of its own
        (daemon.spread)."""
        d = b"%s/%s" % (self._base, _dir_name(data_key).encode())
        path = b"%s/%d" % (d, index)
        try:
            return os.open(path, _WRONLY_CREAT, 0o600)
        except FileNotFoundError:  # the file's first chunk here: its directory first
            pass
        try:
            if not (large and self.spread is not None and self.spread.make(d)):
                os.mkdir(d, 0o700)
        except FileExistsError:  # another request made it first
            pass
        except FileNotFoundError:  # chunks/ itself is gone
            os.makedirs(d, 0o700, exist_ok=True)
        try:
            return os.open(path, _WRONLY_CREAT, 0o600)
        except FileNotFoundError:  # removed again meanwhile: as a write after the removal
            os.makedirs(d, 0o700, exist_ok=True)
            return os.open(path, _WRONLY_CREAT, 0o600)

    def read(self, data_key: str, index: int, offset: int, length: int, pad_to: int | None = None) -> bytes:
        """Bytes of the chunk file in [offset, offset+length).

        With ``pad_to`` the result is exactly ``pad_to`` bytes (<= length),
        zeros wherever the file has nothing; without it, short where the
        chunk file ends.
        """
        want = length if pad_to is None else pad_to
        try:
            fd = os.open(self.chunk_path(data_key, index), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return bytes(want if pad_to is not None else 0)  # a missing chunk reads as zeros
        try:
            # os.pread's buffer is not zero-filled first (a bytearray of the
            # size would be: a memset of the chunk per read, for nothing)
            buf = os.pread(fd, want, offset)
            while len(buf) < want:  # short: the file ends here (or a signal)
                more = os.pread(fd, want - len(buf), offset + len(buf))
                if not more:
                    break
                buf += more
        finally:
            os.close(fd)
        if pad_to is not None and len(buf) < want:
            buf += bytes(want - len(buf))  # a hole at the chunk's end, below the file's size
        return buf

    # -- maintenance ------------------------------------------------------
    def has_chunks(self, data_key: str) -> bool:
        """Whether any chunk of ``data_key`` may be here (its directory exists)."""
        return os.path.isdir(self.key_dir(data_key))

    def _indices(self, data_key: str) -> list[tuple[int, Path]]:
        d = self.key_dir(data_key)
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            return []
        return [(int(n), d / n) for n in names if n.isdigit()]

    def remove(self, data_key: str) -> int:
        chunks = self._indices(data_key)
        shutil.rmtree(self.key_dir(data_key), ignore_errors=True)
        return len(chunks)

    def truncate(self, data_key: str, size: int) -> tuple[int, int]:
        removed = truncated = 0
        for index, path in self._indices(data_key):
            start = index * self.chunk_size
            try:
                if start >= size:
                    path.unlink()
                    removed += 1
                elif start + self.chunk_size > size:
                    os.truncate(path, size - start)
                    truncated += 1
            except FileNotFoundError:
                pass
        return removed, truncated

    def fsync(self, data_key: str | None = None) -> None:
        dirs = [self.key_dir(data_key)] if data_key is not None else [
            self.base / n for n in os.listdir(self.base)]
        for d in dirs:
            for _index, path in self._indices_in(d):
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            _fsync_dir(d)
        _fsync_dir(self.base)

    @staticmethod
    def _indices_in(d: Path) -> list[tuple[int, Path]]:
        try:
            return [(int(n), d / n) for n in os.listdir(d) if n.isdigit()]
        except FileNotFoundError:
            return []

    def scan(self, start_after: str, limit: int, max_chunks: int) -> tuple[list[list[Any]], bool]:
        """Chunk dirs named after ``start_after`` (sorted), each with its
        [index, size] pairs: for fsck, which cannot name them by key."""
        names = sorted(n for n in os.listdir(self.base) if len(n) == 64 and n > start_after)
        out: list[list[Any]] = []
        total = 0
        for n in names:
            if len(out) >= limit or total >= max_chunks:
                return out, True
            chunks = []
            for entry in os.scandir(self.base / n):
                if entry.name.isdigit():
                    try:
                        chunks.append([int(entry.name), entry.stat(follow_symlinks=False).st_size])
                    except FileNotFoundError:
                        pass
            chunks.sort()
            out.append([n, chunks])
            total += len(chunks)
        return out, False

    def remove_dir(self, name: str) -> int:
        """Remove one chunk dir by its hash name (an orphan fsck found)."""
        if len(name) != 64 or any(c not in "0123456789abcdef" for c in name):
            raise OSError(errno.EINVAL, f"not a chunk dir name: {name[:80]!r}")
        d = self.base / name
        n = len(self._indices_in(d))
        shutil.rmtree(d, ignore_errors=True)
        return n

    def bytes_stored(self) -> int:
        total = 0
        for entry in os.scandir(self.base):
            if entry.is_dir(follow_symlinks=False):
                for chunk in os.scandir(entry.path):
                    try:
                        total += chunk.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:
                        pass
        return total


def _fsync_dir(d: Path) -> None:
    """Make created/removed names durable too."""
    try:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

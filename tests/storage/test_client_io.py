"""Client data path on real daemons: round trips, holes, append, truncate, flags.

A 4 KiB chunk size makes even small writes cross many chunk boundaries and
spread over all daemons.
"""
from __future__ import annotations

import errno
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gkfs_client.client import Client

CHUNK = 4096


@pytest.fixture
def gk(cluster):
    c = cluster(n=3, chunk_size=CHUNK)
    client = Client(hosts_file=c.hosts_file, timeout=20)
    yield client
    client.disconnect()


class Model:
    """What a file should contain: a bytearray with POSIX write semantics."""

    def __init__(self):
        self.data = bytearray()

    def pwrite(self, data: bytes, off: int) -> None:
        if not data:
            return  # a zero-length write never changes the size
        if off > len(self.data):
            self.data.extend(b"\0" * (off - len(self.data)))
        self.data[off:off + len(data)] = data


def test_round_trip_crosses_chunks_and_daemons(gk, cluster):
    data = os.urandom(10 * CHUNK + 123)
    gk.write_file("/f", data)
    assert gk.read_file("/f") == data
    assert gk.stat("/f").st_size == len(data)
    assert gk.chunk_size == CHUNK


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.integers(0, 6 * CHUNK), st.integers(0, 3 * CHUNK + 7)), min_size=1, max_size=6),
       reads=st.lists(st.tuples(st.integers(0, 10 * CHUNK), st.integers(0, 4 * CHUNK)), min_size=1, max_size=4))
def test_random_pwrite_pread_match_model(gk, ops, reads):
    """Random writes (sizes and offsets across chunk boundaries, leaving holes)
    then random reads give exactly what a local file would."""
    path = f"/h{os.urandom(6).hex()}"
    model = Model()
    fd = gk.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
    try:
        for off, size in ops:
            data = os.urandom(size)
            assert gk.pwrite(fd, data, off) == size
            model.pwrite(data, off)
        assert gk.fstat(fd).st_size == len(model.data)
        for off, size in reads:
            assert gk.pread(fd, size, off) == bytes(model.data[off:off + size])
    finally:
        gk.close(fd)
        gk.unlink(path)


def test_sparse_file_reads_zeros_in_holes(gk):
    fd = gk.open("/sparse", os.O_CREAT | os.O_RDWR)
    gk.pwrite(fd, b"head", 0)
    gk.pwrite(fd, b"tail", 50 * CHUNK + 5)
    assert gk.fstat(fd).st_size == 50 * CHUNK + 9
    data = gk.pread(fd, 60 * CHUNK, 0)
    assert len(data) == 50 * CHUNK + 9
    assert data[:4] == b"head" and data[-4:] == b"tail"
    assert data[4:-4] == bytes(len(data) - 8)
    # Reading entirely inside a hole, and past EOF.
    assert gk.pread(fd, 100, 20 * CHUNK) == bytes(100)
    assert gk.pread(fd, 100, 60 * CHUNK) == b""
    gk.close(fd)


def test_sequential_write_read_lseek(gk):
    fd = gk.open("/seq", os.O_CREAT | os.O_RDWR)
    parts = [os.urandom(n) for n in (1, CHUNK - 1, CHUNK, 3 * CHUNK + 5, 17)]
    for p in parts:
        assert gk.write(fd, p) == len(p)
    whole = b"".join(parts)
    assert gk.lseek(fd, 0, os.SEEK_CUR) == len(whole)
    assert gk.lseek(fd, 0, os.SEEK_SET) == 0
    got = b""
    while chunk := gk.read(fd, 1000):
        got += chunk
    assert got == whole
    assert gk.lseek(fd, -10, os.SEEK_END) == len(whole) - 10
    assert gk.read(fd, 100) == whole[-10:]
    with pytest.raises(OSError) as exc:
        gk.lseek(fd, -1, os.SEEK_SET)
    assert exc.value.errno == errno.EINVAL
    gk.close(fd)


def test_append_goes_to_end_even_with_two_descriptors(gk):
    gk.write_file("/log", b"start:")
    a = gk.open("/log", os.O_WRONLY | os.O_APPEND)
    b = gk.open("/log", os.O_WRONLY | os.O_APPEND)
    gk.write(a, b"A" * (CHUNK + 1))
    gk.write(b, b"B" * 3)
    gk.write(a, b"C")
    gk.close(a)
    gk.close(b)
    assert gk.read_file("/log") == b"start:" + b"A" * (CHUNK + 1) + b"BBB" + b"C"


def test_truncate_shrink_and_grow(gk):
    data = os.urandom(5 * CHUNK + 100)
    gk.write_file("/t", data)
    gk.truncate("/t", 2 * CHUNK + 10)
    assert gk.stat("/t").st_size == 2 * CHUNK + 10
    assert gk.read_file("/t") == data[:2 * CHUNK + 10]
    # Growing again exposes zeros, never the old bytes.
    gk.truncate("/t", 4 * CHUNK)
    assert gk.read_file("/t") == data[:2 * CHUNK + 10] + bytes(2 * CHUNK - 10)
    fd = gk.open("/t", os.O_RDWR)
    gk.ftruncate(fd, 0)
    gk.close(fd)
    assert gk.read_file("/t") == b""


def test_open_flags(gk):
    with pytest.raises(FileNotFoundError):
        gk.open("/nope", os.O_RDONLY)
    fd = gk.open("/x", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    gk.write(fd, b"hello world")
    gk.close(fd)
    with pytest.raises(FileExistsError):
        gk.open("/x", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    assert gk.stat("/x").st_mode & 0o777 == 0o600 & ~gk.umask
    # O_CREAT without O_EXCL opens the existing file and keeps its data.
    gk.close(gk.open("/x", os.O_CREAT | os.O_RDWR))
    assert gk.read_file("/x") == b"hello world"
    fd = gk.open("/x", os.O_WRONLY | os.O_TRUNC)
    gk.close(fd)
    assert gk.stat("/x").st_size == 0
    ro = gk.open("/x", os.O_RDONLY)
    with pytest.raises(OSError) as exc:
        gk.write(ro, b"no")
    assert exc.value.errno == errno.EBADF
    gk.close(ro)
    wo = gk.open("/x", os.O_WRONLY)
    with pytest.raises(OSError) as exc:
        gk.read(wo, 1)
    assert exc.value.errno == errno.EBADF
    gk.close(wo)
    with pytest.raises(OSError) as exc:
        gk.close(wo)
    assert exc.value.errno == errno.EBADF
    gk.mkdir("/d")
    with pytest.raises(IsADirectoryError):
        gk.open("/d", os.O_WRONLY)
    with pytest.raises(FileNotFoundError):
        gk.open("/missing-parent/f", os.O_CREAT | os.O_WRONLY)
    with pytest.raises(NotADirectoryError):
        gk.open("/x/f", os.O_CREAT | os.O_WRONLY)
    # The failed creates left nothing behind.
    assert sorted(gk.listdir("/")) == ["d", "x"]


def test_large_write_spanning_many_requests(cluster):
    """A write bigger than one request's limits is split, and still correct."""
    c = cluster(n=3, chunk_size=CHUNK)
    with Client(hosts_file=c.hosts_file, timeout=30) as gk:
        # 5000 chunks of 4 KiB: more than MAX_CHUNKS_PER_REQUEST (4096) per daemon? no,
        # but more than 4096 in total, over three daemons; plus an unaligned start.
        data = os.urandom(5000 * CHUNK)
        fd = gk.open("/big", os.O_CREAT | os.O_RDWR)
        assert gk.pwrite(fd, data, 7) == len(data)
        assert gk.pread(fd, len(data), 7) == data
        assert gk.pread(fd, 7, 0) == bytes(7)
        gk.close(fd)


def test_fsync_reaches_every_daemon(gk, cluster):
    fd = gk.open("/s", os.O_CREAT | os.O_WRONLY)
    gk.write(fd, os.urandom(8 * CHUNK))
    before = [s["ops"].get("fsync", 0) for s in gk.status()]
    gk.fsync(fd)
    after = [s["ops"].get("fsync", 0) for s in gk.status()]
    assert all(a == b + 1 for a, b in zip(after, before))
    gk.close(fd)

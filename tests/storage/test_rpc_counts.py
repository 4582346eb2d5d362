"""One round trip per call (issue 9): the Python client's requests per call,
counted with the daemons' op counters, and the size a second client sees
right after a write returns."""
from __future__ import annotations

import os
import threading

from gkfs_client import distribution
from gkfs_client.client import Client


def test_one_daemon_create_write_stat_are_one_rpc_each(cluster, op_delta):
    c = cluster(n=1)
    with Client(c.hosts_file) as gk:
        gk.mkdir("/d")
        fds = []
        assert op_delta(gk, lambda: fds.append(gk.open("/d/f", os.O_CREAT | os.O_WRONLY, 0o644))) == {"create": 1}
        assert op_delta(gk, lambda: gk.write(fds[0], b"x" * 5000)) == {"write_chunks": 1}
        assert op_delta(gk, lambda: gk.stat("/d/f")) == {"stat": 1}
        gk.close(fds[0])
        assert gk.stat("/d/f").st_size == 5000
        # a read is one read_chunks that carries its size lookup
        rd = gk.open("/d/f", os.O_RDONLY)
        got = []
        assert op_delta(gk, lambda: got.append(gk.pread(rd, 4096, 4000))) == {"read_chunks": 1}
        assert got == [b"x" * 1000]  # clipped at EOF by the daemon
        assert op_delta(gk, lambda: got.append(gk.read(rd, 1 << 20))) == {"read_chunks": 1}
        assert op_delta(gk, lambda: got.append(gk.read(rd, 10))) == {"read_chunks": 1}
        assert got[1:] == [b"x" * 5000, b""]
        gk.close(rd)
        # a hole reads as zeros, still in one RPC
        sp = gk.open("/d/sparse", os.O_CREAT | os.O_RDWR, 0o644)
        gk.pwrite(sp, b"end", 700_000)
        assert op_delta(gk, lambda: got.append(gk.pread(sp, 1 << 20, 699_990))) == {"read_chunks": 1}
        assert got[-1] == bytes(10) + b"end"
        gk.close(sp)


def test_read_is_one_rpc_when_its_chunks_live_on_the_metadata_owner(cluster, op_delta):
    """With 3 daemons: a read whose chunks all live on the file's metadata
    owner is one read_chunks; any other read is stat + read_chunks."""
    c = cluster(n=3)
    cs = 65536
    with Client(c.hosts_file, chunk_size=None) as gk:
        cs = gk.chunk_size
        gk.mkdir("/r")
        one = two = 0
        for i in range(24):  # P(no mix) = 2 * (2/3)^24 < 1e-4
            p = f"/r/f{i}"
            gk.write_file(p, bytes([i]) * (cs + 10))
            key = gk.stat_record(p)["data_key"]
            same = distribution.chunk_owner(key, 0, 3) == distribution.metadata_owner(p, 3)
            fd = gk.open(p, os.O_RDONLY)
            got = []
            d = op_delta(gk, lambda: got.append(gk.pread(fd, 50, cs - 50)))  # chunk 0 only
            assert got == [bytes([i]) * 50]
            if same:
                one += 1
                assert d == {"read_chunks": 1}
            else:
                two += 1
                assert d == {"stat": 1, "read_chunks": 1}
            assert gk.pread(fd, 2 * cs, 0) == bytes([i]) * (cs + 10)  # two chunks: any path
            gk.close(fd)
        assert one and two


def test_one_rpc_read_never_returns_bytes_not_written(cluster):
    """The daemon reads the size before the data (a write stores data before
    size): a reader racing an appending writer sees only written bytes,
    never zeros past the data it read."""
    c = cluster(n=1)
    with Client(c.hosts_file) as w, Client(c.hosts_file) as r:
        fdw = w.open("/grow", os.O_CREAT | os.O_WRONLY, 0o644)
        fdr = r.open("/grow", os.O_RDONLY)
        done = threading.Event()
        bad = []

        def read_loop():
            while not done.is_set():
                data = r.pread(fdr, 1 << 20, 0)
                if data.count(b"z") != len(data):
                    bad.append(len(data))

        t = threading.Thread(target=read_loop)
        t.start()
        try:
            for _ in range(300):
                w.write(fdw, b"z" * 3000)
        finally:
            done.set()
            t.join()
        assert not bad
        assert r.pread(fdr, 1 << 20, 0) == b"z" * 900000


def test_size_visible_to_another_client_when_write_returns(cluster, op_delta):
    """Folded or not, the write is acknowledged only after the size update:
    another client's stat right after it sees the new size."""
    c = cluster(n=3)
    with Client(c.hosts_file) as a, Client(c.hosts_file) as b:
        a.mkdir("/v")
        folded = unfolded = 0
        for i in range(24):  # with 3 daemons, P(no mix of folded and unfolded) = (2/3)^24 < 1e-4
            p = f"/v/f{i}"
            fd = a.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
            key = a.stat_record(p)["data_key"]
            same = distribution.chunk_owner(key, 0, 3) == distribution.metadata_owner(p, 3)
            d = op_delta(a, lambda: a.pwrite(fd, b"y" * (100 + i), 10))
            if same:
                folded += 1
                assert d == {"write_chunks": 1}
            else:
                unfolded += 1
                assert d == {"write_chunks": 1, "update_size": 1}
            assert b.stat(p).st_size == 110 + i
            assert b.read_file(p) == bytes(10) + b"y" * (100 + i)
            a.close(fd)
        assert folded and unfolded


def test_create_errors_unchanged_with_one_rpc(cluster):
    """The parent checks the client no longer makes: still ENOENT for a
    missing parent and ENOTDIR for a file parent, nothing created."""
    c = cluster(n=2)
    with Client(c.hosts_file) as gk:
        gk.write_file("/file", b"1")
        for bad, exc in (("/missing/x", FileNotFoundError), ("/file/x", NotADirectoryError)):
            try:
                gk.open(bad, os.O_CREAT | os.O_WRONLY)
            except exc:
                pass
            else:
                raise AssertionError(f"open({bad}, O_CREAT) succeeded")
        assert gk.listdir("/") == ["file"]
        assert gk.read_file("/file") == b"1"


def test_folded_read_and_write_wait_for_a_rename_fence(cluster):
    """A folded size lookup / update names the file by size_path: a
    directory rename's fence holds it back (EAGAIN, asked again) exactly
    as it holds back the separate stat / update_size (protocol 4.8)."""
    c = cluster(n=1)
    with Client(c.hosts_file) as gk:
        gk.mkdir("/dir")
        gk.write_file("/dir/f", b"abc")
        fd = gk.open("/dir/f", os.O_RDWR)
        conn = c.conn(0)
        fence = {"owner": "test-rename", "tree": ["/dir", "/dir2"], "list": ["/"]}
        for op in (lambda: gk.pread(fd, 10, 0), lambda: gk.pwrite(fd, b"xyz", 3)):
            conn.call("fence", dict(fence, on=True)).raise_for_status()
            got: list = []
            t = threading.Thread(target=lambda: got.append(op()))
            t.start()
            t.join(0.6)
            held = t.is_alive()
            conn.call("fence", dict(fence, on=False)).raise_for_status()
            t.join(10)
            assert held, "a folded request went through a rename's fence"
            assert got and got[0] in (b"abc", 3)
        assert gk.pread(fd, 10, 0) == b"abcxyz"

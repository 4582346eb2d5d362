"""The 1 MiB data path (docs/performance.md, "The 1 MiB data path"):
chunk directories of large files in block groups of their own
(daemon/spread.py), 1 MiB data requests served by the receiving thread when
nothing else waits (daemon/server.py), their buffers from a heap that is
not given back after every request (daemon/memory.py). Real daemons and a
real file system."""
from __future__ import annotations

import errno
import os
import subprocess
import threading
import time

from gkfs_client.client import Client
from gkfs_daemon.chunkstore import ChunkStore
from gkfs_daemon.spread import mark_topdir

KiB = 1024
MiB = 1 << 20
CS = 512 * KiB


def _supports_topdir(path) -> bool:
    """ext2/3/4 (what `stat -f` calls "ext2/ext3") has the T attribute."""
    fs = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=True)
    return fs.stdout.strip() == "ext2/ext3"


def test_large_files_get_spread_chunk_dirs_small_files_not(tmp_path):
    cs = ChunkStore(tmp_path, CS)
    data = os.urandom(2 * CS)
    cs.write("small", 0, 0, b"x" * 100)  # first chunk not whole: made beside chunks/
    cs.write("partial", 0, 4096, data[:CS - 4096])  # not from offset 0 either
    assert cs.spread.made == 0
    cs.write("big", 0, 0, data[:CS])  # a whole first chunk: a large file
    cs.write("big", 1, 0, data[CS:])
    cs.write("tail", 3, 100, b"t" * 10)  # a first chunk here past the file's chunk 0: a large file
    ext = _supports_topdir(tmp_path)
    assert cs.spread.enabled == ext and cs.spread.made == (2 if ext else 0)
    if ext:
        flags = subprocess.run(["lsattr", "-d", str(tmp_path / "spread")], capture_output=True, text=True,
                               check=True).stdout.split()[0]
        assert "T" in flags, flags
    # the same layout and bytes either way; nothing left behind in spread/
    assert sorted(os.listdir(cs.key_dir("big"))) == ["0", "1"]
    assert os.stat(cs.key_dir("big")).st_mode & 0o777 == 0o700
    assert cs.read("big", 0, 0, CS) + cs.read("big", 1, 0, CS) == data
    assert cs.read("small", 0, 0, CS) == b"x" * 100
    assert cs.read("partial", 0, 0, CS) == bytes(4096) + data[:CS - 4096]
    assert not ext or os.listdir(tmp_path / "spread") == []
    assert cs.read("tail", 3, 0, 110) == bytes(100) + b"t" * 10
    assert sorted(p.name for p in (tmp_path / "chunks").iterdir()) == sorted(
        cs.key_dir(k).name for k in ("big", "small", "partial", "tail"))
    # removal and truncation as before
    assert cs.remove("big") == 2 and not cs.has_chunks("big")
    cs.write("big", 0, 0, data[:CS])  # the file again: a new spread directory
    assert cs.read("big", 0, 0, CS) == data[:CS] and cs.read("big", 1, 0, CS) == b""


def test_concurrent_first_chunks_of_one_file(tmp_path):
    """Workers writing the first chunks of one file at once: one chunk
    directory wins (RENAME_NOREPLACE), the others write into it; every byte
    lands, no spare directory is left behind."""
    cs = ChunkStore(tmp_path, CS)
    blobs = [os.urandom(CS) for _ in range(8)]
    barrier = threading.Barrier(len(blobs))
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            barrier.wait()
            cs.write("racy", i, 0, blobs[i])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(blobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert [cs.read("racy", i, 0, CS) for i in range(len(blobs))] == blobs
    if cs.spread.enabled:
        assert os.listdir(tmp_path / "spread") == []


def test_spread_leftovers_of_a_killed_daemon_removed_at_start(tmp_path):
    (tmp_path / "spread" / "a1b2.7").mkdir(parents=True)
    cs = ChunkStore(tmp_path, CS)
    if cs.spread.enabled:
        assert os.listdir(tmp_path / "spread") == []
    assert mark_topdir(tmp_path / "spread") == cs.spread.enabled


def test_folded_size_update_checked_before_any_chunk_is_written(cluster):
    """A write_chunks whose size update is malformed fails before it writes
    (it used to write the chunk, then fail)."""
    c = cluster(n=1, chunk_size=CS)
    conn = c.conn_at(0)
    conn.call("create", {"path": "/f", "mode": 0o100644})
    key = conn.call("stat", {"path": "/f"}).result["stat"]["data_key"]
    r = conn.request("write_chunks", {"data_key": key, "chunk_size": CS, "chunks": [[0, 0, 5]],
                                      "size_path": "/f", "size_offset": 0}, [b"hello"])
    assert r.status == errno.EINVAL and "size_count" in r.message, r
    assert not (c.rootdirs[0] / "chunks").exists() or not any((c.rootdirs[0] / "chunks").iterdir())
    assert conn.call("stat", {"path": "/f"}).result["stat"]["size"] == 0


def _minflt(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[7])


def test_1mib_reads_and_writes_reuse_the_daemons_heap(cluster):
    """Serial 1 MiB requests (served by the receiving thread) fault in no
    fresh pages once warm: the buffers of one request are reused by the
    next. With the heap trimmed after every request (M_TRIM_THRESHOLD 1 MiB)
    each 1 MiB read faulted ~670 fresh pages in."""
    c = cluster(n=1, chunk_size=CS)
    pid = c.daemons[0].pid
    payload = os.urandom(MiB)
    with Client(hosts_file=c.hosts_file, timeout=30) as fs:
        fd = fs.open("/heap", os.O_CREAT | os.O_RDWR, 0o644)
        for i in range(8):
            fs.pwrite(fd, payload, i * MiB)
        for _ in range(3):  # warm: the heap grows to what a request needs
            for i in range(8):
                assert fs.pread(fd, MiB, i * MiB) == payload
        before = _minflt(pid)
        for _ in range(2):
            for i in range(8):
                assert fs.pread(fd, MiB, i * MiB) == payload
                fs.pwrite(fd, payload, i * MiB)
        faults = _minflt(pid) - before
        fs.close(fd)
    assert faults < 16 * 100, f"{faults} page faults in 16 reads and 16 writes of 1 MiB"


def test_data_requests_inline_and_in_workers_side_by_side(cluster):
    """Single 1 MiB requests (served where received when nothing waits),
    4 MiB ones (always a worker) and stats of other clients at once: every
    byte where it belongs, every stat answered."""
    c = cluster(n=1, chunk_size=CS)
    errors: list[BaseException] = []
    stop = threading.Event()
    blobs = {r: os.urandom(4 * MiB) for r in range(3)}

    def writer(rank: int) -> None:
        try:
            with Client(hosts_file=c.hosts_file, timeout=30) as fs:
                data = blobs[rank]
                fd = fs.open(f"/w{rank}", os.O_CREAT | os.O_RDWR, 0o644)
                for rnd in range(3):
                    if rank == 0:
                        fs.pwrite(fd, data, 0)  # one 4 MiB request
                    else:
                        for i in range(4):
                            fs.pwrite(fd, memoryview(data)[i * MiB:(i + 1) * MiB], i * MiB)
                    got = fs.pread(fd, 4 * MiB, 0) if rank == 0 else b"".join(
                        fs.pread(fd, MiB, i * MiB) for i in range(4))
                    assert got == data, (rank, rnd)
                fs.close(fd)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def stater() -> None:
        try:
            with Client(hosts_file=c.hosts_file, timeout=30) as fs:
                fs.mkdir("/d", 0o755)
                while not stop.is_set():
                    assert fs.stat("/d").st_nlink >= 1
                    time.sleep(0.001)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    s = threading.Thread(target=stater)
    s.start()
    ws = [threading.Thread(target=writer, args=(r,)) for r in blobs]
    for t in ws:
        t.start()
    for t in ws:
        t.join(120)
    stop.set()
    s.join(30)
    assert not errors, errors
    with Client(hosts_file=c.hosts_file, timeout=30) as fs:
        for r, data in blobs.items():
            assert fs.read_file(f"/w{r}") == data

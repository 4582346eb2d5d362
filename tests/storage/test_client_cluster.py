"""Client behaviour that involves several processes or failing daemons."""
from __future__ import annotations

import errno
import multiprocessing as mp
import os
import signal
import time

import pytest

from gkfs_client import hostsfile
from gkfs_client.client import Client

CHUNK = 4096


def _writer(hosts_file: str, path: str, rank: int, block: int, rounds: int) -> None:
    # Each process its own client: separate sockets, separate request ids.
    with Client(hosts_file=hosts_file, timeout=30) as c:
        fd = c.open(path, os.O_WRONLY)
        pattern = bytes([65 + rank]) * block
        for r in range(rounds):
            # Interleaved stripes: rank k owns blocks k, k+n, k+2n...
            c.pwrite(fd, pattern, (r * 4 + rank) * block)
        c.close(fd)


def _appender(hosts_file: str, path: str, rank: int, count: int) -> None:
    with Client(hosts_file=hosts_file, timeout=30) as c:
        fd = c.open(path, os.O_WRONLY | os.O_APPEND)
        for i in range(count):
            c.write(fd, f"<{rank}:{i:04d}>".encode())
        c.close(fd)


def _run_all(target, argsets) -> None:
    ctx = mp.get_context("spawn")  # no inherited sockets at all
    procs = [ctx.Process(target=target, args=a) for a in argsets]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0


def test_concurrent_processes_write_disjoint_ranges_of_one_file(cluster):
    c = cluster(n=3, chunk_size=CHUNK)
    block, rounds = 3 * CHUNK + 100, 8  # unaligned: neighbours share chunks
    with Client(hosts_file=c.hosts_file) as gk:
        gk.close(gk.open("/shared", os.O_CREAT | os.O_WRONLY))
        _run_all(_writer, [(str(c.hosts_file), "/shared", rank, block, rounds) for rank in range(4)])
        data = gk.read_file("/shared")
    assert len(data) == 4 * rounds * block
    for i in range(4 * rounds):
        assert data[i * block:(i + 1) * block] == bytes([65 + i % 4]) * block, f"block {i}"


def test_concurrent_appenders_get_disjoint_ranges(cluster):
    c = cluster(n=3, chunk_size=CHUNK)
    with Client(hosts_file=c.hosts_file) as gk:
        gk.write_file("/log", b"")
        _run_all(_appender, [(str(c.hosts_file), "/log", rank, 50) for rank in range(3)])
        data = gk.read_file("/log")
    records = data.decode().split(">")[:-1]
    assert len(data) == 3 * 50 * len(b"<0:0000>")
    assert sorted(records) == sorted(f"<{r}:{i:04d}" for r in range(3) for i in range(50))
    # Each appender's own records stay in its order.
    for r in range(3):
        mine = [x for x in records if x.startswith(f"<{r}:")]
        assert mine == sorted(mine)


def test_forked_child_uses_its_own_connections(cluster):
    c = cluster(n=3, chunk_size=CHUNK)
    with Client(hosts_file=c.hosts_file) as gk:
        gk.write_file("/p", b"parent")
        pid = os.fork()
        if pid == 0:  # child: same Client object, must reconnect transparently
            code = 0
            try:
                gk.write_file("/c", gk.read_file("/p") + b"+child")
            except BaseException:
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert gk.read_file("/c") == b"parent+child"
        assert gk.read_file("/p") == b"parent"


def test_requests_to_all_daemons_are_in_flight_together(cluster):
    """Two frozen daemons cost one timeout, not two: the fan-out is parallel.
    The error names the silent daemons and comes within the bounded wait."""
    c = cluster(n=3, chunk_size=CHUNK)
    gk = Client(hosts_file=c.hosts_file, timeout=2.0)
    frozen = [c.daemons[1], c.daemons[2]]
    try:
        for p in frozen:
            p.send_signal(signal.SIGSTOP)
        t = time.monotonic()
        with pytest.raises(OSError) as exc:
            gk.statfs()
        took = time.monotonic() - t
        assert exc.value.errno == errno.EIO  # a down member is EIO, never other bytes
        assert c.address(1) in str(exc.value) and c.address(2) in str(exc.value)
        assert c.address(0) not in str(exc.value)
        # One after the other would take >= 4 s.
        assert 1.9 < took < 3.8, took
    finally:
        for p in frozen:
            p.send_signal(signal.SIGCONT)
    # Once they are back, the same client works again (stale requests dropped).
    assert gk.statfs()["chunk_size"] == CHUNK
    gk.disconnect()


def test_dead_daemon_gives_bounded_error_naming_it(cluster):
    c = cluster(n=3, chunk_size=CHUNK)
    gk = Client(hosts_file=c.hosts_file, timeout=1.0)
    gk.write_file("/f", os.urandom(20 * CHUNK))
    addr = c.address(2)
    c.kill(2)
    t = time.monotonic()
    with pytest.raises(OSError) as exc:
        gk.read_file("/f")  # 20 chunks: daemon 2 holds some of them
    assert exc.value.errno == errno.EIO
    assert addr in str(exc.value) and "member 2" in str(exc.value)
    assert time.monotonic() - t < 5
    gk.disconnect()
    # A new client starts (the other members are fine), but every call that
    # needs member 2 fails with EIO naming it; placement never moves.
    with Client(hosts_file=c.hosts_file, timeout=1.0) as gk:
        with pytest.raises(OSError) as exc:
            gk.read_file("/f")
        assert exc.value.errno == errno.EIO and addr in str(exc.value)


def test_missing_hosts_file_is_a_clear_error(tmp_path, monkeypatch):
    missing = tmp_path / "no-such-hosts"
    with pytest.raises(hostsfile.HostsFileMissing) as exc:
        Client(hosts_file=missing)
    assert str(missing) in str(exc.value) and "cluster start" in str(exc.value)
    assert isinstance(exc.value, FileNotFoundError)
    # The same through the environment variable.
    monkeypatch.setenv("LIBGKFS_HOSTS_FILE", str(missing))
    with pytest.raises(hostsfile.HostsFileMissing):
        Client()


def test_other_chunk_size_is_refused(cluster):
    c = cluster(n=3, chunk_size=CHUNK)
    with pytest.raises(OSError) as exc:
        Client(hosts_file=c.hosts_file, chunk_size=2 * CHUNK)
    assert exc.value.errno == errno.EINVAL
    assert "chunk size" in str(exc.value)
    with Client(hosts_file=c.hosts_file, chunk_size=CHUNK) as gk:
        assert gk.chunk_size == CHUNK


def test_restarted_daemon_keeps_data_for_the_client(cluster):
    c = cluster(n=3, chunk_size=CHUNK)
    data = os.urandom(12 * CHUNK)
    with Client(hosts_file=c.hosts_file) as gk:
        gk.mkdir("/keep")
        gk.write_file("/keep/f", data)
    for i in range(3):
        c.restart(i)
    with Client(hosts_file=c.hosts_file) as gk:
        assert gk.read_file("/keep/f") == data
        assert gk.listdir("/keep") == ["f"]


def _block(i: int, size: int) -> bytes:
    return (i.to_bytes(4, "little") * (size // 4 + 1))[:size]


def _streamer(hosts_file: str, block: int, acks) -> None:
    c = Client(hosts_file=hosts_file, timeout=2)
    fd = c.open("/stream", os.O_WRONLY)
    i = 0
    try:
        while True:
            c.pwrite(fd, _block(i, block), i * block)
            acks.put(i)  # acknowledged: pwrite returned
            i += 1
    except OSError:
        acks.put(-1)  # the killed daemon stopped the stream


def test_kill_9_during_a_write_stream_loses_no_acknowledged_write(cluster):
    c = cluster(n=3, chunk_size=CHUNK)
    block = 3 * CHUNK + 5
    with Client(hosts_file=c.hosts_file) as gk:
        gk.close(gk.open("/stream", os.O_CREAT | os.O_WRONLY))
    ctx = mp.get_context("spawn")
    acks = ctx.Queue()
    p = ctx.Process(target=_streamer, args=(str(c.hosts_file), block, acks))
    p.start()
    acked = []
    while len(acked) < 30:
        acked.append(acks.get(timeout=60))
    c.kill(1)
    while True:
        i = acks.get(timeout=60)
        if i < 0:
            break
        acked.append(i)
    p.join(30)
    assert p.exitcode == 0
    c.restart(1)
    with Client(hosts_file=c.hosts_file) as gk:
        size = gk.stat("/stream").st_size
        assert size >= len(acked) * block
        fd = gk.open("/stream")
        for i in acked:
            assert gk.pread(fd, block, i * block) == _block(i, block), f"acknowledged block {i} lost"
        gk.close(fd)

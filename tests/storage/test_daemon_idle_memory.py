"""An idle daemon gives back the memory of its last big request: a worker
thread must not keep its last request and reply (up to 64 MiB each) alive
until it happens to serve another one."""
from __future__ import annotations

import time

MiB = 1 << 20


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_idle_worker_keeps_no_big_reply(cluster, raw):
    c = cluster(n=1, chunk_size=512 * 1024)
    pid = c.daemons[0].pid
    conn = raw(c.address(0))
    conn.call("create", {"path": "/hole", "mode": 0o100644})
    st = conn.call("stat", {"path": "/hole"}).result["stat"]
    base = _rss(pid)
    args = {"data_key": st["data_key"], "chunk_size": 512 * 1024,
            "chunks": [[i, 0, 512 * 1024] for i in range(120)], "file_size": 2**40}
    if "cap" in st:
        args["cap"] = st["cap"]
    r = conn.call("read_chunks", args)   # 60 MiB of zeros (holes below file_size)
    assert sum(len(f) for f in r.data) == 120 * 512 * 1024
    del r
    time.sleep(1.0)   # the daemon is idle: nothing may pin the reply now
    assert _rss(pid) - base < 30 * MiB, (base, _rss(pid))


def test_idle_daemon_returns_heap_of_many_1mib_writes_and_reads(cluster):
    """1 MiB data requests are served from malloc's arenas (daemon/memory.py:
    no fresh zero pages per request); several workers at once use several
    arenas. Once the daemon is idle, what they freed goes back to the OS."""
    import os
    import threading

    from gkfs_client.client import Client

    c = cluster(n=1, chunk_size=512 * 1024)
    pid = c.daemons[0].pid
    payload = os.urandom(MiB)
    with Client(hosts_file=c.hosts_file, timeout=30) as warm:
        warm.write_file("/warm", payload)  # worker threads and libzmq buffers exist
        assert warm.read_file("/warm") == payload
    time.sleep(1.5)
    base = _rss(pid)
    errors: list[BaseException] = []

    def one(rank: int) -> None:
        try:
            with Client(hosts_file=c.hosts_file, timeout=30) as gk:
                fd = gk.open(f"/f{rank}", os.O_CREAT | os.O_RDWR, 0o644)
                for i in range(24):
                    gk.pwrite(fd, payload, i * MiB)
                for i in range(24):
                    assert gk.pread(fd, MiB, i * MiB) == payload
                gk.close(fd)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(r,)) for r in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    time.sleep(1.5)  # idle: the daemon trims its heap within ~0.2 s (and again at ~1.2 s)
    assert _rss(pid) - base < 24 * MiB, (base, _rss(pid))


def test_idle_trim_waits_for_a_pause_and_sleeps_when_idle():
    """daemon.memory.IdleTrim: nothing runs before data moves; once it moves,
    the heap is trimmed only after a whole pause without data, and again
    after the later pauses; small requests do not count."""
    from gkfs_daemon.memory import NOTE_MIN, IdleTrim

    def wait_for(n: int) -> None:
        deadline = time.monotonic() + 5
        while t.trims < n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert t.trims == n

    t = IdleTrim(idle_s=0.25, again_s=(0.3,))
    t.note(NOTE_MIN - 1)
    assert t._thread is None and t.trims == 0  # a small request: nothing started
    t.note(MiB)
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:  # data keeps moving: no trim meanwhile
        t.note(MiB)
        time.sleep(0.01)
        assert t.trims == 0
    wait_for(1)  # the pause came
    wait_for(2)  # and once more after again_s
    time.sleep(0.5)
    assert t.trims == 2  # then it sleeps until data moves again
    t.note(MiB)
    wait_for(3)

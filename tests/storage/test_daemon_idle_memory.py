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
